"""Per-source ``seq`` counters that continue across daemon restarts.

Each source's last issued ``seq`` is kept in a 21-byte file
(``HERITAGE_DATA_DIR/seq/<source>.seq``), rewritten in place with one
``pwrite`` per batch of events before the batch leaves the pipeline. A process
crash (even SIGKILL) loses nothing: the write is in the page cache, and the
next run continues at the next number. The file is fsync'ed when the source
stops; after a power cut it may be up to the last few batches behind, so the
next run can issue some numbers again, but under a new ``run_id``: the triple
``(source, run_id, seq)`` never repeats.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from urllib.parse import quote

logger = logging.getLogger(__name__)

_WIDTH = 20  # digits: enough for any seq a daemon can ever issue


def seq_file(directory: Path, source: str) -> Path:
    """Where the counter of ``source`` lives in ``directory`` (any name is a safe file name)."""
    return directory / (quote(source, safe="")[:200] + ".seq")


class SeqCounter:
    """Issues consecutive ``seq`` numbers; with a file, starts after the last one it issued."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.last = 0
        """The last number issued (0: none yet)."""
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            self.last = _parse(os.pread(self._fd, _WIDTH + 1, 0))
        except OSError as exc:
            # A counter that cannot persist still numbers events: run_id keeps them unique.
            logger.warning("seq: cannot keep the counter in %s (%s); starting at 1", path, exc)
            self.close()
            self.last = 0
        if self.last:
            logger.info("seq: %s continues after %d", path.stem, self.last)

    def take(self, n: int) -> int:
        """Reserve ``n`` consecutive numbers; returns the first. Persisted before returning."""
        with self._lock:
            first = self.last + 1
            self.last += n
            if self._fd is not None:
                try:
                    os.pwrite(self._fd, f"{self.last:0{_WIDTH}d}\n".encode(), 0)
                except OSError as exc:
                    logger.warning("seq: cannot save the counter in %s (%s)", self.path, exc)
            return first

    def close(self) -> None:
        """Flush the counter to disk (a clean stop survives a power cut) and close the file."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.fsync(fd)
        os.close(fd)


def _parse(data: bytes) -> int:
    """The counter in a file's bytes; 0 for an empty or damaged file (a fresh start)."""
    text = data.decode("ascii", errors="replace").strip()
    return int(text) if text.isdigit() else 0
