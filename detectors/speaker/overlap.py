"""Overlapped speech in files: where two people talk at once, without separating them.

A logistic regression per 32 ms gate frame on the frame's log-mel spectrum (40
bands, normalised over the file, so level does not matter) at five offsets
(-6, -3, 0, +3, +6 frames), the spread of those bands, and how well the best
speaker centroid matches the windows covering the frame (best score and its gap
to the runner-up). Trained by ``tools/train_overlap_detector.py`` on the
real-voice room-simulated *dev* conversations (never on test), stored as plain
weights in ``detectors/models/speaker_overlap.npz``. Where it says overlap, the
file diarization attributes the frame to the runner-up speaker as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from detectors.dsp import mel_filterbank

MODEL_PATH = Path(__file__).resolve().parents[1] / "models" / "speaker_overlap.npz"
N_MELS = 40
N_FFT = 512  # one gate frame
OFFSETS = (-6, -3, 0, 3, 6)  # context frames around the scored one
N_FEATURES = N_MELS * len(OFFSETS) + 3
SPREAD_PIECE = 4096  # frames per piece of the spread's computation (bounds its memory)

Array = npt.NDArray[np.float32]


@cache
def _mel_basis() -> npt.NDArray[np.float64]:
    return mel_filterbank(16000, N_FFT, N_MELS)


def frame_logmel(frames: npt.NDArray[np.float32]) -> Array:
    """Log-mel spectrum [n, 40] of 512-sample frames [n, 512] (16 kHz, Hann window)."""
    if len(frames) == 0:
        return np.zeros((0, N_MELS), np.float32)
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(N_FFT), axis=1)) ** 2
    logmel: Array = np.log(spectrum @ _mel_basis().T + 1e-10).astype(np.float32)
    return logmel


def features(logmel: Array, scores: npt.NDArray[np.float32] | None) -> Array:
    """The model's input [n, N_FEATURES] for a channel's frames: ``logmel`` [n, 40] as from
    :func:`frame_logmel`, ``scores`` [n, speakers] from ``offline.frame_scores``."""
    n = len(logmel)
    if n == 0:
        return np.zeros((0, N_FEATURES), np.float32)
    normal = (logmel - logmel.mean(axis=0)) / (logmel.std(axis=0) + 1e-6)
    padded = np.pad(normal, ((6, 6), (0, 0)), mode="edge")
    context = [padded[6 + k : 6 + k + n] for k in OFFSETS]
    match = np.zeros((n, 2), np.float32)
    if scores is not None and scores.shape[1] >= 2:
        ranked = np.sort(scores, axis=1)
        match = np.stack([ranked[:, -1], ranked[:, -1] - ranked[:, -2]], axis=1)
    out: Array = np.concatenate(
        [*context, match, normal.std(axis=1, keepdims=True)], axis=1
    ).astype(np.float32)
    return out


@dataclass(frozen=True)
class OverlapModel:
    """Logistic-regression weights over :func:`features`."""

    weights: Array  # [N_FEATURES]
    bias: float

    def probability(self, x: Array) -> Array:
        """Probability of overlapped speech per row of ``x``."""
        z = np.clip(x @ self.weights + self.bias, -50, 50)
        p: Array = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
        return p

    def frame_probability(self, logmel: Array, scores: npt.NDArray[np.float32] | None) -> Array:
        """``probability(features(logmel, scores))`` without building the [n, 203] feature
        matrix: the model is linear, so each context offset's bands are projected on their
        weights first (an hour of frames would otherwise take some 250 MB)."""
        n = len(logmel)
        if n == 0:
            return np.zeros(0, np.float32)
        mean, std = _column_mean_std(logmel)
        std += 1e-6
        per_offset = self.weights[: N_MELS * len(OFFSETS)].reshape(len(OFFSETS), N_MELS)
        scaled = (per_offset / std).astype(np.float32)  # [offsets, 40]
        projected = logmel @ scaled.T - (scaled @ mean.astype(np.float32))  # [n, offsets]
        padded = np.pad(projected, ((6, 6), (0, 0)), mode="edge")
        z = np.full(n, self.bias, np.float32)
        for i, k in enumerate(OFFSETS):
            z += padded[6 + k : 6 + k + n, i]
        if scores is not None and scores.shape[1] >= 2:
            top2 = np.partition(scores, scores.shape[1] - 2, axis=1)[:, -2:]
            best, second = top2.max(axis=1), top2.min(axis=1)
            z += best * self.weights[-3] + (best - second) * self.weights[-2]
        spread = np.empty(n, np.float32)
        # The per-frame spread of the normalised bands, in pieces: its float64 temporaries
        # would otherwise grow with the file (21 MB for 35 minutes), 1.3 MB this way.
        for lo in range(0, n, SPREAD_PIECE):
            chunk = (logmel[lo : lo + SPREAD_PIECE] - mean) / std
            spread[lo : lo + SPREAD_PIECE] = chunk.std(axis=1)
        z += spread * self.weights[-1]
        p: Array = (1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))).astype(np.float32)
        return p

    def save(self, path: Path) -> None:
        np.savez(path, weights=self.weights, bias=np.float32(self.bias))


def _column_mean_std(
    x: Array, piece: int = SPREAD_PIECE
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """``x.mean(axis=0, dtype=float64)`` and ``x.std(axis=0, dtype=float64)`` of [n, bands],
    in pieces: numpy's std makes an [n, bands] float64 temporary, 36 MB for an hour of
    frames. The values are numpy's to the bit: it sums along axis 0 row after row, and
    the running sum carried in as each piece's first row keeps that order (checked in
    tests/test_speaker_rooms.py)."""
    n = len(x)
    total = np.zeros(x.shape[1])
    for lo in range(0, n, piece):
        total = np.add.reduce(np.vstack([total[np.newaxis], x[lo : lo + piece]]), axis=0)
    mean = total / n
    squares = np.zeros(x.shape[1])
    for lo in range(0, n, piece):
        deviation = x[lo : lo + piece] - mean
        np.multiply(deviation, deviation, out=deviation)
        squares = np.add.reduce(np.vstack([squares[np.newaxis], deviation]), axis=0)
    std: npt.NDArray[np.float64] = np.sqrt(squares / n)
    return mean, std


@cache
def load_model(path: Path = MODEL_PATH) -> OverlapModel:
    """The shipped overlap model (ValueError if the file does not hold one)."""
    with np.load(path) as data:
        weights = np.asarray(data["weights"], np.float32)
        bias = float(data["bias"])
    if weights.shape != (N_FEATURES,):
        raise ValueError(f"{path}: {weights.shape[0]} weights, expected {N_FEATURES}")
    return OverlapModel(weights, bias)
