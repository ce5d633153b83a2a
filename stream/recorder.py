"""The recorder: speech segments or continuous audio to FLAC, off by default for privacy.

Each channel's :class:`ChannelRecorder` sees the analysed (16 kHz) samples and
the events the detectors produced from them. In ``speech`` mode it keeps a
short ring of recent audio, opens a segment at ``speech.started`` (from the
onset minus ``pre_roll_s``) and closes it at ``speech.ended``; in
``continuous`` mode it records everything in files of ``max_segment_s``.
Writing happens in one writer thread behind a bounded queue, so a slow disk
never stalls analysis (a full queue loses audio, counted and logged). Files
appear atomically (written as ``.part``, then renamed); retention by age and
total size runs after every file.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict, Field

from stream.events import Event, SpeechEnded, SpeechStarted
from stream.windowing import Samples

logger = logging.getLogger(__name__)

Analyse = Callable[[Path], None]
"""Called with each finished recording (e.g. to run the offline analysis on it)."""


class RecorderConfig(BaseModel):
    """Recording of audio to disk. Off by default: visitors' audio stays in memory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Record audio at all (privacy: off by default).")
    mode: Literal["speech", "continuous"] = Field(
        "speech", description="Speech segments only, or everything in fixed-length files."
    )
    directory: Path = Field(Path("data/recordings"), description="Where recordings are kept.")
    pre_roll_s: float = Field(0.5, ge=0, le=10, description="Audio kept before a speech onset.")
    holdback_s: float = Field(
        1.0, ge=0, le=10,
        description="Speech mode: audio held before writing so a segment ends where speech did "
        "(keep above the VAD's min_silence_ms).",
    )  # fmt: skip
    max_segment_s: float = Field(
        600.0,
        gt=1,
        le=86400,
        description="Longest file; longer speech or continuous audio is split.",
    )
    max_age_days: float = Field(30.0, gt=0, description="Recordings older than this are deleted.")
    max_total_mb: float = Field(2048.0, gt=0, description="Oldest recordings go beyond this total.")
    analyze: bool = Field(
        False,
        description="Analyse each recording: with the API (`run`) a low-priority comprehensive "
        "job whose result the API serves; without it (`daemon`) result JSON beside the file.",
    )
    queue_chunks: int = Field(512, ge=8, le=100_000, description="Chunks buffered for the writer.")


@dataclass(frozen=True, slots=True)
class _Open:
    key: str
    path: Path
    rate: int


@dataclass(frozen=True, slots=True)
class _Chunk:
    key: str
    samples: Samples


@dataclass(frozen=True, slots=True)
class _Close:
    key: str
    keep: bool  # False for a recording that got no audio: it is deleted, never shown


_Job = _Open | _Chunk | _Close | None


class RecordingWriter:
    """The writer thread shared by every channel recorder of a process."""

    def __init__(
        self,
        config: RecorderConfig,
        on_drop: Callable[[], None] | None = None,
        analyse: Analyse | None = None,
    ) -> None:
        self.config = config
        self.dropped_chunks = 0
        self._on_drop = on_drop
        self.files_written = 0
        self.analyse = analyse
        """Called (on the writer thread) with each finished file; may be replaced before start."""
        self._jobs: queue.Queue[_Job] = queue.Queue(config.queue_chunks)
        self._thread = threading.Thread(target=self._run, name="recorder", daemon=True)
        self._thread.start()
        self.enforce_retention()

    def submit(self, job: _Open | _Chunk | _Close) -> None:
        """Queue a job without waiting; audio chunks are dropped (counted) when the disk lags."""
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            if isinstance(job, _Chunk):
                self.dropped_chunks += 1
                if self._on_drop is not None:
                    self._on_drop()
                logger.warning("recorder: writer queue full, %d chunks lost", self.dropped_chunks)
            else:  # opening and closing must not be lost: wait for room
                self._jobs.put(job)

    def close(self, timeout: float = 10.0) -> None:
        """Finish queued writes and stop the thread."""
        self._jobs.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        files: dict[str, tuple[sf.SoundFile, Path]] = {}
        while (job := self._jobs.get()) is not None:
            try:
                self._handle(job, files)
            except (OSError, sf.LibsndfileError) as exc:
                logger.error("recorder: %s", exc)  # a full or failing disk: report, keep going
        for handle, _ in files.values():
            handle.close()

    def _handle(
        self, job: _Open | _Chunk | _Close, files: dict[str, tuple[sf.SoundFile, Path]]
    ) -> None:
        if isinstance(job, _Open):
            job.path.parent.mkdir(parents=True, exist_ok=True)
            part = job.path.with_suffix(".flac.part")
            files[job.key] = (
                sf.SoundFile(part, "w", samplerate=job.rate, channels=1, format="FLAC",
                             subtype="PCM_16"),
                job.path,
            )  # fmt: skip
        elif isinstance(job, _Chunk) and job.key in files:
            files[job.key][0].write(job.samples)
        elif isinstance(job, _Close) and job.key in files:
            handle, path = files.pop(job.key)
            handle.close()
            part = path.with_suffix(".flac.part")
            if not job.keep:
                part.unlink()
                return
            part.rename(path)  # visible only when complete
            self.files_written += 1
            logger.info("recorder: wrote %s", path.name)
            self.enforce_retention()
            if self.analyse is not None:
                self.analyse(path)

    def enforce_retention(self) -> None:
        """Delete recordings past the age limit, then the oldest beyond the size limit."""
        directory = self.config.directory
        if not directory.exists():
            return
        now = time.time()
        recordings = sorted(directory.rglob("*.flac"), key=lambda p: p.stat().st_mtime)
        max_age = self.config.max_age_days * 86400
        total = sum(p.stat().st_size for p in recordings)
        for path in recordings:
            too_old = now - path.stat().st_mtime > max_age
            if too_old or total > self.config.max_total_mb * 2**20:
                total -= path.stat().st_size
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)
                logger.info("recorder: retention removed %s", path.name)


