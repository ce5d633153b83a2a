"""Filter banks and spectral helpers shared by the detectors, without librosa.

librosa costs 0.7 CPU-s and 180 MB of memory to import (numba, llvmlite); file
analysis used three of its functions. These are the same computations (checked
against librosa 0.11 to float precision by tests/test_dsp.py): the Slaney mel
filter bank, the chroma filter bank and median-filtering harmonic/percussive
separation. librosa is ISC-licensed; the algorithms follow its code.

Nothing here imports SciPy: file analysis of a short file paid about half a CPU-second
of start-up for it (``scipy._lib._array_api`` and ``scipy.spatial``, pulled in by any
of ``scipy.fft``, ``scipy.ndimage`` and ``scipy.cluster``). tests/test_dsp.py checks
these against SciPy.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Float64 = npt.NDArray[np.float64]
_LOG_STEP = math.log(6.4) / 27.0  # Slaney: mel steps above 1 kHz


def hz_to_mel(hz: Float64) -> Float64:
    """Slaney's mel scale: linear (3 mel per 200 Hz) below 1 kHz, logarithmic above."""
    hz = np.asarray(hz, dtype=np.float64)
    above = 15.0 + np.log(np.maximum(hz, 1000.0) / 1000.0) / _LOG_STEP
    mel: Float64 = np.where(hz >= 1000.0, above, 3.0 * hz / 200.0)
    return mel


def htk_hz_to_mel(hz: npt.ArrayLike) -> Float64:
    """The HTK (and Kaldi, and TensorFlow) mel scale: 1127 ln(1 + f / 700)."""
    mel: Float64 = 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)
    return mel


def mel_to_hz(mel: Float64) -> Float64:
    """Inverse of :func:`hz_to_mel`."""
    mel = np.asarray(mel, dtype=np.float64)
    above = 1000.0 * np.exp(_LOG_STEP * (mel - 15.0))
    hz: Float64 = np.where(mel >= 15.0, above, 200.0 * mel / 3.0)
    return hz


