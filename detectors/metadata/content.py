"""Content descriptors from the 16 kHz mono analysis signal: tempo, key, harmonic balance, ratios.

Frames of 64 ms every 32 ms give levels, the onset envelope (tempo) and a 64-band
mel spectrogram that harmonic/percussive separation (median filtering, librosa)
runs on; 256 ms frames every 256 ms give the chroma for the key. Frames are cut
from a running buffer, so they do not depend on how the signal was chunked, and
the spectrogram is processed in chunks so memory stays flat over hours of audio.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import NDArray

from detectors.dsp import chroma_filterbank, hpss, mel_filterbank
from detectors.rows import Rows

RATE = 16_000
N_FFT = 1024
HOP = 512
FPS = RATE / HOP
CHROMA_FFT = 4096  # 3.9 Hz bins: semitones apart from about 70 Hz up
CHROMA_HOP = 4096  # key is a whole-file property: every other window is plenty
MEL_BANDS = 64
CHUNK_FRAMES = 512  # frames per HPSS chunk (16 s)
HPSS_KERNEL = (7, 5)  # (64 ms cells, pairs of mel bands): 0.45 s along time, 10 bands across
MIN_KEY_CORRELATION = 0.5  # weaker fits to every key profile: no key reported
HUM_BINS = 64  # lowest bins of the 256 ms spectra kept per frame (0-250 Hz, 3.9 Hz apart)
HUM_QUIET_PERCENTILE = 20.0  # hum is measured in the quietest fifth of those frames
HUM_PROMINENCE_DB = 6.0  # a line 4x the power of its neighbourhood
TEMPO_RANGE = (40.0, 240.0)  # BPM searched
TEMPO_PRIOR_BPM = 120.0  # log-normal prior on tempo, as librosa's tempo estimator
TEMPO_PRIOR_OCTAVES = 1.0
MIN_TEMPO_STRENGTH = 0.1  # normalised autocorrelation below this: no regular pulse
SILENCE_FLOOR_DBFS = -70.0
SILENCE_ABOVE_FLOOR_DB = 6.0
SILENCE_BELOW_ACTIVE_DB = 20.0
MUSIC_HARMONIC_FRACTION = 0.65  # a non-speech frame this harmonic counts as music
PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Krumhansl & Kessler (1982) probe-tone profiles, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


class Framer:
    """Cuts a stream into overlapping frames, independent of chunk boundaries."""

    def __init__(self, size: int, hop: int) -> None:
        self.size, self.hop = size, hop
        self._carry = np.zeros(0, np.float32)

    @property
    def leftover(self) -> int:
        """Samples waiting for the next frame."""
        return len(self._carry)

    def push(self, chunk: NDArray[np.float32]) -> NDArray[np.float32]:
        """Frames completed by ``chunk``, shape ``(n, size)``."""
        data = np.concatenate([self._carry, chunk])
        n = 0 if len(data) < self.size else (len(data) - self.size) // self.hop + 1
        self._carry = data[n * self.hop :].copy()
        if not n:
            return np.zeros((0, self.size), np.float32)
        # The frames as a strided view of ``data`` (as sliding_window_view(...)[::hop][:n],
        # without its Python overhead: this runs a few times per block).
        step = data.strides[0]
        return np.lib.stride_tricks.as_strided(
            data, (n, self.size), (self.hop * step, step), writeable=False
        )


class ContentAnalyzer:
    """Accumulates content descriptors over a stream of 16 kHz mono chunks."""

    def __init__(self) -> None:
        self._window = np.hanning(N_FFT + 1)[:-1].astype(np.float32)
        self._mel = mel_filterbank(RATE, N_FFT, MEL_BANDS).astype(np.float32)
        self._chroma_fb = chroma_filterbank(RATE, CHROMA_FFT).astype(np.float32)
        self._chroma_window = np.hanning(CHROMA_FFT + 1)[:-1].astype(np.float32)
        self._framer = Framer(N_FFT, HOP)
        self._chroma_framer = Framer(CHROMA_FFT, CHROMA_HOP)
        self._frames: list[NDArray[np.float32]] = []  # pending frames (fewer than a chunk)
        self._pending = 0
        self._previous_mel: NDArray[np.float32] | None = None
        # One value per 32 ms frame for the whole file, in blocks (not an array per chunk).
        self._onset = Rows(np.float32, block=16384)
        self._level_db = Rows(np.float32, block=16384)
        self._harmonic_fraction = Rows(np.float32, block=16384)
        self._chroma = np.zeros(12)
        self._hum_low = Rows(np.float32, HUM_BINS, block=1024)  # 64 floats per 256 ms
        self._hum_energy = Rows(np.float32, block=1024)
        self._harmonic = 0.0
        self._percussive = 0.0
        self.samples = 0

    def feed(self, chunk: NDArray[np.float32]) -> None:
        """Add 16 kHz mono samples."""
        chunk = np.asarray(chunk, dtype=np.float32)
        self.samples += len(chunk)
        frames = self._framer.push(chunk)
        if len(frames):
            self._frames.append(frames * self._window)
            self._pending += len(frames)
        long_frames = self._chroma_framer.push(chunk)
        if len(long_frames):
            spectrum = np.abs(np.fft.rfft(long_frames * self._chroma_window, axis=1)) ** 2
            self._chroma += (self._chroma_fb @ spectrum.T.astype(np.float32)).sum(axis=1)
            self._hum_low.append(spectrum[:, :HUM_BINS].astype(np.float32))
            self._hum_energy.append(spectrum.sum(axis=1).astype(np.float32))
        while self._pending >= CHUNK_FRAMES:
            self._process(take=CHUNK_FRAMES)

    def _process(self, take: int | None = None) -> None:
        frames = np.concatenate(self._frames) if self._frames else np.zeros((0, N_FFT), np.float32)
        take = len(frames) if take is None else take
        now, rest = frames[:take], frames[take:]
        self._frames, self._pending = ([rest] if len(rest) else []), len(rest)
        if not len(now):
            return
        # NumPy's float32 transform of many rows is 2-3x slower than its float64 one.
        spectrum = np.fft.rfft(now.astype(np.float64), axis=1)
        power = (np.abs(spectrum) ** 2).T.astype(np.float32)  # (bins, frames)
        frame_power = power.sum(axis=0) * 2 / (N_FFT * np.square(self._window).sum())
        self._level_db.append(10 * np.log10(np.maximum(frame_power, 1e-12)).astype(np.float32))
        mel_power = self._mel @ power
        mel = np.log1p(1000 * mel_power)
        previous = mel[:, :1] if self._previous_mel is None else self._previous_mel
        flux = np.maximum(0, np.diff(np.concatenate([previous, mel], axis=1), axis=1)).mean(axis=0)
        self._previous_mel = mel[:, -1:]
        self._onset.append(flux.astype(np.float32))
        # Median filtering dominates the cost: run it on cells of two mel bands by two
        # frames (64 ms), then give each frame its cell's values.
        frames = mel_power.shape[1]
        even = np.pad(mel_power, ((0, 0), (0, frames % 2)))
        pooled = even.reshape(MEL_BANDS // 2, 2, -1, 2).sum(axis=(1, 3))
        harmonic, percussive = hpss(np.sqrt(pooled), HPSS_KERNEL)
        h_energy = np.repeat((harmonic**2).sum(axis=0), 2)[:frames] / 2
        p_energy = np.repeat((percussive**2).sum(axis=0), 2)[:frames] / 2
        self._harmonic += float(h_energy.sum())
        self._percussive += float(p_energy.sum())
        self._harmonic_fraction.append(
            (h_energy / np.maximum(h_energy + p_energy, 1e-12)).astype(np.float32)
        )

    def hum(self) -> dict[str, Any] | None:
        """Mains hum in the quietest frames, where music and speech do not mask it."""
        if not len(self._hum_energy):
            return None
        energy = self._hum_energy.array()
        if energy.max() <= 0:
            return None
        quiet = energy <= np.percentile(energy, HUM_QUIET_PERCENTILE)
        low = self._hum_low.array()[quiet].mean(axis=0)
        return mains_hum(low.astype(np.float64), RATE / CHROMA_FFT)

    def result(self, speech: list[dict[str, float]] | None = None) -> dict[str, Any]:
        """Descriptors; ``speech``: the VAD's ``{start, end}`` segments (s), if known."""
        if self._framer.leftover and self.samples:
            # Flush: pad the last partial frame with silence.
            self.feed(np.zeros(N_FFT - self._framer.leftover % HOP, np.float32))
        self._process()
        if not len(self._level_db):
            return {"tempo_bpm": None, "key": None, "harmonic_percussive_ratio_db": None,
                    "ratios": None}  # fmt: skip
        level = self._level_db.array()
        onset = self._onset.array()
        fraction = self._harmonic_fraction.array()
        return {
            "tempo_bpm": tempo(onset),
            "key": key(self._chroma),
            "harmonic_percussive_ratio_db": _ratio_db(self._harmonic, self._percussive),
            "ratios": ratios(
                level,
                fraction,
                None if speech is None else speech_mask_from_segments(speech, len(level)),
            ),
        }


