"""A recording's overview for the archive application: waveform peaks and a coarse spectrogram.

A browser should not decode an hour of audio to draw it. The overview is a
fixed number of peak pairs (min and max of each column, as signed bytes) and a
spectrogram of a fixed number of columns and log-spaced bands (as bytes,
0 = 90 dB below the loudest cell), a few tens of kilobytes whatever the length.
It is read in one pass over the file, one column of audio at a time.
"""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

PEAK_COLUMNS = 2000
SPECTRUM_COLUMNS = 400
BANDS = 64
FFT_SIZE = 1024
LOWEST_HZ = 50.0
RANGE_DB = 90.0
VERSION = 1


def _band_edges(sample_rate: int) -> np.ndarray:
    """FFT bin index where each of the log-spaced bands starts (BANDS + 1 edges)."""
    top = sample_rate / 2
    hz = np.geomspace(LOWEST_HZ, top, BANDS + 1)
    bins = np.clip(np.round(hz / top * (FFT_SIZE // 2)).astype(int), 1, FFT_SIZE // 2)
    return np.maximum.accumulate(bins)


def _band_power(spectrum: np.ndarray, edges: np.ndarray) -> np.ndarray:
    out = np.empty(BANDS)
    for i in range(BANDS):
        lo, hi = edges[i], max(edges[i + 1], edges[i] + 1)
        out[i] = spectrum[lo:hi].mean()
    return out


def compute_overview(path: Path) -> dict[str, Any]:
    """Peaks and spectrogram of ``path`` (any file libsndfile reads); ``sf.LibsndfileError``
    if it cannot be decoded."""
    with sf.SoundFile(str(path)) as f:
        frames, rate = f.frames, f.samplerate
        columns = max(1, min(PEAK_COLUMNS, frames))
        per_spectrum = math.ceil(columns / SPECTRUM_COLUMNS)
        peaks = np.zeros((columns, 2))
        window = np.hanning(FFT_SIZE)
        edges = _band_edges(rate)
        spectra: list[np.ndarray] = []
        pending = np.zeros(BANDS)
        count = 0
        for column in range(columns):
            end = frames * (column + 1) // columns
            block = f.read(end - f.tell(), dtype="float32", always_2d=True)
            if not len(block):
                break
            mono = block @ np.full(block.shape[1], 1 / block.shape[1], dtype=np.float32)
            peaks[column] = mono.min(), mono.max()
            middle = max(0, len(mono) // 2 - FFT_SIZE // 2)
            piece = mono[middle : middle + FFT_SIZE]
            if len(piece) < FFT_SIZE:
                piece = np.pad(piece, (0, FFT_SIZE - len(piece)))
            pending += _band_power(np.abs(np.fft.rfft(piece * window)) ** 2, edges)
            count += 1
            if count == per_spectrum or column == columns - 1:
                spectra.append(pending / count)
                pending, count = np.zeros(BANDS), 0
    power = np.array(spectra) if spectra else np.zeros((1, BANDS))
    db = 10 * np.log10(power + 1e-12)
    scaled = np.clip((db - (db.max() - RANGE_DB)) / RANGE_DB * 255, 0, 255)
    return {
        "version": VERSION,
        "duration": frames / rate if rate else 0.0,
        "sample_rate": rate,
        "peaks": np.round(np.clip(peaks, -1, 1) * 127).astype(int).ravel().tolist(),
        "spectrogram": {
            "columns": int(power.shape[0]),
            "bands": BANDS,
            "lowest_hz": LOWEST_HZ,
            "highest_hz": rate / 2,
            "range_db": RANGE_DB,
            "data": base64.b64encode(scaled.astype(np.uint8).tobytes()).decode("ascii"),
        },
    }