def mel_filterbank(
    sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> Float64:
    """Triangular filters ``[n_mels, 1 + n_fft // 2]`` on Slaney's mel scale, each of unit
    area in Hz (``librosa.filters.mel`` with its defaults)."""
    top = sr / 2 if fmax is None else fmax
    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(fmin)), hz_to_mel(np.array(top)), n_mels + 2))
    bins = np.linspace(0.0, sr / 2, 1 + n_fft // 2)
    ramps = np.subtract.outer(edges, bins)
    widths = np.diff(edges)
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights: Float64 = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return weights


def chroma_filterbank(
    sr: int, n_fft: int, n_chroma: int = 12, ctroct: float = 5.0, octwidth: float = 2.0
) -> Float64:
    """Pitch-class filters ``[n_chroma, 1 + n_fft // 2]`` starting at C, Gaussian bumps
    per semitone weighted by a Gaussian over octaves (``librosa.filters.chroma``)."""
    frequencies = np.linspace(0, sr, n_fft, endpoint=False)[1:]
    octaves = np.log2(frequencies / (440.0 / 16))
    bins = n_chroma * octaves
    bins = np.concatenate(([bins[0] - 1.5 * n_chroma], bins))
    widths = np.concatenate((np.maximum(bins[1:] - bins[:-1], 1.0), [1]))
    d = np.subtract.outer(bins, np.arange(0, n_chroma, dtype="d")).T
    half = np.round(float(n_chroma) / 2)
    d = np.remainder(d + half + 10 * n_chroma, n_chroma) - half
    weights = np.exp(-0.5 * (2 * d / np.tile(widths, (n_chroma, 1))) ** 2)
    length = np.sqrt(np.sum(weights**2, axis=0, keepdims=True))
    length[length < np.finfo(np.float64).tiny] = 1.0
    weights = weights / length
    weights *= np.tile(np.exp(-0.5 * (((bins / n_chroma - ctroct) / octwidth) ** 2)), (n_chroma, 1))
    weights = np.roll(weights, -3 * (n_chroma // 12), axis=0)
    result: Float64 = np.ascontiguousarray(weights[:, : int(1 + n_fft / 2)])
    return result


def hpss(spectrum: npt.NDArray[np.floating], kernel_size: tuple[int, int]) -> tuple[
    npt.NDArray[np.floating], npt.NDArray[np.floating]
]:  # fmt: skip
    """Harmonic and percussive parts of a magnitude or power spectrogram ``[bins, frames]``:
    median filters along time (``kernel_size[0]`` frames) and across frequency
    (``kernel_size[1]`` bins), then Wiener-like soft masks of power 2
    (``librosa.decompose.hpss``)."""
    harmonic = median_filter(spectrum, kernel_size[0], axis=1)
    percussive = median_filter(spectrum, kernel_size[1], axis=0)
    mask_h = _softmask(harmonic, percussive)
    mask_p = _softmask(percussive, harmonic)
    return spectrum * mask_h, spectrum * mask_p


def median_filter(x: npt.NDArray[np.floating], size: int, axis: int) -> npt.NDArray[np.floating]:
    """Running median of ``size`` values along ``axis``, edges mirrored: the values of
    ``scipy.ndimage.median_filter`` with a ``size`` of 1 on every other axis and
    ``mode="reflect"`` (the same numbers: a median is one of its inputs)."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (size // 2, (size - 1) // 2)
    windows = np.lib.stride_tricks.sliding_window_view(
        np.pad(x, pad, mode="symmetric"), size, axis=axis
    )
    result: npt.NDArray[np.floating] = np.partition(windows, size // 2, axis=-1)[..., size // 2]
    return result


def dct_matrix(n: int) -> Float64:
    """The orthonormal DCT-II as an ``(n, n)`` matrix: ``x @ dct_matrix(n)`` is
    ``scipy.fft.dct(x, type=2, norm="ortho", axis=-1)`` (to float rounding)."""
    k = np.arange(n)
    basis = np.cos(np.pi * np.outer(2 * k + 1, k) / (2 * n)) * math.sqrt(2 / n)
    basis[:, 0] /= math.sqrt(2)
    return basis


def _softmask(
    x: npt.NDArray[np.floating], ref: npt.NDArray[np.floating]
) -> npt.NDArray[np.floating]:
    dtype = x.dtype
    z = np.maximum(x, ref).astype(dtype)
    bad = z < np.finfo(dtype).tiny
    z[bad] = 1
    mask = (x / z) ** 2
    ref_mask = (ref / z) ** 2
    good = ~bad
    mask[good] /= mask[good] + ref_mask[good]
    mask[bad] = 0.5
    result: npt.NDArray[np.floating] = mask
    return result


def find_peaks(
    x: Float64, *, height: float, distance: int, prominence: float
) -> npt.NDArray[np.intp]:
    """Indices of the peaks of ``x`` (``scipy.signal.find_peaks`` with these three
    conditions, same result): local maxima (a flat top counts once, at its middle,
    rounded down), kept if at least ``height``, then thinned to ``distance`` samples
    apart (the higher kept first), then kept if they rise at least ``prominence`` above
    the higher of the two lowest points between them and a higher sample on either side.
    Importing scipy.signal costs 0.3-0.7 CPU-s of start-up (it imports scipy.stats)."""
    if distance < 1:
        raise ValueError("distance must be at least 1")
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 3:
        return np.zeros(0, np.intp)
    # Runs of equal samples; a run higher than both neighbouring runs is a peak.
    starts = np.flatnonzero(np.concatenate(([True], x[1:] != x[:-1])))
    ends = np.append(starts[1:] - 1, n - 1)
    values = x[starts]
    top = np.zeros(len(starts), bool)
    top[1:-1] = (values[1:-1] > values[:-2]) & (values[1:-1] > values[2:])
    peaks = ((starts[top] + ends[top]) // 2).astype(np.intp)
    peaks = peaks[x[peaks] >= height]
    peaks = peaks[_thinned(peaks, x[peaks], distance)]
    kept: npt.NDArray[np.intp] = peaks[_prominences(x, peaks) >= prominence]
    return kept


def _thinned(peaks: npt.NDArray[np.intp], heights: Float64, distance: int) -> npt.NDArray[np.bool_]:
    """Which peaks survive when the highest removes its neighbours closer than ``distance``
    (scipy's ``_select_by_peak_distance``, with its order of ties)."""
    keep = np.ones(len(peaks), bool)
    if distance <= 1:
        return keep
    positions = peaks.tolist()
    for j in np.argsort(heights)[::-1].tolist():
        if not keep[j]:
            continue
        k = j - 1
        while k >= 0 and positions[j] - positions[k] < distance:
            keep[k] = False
            k -= 1
        k = j + 1
        while k < len(positions) and positions[k] - positions[j] < distance:
            keep[k] = False
            k += 1
    return keep


def _prominences(x: Float64, peaks: npt.NDArray[np.intp]) -> Float64:
    """Each peak's height above the higher of its two bases: the lowest samples between
    it and the nearest strictly higher sample on each side (or the signal's end)."""
    if not len(peaks):
        return np.zeros(0)
    n = len(x)
    left = np.empty(len(peaks), np.intp)  # index after the nearest higher sample on the left
    right = np.empty(len(peaks), np.intp)  # index of the nearest higher sample on the right
    values = x.tolist()
    for i, p in enumerate(peaks.tolist()):
        v = values[p]
        k = p - 1
        while k >= 0 and values[k] <= v:
            k -= 1
        left[i] = k + 1
        k = p + 1
        while k < n and values[k] <= v:
            k += 1
        right[i] = k
    padded = np.append(x, np.inf)  # so that a segment may end at n
    left_min = np.minimum.reduceat(padded, np.column_stack((left, peaks + 1)).ravel())[::2]
    right_min = np.minimum.reduceat(padded, np.column_stack((peaks, right)).ravel())[::2]
    result: Float64 = x[peaks] - np.maximum(left_min, right_min)
    return result


def mono_audio(audio: npt.ArrayLike, allow_empty: bool = False) -> npt.NDArray[np.float32]:
    """``audio`` as 1-D finite float32, non-empty unless ``allow_empty``; ``ValueError``
    otherwise."""
    mono = np.asarray(audio, dtype=np.float32)
    if mono.ndim != 1 or (mono.size == 0 and not allow_empty):
        what = "mono" if allow_empty else "non-empty mono"
        raise ValueError(f"expected {what} audio (1-D), got shape {mono.shape}")
    if not np.all(np.isfinite(mono)):
        raise ValueError("audio holds NaN or infinite samples")
    return mono
