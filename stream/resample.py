"""Streaming, stateful resampling of one channel to the analysis rate (soxr)."""

from __future__ import annotations

import numpy as np
import soxr

from stream.windowing import Samples


class Resampler:
    """Resamples one channel chunk by chunk; output does not depend on chunk sizes."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")
        )

    def process(self, chunk: Samples, *, last: bool = False) -> Samples:
        """Resample ``chunk``; pass ``last=True`` once at the end to flush the filter."""
        x = np.ascontiguousarray(chunk, dtype=np.float32)
        if self._stream is None:
            return x
        return np.asarray(self._stream.resample_chunk(x, last=last), dtype=np.float32)

    def reset(self) -> None:
        """Start over, as for a new stream."""
        if self._stream is not None:
            self._stream.clear()
