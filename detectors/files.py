"""Small helpers on whole files shared by detectors, the pipeline and the service."""

from __future__ import annotations

import hashlib
import io
from functools import lru_cache
from pathlib import Path

_PIECE = 1 << 20


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_PIECE):
            digest.update(chunk)
    return digest.hexdigest()


def model_provenance(path: Path) -> str:
    """``<file name> sha256:<hex>`` of a shipped model, for a result's ``provenance.models``;
    read once per version of the file (every analysis and profile load asks)."""
    return f"{path.name} sha256:{_cached_sha256(path, path.stat().st_mtime_ns)}"


@lru_cache(maxsize=16)
def _cached_sha256(path: Path, mtime_ns: int) -> str:
    del mtime_ns  # part of the cache key only
    return file_sha256(path)


class HashingFile(io.RawIOBase):
    """A read-only file that hashes its bytes (SHA-256) as a decoder reads them.

    A decoder (libsndfile through ``soundfile``) reads a file mostly in order but may
    seek: bytes are hashed once, in file order; a read that skips ahead first hashes
    the gap, and :meth:`sha256` hashes what nobody read. So the file is opened once,
    whether for the decode, the hash or the RIFF chunks.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        # Decoders read a few kB a call (libsndfile: 8 kB): a 1 MiB buffer makes that a
        # system call per MiB instead of per read.
        self._f = io.BufferedReader(io.FileIO(path, "rb"), buffer_size=_PIECE)
        self._digest = hashlib.sha256()
        self._hashed = 0  # bytes [0, _hashed) are in the digest
        # The position, kept here: a buffered reader's tell() asks the OS (lseek) every
        # time, and libsndfile asks for it around every read.
        self._pos = 0

    def __repr__(self) -> str:  # decoders name the file in their error messages
        return repr(str(self.path))

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._pos = self._f.seek(offset, whence)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        start = self._pos
        if start > self._hashed:
            self._catch_up(start)
        n: int = self._f.readinto(buffer)
        self._pos = start + n
        if n and start <= self._hashed < start + n:
            self._digest.update(memoryview(buffer)[self._hashed - start : n])
            self._hashed = start + n
        return n

    def _catch_up(self, until: int | None) -> None:
        """Hash the bytes from the hashed prefix's end to ``until`` (None: the end)."""
        here = self._pos
        self._f.seek(self._hashed)
        while until is None or self._hashed < until:
            want = _PIECE if until is None else min(_PIECE, until - self._hashed)
            piece = self._f.read(want)
            if not piece:
                break
            self._digest.update(piece)
            self._hashed += len(piece)
        self._f.seek(here)

    def sha256(self) -> str:
        """Hex SHA-256 of the whole file (reads what the decoder skipped)."""
        self._catch_up(None)
        return self._digest.hexdigest()

    def close(self) -> None:
        if not self.closed:
            self._f.close()
        super().close()
