"""Scoring of detected segments against truth, shared by tests and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Segments = Sequence[tuple[float, float]]


def _mask(segments: Segments, duration: float, step: float) -> np.ndarray:
    mask = np.zeros(round(duration / step), dtype=bool)
    for start, end in segments:
        mask[round(start / step) : round(end / step)] = True
    return mask


def frame_f1(truth: Segments, found: Segments, duration: float, step: float = 0.01) -> float:
    """F1 of ``found`` against ``truth`` over frames of ``step`` seconds; 0 if none match."""
    ref = _mask(truth, duration, step)
    hyp = _mask(found, duration, step)
    tp = np.count_nonzero(ref & hyp)
    if tp == 0:
        return 0.0
    precision = tp / np.count_nonzero(hyp)
    recall = tp / np.count_nonzero(ref)
    return float(2 * precision * recall / (precision + recall))
