"""CPU of a file's speaker analysis (batched pipeline + whole-file diarization) per file hop.

Run: ``OMP_NUM_THREADS=1 .venv/bin/python bench/speaker_file_hop.py 'DIR/test_*.flac' 0.5 1.0``
(one thread, thread CPU time; the DER of each hop comes from ``bench/eval_diarization.py
--set file_hop_s=H``).
"""

from __future__ import annotations

import argparse
import glob
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import soundfile as sf
from eval_diarization import run_pipeline

from config.pipeline import PipelineConfig
from detectors.speaker.detector import SpeakerConfig, SpeakerDetector
from detectors.speaker.offline import diarize
from stream.speaker_report import speaker_analysis_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", help="glob of 16 kHz conversations")
    parser.add_argument("hops", type=float, nargs="+", help="file hops to measure (s)")
    args = parser.parse_args()
    files = [Path(f) for f in sorted(glob.glob(args.files))]
    audio_s = sum(sf.info(f).duration for f in files)
    for hop in args.hops:
        config = SpeakerConfig(profiles_path=Path("/nonexistent/profiles.json"), file_hop_s=hop)
        pipeline = speaker_analysis_config(PipelineConfig(detectors=[config]))
        cpu = 0.0
        for path in files:
            runner, _, seconds = run_pipeline(path, pipeline)
            started = time.thread_time()
            found = [
                d for c in runner.chains for d in c.detectors if isinstance(d, SpeakerDetector)
            ]
            diarize([d.history() for d in found], found[0].config)
            cpu += seconds + time.thread_time() - started
        print(f"file hop {hop:g} s: {cpu:.2f} CPU-s for {audio_s:.0f} s of audio, "
              f"{cpu / audio_s:.4f} CPU-s per audio-s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
