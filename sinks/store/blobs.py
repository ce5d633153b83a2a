"""Uploaded files, stored once per content hash, written atomically."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


class BlobStore:
    """``<root>/<aa>/<sha256>``: identical uploads share one file."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def check_digest(sha256: str) -> None:
        """``ValueError`` unless ``sha256`` is a lower-case SHA-256 hex digest."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")

    def path(self, sha256: str) -> Path:
        self.check_digest(sha256)
        return self.root / sha256[:2] / sha256

    def incoming(self) -> tuple[BinaryIO, Path]:
        """A new temporary file (mode 0600) on the same file system, for an upload.

        The file is ``flock``-ed while its handle is open: a process that dies while
        receiving drops the lock with it, so the sweep can tell an abandoned file from
        one another process is still writing (see :meth:`abandoned`).
        """
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".incoming-", dir=self.root)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return os.fdopen(fd, "w+b"), Path(name)

    @staticmethod
    def abandoned(temp: Path) -> bool:
        """Whether no process holds ``temp`` open as an upload being received."""
        try:
            fd = os.open(temp, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        finally:
            os.close(fd)  # drops the lock if it was taken
        return True

    def commit(self, handle: BinaryIO, temp: Path, sha256: str) -> Path:
        """Make the received file durable under its hash (or drop it if already stored)."""
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        final = self.path(sha256)
        if final.exists():
            temp.unlink(missing_ok=True)
            return final
        final.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.replace(temp, final)
        dir_fd = os.open(final.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return final

    def add_file(self, source: Path, sha256: str) -> Path:
        """Store a file already on this machine under its hash: a hard link if the file
        system allows (no copy), else a copy; durable like an upload."""
        final = self.path(sha256)
        if final.exists():
            return final
        handle, temp = self.incoming()
        handle.close()
        temp.unlink()
        try:
            os.link(source, temp)
        except OSError:  # another file system
            shutil.copyfile(source, temp)
        with temp.open("rb+") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return self.commit(handle, temp, sha256)

    @staticmethod
    def discard(handle: BinaryIO, temp: Path) -> None:
        with contextlib.suppress(OSError):
            handle.close()
        temp.unlink(missing_ok=True)

    def remove(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def incoming_files(self) -> Iterator[Path]:
        """Temporary files of uploads being received (or abandoned by a crash)."""
        if self.root.is_dir():
            yield from self.root.glob(".incoming-*")

    def stored(self) -> Iterator[tuple[str, Path]]:
        """Every stored file with its hash."""
        if not self.root.is_dir():
            return
        for bucket in self.root.iterdir():
            if len(bucket.name) == 2 and bucket.is_dir():
                for path in bucket.iterdir():
                    if len(path.name) == 64 and path.name.startswith(bucket.name):
                        yield path.name, path
