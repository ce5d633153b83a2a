"""Append-only timelines that grow with a file: compact arrays, not lists of small pieces.

File analysis keeps a few things per frame or per window for the whole file (the
speaker detector's gate decisions, spectra and embeddings, the meters' frame
powers). Kept as lists of the small arrays each hop produces, they cost a Python
object per piece, and joining them at the end briefly doubles them. :class:`Rows`
writes them into preallocated blocks instead, and :meth:`Rows.array` joins the blocks
freeing each as it is copied, so the peak is the data plus one block.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


class Rows:
    """Rows of one dtype, each a scalar (``width`` None) or ``width`` values, in order."""

    def __init__(self, dtype: npt.DTypeLike, width: int | None = None, block: int = 4096) -> None:
        self.dtype = np.dtype(dtype)
        self.width = width
        self.block = block
        self._full: list[npt.NDArray[Any]] = []  # filled blocks (the first may be any size)
        self._open = self._new_block()
        self._used = 0  # rows of _open in use
        self._rows = 0

    def _new_block(self) -> npt.NDArray[Any]:
        shape = (self.block,) if self.width is None else (self.block, self.width)
        return np.empty(shape, self.dtype)  # pages are only committed as rows are written

    def __len__(self) -> int:
        return self._rows

    def append(self, rows: npt.ArrayLike) -> None:
        """Add ``rows`` ([n] or [n, width]; cast to the dtype)."""
        data = np.asarray(rows)
        n = len(data)
        done = 0
        while done < n:
            if self._used == self.block:
                self._full.append(self._open)
                self._open = self._new_block()
                self._used = 0
            take = min(n - done, self.block - self._used)
            self._open[self._used : self._used + take] = data[done : done + take]
            self._used += take
            done += take
        self._rows += n

    def array(self) -> npt.NDArray[Any]:
        """All rows as one array ([rows] or [rows, width]). The blocks are joined into it and
        freed; it stays the store of those rows, so calling again costs nothing."""
        if not self._full:
            return self._open[: self._used]
        if len(self._full) == 1 and self._used == 0:
            return self._full[0]
        shape = (self._rows,) if self.width is None else (self._rows, self.width)
        out = np.empty(shape, self.dtype)
        at = 0
        while self._full:
            block = self._full.pop(0)
            out[at : at + len(block)] = block
            at += len(block)
            del block
        out[at:] = self._open[: self._used]
        self._full = [out]
        self._open = self._new_block()
        self._used = 0
        return out