class ChannelRecorder:
    """Cuts one channel's audio into recordings and hands them to the writer."""

    def __init__(
        self,
        writer: RecordingWriter,
        *,
        source: str,
        channel: int,
        rate: int,
        wall_time: Callable[[float], datetime],
    ) -> None:
        self.config = config = writer.config
        self._writer = writer
        self._source = source
        self._channel = channel
        self._rate = rate
        self._wall_time = wall_time
        self._continuous = config.mode == "continuous"
        # Speech ends are confirmed after the pause; audio is written that much later, so
        # a segment can stop exactly where speech did.
        self._holdback = 0 if self._continuous else round(config.holdback_s * rate)
        self._max_samples = round(config.max_segment_s * rate)
        self._ring: deque[tuple[int, Samples]] = deque()
        self._ring_limit = round((config.pre_roll_s + config.holdback_s + 1.0) * rate)
        self._held = 0  # samples in the ring
        self._end = 0  # stream index after the last sample pushed
        self._in_speech = False
        self._key: str | None = None
        self._opened_at = 0
        self._written_to = 0

    def push(self, samples: Samples, start: int, events: list[Event]) -> None:
        """The channel's next samples (starting at stream index ``start``) and their events."""
        if len(samples):
            self._remember(samples, start)
            self._end = start + len(samples)
        for event in events:
            if isinstance(event, SpeechStarted):
                self._in_speech = True
                if not self._continuous and self._key is None:
                    self._open(round((event.t_start - self.config.pre_roll_s) * self._rate))
            elif isinstance(event, SpeechEnded):
                self._in_speech = False
                if not self._continuous and self._key is not None:
                    self._write_until(round(event.t_end * self._rate))
                    self._finish()
        if self._continuous and self._key is None:
            self._open(start)
        self._write_until(self._end - self._holdback)

    def close(self) -> None:
        """The stream ends or breaks: write what is held back and finish the recording."""
        self._write_until(self._end)
        self._finish()

    def _finish(self) -> None:
        if self._key is not None:
            self._writer.submit(_Close(self._key, keep=self._written_to > self._opened_at))
            self._key = None

    def _remember(self, samples: Samples, start: int) -> None:
        self._ring.append((start, samples))
        self._held += len(samples)
        while self._held - len(self._ring[0][1]) >= self._ring_limit:
            self._held -= len(self._ring.popleft()[1])

    def _open(self, at: int) -> None:
        oldest = self._ring[0][0] if self._ring else at
        at = max(at, oldest, 0)
        stamp = self._wall_time(at / self._rate)
        name = f"{self._source}-ch{self._channel}-{stamp:%Y%m%dT%H%M%S.%f}Z.flac"
        self._key = f"{self._source}/{self._channel}/{at}"
        path = self.config.directory / self._source / name
        self._writer.submit(_Open(self._key, path, self._rate))
        self._opened_at = self._written_to = at

    def _write_until(self, end: int) -> None:
        """Write remembered audio up to stream index ``end``, splitting at ``max_segment_s``."""
        while self._key is not None and self._written_to < end:
            limit = self._opened_at + self._max_samples
            before = self._written_to
            self._write_span(min(end, limit))
            if self._written_to >= limit:
                self._finish()
                if self._continuous or self._in_speech:
                    self._open(self._written_to)
            elif self._written_to == before:
                return  # the ring no longer holds that audio

    def _write_span(self, end: int) -> None:
        unwritten: list[tuple[int, Samples]] = []
        for start, samples in reversed(self._ring):  # newest first: usually a chunk or two
            if start + len(samples) <= self._written_to:
                break
            unwritten.append((start, samples))
        for start, samples in reversed(unwritten):
            lo = max(self._written_to, start)
            hi = min(end, start + len(samples))
            if hi > lo and self._key is not None:
                self._writer.submit(_Chunk(self._key, np.array(samples[lo - start : hi - start])))
                self._written_to = hi
