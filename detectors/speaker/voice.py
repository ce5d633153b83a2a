"""Voice characteristics of one speaker's speech: pitch, speech rate, level.

- Pitch: librosa's probabilistic YIN (pyin) between 60 and 400 Hz on voiced
  20 ms frames; the mean, and the 10th to 90th percentile as the range.
- Speech rate: syllable nuclei per second of speech, counted as peaks of the
  300-3000 Hz band energy (10 ms frames, smoothed over 50 ms) that stand out by
  at least ``NUCLEUS_PROMINENCE_DB`` from the dips around them, are at most
  ``NUCLEUS_FLOOR_DB`` below the loudest frame, and fall on voiced frames
  (after de Jong and Wempe's syllable-nuclei method, 2009).
- Energy: RMS level of the speech in dBFS.
"""

from __future__ import annotations

from dataclasses import dataclass

import librosa
import numpy as np
import numpy.typing as npt
from scipy.signal import find_peaks

SAMPLE_RATE = 16_000
PITCH_MIN_HZ = 60.0
PITCH_MAX_HZ = 400.0
HOP = 160  # 10 ms, for the band energy
PYIN_HOP = 2 * HOP  # 20 ms: pyin costs in proportion to its frames
PYIN_FRAME = 1024
NUCLEUS_PROMINENCE_DB = 3.0
NUCLEUS_FLOOR_DB = 25.0
NUCLEUS_MIN_GAP_S = 0.1  # syllables are at least this far apart
BAND_HZ = (300.0, 3000.0)

Audio = npt.NDArray[np.float32]


@dataclass(frozen=True)
class VoiceFeatures:
    """Pitch (Hz; None when nothing was voiced), syllables per second, level (dBFS)."""

    mean_pitch_hz: float | None
    pitch_range_hz: tuple[float, float] | None
    speech_rate: float | None
    energy_db: float | None


def level_dbfs(sum_squares: float, n_samples: int) -> float | None:
    """RMS level in dBFS of samples whose squares sum to ``sum_squares``."""
    if n_samples == 0 or sum_squares <= 0:
        return None
    return max(-120.0, 10.0 * float(np.log10(sum_squares / n_samples)))


def voice_features(speech: Audio, speech_s: float | None = None) -> VoiceFeatures:
    """Characteristics of ``speech`` (16 kHz mono, one speaker, pauses mostly cut).

    ``speech_s``: seconds the syllable count is divided by (default: the length).
    """
    audio = np.asarray(speech, dtype=np.float32)
    energy = level_dbfs(float(np.sum(np.square(audio, dtype=np.float64))), len(audio))
    if len(audio) < PYIN_FRAME * 2 or energy is None:
        return VoiceFeatures(None, None, None, energy)
    f0, voiced, _ = librosa.pyin(
        audio, fmin=PITCH_MIN_HZ, fmax=PITCH_MAX_HZ, sr=SAMPLE_RATE,
        frame_length=PYIN_FRAME, hop_length=PYIN_HOP,
    )  # fmt: skip
    pitched = f0[voiced & np.isfinite(f0)]
    mean = round(float(np.mean(pitched)), 1) if len(pitched) else None
    span = (
        (round(float(np.percentile(pitched, 10)), 1), round(float(np.percentile(pitched, 90)), 1))
        if len(pitched)
        else None
    )
    nuclei = syllable_nuclei(audio, np.repeat(voiced, PYIN_HOP // HOP))
    seconds = speech_s if speech_s is not None else len(audio) / SAMPLE_RATE
    rate = round(nuclei / seconds, 2) if seconds > 0 else None
    return VoiceFeatures(mean, span, rate, round(energy, 1))


def syllable_nuclei(audio: Audio, voiced: npt.NDArray[np.bool_]) -> int:
    """How many syllable nuclei ``audio`` holds (see the module docstring); ``voiced``
    per 10 ms frame."""
    spectrum = np.abs(librosa.stft(audio, n_fft=512, hop_length=HOP)) ** 2
    freqs = librosa.fft_frequencies(sr=SAMPLE_RATE, n_fft=512)
    band = spectrum[(freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])].sum(axis=0)
    db = 10.0 * np.log10(np.maximum(band, 1e-12))
    smooth = np.convolve(db, np.ones(5) / 5, mode="same")
    peaks, _ = find_peaks(
        smooth,
        prominence=NUCLEUS_PROMINENCE_DB,
        distance=max(1, round(NUCLEUS_MIN_GAP_S * SAMPLE_RATE / HOP)),
        height=float(smooth.max()) - NUCLEUS_FLOOR_DB,
    )
    n = min(len(voiced), len(smooth))
    return int(sum(1 for p in peaks if p < n and voiced[p]))