def _ratio_db(a: float, b: float) -> float | None:
    if a <= 0 or b <= 0:
        return None
    return round(10 * math.log10(a / b), 2)


def tempo(onset: NDArray[np.float32]) -> dict[str, float] | None:
    """Global tempo from the onset envelope's autocorrelation, with a prior around 120 BPM."""
    if len(onset) < 4 * FPS:
        return None
    x = onset - onset.mean()
    n = len(x)
    spectrum = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(np.abs(spectrum) ** 2)[:n]
    if ac[0] <= 0:
        return None
    ac = ac / ac[0]
    lags = np.arange(n, dtype=np.float64)
    lo = max(1, int(60 * FPS / TEMPO_RANGE[1]))
    hi = min(n - 2, int(60 * FPS / TEMPO_RANGE[0]) + 1)
    if hi <= lo + 2:
        return None
    bpm = 60 * FPS / lags[lo:hi]
    prior = np.exp(-0.5 * (np.log2(bpm / TEMPO_PRIOR_BPM) / TEMPO_PRIOR_OCTAVES) ** 2)
    best = lo + int(np.argmax(ac[lo:hi] * prior))
    strength = float(ac[best])
    if strength < MIN_TEMPO_STRENGTH:
        return None
    # Parabolic interpolation of the peak lag: the frame rate alone gives 3 % steps.
    a, b, c = ac[best - 1], ac[best], ac[best + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) < 0 else 0.0
    return {"bpm": round(float(60 * FPS / (best + shift)), 1), "strength": round(strength, 3)}


