"""Silero as shipped (``silero_vad_16k_seq.onnx``, rebuilt by tools/export_silero_lean.py)
against the upstream export (``silero_vad_16k_op15.onnx``) on real recordings: the largest
probability difference and the frames whose speech decision (0.5) changes, frame by frame
and as one run of frames.

Usage: python bench/silero_parity.py [FILE ...]   (default: tests/data/heritage_real/*.flac)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from detectors.vad import SILERO_FRAME, SILERO_MODEL, SileroFrames, VadConfig

ROOT = Path(__file__).resolve().parent.parent


def frames_of(path: Path) -> np.ndarray:
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    if rate != 16000:
        mono = soxr.resample(mono, rate, 16000).astype(np.float32)
    n = len(mono) // SILERO_FRAME
    return mono[: n * SILERO_FRAME].reshape(n, SILERO_FRAME)


def main() -> None:
    files = [Path(a) for a in sys.argv[1:]] or sorted(
        (ROOT / "tests" / "data" / "heritage_real").glob("*.flac")
    )
    original = VadConfig(model_path=SILERO_MODEL.with_name("silero_vad_16k_op15.onnx"))
    total = changed = 0
    worst = 0.0
    for path in files:
        frames = frames_of(path)
        ref_model = SileroFrames(original, 16000)
        reference = np.array([ref_model.probability(f) for f in frames])
        one_model = SileroFrames(VadConfig(), 16000)
        one_by_one = np.array([one_model.probability(f) for f in frames])
        in_runs = SileroFrames(VadConfig(), 16000).probabilities(frames)
        diff = max(np.abs(reference - one_by_one).max(), np.abs(reference - in_runs).max())
        flips = sum(
            int(((reference >= 0.5) != (got >= 0.5)).sum()) for got in (one_by_one, in_runs)
        )
        print(f"{path.name[:48]:48s} {len(frames):6d} frames  max |difference| {diff:.1e}  "
              f"decisions changed {flips}")  # fmt: skip
        total += len(frames)
        changed += flips
        worst = max(worst, float(diff))
    print(f"all: {len(files)} recordings, {total} frames, max |difference| {worst:.1e}, "
          f"decisions changed {changed}")  # fmt: skip


if __name__ == "__main__":
    main()
