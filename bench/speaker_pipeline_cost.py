"""Live cost of the speaker detector, alone and in the full pipeline, on one channel.

CPU seconds per audio second (best of 3, one thread) of one 48 kHz channel chain
(resample, windows, detectors) on two kinds of audio: a conversation of
``tools/make_conversations.py`` (speech nearly all the time: the speaker
detector's worst case) and the bundled demo scene (speech, music and silence).

    OMP_NUM_THREADS=1 .venv/bin/python bench/speaker_pipeline_cost.py \\
        --conversation build/conversations/test_005.flac
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import soundfile as sf
import soxr

from bench.stream_cost import CAPTURE_RATE, cpu_per_audio_second
from detectors import AnyDetectorConfig, HeritageConfig, LevelConfig, SpeakerConfig, VadConfig
from stream.sources.file import demo_scene_path

NO_PROFILES = Path("/nonexistent/profiles.json")


def at_capture_rate(path: Path, seconds: float) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = soxr.resample(audio.mean(axis=1), rate, CAPTURE_RATE).astype(np.float32)
    reps = int(np.ceil(seconds * CAPTURE_RATE / len(mono)))
    return np.tile(mono, reps)[: int(seconds * CAPTURE_RATE)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversation", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=90.0)
    args = parser.parse_args()
    base: list[AnyDetectorConfig] = [VadConfig(), LevelConfig()]
    speakers = {
        f"{encoder}, hop {hop} s, batch {batch}": SpeakerConfig(
            profiles_path=NO_PROFILES, encoder=encoder, hop_s=hop, min_evidence=evidence,
            batch=batch,
        )
        for encoder in ("ge2e-int8", "ge2e")
        for hop, evidence, batch in ((0.5, 4, 2), (0.5, 4, 1), (1.0, 3, 1))
    }  # fmt: skip
    cases: list[tuple[str, list[AnyDetectorConfig]]] = [
        ("vad + level", base),
        ("vad + level + heritage", [*base, HeritageConfig()]),
        *((f"speaker alone ({k})", [v]) for k, v in speakers.items()),
        *((f"vad + level + heritage + speaker ({k})", [*base, HeritageConfig(), v])
          for k, v in speakers.items()),
    ]  # fmt: skip
    print(f"speaker_pipeline_cost  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}")
    for name, path in (("conversation", args.conversation), ("demo scene", demo_scene_path())):
        audio = at_capture_rate(path, args.seconds)
        print(f"\n{name} ({path.name}), {args.seconds:.0f} s at 48 kHz: CPU-s per audio-s")
        for label, detectors in cases:
            print(f"  {label:<66} {cpu_per_audio_second(audio, detectors):.4f}")


if __name__ == "__main__":
    main()
