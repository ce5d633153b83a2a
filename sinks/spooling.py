"""A sink that delivers straight to a service while it answers and spools while it does not.

The Redis Streams and Kafka sinks share this state machine; each supplies only its
transport: how to reach the service (``_probe``), how to deliver a batch in order
(``_deliver``), and how to turn events and spooled lines into that batch.

- While the service answers, ``publish_many`` delivers each batch and returns once it
  is acknowledged.
- When a delivery fails with one of ``unavailable``, the batch and everything after it
  go to the disk spool, in order, and a background task probes the service with
  equal-jitter exponential backoff (redis-py's ``EqualJitterBackoff``, capped).
- Once the service answers, the spool is delivered batch by batch, oldest first, and
  direct delivery resumes. A spool left by an earlier run goes out before new events.
- ``close`` makes one bounded attempt to deliver the spool; what is left stays on disk
  for the next start. A long outage is reported every minute, never silently.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from prometheus_client import Gauge
from pydantic import BaseModel, Field, model_validator

from config.errors import ConfigError
from config.settings import Settings
from sinks.base import Sink
from sinks.bus import Published
from sinks.metrics import Metrics
from sinks.spool import FsyncPolicy, Spool, SpoolLockedError, human_bytes

logger = logging.getLogger(__name__)

T = TypeVar("T")  # one record of the transport's batches
STILL_DOWN_LOG_S = 60.0
MIB = 1 << 20


class SpoolingSinkConfig(BaseModel):
    """The spool and reconnection settings every spooling sink's config entry has."""

    spool_dir: Path | None = Field(
        None,
        title="Spool directory",
        description="Where events wait while the service is away; "
        "default HERITAGE_DATA_DIR/spool/<sink type>.",
    )
    spool_max_bytes: int = Field(
        256 * MIB,
        title="Spool bound",
        ge=64 * 1024,
        le=1 << 40,
        description="Bytes of disk the spool may use; the oldest events are dropped beyond.",
    )
    spool_segment_bytes: int = Field(
        4 * MIB,
        title="Spool segment size",
        ge=4096,
        le=1 << 30,
        description="Bytes per spool file; the spool drops a whole segment at a time when full.",
    )
    spool_fsync: FsyncPolicy | None = Field(
        None,
        title="Spool fsync",
        description="always, interval or never (what a power cut may lose); "
        "default HERITAGE_SPOOL_FSYNC.",
    )
    spool_fsync_interval_s: float | None = Field(
        None,
        title="Spool fsync interval",
        gt=0,
        le=60,
        description="With interval: seconds between fsyncs; "
        "default HERITAGE_SPOOL_FSYNC_INTERVAL_S.",
    )
    reconnect_initial_s: float = Field(
        0.1, title="First retry", gt=0, le=60, description="Seconds before the first reconnect."
    )
    reconnect_max_s: float = Field(
        1.0,
        title="Longest retry",
        gt=0,
        le=3600,
        description="Cap of the reconnect backoff, s: delivery resumes at most this long "
        "after the service is back.",
    )
    close_timeout_s: float = Field(
        3.0,
        title="Drain on close",
        ge=0,
        le=300,
        description="Seconds to deliver the spool at shutdown; the rest waits for the next start.",
    )

    @model_validator(mode="after")
    def _consistent_bounds(self) -> SpoolingSinkConfig:
        if self.spool_max_bytes < 2 * self.spool_segment_bytes:
            raise ValueError("spool_max_bytes must be at least twice spool_segment_bytes")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must not be less than reconnect_initial_s")
        return self

    def open_spool(self, settings: Settings, kind: str, service: str) -> Spool:
        """The spool of a ``kind`` sink (default under HERITAGE_DATA_DIR/spool/<service>),
        or :class:`ConfigError` saying why it cannot be used."""
        spool_dir = self.spool_dir or settings.HERITAGE_DATA_DIR / "spool" / service.lower()
        try:
            return Spool(
                spool_dir,
                self.spool_max_bytes,
                self.spool_segment_bytes,
                fsync=self.spool_fsync or settings.HERITAGE_SPOOL_FSYNC,
                fsync_interval_s=self.spool_fsync_interval_s
                or settings.HERITAGE_SPOOL_FSYNC_INTERVAL_S,
            )
        except SpoolLockedError as exc:
            raise ConfigError(
                f"sinks: {kind}: {exc}; give each {service} sink its own spool_dir"
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"sinks: {kind}: spool_dir {spool_dir}: cannot use it ({exc.strerror})"
            ) from None


