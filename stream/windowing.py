"""Sliding windows over one channel: ``push(chunk) -> windows``, any window and hop.

Knows nothing about models. Memory is bounded by ``window + hop`` samples
whatever the chunk size, and the windows produced depend only on the samples,
never on how they were chunked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Samples = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Window:
    """A span of one channel at the analysis rate; ``start`` counts samples since stream start."""

    channel: int
    start: int
    samples: Samples
    sample_rate: int

    @property
    def t_start(self) -> float:
        """Start in stream seconds."""
        return self.start / self.sample_rate

    @property
    def t_end(self) -> float:
        """End in stream seconds."""
        return (self.start + len(self.samples)) / self.sample_rate


class Windower:
    """Cuts a channel's sample stream into windows of ``window`` samples every ``hop`` samples."""

    def __init__(self, window: int, hop: int, *, channel: int, sample_rate: int) -> None:
        if window <= 0 or hop <= 0:
            raise ValueError(f"window and hop must be positive samples, got {window} and {hop}")
        self.window = window
        self.hop = hop
        self.channel = channel
        self.sample_rate = sample_rate
        self._buf = np.zeros(window + hop, dtype=np.float32)
        self._fill = 0  # samples held in _buf
        self._buf_start = 0  # stream index of _buf[0]
        self._next = 0  # stream index where the next window starts

    @property
    def position(self) -> int:
        """Samples pushed so far (stream index of the next sample)."""
        return self._buf_start + self._fill

    def reset(self, position: int = 0) -> None:
        """Forget buffered audio; the next sample pushed is at stream index ``position``."""
        self._fill = 0
        self._buf_start = position
        self._next = position

    def push(self, chunk: Samples) -> list[Window]:
        """Append ``chunk`` and return every window it completes, in order."""
        return list(self.windows(chunk))

    def windows(self, chunk: Samples) -> Iterator[Window]:
        """Append ``chunk``, yielding each window it completes as soon as it is complete.

        One window exists at a time if the caller lets each go, however long the chunk
        (a minute at a 0.1 s hop would otherwise be 600 windows held at once). Consume
        the iterator to the end before pushing again.
        """
        data = np.asarray(chunk, dtype=np.float32)
        while len(data):
            data = self._skip_gap(data)
            take = min(len(data), len(self._buf) - self._fill)
            self._buf[self._fill : self._fill + take] = data[:take]
            self._fill += take
            data = data[take:]
            yield from self._emit()

    def _skip_gap(self, data: Samples) -> Samples:
        """Drop incoming samples that fall before the next window (hop > window)."""
        if self._fill == 0 and self._buf_start < self._next:
            skip = min(self._next - self._buf_start, len(data))
            self._buf_start += skip
            return data[skip:]
        return data

    def _emit(self) -> Iterator[Window]:
        end = self._buf_start + self._fill
        while self._next + self.window <= end:
            offset = self._next - self._buf_start
            samples = self._buf[offset : offset + self.window].copy()
            self._next += self.hop
            yield Window(self.channel, self._next - self.hop, samples, self.sample_rate)
        drop = min(self._next - self._buf_start, self._fill)
        if drop > 0:
            keep = self._fill - drop
            self._buf[:keep] = self._buf[drop : self._fill]
            self._fill = keep
            self._buf_start += drop