def key(chroma: NDArray[np.float64]) -> dict[str, Any] | None:
    """Krumhansl-Schmuckler key finding: the profile rotation best correlated with the chroma."""
    if chroma.sum() <= 0 or np.allclose(chroma, chroma.mean()):
        return None
    scores = []
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            r = float(np.corrcoef(chroma, np.roll(profile, tonic))[0, 1])
            scores.append((r, PITCH_CLASSES[tonic], mode))
    scores.sort(reverse=True)
    (best, tonic_name, mode), runner_up = scores[0], scores[1][0]
    if best < MIN_KEY_CORRELATION:
        return None
    return {
        "tonic": tonic_name,
        "mode": mode,
        "label": f"{tonic_name} {mode}",
        "correlation": round(best, 3),
        "margin": round(best - runner_up, 3),
    }


def ratios(
    level_db: NDArray[np.float32],
    harmonic_fraction: NDArray[np.float32],
    speech_mask: NDArray[np.bool_] | None,
) -> dict[str, float | None]:
    """Shares of 32 ms frames that are silence, speech, music or other sound; they sum to 1.

    Silence: below a threshold 6 dB above the quietest 5 % of frames, but at least
    20 dB under the loudest 5 % and never under -70 dBFS (so a steady signal has no
    silence and a noisy one has its pauses). Speech: the VAD's segments. Music: the
    other frames whose harmonic share after HPSS is at least 0.65 (sustained partials;
    noise splits about evenly). Other: the rest (noise, percussion, applause). Without
    VAD segments ``speech`` is ``None`` and speech frames fall under music or other.
    """
    n = len(level_db)
    active = float(np.percentile(level_db, 95))
    floor = float(np.percentile(level_db, 5))
    threshold: float = max(SILENCE_FLOOR_DBFS, min(floor + SILENCE_ABOVE_FLOOR_DB,
                                            active - SILENCE_BELOW_ACTIVE_DB))  # fmt: skip
    silent = level_db < threshold
    speech = np.zeros(n, bool) if speech_mask is None else speech_mask & ~silent
    music = ~silent & ~speech & (harmonic_fraction >= MUSIC_HARMONIC_FRACTION)
    return {
        "silence": round(float(silent.mean()), 4),
        "speech": round(float(speech.mean()), 4) if speech_mask is not None else None,
        "music": round(float(music.mean()), 4),
        "other": round(float((~silent & ~speech & ~music).mean()), 4),
        "silence_threshold_dbfs": round(float(threshold), 1),
    }


def speech_mask_from_segments(segments: list[dict[str, float]], n_frames: int) -> NDArray[np.bool_]:
    """Frames (at ``FPS``, centred) that fall inside any ``{start, end}`` segment."""
    centres = (np.arange(n_frames) * HOP + N_FFT / 2) / RATE
    mask = np.zeros(n_frames, bool)
    for seg in segments:
        mask |= (centres >= seg["start"]) & (centres < seg["end"])
    return mask


def mains_hum(spectrum: NDArray[np.float64], bin_hz: float) -> dict[str, Any] | None:
    """How far the 50 or 60 Hz line (or its 2nd or 3rd harmonic) stands above its neighbours.

    ``detected`` from ``HUM_PROMINENCE_DB`` up: a steady line at exactly the mains
    frequency is rare in music and absent from speech.
    """
    best: dict[str, Any] | None = None
    for mains in (50.0, 60.0):
        prominence = []
        for harmonic in (1, 2, 3):
            i = round(mains * harmonic / bin_hz)
            if i < 7 or i + 7 > len(spectrum):
                continue
            peak = spectrum[i - 1 : i + 2].max()
            neighbours = np.median(
                np.concatenate([spectrum[i - 6 : i - 2], spectrum[i + 3 : i + 7]])
            )
            if neighbours > 0 and peak > 0:
                prominence.append(10 * math.log10(peak / neighbours))
        if prominence and (best is None or max(prominence) > best["prominence_db"]):
            best = {"mains_hz": mains, "prominence_db": round(max(prominence), 1)}
    if best is not None:
        best["detected"] = best["prominence_db"] >= HUM_PROMINENCE_DB
    return best
