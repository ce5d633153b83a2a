"""Heritage features: what separates folk, classical, opera, speech, archival speech and chant.

A :class:`Featurizer` takes one channel at 16 kHz in any chunks and returns, every ``hop``
samples once ``window`` samples are in, one fixed-length vector describing the last
window: timbre (MFCC statistics, coarse log-mel shape, spectral contrast), bandwidth and
noise floor, clicks and mains hum, pulse regularity and tempo, harmonic/percussive
balance, pitch-track vibrato rate and extent, voicing and syllabic (speech-like)
modulation. Frames sit on a grid of absolute sample positions and are computed in
batches that end on hop boundaries, so the vectors depend only on the samples, never
on how they were chunked; training (``train``) and live detection share this code.
"""

from __future__ import annotations

import functools
from collections import deque
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from detectors.dsp import dct_matrix, hpss, mel_filterbank

FEATURE_VERSION = "heritage-features/2"
"""Bumped whenever a feature changes meaning; a model trained on another version is refused."""

SAMPLE_RATE = 16000
N_FFT = 1024  # 64 ms frames
HOP = 320  # 20 ms: 50 frames per second
N_MELS = 40
N_MFCC = 12  # c1..c12; c0 is level, which says nothing about the category
LONG_FFT = 8192  # 0.5 s frames, ~2 Hz bins: enough to resolve mains hum
LONG_HOP = 8000
F0_MIN, F0_MAX = 70.0, 1000.0
VOICED = 0.55  # normalised autocorrelation peak that counts as a voiced frame
CONTRAST_EDGES = (0, 200, 400, 800, 1600, 3200, 8000)  # Hz, spectral contrast bands
COARSE_BANDS = 8  # log-mel shape summarised in this many bands

Vector = npt.NDArray[np.float64]


def _names() -> list[str]:
    names = [f"mfcc{i}_mean" for i in range(1, N_MFCC + 1)]
    names += [f"mfcc{i}_std" for i in range(1, N_MFCC + 1)]
    names += [f"mfcc{i}_delta_std" for i in range(1, N_MFCC + 1)]
    names += [f"mel_shape{i}" for i in range(COARSE_BANDS)]
    names += ["centroid_mean", "centroid_std", "spread_mean", "rolloff85_mean", "rolloff99_p90"]
    names += ["flatness_mean", "flatness_std"]
    names += [f"contrast{i}" for i in range(len(CONTRAST_EDGES) - 1)]
    names += ["energy_std_db", "dynamic_range_db", "pause_ratio"]
    names += ["noise_floor_db", "noise_floor_high_db"]
    names += ["click_ratio", "click_strength", "hum_db"]
    names += ["pulse_clarity", "tempo_lag_s", "flux_mean", "flux_std", "percussive_ratio"]
    names += ["voiced_ratio", "voicing_mean", "f0_std_st", "f0_step_cents"]
    names += ["vibrato_extent_cents", "vibrato_rate_hz", "vibrato_strength"]
    names += ["syllabic_modulation", "voicing_changes_per_s"]
    return names


FEATURE_NAMES: tuple[str, ...] = tuple(_names())


@dataclass(frozen=True)
class _Tables:
    window: Vector
    mel_t: Vector  # (bins, N_MELS)
    dct: Vector  # (N_MELS, N_MFCC): c1..c12 of the orthonormal DCT-II
    freqs: Vector
    lag_norm: Vector  # autocorrelation of the analysis window, to unbias frame ACFs
    contrast_bins: tuple[tuple[int, int], ...]
    long_window: Vector
    long_freqs: Vector


@functools.cache
def _tables() -> _Tables:
    """Windows and filter banks, built on first use (librosa is slow to import)."""
    window = np.hanning(N_FFT + 2)[1:-1]
    acf = np.correlate(window, window, mode="full")[N_FFT - 1 :]
    freqs = np.fft.rfftfreq(N_FFT, 1 / SAMPLE_RATE).astype(np.float64)
    bins = tuple(
        (int(np.searchsorted(freqs, lo)), int(np.searchsorted(freqs, hi)))
        for lo, hi in pairwise(CONTRAST_EDGES)
    )
    mel = mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS, fmin=50.0, fmax=8000.0)
    return _Tables(
        window=window,
        mel_t=np.ascontiguousarray(mel.T),
        dct=dct_matrix(N_MELS)[:, 1 : N_MFCC + 1],
        freqs=freqs,
        lag_norm=acf / acf[0],
        contrast_bins=bins,
        long_window=np.hanning(LONG_FFT + 2)[1:-1],
        long_freqs=np.fft.rfftfreq(LONG_FFT, 1 / SAMPLE_RATE).astype(np.float64),
    )


