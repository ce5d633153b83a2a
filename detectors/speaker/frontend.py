"""The GE2E speaker encoder's front end: resemblyzer's preprocessing in numpy.

Every constant is the one resemblyzer 0.1.4 (``hparams.py``, ``audio.py``,
``voice_encoder.py``) trained and runs the encoder with:

- audio: 16 kHz mono float in [-1, 1];
- volume: scaled up (never down) to an RMS of -30 dBFS;
- long silences: WebRTC VAD (mode 3) on 30 ms windows, decisions smoothed by
  a majority over 8 windows (at least 5 voiced), voiced runs dilated by 3
  windows each side; everything else is cut, so no pause lasts more than about
  6 windows (180 ms);
- mel spectrogram: 25 ms periodic Hann window (n_fft = 400 samples, no zero
  padding), 10 ms hop (160 samples), frames centred on ``k * 160`` with the
  signal reflected at both ends (librosa < 0.9's ``pad_mode="reflect"``, the
  librosa the encoder was trained with), *power* spectrum (|X|^2), 40 mel bands
  from 0 Hz to 8 kHz on the Slaney mel scale (not HTK) with Slaney area
  normalisation, and *no* logarithm;
- partial utterances: 160 frames (1.6 s) every round(16000 / 1.3 / 160) = 77
  frames (0.77 s); the last one is kept if at least 75 % of it holds audio
  (the signal is zero-padded to its end).

One departure: resemblyzer zero-pads an utterance shorter than one partial and
embeds it anyway (and returns NaN for digital silence); here ``partial_mels``
raises ``ValueError`` for audio shorter than ``min_coverage`` of a partial
(1.2 s by default) and ``normalize_volume`` for silent audio.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import webrtcvad

from detectors.dsp import mono_audio

Audio = npt.NDArray[np.float32]
"""Mono samples at ``SAMPLE_RATE``, float32 in [-1, 1]."""

SAMPLE_RATE = 16_000  # Hz
N_FFT = 400  # samples: the 25 ms analysis window, without zero padding
HOP = 160  # samples: 10 ms between frames
MEL_BANDS = 40
F_MAX = SAMPLE_RATE / 2  # Hz: top of the highest mel band (bottom of the lowest is 0 Hz)
PARTIAL_FRAMES = 160  # frames per partial utterance (1.6 s)
PARTIAL_SAMPLES = PARTIAL_FRAMES * HOP  # 25,600 samples
PARTIAL_RATE = 1.3  # partial utterances started per second of audio
MIN_COVERAGE = 0.75  # share of the last partial that must hold audio for it to count
TARGET_DBFS = -30.0  # RMS level that quieter audio is raised to
VAD_WINDOW = 480  # samples: 30 ms WebRTC VAD window
VAD_MODE = 3  # WebRTC VAD aggressiveness
VAD_SMOOTHING = 8  # windows in the moving majority vote
VAD_DILATION = 3  # windows added on each side of a voiced run
INT16_MAX = 32767


def normalize_volume(wav: npt.ArrayLike, target_dbfs: float = TARGET_DBFS) -> Audio:
    """Raise ``wav`` to an RMS of ``target_dbfs`` (dBFS); louder audio is returned unchanged.

    ``ValueError`` for empty or digitally silent audio, which no gain can normalise.
    """
    audio = mono_audio(wav, allow_empty=True)
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
    if rms == 0.0:
        raise ValueError("audio is silent (all samples zero): nothing to embed")
    gain = 10.0 ** (target_dbfs / 20.0) / rms
    if gain <= 1.0:
        return audio
    raised: Audio = (audio.astype(np.float64) * gain).astype(np.float32)
    return raised


def voiced_windows(wav: Audio) -> npt.NDArray[np.bool_]:
    """WebRTC VAD decision of each whole 30 ms window of ``wav`` (a trailing part is ignored)."""
    n_windows = len(wav) // VAD_WINDOW
    pcm = np.round(wav[: n_windows * VAD_WINDOW] * INT16_MAX)
    data = np.clip(pcm, -INT16_MAX - 1, INT16_MAX).astype("<i2").tobytes()
    vad = webrtcvad.Vad(VAD_MODE)
    step = 2 * VAD_WINDOW  # bytes per window
    flags = [vad.is_speech(data[i : i + step], SAMPLE_RATE) for i in range(0, len(data), step)]
    return np.array(flags, dtype=np.bool_)


def trim_long_silences(wav: npt.ArrayLike) -> Audio:
    """Cut the unvoiced stretches of ``wav`` longer than about 180 ms (see the module doc).

    The result is a whole number of 30 ms windows long; empty if nothing is voiced.
    """
    audio = mono_audio(wav, allow_empty=True)
    flags = voiced_windows(audio).astype(np.int64)
    # Majority of the 8 windows from 3 before to 4 after each one; 4 of 8 is not enough.
    before = (VAD_SMOOTHING - 1) // 2
    padded = np.concatenate([np.zeros(before), flags, np.zeros(VAD_SMOOTHING - 1 - before)])
    votes = np.convolve(padded, np.ones(VAD_SMOOTHING), mode="valid")
    voiced = (2 * votes > VAD_SMOOTHING).astype(np.int64)
    kernel = np.ones(2 * VAD_DILATION + 1)
    keep = np.convolve(voiced, kernel, mode="same") > 0
    kept: Audio = audio[: len(keep) * VAD_WINDOW][np.repeat(keep, VAD_WINDOW)]
    return kept


def preprocess(wav: npt.ArrayLike) -> Audio:
    """Resemblyzer's ``preprocess_wav`` for 16 kHz audio: volume normalisation, then trimming."""
    return trim_long_silences(normalize_volume(wav))


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Slaney's mel scale: linear (3 mel per 200 Hz) below 1 kHz, logarithmic above."""
    linear = 3.0 * hz / 200.0
    log_step = math.log(6.4) / 27.0
    above = 15.0 + np.log(np.maximum(hz, 1000.0) / 1000.0) / log_step
    result: npt.NDArray[np.float64] = np.where(hz >= 1000.0, above, linear)
    return result


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Inverse of ``_hz_to_mel``."""
    linear = 200.0 * mel / 3.0
    log_step = math.log(6.4) / 27.0
    above = 1000.0 * np.exp(log_step * (mel - 15.0))
    result: npt.NDArray[np.float64] = np.where(mel >= 15.0, above, linear)
    return result


@lru_cache(maxsize=1)
def mel_filterbank() -> npt.NDArray[np.float64]:
    """Triangular mel filters [MEL_BANDS, N_FFT // 2 + 1], each of unit area in Hz (Slaney)."""
    edges = _mel_to_hz(np.linspace(0.0, _hz_to_mel(np.array(F_MAX)), MEL_BANDS + 2))
    bins = np.linspace(0.0, SAMPLE_RATE / 2, N_FFT // 2 + 1)  # Hz of each FFT bin
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins - low) / (centre - low)
    falling = (high - bins) / (high - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling)) * (2.0 / (high - low))
    weights.flags.writeable = False
    return weights


