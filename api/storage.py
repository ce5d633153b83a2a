"""The uploads' disk: free space for ``/health``, a full disk remembered, orphans swept.

An upload refused on any path leaves nothing behind (api/uploads.py); what a crash
or a kill leaves is removed at start-up. A half-received ``.incoming-*`` file goes at
once if no process holds its lock (its receiver died: see ``BlobStore.abandoned``),
so an API killed mid-upload leaves nothing after its restart; a stored file whose
task row was never committed goes once older than ``ORPHAN_AGE_S``, so an upload
another process is recording right now is never touched.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from sinks.store import BlobStore, Database, Task

logger = logging.getLogger(__name__)

MIN_FREE_BYTES = 32 * 2**20
FULL_REMEMBERED_S = 60.0
ORPHAN_AGE_S = 600.0
UNLOCKED_GRACE_S = 1.0


@dataclass(frozen=True, slots=True)
class StorageState:
    full: bool
    free_bytes: int | None
    detail: str


def _existing(path: Path) -> Path:
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


class UploadStorage:
    """Watches the file system that holds the uploads."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs
        self._full_at: float | None = None

    def full_seen(self) -> None:
        """A write just failed for lack of space (shown in /health for a minute)."""
        self._full_at = time.monotonic()

    def state(self) -> StorageState:
        try:
            free = shutil.disk_usage(_existing(self.blobs.root)).free
        except OSError as exc:
            return StorageState(True, None, f"uploads directory unreadable: {exc.strerror}")
        recently = (
            self._full_at is not None and time.monotonic() - self._full_at < FULL_REMEMBERED_S
        )
        if free < MIN_FREE_BYTES or recently:
            why = "a write failed for lack of space" if recently else "almost no space left"
            return StorageState(True, free, f"storage full: {why} ({free // 2**20} MiB free)")
        return StorageState(False, free, f"{free // 2**20} MiB free")

    def sweep(self, referenced: set[str], min_age_s: float = ORPHAN_AGE_S) -> tuple[int, int]:
        """Remove half-received files and stored files no task names, older than
        ``min_age_s``: (temporary files, stored files) removed."""
        now = time.time()
        cutoff = now - min_age_s
        temps = stored = 0
        for path in self.blobs.incoming_files():
            # A second of grace: BlobStore.add_file links a file in and then locks it.
            if _older(path, cutoff) or (
                _changed_before(path, now - UNLOCKED_GRACE_S) and self.blobs.abandoned(path)
            ):
                path.unlink(missing_ok=True)
                temps += 1
        for sha256, path in self.blobs.stored():
            if sha256 not in referenced and _older(path, cutoff):
                path.unlink(missing_ok=True)
                stored += 1
        return temps, stored


def _changed_before(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_ctime < cutoff
    except FileNotFoundError:
        return False


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


async def referenced_blobs(db: Database) -> set[str]:
    async with db.session() as session:
        return set(await session.scalars(select(Task.content_sha256).distinct()))


async def is_referenced(db: Database, sha256: str) -> bool:
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Task).where(Task.content_sha256 == sha256)
        )
    return bool(count)
