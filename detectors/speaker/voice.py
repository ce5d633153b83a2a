"""Voice characteristics of one speaker's speech: pitch, speech rate, level.

- Pitch: YIN (de Cheveigné and Kawahara, 2002) between 60 and 400 Hz on 20 ms
  frames, kept where the frame is periodic (aperiodicity below
  ``APERIODICITY_MAX``), within ``LOUD_DB`` of the loudest frame and within a
  factor ``OCTAVE_GUARD`` of the median (octave errors); the mean, and the 10th
  to 90th percentile as the range. librosa's pyin cost 40x more (its Viterbi
  decoding); on the speaker fixtures the median f0 stays within 1.4 % of pyin's
  (``bench/voice_pitch.py``).
- Speech rate: syllable nuclei per second of speech, counted as peaks of the
  300-3000 Hz band energy (10 ms frames, smoothed over 50 ms) that stand out by
  at least ``NUCLEUS_PROMINENCE_DB`` from the dips around them, are at most
  ``NUCLEUS_FLOOR_DB`` below the loudest frame, and fall on voiced frames
  (after de Jong and Wempe's syllable-nuclei method, 2009).
- Energy: RMS level of the speech in dBFS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors.dsp import find_peaks

SAMPLE_RATE = 16_000
PITCH_MIN_HZ = 60.0
PITCH_MAX_HZ = 400.0
HOP = 160  # 10 ms, for the band energy
PITCH_HOP = 2 * HOP  # 20 ms
PITCH_FRAME = 1024
YIN_TROUGH = 0.1  # the first dip of the normalised difference below this is the period
APERIODICITY_MAX = 0.3  # frames whose best dip is higher are unvoiced
LOUD_DB = 30.0  # voiced frames are at most this far below the loudest frame
OCTAVE_GUARD = 1.6  # f0 further than this factor from the median is an octave error
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
    if len(audio) < PITCH_FRAME * 2 or energy is None:
        return VoiceFeatures(None, None, None, energy)
    f0, aperiodicity = yin(audio)
    voiced = (aperiodicity < APERIODICITY_MAX) & loud_frames(audio, len(f0))
    pitched = f0[voiced]
    if len(pitched):
        median = float(np.median(pitched))
        pitched = pitched[(pitched < median * OCTAVE_GUARD) & (pitched > median / OCTAVE_GUARD)]
    mean = round(float(np.mean(pitched)), 1) if len(pitched) else None
    span = (
        (round(float(np.percentile(pitched, 10)), 1), round(float(np.percentile(pitched, 90)), 1))
        if len(pitched)
        else None
    )
    nuclei = syllable_nuclei(audio, np.repeat(voiced, PITCH_HOP // HOP))
    seconds = speech_s if speech_s is not None else len(audio) / SAMPLE_RATE
    rate = round(nuclei / seconds, 2) if seconds > 0 else None
    return VoiceFeatures(mean, span, rate, round(energy, 1))


def _frames(audio: Audio, size: int, hop: int) -> npt.NDArray[np.float64]:
    """Centred frames of ``audio`` (zero padded by ``size // 2``), one per column."""
    y = np.pad(np.asarray(audio, np.float64), size // 2)
    n = max(0, 1 + (len(y) - size) // hop)
    return np.lib.stride_tricks.as_strided(y, (size, n), (y.strides[0], hop * y.strides[0]))


def yin(audio: Audio) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """f0 (Hz) and aperiodicity (0 periodic .. 1) of each 20 ms frame, by YIN with
    parabolic interpolation of the period."""
    frame, win = PITCH_FRAME, PITCH_FRAME // 2
    frames = _frames(audio, frame, PITCH_HOP)
    n = frames.shape[1]
    min_p = int(SAMPLE_RATE // PITCH_MAX_HZ)
    max_p = min(int(np.ceil(SAMPLE_RATE / PITCH_MIN_HZ)), frame - win - 1)
    # Difference function d(tau) = e(0) + e(tau) - 2 r(tau), the autocorrelation by FFT.
    acf = np.fft.irfft(
        np.fft.rfft(frames, frame, axis=0) * np.fft.rfft(frames[win:0:-1], frame, axis=0),
        frame,
        axis=0,
    )[win:]
    energy = np.cumsum(frames**2, axis=0)
    energy = energy[win:] - energy[:-win]
    diff = energy[:1] + energy - 2 * acf
    cumulative = np.cumsum(diff[1 : max_p + 1], axis=0) / np.arange(1, max_p + 1)[:, None]
    d = diff[min_p : max_p + 1] / (cumulative[min_p - 1 : max_p] + 1e-12)
    dip = np.zeros_like(d, dtype=bool)
    dip[1:-1] = (d[1:-1] < d[:-2]) & (d[1:-1] <= d[2:]) & (d[1:-1] < YIN_TROUGH)
    best = np.where(dip.any(axis=0), np.argmax(dip, axis=0), np.argmin(d, axis=0))
    cols = np.arange(n)
    inner = np.clip(best, 1, len(d) - 2)
    left, mid, right = d[inner - 1, cols], d[inner, cols], d[inner + 1, cols]
    curvature = left - 2 * mid + right
    shift = np.divide(0.5 * (left - right), curvature, out=np.zeros(n), where=curvature > 1e-12)
    shift = np.where(best == inner, np.clip(shift, -1.0, 1.0), 0.0)
    return SAMPLE_RATE / (min_p + best + shift), d[best, cols]


def loud_frames(audio: Audio, n: int) -> npt.NDArray[np.bool_]:
    """Which of the first ``n`` pitch frames are within ``LOUD_DB`` of the loudest."""
    power = np.mean(_frames(audio, PITCH_FRAME, PITCH_HOP)[:, :n] ** 2, axis=0)
    db = 10.0 * np.log10(np.maximum(power, 1e-18))
    return np.asarray(db > db.max() - LOUD_DB) if n else np.zeros(0, bool)


def syllable_nuclei(audio: Audio, voiced: npt.NDArray[np.bool_]) -> int:
    """How many syllable nuclei ``audio`` holds (see the module docstring); ``voiced``
    per 10 ms frame."""
    # A centred STFT (Hann window, zero padding) as librosa.stft computes it.
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(512) / 512)
    spectrum = np.abs(np.fft.rfft(_frames(audio, 512, HOP).T * window, axis=1)).T ** 2
    freqs = np.fft.rfftfreq(512, 1 / SAMPLE_RATE)
    band = spectrum[(freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])].sum(axis=0)
    db = 10.0 * np.log10(np.maximum(band, 1e-12))
    smooth = np.convolve(db, np.ones(5) / 5, mode="same")
    peaks = find_peaks(
        smooth,
        prominence=NUCLEUS_PROMINENCE_DB,
        distance=max(1, round(NUCLEUS_MIN_GAP_S * SAMPLE_RATE / HOP)),
        height=float(smooth.max()) - NUCLEUS_FLOOR_DB,
    )
    n = min(len(voiced), len(smooth))
    return int(sum(1 for p in peaks if p < n and voiced[p]))
