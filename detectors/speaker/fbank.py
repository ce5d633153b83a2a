"""Kaldi's log mel filterbank in numpy: the CAM++ speaker encoder's input.

Equal (to float32 rounding) to ``torchaudio.compliance.kaldi.fbank(wave,
num_mel_bins=80, sample_frequency=16000, dither=0)``, which 3D-Speaker trained
CAM++ on: 25 ms frames every 10 ms (only whole frames), each frame's mean
removed, pre-emphasis 0.97, a Povey window, a 512-point power spectrum, 80
triangular filters spaced on the mel scale from 20 Hz to 8 kHz, and the natural
log floored at float32's epsilon.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

from detectors.dsp import htk_hz_to_mel

RATE = 16000
FRAME_LENGTH = 400  # 25 ms
FRAME_SHIFT = 160  # 10 ms
FFT_SIZE = 512
N_MELS = 80
LOW_HZ = 20.0
PREEMPHASIS = 0.97
EPSILON = float(np.finfo(np.float32).eps)

Features = npt.NDArray[np.float32]


@functools.cache
def _mel_banks() -> npt.NDArray[np.float32]:
    """[257, 80] weights of the power spectrum's bins (the last, Nyquist's, is zero)."""
    half = FFT_SIZE // 2
    low, high = htk_hz_to_mel(LOW_HZ), htk_hz_to_mel(RATE / 2)
    delta = (high - low) / (N_MELS + 1)
    left = low + delta * np.arange(N_MELS)
    centre, right = left + delta, left + 2 * delta
    mel = htk_hz_to_mel(RATE / FFT_SIZE * np.arange(half))[:, None]
    up = (mel - left) / (centre - left)
    down = (right - mel) / (right - centre)
    banks = np.maximum(0.0, np.minimum(up, down))
    return np.vstack([banks, np.zeros((1, N_MELS))]).astype(np.float32)


@functools.cache
def _window() -> npt.NDArray[np.float64]:
    n = np.arange(FRAME_LENGTH)
    result: npt.NDArray[np.float64] = (
        0.5 - 0.5 * np.cos(2 * np.pi * n / (FRAME_LENGTH - 1))
    ) ** 0.85
    return result


def n_frames(n_samples: int) -> int:
    """How many frames ``n_samples`` make (0 if fewer than one frame's worth)."""
    return 0 if n_samples < FRAME_LENGTH else 1 + (n_samples - FRAME_LENGTH) // FRAME_SHIFT


def log_fbank(audio: npt.ArrayLike) -> Features:
    """[frames, 80] log mel energies of 16 kHz mono ``audio`` (float samples)."""
    samples = np.asarray(audio, dtype=np.float64)
    if samples.ndim != 1:
        raise ValueError(f"fbank takes mono audio, got shape {list(samples.shape)}")
    count = n_frames(len(samples))
    if count == 0:
        return np.zeros((0, N_MELS), np.float32)
    index = FRAME_SHIFT * np.arange(count)[:, None] + np.arange(FRAME_LENGTH)[None, :]
    frames = samples[index]
    frames = frames - frames.mean(axis=1, keepdims=True)
    previous = np.concatenate([frames[:, :1], frames[:, :-1]], axis=1)
    frames = (frames - PREEMPHASIS * previous) * _window()
    power = np.abs(np.fft.rfft(frames, n=FFT_SIZE, axis=1)) ** 2
    energies = power.astype(np.float32) @ _mel_banks()
    result: Features = np.log(np.maximum(energies, EPSILON)).astype(np.float32)
    return result


def normalised_fbank(audio: npt.ArrayLike) -> Features:
    """:func:`log_fbank` with its mean over time removed (the encoder's input per window)."""
    features = log_fbank(audio)
    result: Features = features - features.mean(axis=0, keepdims=True)
    return result
