"""Voice statistics' pitch tracker (YIN) against librosa's pyin on the speaker fixtures.

Prints, per fixture, the median and mean f0 of both and their relative difference,
and the CPU time of each. Run: ``OMP_NUM_THREADS=1 python bench/voice_pitch.py``.
"""

from __future__ import annotations

import platform
import time
from datetime import date
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf
import soxr

from detectors.speaker import voice
from detectors.speaker.voice import (
    PITCH_FRAME,
    PITCH_HOP,
    PITCH_MAX_HZ,
    PITCH_MIN_HZ,
    SAMPLE_RATE,
    voice_features,
)  # fmt: skip

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"
FIXTURES = [*sorted((DATA / "speaker").glob("*.flac")), DATA / "diarization" / "enroll_ked.flac"]
SECONDS = 10.0  # the voice statistics measure pitch on at most 10 s per speaker


def load(path: Path) -> np.ndarray:
    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    mono = soxr.resample(mono, rate, SAMPLE_RATE) if rate != SAMPLE_RATE else mono
    return np.asarray(mono[: int(SECONDS * SAMPLE_RATE)], np.float32)


def main() -> None:
    print(f"{date.today()} {platform.machine()} {platform.python_version()}")
    print(f"{'fixture':<18} {'pyin med':>8} {'yin med':>8} {'diff':>6} "
          f"{'pyin mean':>9} {'yin mean':>8} {'pyin s':>7} {'ours s':>6}")  # fmt: skip
    worst = 0.0
    for path in FIXTURES:
        audio = load(path)
        started = time.process_time()
        f0, voiced, _ = librosa.pyin(
            audio, fmin=PITCH_MIN_HZ, fmax=PITCH_MAX_HZ, sr=SAMPLE_RATE,
            frame_length=PITCH_FRAME, hop_length=PITCH_HOP,
        )  # fmt: skip
        pyin_s = time.process_time() - started
        ref = f0[voiced & np.isfinite(f0)]
        started = time.process_time()
        ours = voice_features(audio)
        yin_s = time.process_time() - started
        ref_median = float(np.median(ref))
        # voice_features reports the mean and 10-90 % range; the median is their middle.
        span = ours.pitch_range_hz or (float("nan"), float("nan"))
        our_median = _median(audio)
        diff = 100 * (our_median / ref_median - 1)
        worst = max(worst, abs(diff))
        print(
            f"{path.name:<18} {ref_median:8.1f} {our_median:8.1f} {diff:+5.1f}% "
            f"{float(np.mean(ref)):9.1f} {ours.mean_pitch_hz or float('nan'):8.1f} "
            f"{pyin_s:7.3f} {yin_s:6.3f}   range {span}"
        )
    print(f"largest median difference: {worst:.1f} % (target: within 3 %)")


def _median(audio: np.ndarray) -> float:
    """The median of the f0 values voice_features averages (same frames, same guard)."""
    f0, aperiodicity = voice.yin(audio)
    kept = f0[(aperiodicity < voice.APERIODICITY_MAX) & voice.loud_frames(audio, len(f0))]
    median = float(np.median(kept))
    kept = kept[(kept < median * voice.OCTAVE_GUARD) & (kept > median / voice.OCTAVE_GUARD)]
    return float(np.median(kept))


if __name__ == "__main__":
    main()
