"""Cost of the GE2E speaker encoder on one CPU thread, per 1.6 s partial utterance.

Both shipped models are timed: the float export and the int8 derivative the analysis
runs by default (``tools/quantize_speaker_encoder.py``).

Times, with ``time.process_time`` (CPU time of this process; onnxruntime runs
on one intra-op thread, sequential), the best of ``--repeats`` runs of:

1. the front end alone: mel spectrogram of 1.6 s of 16 kHz audio;
2. the ONNX network alone, batch of 1 and batch of 8 partials (cost per partial);
3. ``embed_utterance`` on the test clips (preprocessing with VAD, mel, network),
   per second of audio.

Usage: python bench/speaker_encoder_cost.py [--repeats 5] [--iterations 50]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf

from detectors.speaker import SpeakerEncoder, encoder_provenance
from detectors.speaker import frontend as fe
from detectors.speaker.encoder import ENCODER_MODEL, FLOAT_ENCODER_MODEL

CLIPS = Path(__file__).resolve().parents[1] / "tests" / "data" / "speaker"


def cpu_model() -> str:
    """The CPU's model name, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def best_ms(run: Callable[[], object], iterations: int, repeats: int) -> float:
    """Least CPU milliseconds per call of ``run`` over ``repeats`` rounds of ``iterations``."""
    run()  # warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for _ in range(iterations):
            run()
        best = min(best, (time.process_time() - start) / iterations)
    return 1000 * best


def main() -> None:
    """Print the figures with the date and the machine."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds; the best one counts")
    parser.add_argument("--iterations", type=int, default=50, help="calls per round")
    args = parser.parse_args()

    clips = [sf.read(path, dtype="float32")[0] for path in sorted(CLIPS.glob("*.flac"))]
    audio = fe.preprocess(np.concatenate(clips))
    partial_audio = audio[: fe.PARTIAL_SAMPLES]
    mels = fe.partial_mels(audio)[:8]

    print(
        f"speaker_encoder_cost  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
        f"{cpu_model()}  python {platform.python_version()}  onnxruntime {ort.__version__}"
    )
    n, r = args.iterations, args.repeats
    mel_ms = best_ms(lambda: fe.mel_spectrogram(partial_audio), n, r)
    print(f"front end (mel of 1.6 s)            {mel_ms:7.2f} ms per partial")
    seconds = sum(len(c) for c in clips) / fe.SAMPLE_RATE
    for path in (FLOAT_ENCODER_MODEL, ENCODER_MODEL):
        encoder = SpeakerEncoder(path)
        print(f"model: {encoder_provenance(path)}")
        one_ms = best_ms(lambda e=encoder: e.embed_partials(mels[:1]), n, r)
        print(f"  network, batch 1                  {one_ms:7.2f} ms per partial")
        batch = best_ms(lambda e=encoder: e.embed_partials(mels), max(1, n // 4), r) / len(mels)
        print(f"  network, batch {len(mels)}                  {batch:7.2f} ms per partial")
        utterance_ms = best_ms(lambda e=encoder: [e.embed_utterance(c) for c in clips], 1, r)
        print(
            f"  embed_utterance on {len(clips)} clips ({seconds:.1f} s)  "
            f"{utterance_ms / seconds:7.2f} ms per audio-second "
            f"({utterance_ms / seconds / 1000:.4f} CPU-s per audio-s)"
        )


if __name__ == "__main__":
    main()
