"""The 16 kHz analysis signal of a file, kept on disk while the file streams past.

Sections that need audio again after the stream (voice statistics, per speaker)
read it back here instead of decoding the file a second time. It is spooled as
16-bit PCM to an anonymous temporary file, so memory stays flat whatever the
length (two hours take 230 MB of disk, freed on close).
"""

from __future__ import annotations

import tempfile
from typing import BinaryIO

import numpy as np
import numpy.typing as npt

FULL_SCALE = 32767.0


class SignalSpool:
    """Appends mono samples at ``rate`` Hz; reads back any stretch of them."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.samples = 0
        # Closed by close(): the spool lives across the whole analysis, not one block.
        self._file: BinaryIO = tempfile.TemporaryFile(prefix="heritage-signal-")  # noqa: SIM115

    def append(self, samples: npt.NDArray[np.float32]) -> None:
        """Add the next samples (full scale 1.0; clipped to it)."""
        pcm = np.clip(np.round(samples * FULL_SCALE), -FULL_SCALE, FULL_SCALE).astype("<i2")
        self._file.seek(2 * self.samples)
        self._file.write(pcm.tobytes())
        self.samples += len(pcm)

    def read(self, start_s: float, end_s: float) -> npt.NDArray[np.float32]:
        """The samples from ``start_s`` to ``end_s`` seconds (clamped to what was appended)."""
        first = min(self.samples, max(0, int(start_s * self.rate)))
        last = min(self.samples, max(first, int(end_s * self.rate)))
        self._file.seek(2 * first)
        pcm = np.frombuffer(self._file.read(2 * (last - first)), dtype="<i2")
        return (pcm.astype(np.float32) / FULL_SCALE).astype(np.float32)

    def close(self) -> None:
        """Free the disk space."""
        self._file.close()

    def __enter__(self) -> SignalSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