@lru_cache(maxsize=1)
def _window() -> npt.NDArray[np.float64]:
    """Periodic Hann window of ``N_FFT`` samples."""
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)
    window.flags.writeable = False
    return window


def mel_spectrogram(wav: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Mel power spectrogram [1 + len(wav) // HOP frames, MEL_BANDS] of preprocessed audio.

    Frame ``k`` is centred on sample ``k * HOP`` (10 ms steps); values are linear
    power (squared magnitude of full-scale-1 samples), no logarithm.
    """
    audio = mono_audio(wav, allow_empty=True)
    if len(audio) <= N_FFT // 2:
        raise ValueError(f"need more than {N_FFT // 2} samples for a spectrogram, got {len(audio)}")
    padded = np.pad(audio.astype(np.float64), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    power = np.abs(np.fft.rfft(frames * _window(), axis=1)) ** 2
    mel: npt.NDArray[np.float32] = (power @ mel_filterbank().T).astype(np.float32)
    return mel


def partial_starts(
    n_samples: int, rate: float = PARTIAL_RATE, min_coverage: float = MIN_COVERAGE
) -> list[int]:
    """First mel frame of each partial utterance of ``n_samples`` samples of audio.

    Partials start every ``round(SAMPLE_RATE / rate / HOP)`` frames until one
    reaches past the audio; that last one is dropped if less than
    ``min_coverage`` of it holds audio, unless it is the only one.
    """
    if not 0.0 < min_coverage <= 1.0:
        raise ValueError(f"min_coverage must be in (0, 1], got {min_coverage}")
    step = round(SAMPLE_RATE / rate / HOP)
    if not 0 < step <= PARTIAL_FRAMES:
        low = SAMPLE_RATE / PARTIAL_SAMPLES
        raise ValueError(f"rate must give partials that overlap or touch (>= {low}), got {rate}")
    n_frames = math.ceil((n_samples + 1) / HOP)
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    coverage = (n_samples - starts[-1] * HOP) / PARTIAL_SAMPLES
    if coverage < min_coverage and len(starts) > 1:
        starts.pop()
    return starts


def partial_mels(
    wav: npt.ArrayLike, rate: float = PARTIAL_RATE, min_coverage: float = MIN_COVERAGE
) -> npt.NDArray[np.float32]:
    """The encoder's input for preprocessed audio: [n_partials, PARTIAL_FRAMES, MEL_BANDS].

    ``ValueError`` if ``wav`` is all zeros, or shorter than ``min_coverage``
    of one partial (1.2 s by default): too little voice for a speaker embedding.
    """
    audio = mono_audio(wav, allow_empty=True)
    if audio.size and not np.any(audio):
        raise ValueError("audio is silent (all samples zero): nothing to embed")
    shortest = math.ceil(min_coverage * PARTIAL_SAMPLES)
    if len(audio) < shortest:
        raise ValueError(
            f"{len(audio) / SAMPLE_RATE:.3f} s of (voiced) audio is too short for a speaker "
            f"embedding: need at least {shortest / SAMPLE_RATE:.3f} s"
        )
    starts = partial_starts(len(audio), rate, min_coverage)
    end = (starts[-1] + PARTIAL_FRAMES) * HOP
    if end >= len(audio):
        audio = np.pad(audio, (0, end - len(audio)))
    mel = mel_spectrogram(audio)
    return np.stack([mel[s : s + PARTIAL_FRAMES] for s in starts])