class SpoolingSink(Sink, Generic[T]):
    """Direct delivery while ``service`` answers, the spool while it does not."""

    service: ClassVar[str]  # the service's name in log lines ("Redis", "Kafka")
    unavailable: tuple[type[BaseException], ...]  # what means "not reachable" (set by each)

    def __init__(
        self,
        name: str,
        config: SpoolingSinkConfig,
        spool: Spool,
        metrics: Metrics,
        connected: Gauge,
        *,
        batch_size: int,
        drain_batch: int,
        spooling: bool,
    ) -> None:
        self.name = name
        self.batch_size = batch_size
        self._drain_batch = drain_batch
        self._spool_max_bytes = config.spool_max_bytes
        self._close_timeout_s = config.close_timeout_s
        self._spool = spool
        from redis.backoff import EqualJitterBackoff  # here: importing redis takes 0.2 s

        self._backoff = EqualJitterBackoff(
            cap=config.reconnect_max_s, base=config.reconnect_initial_s
        )
        self._spooling = spooling
        self._down_since: float | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._delivered = 0
        self._dropped_seen = 0  # so lines torn by a crash are counted too
        self._errors = metrics.sink_errors.labels(name)
        self._connected = connected
        self._spool_events = metrics.spool_events.labels(name)
        self._spool_bytes = metrics.spool_bytes.labels(name)
        self._spool_dropped = metrics.spool_dropped.labels(name)
        self._connected.set(0)
        self._update_spool_metrics()

    # -- the transport -------------------------------------------------------

    @abstractmethod
    async def _probe(self) -> None:
        """Reach the service (connect, ping); raise one of ``unavailable`` if it is away."""

    @abstractmethod
    async def _deliver(self, batch: list[T]) -> None:
        """Deliver ``batch`` in order and return once the service acknowledged all of it."""

    @abstractmethod
    def _batch_of_items(self, items: list[Published]) -> list[T]:
        """The records for published events."""

    @abstractmethod
    def _record_of_line(self, event: dict[str, Any], line: str) -> T:
        """The record for a spooled line (``event`` is its JSON); KeyError etc. if unusable."""

    async def _reset_connection(self) -> None:
        """Abandon a connection that failed (the next probe makes a new one)."""

    @abstractmethod
    async def _release(self) -> None:
        """Close the client at shutdown."""

    def _closing_detail(self) -> str:
        """Extra figures for the closing log line (", N ... ," or empty)."""
        return ""

    # -- the sink ------------------------------------------------------------

    @property
    def spooled(self) -> int:
        """Events waiting in the spool."""
        return len(self._spool)

    @property
    def connected(self) -> bool:
        """True while events go straight to the service."""
        return not self._spooling

    async def publish(self, item: Published) -> None:
        await self.publish_many([item])

    async def publish_many(self, items: list[Published]) -> None:
        """Deliver ``items`` and await the acknowledgement, or spool them behind the rest."""
        if self._spooling:
            self._append_to_spool(items)
            return
        try:
            await self._deliver(self._batch_of_items(items))
        except self.unavailable as exc:
            self._lost(exc)
            self._append_to_spool(items)
            return
        self._delivered += len(items)
        self._connected.set(1)

    async def close(self) -> None:
        """Deliver the spool within the close timeout; what is left stays on disk."""
        try:
            await self._stop_recovery()
            if len(self._spool):
                await self._drain_before_exit()
        finally:
            await self._release()
            self._spool.close()  # fsyncs what is left
            self._connected.set(0)
            logger.info(
                "%s: closed; %d event(s) delivered%s, %d dropped by the spool, %d left in %s",
                self.name,
                self._delivered,
                self._closing_detail(),
                self._spool.dropped,
                len(self._spool),
                self._spool.directory,
            )

    # -- spooling ------------------------------------------------------------

    def _lost(self, exc: BaseException) -> None:
        """Switch to spooling; the append that follows starts probing in the background."""
        self._spooling = True
        self._down_since = time.monotonic()
        self._connected.set(0)
        logger.warning(
            "%s: %s unreachable (%s); spooling events to %s (bound %s) until it is back",
            self.name,
            self.service,
            describe(exc),
            self._spool.directory,
            human_bytes(self._spool_max_bytes),
        )

    def _append_to_spool(self, items: list[Published]) -> None:
        self._spool.append([item.json for item in items])
        self._update_spool_metrics()
        self._spool.sync_later()
        self._start_recovery()

    def _update_spool_metrics(self) -> None:
        self._spool_events.set(len(self._spool))
        self._spool_bytes.set(self._spool.size_bytes)
        self._spool_dropped.inc(self._spool.dropped - self._dropped_seen)
        self._dropped_seen = self._spool.dropped

    # -- recovery ------------------------------------------------------------

    def _start_recovery(self) -> None:
        if self._spooling and (self._recovery is None or self._recovery.done()):
            self._recovery = asyncio.create_task(self._recover(), name=f"{self.name} recovery")

    async def _recover(self) -> None:
        """Probe with backoff until the service answers and the spool is delivered."""
        failures = 0 if self._down_since is None else 1  # just failed: wait before probing
        last_report = time.monotonic()
        while True:
            if failures:
                # Capped: the backoff computes 2**failures, and an outage may last days.
                await asyncio.sleep(self._backoff.compute(min(failures, 32) - 1))
            try:
                await self._probe()
                await self._drain()
                return
            except self.unavailable as exc:
                failures += 1
                await self._reset_connection()
                if self._down_since is None:  # a spool left by an earlier run, no service
                    self._lost(exc)
                    continue
                logger.debug(
                    "%s: %s still unreachable (%s)", self.name, self.service, describe(exc)
                )
                if time.monotonic() - last_report >= STILL_DOWN_LOG_S:
                    last_report = time.monotonic()
                    self._report_still_down(exc)
            except Exception:
                # A bug or a broken spool file: keep the events and keep trying, loudly.
                failures += 1
                self._errors.inc()
                await self._reset_connection()
                logger.exception("%s: delivering the spool failed; retrying", self.name)

    async def _drain(self) -> None:
        """Deliver the spool in order, batch by batch, then go back to direct delivery."""
        started = time.monotonic()
        down_since = self._down_since
        total = len(self._spool)
        if total:
            logger.info(
                "%s: %s answers; delivering %d spooled event(s) (%s)",
                self.name,
                self.service,
                total,
                human_bytes(self._spool.size_bytes),
            )
        delivered = 0
        while lines := self._spool.peek(self._drain_batch):
            batch = self._batch_of_lines(lines)
            if batch:
                await self._deliver(batch)
            self._spool.ack(len(lines))
            delivered += len(batch)
            self._update_spool_metrics()
        self._spooling = False
        self._down_since = None
        self._connected.set(1)
        self._delivered += delivered
        if total or down_since is not None:
            outage = f" after {started - down_since:.0f} s" if down_since is not None else ""
            logger.info(
                "%s: %s back%s: %d spooled event(s) delivered in %.1f s; delivering directly again",
                self.name,
                self.service,
                outage,
                delivered,
                time.monotonic() - started,
            )

    def _batch_of_lines(self, lines: list[str]) -> list[T]:
        """Records for spooled JSON lines; an unreadable line is logged and counted as dropped."""
        batch = []
        for line in lines:
            try:
                event: dict[str, Any] = json.loads(line)
                batch.append(self._record_of_line(event, line))
            except (ValueError, KeyError, TypeError) as exc:
                self._spool_dropped.inc()
                logger.warning("%s: skipped an unreadable spooled event (%s)", self.name, exc)
        return batch

    def _report_still_down(self, exc: BaseException) -> None:
        since = self._down_since or time.monotonic()
        logger.warning(
            "%s: %s still unreachable after %.0f s (%s); %d event(s) spooled (%s), %d dropped",
            self.name,
            self.service,
            time.monotonic() - since,
            describe(exc),
            len(self._spool),
            human_bytes(self._spool.size_bytes),
            self._spool.dropped,
        )

    # -- shutdown ------------------------------------------------------------

    async def _stop_recovery(self) -> None:
        task, self._recovery = self._recovery, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task})  # unlike awaiting it, never swallows our own cancellation

    async def _drain_before_exit(self) -> None:
        """One bounded attempt to deliver the spool; on failure it waits for the next start."""
        gave_up: tuple[type[BaseException], ...] = (*self.unavailable, TimeoutError)
        try:
            async with asyncio.timeout(self._close_timeout_s):
                await self._probe()
                await self._drain()
        except gave_up as exc:
            logger.warning(
                "%s: shutting down with %d event(s) spooled in %s (%s); they go out at next start",
                self.name,
                len(self._spool),
                self._spool.directory,
                describe(exc),
            )


def describe(exc: BaseException) -> str:
    """A short reason for a log line: the exception's message, or its type."""
    return str(exc) or type(exc).__name__
