"""A bounded, append-only FIFO of text lines on disk: where events wait while a sink is down.

Layout of the spool directory::

    000000000007.jsonl   segments, oldest first; one serialized event per line
    000000000008.jsonl   (a new segment starts once the last reaches ``segment_bytes``)
    head                 "<segment id> <byte offset>": the first line not yet acknowledged
    lock                 held (flock) while a process has the spool open

Delivery is at-least-once: :meth:`Spool.ack` persists the read position only
after the caller has delivered the lines, so a crash between delivery and
acknowledgement delivers them again at the next start.

Every write is flushed to the operating system, so a process crash (even
SIGKILL) loses nothing. What a power cut or a kernel crash may lose depends on
the fsync policy:

``always``
    each appended batch is fsync'ed before :meth:`Spool.append` returns: nothing
    appended is lost.
``interval`` (the default, every ``fsync_interval_s``)
    an append fsyncs when the last fsync is older than the interval, and the
    owner calls :meth:`Spool.sync` that long after an unsynced append: at most
    the lines appended in the last ``fsync_interval_s`` are lost.
``never``
    the kernel writes back when it likes (Linux: within about 30 s): up to that
    much is lost.

With ``always`` and ``interval`` a new segment file is fsync'ed with its
directory before the first line goes in, a finished segment before the next
one starts, and the ``head`` file before it is renamed into place and the
directory after; a ``head`` lost to a power cut only delivers lines again.

The spool never grows past ``max_bytes``: the oldest segment is deleted to make
room, and its unacknowledged lines are counted in :attr:`Spool.dropped`. A
write that fails (a full disk) is logged and its lines counted as dropped too.
A line torn by a crash mid-write is cut off when the spool is opened and
counted in :attr:`Spool.torn`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

logger = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".jsonl"
_HEAD_FILE = "head"
_LOCK_FILE = "lock"

FsyncPolicy = Literal["always", "interval", "never"]
"""When spooled lines are forced to disk (see the module documentation for what each loses)."""


class SpoolLockedError(RuntimeError):
    """Another process (or another sink) already has this spool directory open."""


@dataclass(frozen=True, slots=True)
class _Position:
    """Just after a line: its segment, the byte offset and the count of lines up to there."""

    segment_id: int
    offset: int
    lines: int


@dataclass(slots=True)
class _Segment:
    """One segment file: its valid length in bytes and how many lines it holds."""

    id: int
    size: int
    lines: int


class Spool:
    """Lines appended at the tail, peeked and acknowledged at the head, bounded in bytes."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int,
        segment_bytes: int = 4 << 20,
        *,
        fsync: FsyncPolicy = "interval",
        fsync_interval_s: float = 1.0,
    ) -> None:
        if segment_bytes <= 0 or max_bytes < 2 * segment_bytes:
            raise ValueError("spool max_bytes must hold at least two segments")
        if fsync not in ("always", "interval", "never"):
            raise ValueError(f"spool fsync policy must be always, interval or never, not {fsync!r}")
        if fsync_interval_s <= 0:
            raise ValueError("spool fsync_interval_s must be positive")
        self.directory = directory
        self.fsync = fsync
        self.fsync_interval_s = fsync_interval_s
        self._synced_at = time.monotonic()
        self._unsynced = False  # lines written to the tail segment and not yet fsync'ed
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.dropped = 0
        """Lines lost since opening: dropped for room, or not written (disk full)."""
        self.torn = 0
        """Partly written lines cut off when the spool was opened (counted in ``dropped`` too)."""
        self._segments: list[_Segment] = []
        self._head_offset = 0  # bytes of the first segment already acknowledged
        self._head_lines = 0  # lines of the first segment already acknowledged
        self._writer: BinaryIO | None = None
        self._peeked: list[_Position] = []  # where each line of the last peek ends
        self._next_id = 0
        self._unwritten = 0  # lines lost since writing started to fail
        directory.mkdir(parents=True, exist_ok=True)
        self._lock = self._acquire_lock()
        self._load()

    def __len__(self) -> int:
        """Lines waiting to be delivered."""
        return sum(s.lines for s in self._segments) - self._head_lines

    @property
    def size_bytes(self) -> int:
        """Bytes of the lines waiting to be delivered."""
        return self._disk_bytes() - self._head_offset

    def append(self, lines: list[str]) -> None:
        """Add ``lines`` (without newlines) at the tail, dropping the oldest segments if full."""
        data = self._encode_fitting(lines)
        if not data:
            return
        self._make_room(len(data))
        self._write(data, data.count(b"\n"))

    def peek(self, max_items: int) -> list[str]:
        """Up to ``max_items`` of the oldest lines, left in place until :meth:`ack`."""
        lines: list[str] = []
        self._peeked = []
        for index, segment in enumerate(self._segments):
            if len(lines) >= max_items:
                break
            offset, count = (self._head_offset, self._head_lines) if index == 0 else (0, 0)
            with (self.directory / _segment_name(segment.id)).open("rb") as f:
                f.seek(offset)
                # Reads stop at the segment's known size: bytes past it are a failed write.
                while offset < segment.size and len(lines) < max_items:
                    raw = f.readline(segment.size - offset)
                    offset += len(raw)
                    count += 1
                    lines.append(raw.rstrip(b"\n").decode("utf-8", errors="replace"))
                    self._peeked.append(_Position(segment.id, offset, count))
        return lines

    def ack(self, n: int) -> None:
        """The first ``n`` lines of the last :meth:`peek` were delivered: forget them for good."""
        if n == 0:
            return
        if not 0 < n <= len(self._peeked):
            raise ValueError(
                f"cannot acknowledge {n} lines: the last peek gave {len(self._peeked)}"
            )
        end = self._peeked[n - 1]
        self._peeked = self._peeked[n:]
        if not self._segments or end.segment_id < self._segments[0].id:
            return  # those lines were in segments since dropped for room
        if end.segment_id == self._segments[0].id and end.offset <= self._head_offset:
            return
        self._advance_head(end)

    @property
    def unsynced(self) -> bool:
        """Lines were appended since the last fsync (and the policy wants them synced)."""
        return self._unsynced

    def sync(self) -> None:
        """Fsync the tail segment now if lines were appended since the last fsync."""
        if not self._unsynced or self._writer is None:
            self._unsynced = False
            return
        try:
            os.fsync(self._writer.fileno())
        except OSError as exc:
            logger.error("spool %s: cannot fsync (%s)", self.directory, exc)
        self._unsynced = False
        self._synced_at = time.monotonic()

    def close(self) -> None:
        """Close files and release the directory; what is left waits for the next start."""
        if self._writer is not None:
            self.sync()
            self._writer.close()
            self._writer = None
        self._lock.close()

    # -- opening -------------------------------------------------------------

    def _acquire_lock(self) -> BinaryIO:
        lock = (self.directory / _LOCK_FILE).open("ab")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise SpoolLockedError(f"spool {self.directory} is in use by another sink") from None
        return lock

    def _load(self) -> None:
        """Read the segments left by an earlier run and the persisted head position."""
        ids = sorted(
            int(p.stem) for p in self.directory.glob("*" + SEGMENT_SUFFIX) if p.stem.isdigit()
        )
        head_id, head_offset = self._read_head()
        # Ids only grow, so a stale head can never point into a newer segment.
        self._next_id = max([head_id + 1, *(i + 1 for i in ids)])
        for segment_id in ids:
            if segment_id < head_id:
                # Fully acknowledged before a crash stopped its deletion.
                (self.directory / _segment_name(segment_id)).unlink(missing_ok=True)
            else:
                self._segments.append(self._scan(segment_id))
        first = self._segments[0] if self._segments else None
        if first is not None and first.id == head_id:
            self._head_offset = min(head_offset, first.size)
            with (self.directory / _segment_name(first.id)).open("rb") as f:
                self._head_lines = f.read(self._head_offset).count(b"\n")
        if self._segments:
            logger.info(
                "spool %s: %d event(s) (%s) left by an earlier run",
                self.directory,
                len(self),
                human_bytes(self.size_bytes),
            )
        self._remove_if_empty()

    def _scan(self, segment_id: int) -> _Segment:
        """Count a segment's lines, cutting off a torn last line (a crash mid-write)."""
        path = self.directory / _segment_name(segment_id)
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            os.truncate(path, keep)
            data = data[:keep]
            self.torn += 1
            self.dropped += 1
            logger.warning("spool %s: cut off a partly written line (crash mid-write?)", path)
        return _Segment(segment_id, len(data), data.count(b"\n"))

    def _read_head(self) -> tuple[int, int]:
        """The persisted head position; the very start when it is missing or unreadable."""
        try:
            segment_id, offset = (self.directory / _HEAD_FILE).read_text().split()
            return int(segment_id), int(offset)
        except (OSError, ValueError):
            return -1, 0

    # -- writing -------------------------------------------------------------

    def _encode_fitting(self, lines: list[str]) -> bytes:
        """``lines`` as newline-terminated UTF-8, without the oldest that could never fit."""
        if any("\n" in line for line in lines):
            raise ValueError("a spooled line must not contain a newline")
        encoded = [line.encode("utf-8") + b"\n" for line in lines]
        total = sum(len(e) for e in encoded)
        skip = 0
        while total > self.max_bytes and skip < len(encoded):
            total -= len(encoded[skip])
            skip += 1
        if skip:
            self._count_dropped(skip, "a batch larger than the spool")
        return b"".join(encoded[skip:])

    def _make_room(self, incoming: int) -> None:
        """Drop the oldest segments until ``incoming`` more bytes fit in ``max_bytes``."""
        while self._segments and self._disk_bytes() + incoming > self.max_bytes:
            oldest = self._segments[0]
            self._delete_first_segment()
            self._count_dropped(oldest.lines - self._head_lines, "the spool is full")
            self._head_offset = self._head_lines = 0
            self._write_head()

    def _write(self, data: bytes, lines: int) -> None:
        """Append ``data`` to the tail segment (a new one when full); a failure counts as loss."""
        tail = self._segments[-1] if self._segments else None
        try:
            if tail is None or self._writer is None or tail.size >= self.segment_bytes:
                tail = self._open_new_segment()
            self._write_to(tail, data)
        except OSError as exc:
            self.dropped += lines
            self._unwritten += lines
            if self._unwritten == lines:  # the first failure of a run of them
                logger.error(
                    "spool %s: cannot write (%s); dropping events until it can", self.directory, exc
                )
            return
        if self._unwritten:
            logger.warning(
                "spool %s: writing works again; %d event(s) were lost meanwhile",
                self.directory,
                self._unwritten,
            )
            self._unwritten = 0
        tail.size += len(data)
        tail.lines += lines

    def _write_to(self, tail: _Segment, data: bytes) -> None:
        """Write and flush ``data`` to the open tail segment, undoing a partial write."""
        writer = self._writer
        if writer is None:
            raise OSError("spool segment is not open")
        try:
            writer.write(data)
            writer.flush()
        except OSError:
            self._undo_partial_write(tail)
            raise
        if self.fsync == "never":
            return
        self._unsynced = True
        if self.fsync == "always" or time.monotonic() - self._synced_at >= self.fsync_interval_s:
            self.sync()

    def _open_new_segment(self) -> _Segment:
        """Start a new tail segment and open it for appending."""
        if self._writer is not None:
            self.sync()  # a finished segment is complete on disk before the next starts
            self._writer.close()
            self._writer = None
        segment = _Segment(self._next_id, 0, 0)
        self._next_id += 1
        self._writer = (self.directory / _segment_name(segment.id)).open("ab")
        self._segments.append(segment)
        self._sync_directory()  # the new file's name survives a power cut
        return segment

    def _undo_partial_write(self, tail: _Segment) -> None:
        """Cut what a failed write left; if even that fails, reads stop at ``tail.size`` anyway."""
        writer = self._writer
        self._writer = None  # the next write starts a fresh segment
        if writer is None:
            return
        with contextlib.suppress(OSError):
            writer.close()
        with contextlib.suppress(OSError):
            os.truncate(self.directory / _segment_name(tail.id), tail.size)

    # -- acknowledging and dropping ------------------------------------------

    def _advance_head(self, end: _Position) -> None:
        """Move the head to ``end``, deleting the segments before it."""
        done = []
        while self._segments[0].id < end.segment_id:
            done.append(self._segments.pop(0).id)
        self._head_offset, self._head_lines = end.offset, end.lines
        self._write_head()  # persisted before deleting, so a crash never loses a line
        for segment_id in done:
            (self.directory / _segment_name(segment_id)).unlink(missing_ok=True)
        self._remove_if_empty()

    def _delete_first_segment(self) -> None:
        first = self._segments.pop(0)
        if not self._segments and self._writer is not None:
            self._writer.close()
            self._writer = None
        (self.directory / _segment_name(first.id)).unlink(missing_ok=True)

    def _remove_if_empty(self) -> None:
        """Everything delivered: leave an empty directory behind."""
        if len(self) or not self._segments:
            return
        # The head goes first: a crash in between re-delivers, never skips.
        (self.directory / _HEAD_FILE).unlink(missing_ok=True)
        while self._segments:
            self._delete_first_segment()
        self._head_offset = self._head_lines = 0

    def _write_head(self) -> None:
        """Persist the head position atomically (write, then rename)."""
        first_id = self._segments[0].id if self._segments else -1
        tmp = self.directory / (_HEAD_FILE + ".tmp")
        try:
            with tmp.open("w") as f:
                f.write(f"{first_id} {self._head_offset}\n")
                if self.fsync != "never":
                    f.flush()
                    os.fsync(f.fileno())  # the rename must never reveal an empty file
            tmp.replace(self.directory / _HEAD_FILE)
            self._sync_directory()
        except OSError as exc:
            # The old head stays: the acknowledged lines are delivered again after a restart.
            logger.warning("spool %s: cannot save the read position (%s)", self.directory, exc)

    def _sync_directory(self) -> None:
        """Fsync the directory, making created, renamed and deleted names durable."""
        if self.fsync == "never":
            return
        try:
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            logger.error("spool %s: cannot fsync the directory (%s)", self.directory, exc)

    def _count_dropped(self, lines: int, reason: str) -> None:
        if lines <= 0:
            return
        self.dropped += lines
        logger.warning(
            "spool %s: dropped %d event(s): %s (%d dropped since start)",
            self.directory,
            lines,
            reason,
            self.dropped,
        )

    def _disk_bytes(self) -> int:
        return sum(s.size for s in self._segments)


def _segment_name(segment_id: int) -> str:
    return f"{segment_id:012d}{SEGMENT_SUFFIX}"


def human_bytes(n: int) -> str:
    """``n`` bytes for a log line: ``"46 KiB"``, ``"6.5 MiB"``."""
    if n < 1 << 20:
        return f"{n / 1024:.0f} KiB"
    return f"{n / (1 << 20):.1f} MiB"