class _Grid:
    """Frames of ``size`` samples every ``hop`` samples, aligned to absolute sample positions."""

    def __init__(self, size: int, hop: int) -> None:
        self.size, self.hop = size, hop
        self.next = 0  # index of the next frame to cut

    def frames(self, audio: Vector, audio_start: int, end: int) -> tuple[Vector, int]:
        """Every not yet cut frame ending at or before ``end``; returns (frames, first index)."""
        first = self.next
        last = (end - self.size) // self.hop  # last frame index that fits
        if last < first:
            return np.zeros((0, self.size)), first
        starts = np.arange(first, last + 1) * self.hop - audio_start
        self.next = last + 1
        return audio[starts[:, None] + np.arange(self.size)], first


def _frame_descriptors(frames: Vector) -> dict[str, Vector]:
    """Per-frame spectral and pitch descriptors of 1024-sample frames."""
    spec = np.fft.rfft(frames * _tables().window, axis=1)
    power = spec.real**2 + spec.imag**2 + 1e-12
    # Dense products (BLAS runs on one thread: config/threads.py).
    logmel = 10 * np.log10(power @ _tables().mel_t + 1e-10)
    mfcc = logmel @ _tables().dct
    total = power.sum(axis=1)
    centroid = power @ _tables().freqs / total
    spread = np.sqrt(np.maximum(0.0, power @ (_tables().freqs ** 2) / total - centroid**2))
    cumulative = np.cumsum(power, axis=1) / total[:, None]
    rolloff85 = _tables().freqs[np.argmax(cumulative >= 0.85, axis=1)]
    rolloff99 = _tables().freqs[np.argmax(cumulative >= 0.99, axis=1)]
    flatness = np.mean(np.log(power[:, 3:]), axis=1) - np.log(np.mean(power[:, 3:], axis=1))
    contrast = []
    for lo, hi in _tables().contrast_bins:
        band = np.sort(power[:, lo:hi], axis=1)
        k = max(1, (hi - lo) // 5)
        contrast.append(
            10 * np.log10(band[:, -k:].mean(axis=1)) - 10 * np.log10(band[:, :k].mean(axis=1))
        )
    # Pitch from the frame's autocorrelation (inverse FFT of its power), unbiased by the window.
    acf = np.fft.irfft(power, axis=1)[:, : N_FFT // 2]
    acf = acf / (acf[:, :1] * _tables().lag_norm[: N_FFT // 2] + 1e-12)
    lo_lag, hi_lag = int(SAMPLE_RATE / F0_MAX), int(SAMPLE_RATE / F0_MIN)
    region = acf[:, lo_lag:hi_lag]
    peak = np.argmax(region, axis=1)
    strength = region[np.arange(len(region)), peak]
    idx = np.clip(peak, 1, region.shape[1] - 2)
    a, b, c = (region[np.arange(len(region)), idx + d] for d in (-1, 0, 1))
    denom = a - 2 * b + c
    offset = np.where(np.abs(denom) > 1e-12, 0.5 * (a - c) / np.where(denom == 0, 1, denom), 0.0)
    lag = lo_lag + idx + np.clip(offset, -1, 1)
    # The strongest partial between 150 and 2000 Hz (log-parabolic interpolation): in a mix
    # it follows the loudest voice, whose vibrato the autocorrelation pitch cannot see.
    lo_bin, hi_bin = int(150 * N_FFT / SAMPLE_RATE), int(2000 * N_FFT / SAMPLE_RATE)
    logp = np.log(power[:, lo_bin - 1 : hi_bin + 1])
    k = np.argmax(logp[:, 1:-1], axis=1) + 1
    rows = np.arange(len(logp))
    pa, pb, pc = logp[rows, k - 1], logp[rows, k], logp[rows, k + 1]
    pden = pa - 2 * pb + pc
    shift = np.where(pden < 0, 0.5 * (pa - pc) / np.where(pden == 0, -1, pden), 0.0)
    partial = (lo_bin - 1 + k + np.clip(shift, -0.5, 0.5)) * SAMPLE_RATE / N_FFT
    # Clicks: the largest first difference against the frame's typical one.
    diff = np.abs(np.diff(frames[:, (N_FFT - HOP) // 2 : (N_FFT + HOP) // 2], axis=1))
    click = np.max(diff, axis=1) / (np.median(diff, axis=1) + 1e-9)
    return {
        "logmel": logmel,
        "mfcc": mfcc,
        "energy_db": 10 * np.log10(total),
        "centroid": centroid,
        "spread": spread,
        "rolloff85": rolloff85,
        "rolloff99": rolloff99,
        "flatness": flatness,
        "contrast": np.stack(contrast, axis=1),
        "voicing": np.clip(strength, 0.0, 1.0),
        "f0": SAMPLE_RATE / lag,
        "click": click,
        "partial": partial,
        "rms": np.sqrt(np.mean(frames**2, axis=1)),
    }


def _hum_db(frames: Vector) -> Vector:
    """Mains hum per 0.5 s frame: power on 50 or 60 Hz harmonics over their neighbours (dB)."""
    spec = np.abs(np.fft.rfft(frames * _tables().long_window, axis=1)) ** 2 + 1e-12
    f = _tables().long_freqs
    best = np.full(len(frames), -60.0)
    for mains in (50.0, 60.0):
        on = np.zeros_like(f, dtype=bool)
        near = np.zeros_like(f, dtype=bool)
        for k in (1, 2, 3, 4, 5):
            distance = np.abs(f - mains * k)
            on |= distance <= 2.0
            near |= (distance >= 5.0) & (distance <= 15.0)
        ratio = spec[:, on].mean(axis=1) / spec[:, near].mean(axis=1)
        best = np.maximum(best, 10 * np.log10(ratio))
    return best


def _vibrato(partial: Vector, active: npt.NDArray[np.bool_]) -> tuple[float, float, float]:
    """Extent (cents, RMS), rate (Hz) and 4-8 Hz share of the strongest partial's wobble.

    Measured over runs where that partial glides continuously (no jump over 1.5 semitones).
    """
    cents = 1200 * np.log2(np.maximum(partial, 1.0) / 440.0)
    steady = np.concatenate([[False], np.abs(np.diff(cents)) < 150]) & active
    edges = np.flatnonzero(np.diff(np.concatenate([[0], steady.astype(int), [0]])))
    extents, rates, shares, weights = [], [], [], []
    freqs = np.fft.rfftfreq(128, 1 / 50)
    band = (freqs >= 4) & (freqs <= 8)
    for start, end in zip(edges[::2], edges[1::2], strict=True):
        if end - start < 20:  # runs shorter than 0.4 s cannot show a 5 Hz cycle
            continue
        run = cents[start:end]
        kernel = np.ones(15) / 15  # 0.3 s moving average: the sung note
        trend = np.convolve(np.pad(run, 7, mode="edge"), kernel, mode="valid")
        wobble = run - trend
        spec = np.abs(np.fft.rfft(wobble * np.hanning(len(wobble)), n=128)) ** 2
        total = spec[1:].sum() + 1e-9
        extents.append(float(np.sqrt(np.mean(wobble**2))))
        rates.append(float(freqs[band][np.argmax(spec[band])]))
        shares.append(float(spec[band].sum() / total))
        weights.append(end - start)
    if not weights:
        return 0.0, 0.0, 0.0
    w = np.asarray(weights, dtype=np.float64)
    return (
        float(np.average(extents, weights=w)),
        float(np.average(rates, weights=w)),
        float(np.average(shares, weights=w)),
    )


def _pulse(flux: Vector) -> tuple[float, float]:
    """Pulse clarity (peak normalised autocorrelation of the onset envelope) and its lag (s)."""
    x = flux - flux.mean()
    if len(x) < 80 or not np.any(x):
        return 0.0, 0.0
    acf = np.correlate(x, x, mode="full")[len(x) - 1 :]
    acf = acf / (acf[0] * (len(x) - np.arange(len(x))) / len(x))
    lo, hi = 10, min(75, len(x) // 2)  # 0.2 .. 1.5 s between beats
    lag = lo + int(np.argmax(acf[lo:hi]))
    return float(acf[lag]), lag / 50


def _syllabic(rms: Vector) -> float:
    """Share of the energy envelope's modulation at syllable rates (2-8 Hz) of 0.5-20 Hz."""
    env = np.sqrt(rms)
    env = env - env.mean()
    spec = np.abs(np.fft.rfft(env * np.hanning(len(env)), n=512)) ** 2
    freqs = np.fft.rfftfreq(512, 1 / 50)
    wide = spec[(freqs >= 0.5) & (freqs <= 20)].sum() + 1e-12
    return float(spec[(freqs >= 2) & (freqs <= 8)].sum() / wide)


def window_features(d: dict[str, Vector], hum: Vector) -> Vector:
    """The feature vector (``FEATURE_NAMES``) from a window's frame descriptors."""
    logmel, mfcc = d["logmel"], d["mfcc"]
    energy = d["energy_db"]
    loud = np.percentile(energy, 90)
    active = energy > loud - 40  # frames that carry the signal, not the gaps between
    if active.sum() < 5:
        active = np.ones_like(energy, dtype=bool)
    coarse = logmel[active].mean(axis=0).reshape(COARSE_BANDS, -1).mean(axis=1)
    floor = np.percentile(logmel, 10, axis=0) - logmel.mean(axis=0)
    flux = np.concatenate([[0.0], np.maximum(0.0, np.diff(logmel, axis=0)).mean(axis=1)])
    # Harmonic/percussive separation (median filtering) on every other frame: 25 frames/s
    # resolve both sustained partials (0.36 s kernel) and onsets at a quarter of the cost.
    mel_power = 10 ** (logmel[::2].T / 10)
    harmonic, percussive = hpss(mel_power, (9, 9))
    voiced = (d["voicing"] >= VOICED) & active
    cents = 1200 * np.log2(np.maximum(d["f0"], 1.0) / 440.0)
    steps = np.abs(np.diff(cents))[voiced[1:] & voiced[:-1]]
    clarity, lag = _pulse(flux)
    extent, rate, share = _vibrato(d["partial"], active)
    seconds = len(energy) / 50
    features = [
        *mfcc[active].mean(axis=0),
        *mfcc[active].std(axis=0),
        *np.diff(mfcc, axis=0).std(axis=0),
        *(coarse - coarse.mean()),
        d["centroid"][active].mean() / 1000,
        d["centroid"][active].std() / 1000,
        d["spread"][active].mean() / 1000,
        d["rolloff85"][active].mean() / 1000,
        np.percentile(d["rolloff99"][active], 90) / 1000,
        d["flatness"][active].mean(),
        d["flatness"][active].std(),
        *d["contrast"][active].mean(axis=0),
        energy.std(),
        loud - np.percentile(energy, 10),
        float(np.mean(energy < loud - 30)),
        floor.mean(),
        floor[-10:].mean(),
        float(np.mean(d["click"][active] > 12)),
        float(np.mean(np.log(np.maximum(d["click"][active], 1.0)))),
        float(np.median(hum)) if len(hum) else -30.0,
        clarity,
        lag,
        flux.mean(),
        flux.std(),
        float(percussive.sum() / (harmonic.sum() + percussive.sum() + 1e-12)),
        float(voiced.mean()),
        float(d["voicing"][active].mean()),
        float(np.std(cents[voiced]) / 100) if voiced.sum() > 2 else 0.0,
        float(np.median(steps)) if len(steps) else 0.0,
        extent,
        rate,
        share,
        _syllabic(d["rms"]),
        float(np.count_nonzero(np.diff(voiced.astype(int)))) / seconds,
    ]
    return np.asarray(features, dtype=np.float64)


@dataclass(frozen=True)
class WindowFeatures:
    """Features of the window ``start``..``end`` (samples since stream start) and its level."""

    start: int
    end: int
    rms_dbfs: float
    vector: Vector


def excerpt_vector(samples: npt.ArrayLike) -> WindowFeatures:
    """Features (``FEATURE_NAMES``) of one excerpt of mono 16 kHz audio analysed whole.

    Shorter excerpts than four FFT frames are zero-padded at the end.
    """
    x = _padded_excerpt(samples)
    count = (len(x) - N_FFT) // HOP + 1
    frames = x[np.arange(count)[:, None] * HOP + np.arange(N_FFT)]
    d = _frame_descriptors(frames)
    long_count = max(0, (len(x) - LONG_FFT) // LONG_HOP + 1)
    longs = x[np.arange(long_count)[:, None] * LONG_HOP + np.arange(LONG_FFT)]
    hum = _hum_db(longs) if long_count else np.zeros(0)
    return WindowFeatures(0, len(x), _level_dbfs(x), window_features(d, hum))


def _padded_excerpt(samples: npt.ArrayLike) -> Vector:
    """An excerpt as float64, zero-padded at the end to at least four FFT frames."""
    x = np.asarray(samples, dtype=np.float64).ravel()
    return np.pad(x, (0, max(0, N_FFT * 4 - len(x))))


def _level_dbfs(x: Vector) -> float:
    rms = float(np.sqrt(np.mean(x**2))) if len(x) else 0.0
    return float(20 * np.log10(rms)) if rms > 1e-6 else -120.0


def excerpt_level_dbfs(samples: npt.ArrayLike) -> float:
    """The level ``excerpt_vector`` gives an excerpt (RMS dBFS), without its features."""
    return _level_dbfs(_padded_excerpt(samples))


class Featurizer:
    """Streaming feature extraction for one 16 kHz channel; memory bounded by one window."""

    def __init__(self, window: int, hop: int) -> None:
        if window < N_FFT * 4 or hop <= 0:
            raise ValueError(f"window must be at least {N_FFT * 4} samples and hop positive")
        self.window, self.hop = window, hop
        self.reset()

    def reset(self) -> None:
        """Forget everything, as for a new stream."""
        self._grid = _Grid(N_FFT, HOP)
        self._long = _Grid(LONG_FFT, LONG_HOP)
        self._keep = self.window + max(LONG_FFT, N_FFT) + self.hop
        self._audio: Vector = np.zeros(0)
        self._pending: list[Vector] = []
        self._position = 0  # samples pushed so far
        self._boundary = self.hop  # next hop boundary
        # Frame descriptors in the batches they were computed in: (first frame index, arrays).
        self._batches: deque[tuple[int, dict[str, Vector]]] = deque()
        self._hum: deque[tuple[int, float]] = deque(maxlen=self.window // LONG_HOP + 2)
        self.emitted = 0

    @property
    def position(self) -> int:
        """Samples pushed so far."""
        return self._position

    def push(self, samples: npt.ArrayLike) -> list[WindowFeatures]:
        """Append samples; return the features of every window completed."""
        x = np.asarray(samples, dtype=np.float64).ravel()
        out: list[WindowFeatures] = []
        while len(x):
            take = min(len(x), self._boundary - self._position)
            self._pending.append(x[:take])
            self._position += take
            x = x[take:]
            if self._position == self._boundary:
                self._analyse_to(self._boundary)
                if self._boundary >= self.window:
                    out.append(self._features(self._boundary - self.window, self._boundary))
                self._boundary += self.hop
        return out

    def flush(self, min_samples: int) -> WindowFeatures | None:
        """Features of whatever is buffered when no full window ever completed (short input)."""
        if self.emitted or self._position < min_samples:
            return None
        self._analyse_to(self._position)
        start = max(0, self._position - self.window)
        if self._frame_count(start, self._position) < 20:
            return None
        return self._features(start, self._position)

    def _analyse_to(self, end: int) -> None:
        self._audio = np.concatenate([self._audio, *self._pending])[-self._keep :]
        self._pending = []
        audio_start = self._position - len(self._audio)
        frames, first = self._grid.frames(self._audio, audio_start, end)
        if len(frames):
            self._batches.append((first, _frame_descriptors(frames)))
        # Batches wholly before any window that can still come are dropped.
        oldest = (end + self.hop - self.window) // HOP
        while self._batches and self._batches[0][0] + len(self._batches[0][1]["rms"]) <= oldest:
            self._batches.popleft()
        longs, first_long = self._long.frames(self._audio, audio_start, end)
        for i, value in enumerate(_hum_db(longs) if len(longs) else []):
            self._hum.append((first_long + i, float(value)))

    def _frame_count(self, start: int, end: int) -> int:
        return sum(
            int(np.count_nonzero(self._selection(first, len(d["rms"]), start, end)))
            for first, d in self._batches
        )

    @staticmethod
    def _selection(first: int, n: int, start: int, end: int) -> npt.NDArray[np.bool_]:
        positions = (first + np.arange(n)) * HOP
        return (positions >= start) & (positions + N_FFT <= end)

    def _features(self, start: int, end: int) -> WindowFeatures:
        parts: dict[str, list[Vector]] = {}
        for first, d in self._batches:
            sel = self._selection(first, len(d["rms"]), start, end)
            for key, value in d.items():
                parts.setdefault(key, []).append(value[sel])
        stacked = {key: np.concatenate(values) for key, values in parts.items()}
        hum = np.asarray(
            [v for k, v in self._hum if k * LONG_HOP >= start and k * LONG_HOP + LONG_FFT <= end]
        )
        rms = float(np.sqrt(np.mean(stacked["rms"] ** 2)))
        self.emitted += 1
        level = 20 * np.log10(rms) if rms > 1e-6 else -120.0
        return WindowFeatures(start, end, level, window_features(stacked, hum))
