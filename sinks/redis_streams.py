"""Redis Streams sink: each event one stream entry; spooled on disk while Redis is away.

Key layout
    One stream per installation, named by ``stream_key`` (default
    ``heritage:{installation_id}:events``; ``{source}`` may be used too, for a
    stream per source). Entries are added with ``XADD key MAXLEN ~ maxlen *``,
    so Redis keeps roughly the newest ``maxlen`` entries (never fewer).

Entry fields
    ``event``   the event's JSON, byte for byte as on the WebSocket
    ``type``    the event type, e.g. ``speech.started``
    ``source``  the audio source that produced it
    ``run_id``  the daemon run that produced it
    ``seq``     its per-source sequence number, in decimal

Idempotent publishing
    Entries are added by a Lua script, one call per batch, that remembers in the
    hash ``<stream>:published`` the last ``run_id seq`` added per source and
    skips an entry at or below it. Events of a source reach the script in
    ``seq`` order, so a batch sent again (its reply lost to a timeout while Redis
    was frozen, then delivered from the spool) adds nothing twice. Entry ids stay
    Redis's own (``*``): ids derived from ``(run_id, seq)`` could not stay
    increasing in a stream shared by several sources.

Delivery
    When Redis cannot be reached (or refuses a write) the sink switches to
    spooling: that batch and every later one go to a bounded on-disk spool
    (:mod:`sinks.spool`), so order is kept. A background task probes Redis with
    capped exponential backoff and jitter (by default at most 1 s apart, so
    delivery resumes within about a second of Redis's return); once Redis
    answers it drains the spool in order, acknowledging each batch only after
    Redis accepted it, and then switches back to direct delivery. A spool left
    by an earlier run is delivered before any new event.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from string import Formatter
from typing import Any, Literal

import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff, NoBackoff
from redis.exceptions import RedisError
from redis.typing import EncodableT, KeyT

from config.errors import ConfigError
from config.settings import Settings
from sinks.base import Sink
from sinks.bus import Published
from sinks.metrics import Metrics
from sinks.spool import FsyncPolicy, Spool, SpoolLockedError, human_bytes

logger = logging.getLogger(__name__)

DEFAULT_STREAM_KEY = "heritage:{installation_id}:events"
KEY_PLACEHOLDERS = frozenset({"installation_id", "source"})
URL_SCHEMES = ("redis://", "rediss://", "unix://")
MIB = 1 << 20
_PUBLISH_SCRIPT = """
-- KEYS: stream, marks hash, per entry. ARGV: maxlen, then per entry
-- source, run_id, seq, event, type. Adds the entries whose (run_id, seq) is past
-- the source's mark; returns how many it added.
local maxlen = ARGV[1]
local added = 0
for i = 0, #KEYS / 2 - 1 do
  local stream, marks = KEYS[2 * i + 1], KEYS[2 * i + 2]
  local a = 2 + 5 * i
  local source, run_id, seq = ARGV[a], ARGV[a + 1], ARGV[a + 2]
  local mark = redis.call('HGET', marks, source)
  local fresh = true
  if mark then
    local space = string.find(mark, ' ', 1, true)
    fresh = string.sub(mark, 1, space - 1) ~= run_id
      or tonumber(string.sub(mark, space + 1)) < tonumber(seq)
  end
  if fresh then
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'event', ARGV[a + 3],
      'type', ARGV[a + 4], 'source', source, 'run_id', run_id, 'seq', seq)
    redis.call('HSET', marks, source, run_id .. ' ' .. seq)
    added = added + 1
  end
end
return added
"""
MARKS_SUFFIX = ":published"
"""The hash beside each stream: the last ``run_id seq`` added per source."""
_STILL_DOWN_LOG_S = 60.0
"""Seconds between "still unreachable" lines during a long outage."""

# Whatever keeps an event from being stored: Redis gone, timing out, or refusing writes.
_UNAVAILABLE = (RedisError, OSError)


def redis_url_from_settings(settings: Settings) -> str | None:
    """``redis://REDIS_HOST:REDIS_PORT/0``, or ``None`` when no Redis host is configured."""
    if not settings.REDIS_HOST:
        return None
    host = settings.REDIS_HOST
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"redis://{host}:{settings.REDIS_PORT}/0"


def redact_url(url: str) -> str:
    """``url`` without its user and password, fit for a log line or a metric label."""
    return re.sub(r"//[^@/]*@", "//***@", url)


def stream_key(template: str, installation_id: str, source: str) -> str:
    """The stream an event of ``installation_id`` and ``source`` goes to."""
    return template.format(installation_id=installation_id, source=source)


class RedisStreamsSinkConfig(BaseModel):
    """Publish every event to a Redis stream; spool to disk while Redis is unreachable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["redis_streams"] = "redis_streams"
    url: str | None = Field(
        None,
        title="Redis URL",
        description="redis://, rediss:// or unix:// URL; default redis://REDIS_HOST:REDIS_PORT/0.",
    )
    stream_key: str = Field(
        DEFAULT_STREAM_KEY,
        title="Stream key",
        min_length=1,
        max_length=512,
        description="Stream name; {installation_id} and {source} are filled in per event.",
    )
    maxlen: int = Field(
        100_000,
        title="Stream length",
        ge=100,
        le=1_000_000_000,
        description="Entries Redis keeps per stream (approximate trim, never fewer).",
    )
    batch_size: int = Field(
        200, title="Batch size", ge=1, le=10_000, description="Most events per XADD pipeline."
    )
    spool_dir: Path | None = Field(
        None,
        title="Spool directory",
        description="Where events wait while Redis is down; default HERITAGE_DATA_DIR/spool/redis.",
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
        "after Redis is back.",
    )
    socket_timeout_s: float = Field(
        5.0,
        title="Socket timeout",
        gt=0,
        le=300,
        description="Seconds to connect or wait for a reply before Redis counts as unreachable.",
    )
    close_timeout_s: float = Field(
        3.0,
        title="Drain on close",
        ge=0,
        le=300,
        description="Seconds to deliver the spool at shutdown; the rest waits for the next start.",
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(URL_SCHEMES):
            raise ValueError("must start with " + ", ".join(URL_SCHEMES))
        return value

    @field_validator("stream_key")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        try:
            names = {name for _, name, _, _ in Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ValueError(f"not a valid key template ({exc})") from None
        if unknown := names - KEY_PLACEHOLDERS:
            raise ValueError(
                f"unknown placeholder {sorted(unknown)}; only {{installation_id}} and {{source}}"
            )
        return value

    @model_validator(mode="after")
    def _consistent_bounds(self) -> RedisStreamsSinkConfig:
        if self.spool_max_bytes < 2 * self.spool_segment_bytes:
            raise ValueError("spool_max_bytes must be at least twice spool_segment_bytes")
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must not be less than reconnect_initial_s")
        return self

    def build(self, settings: Settings, metrics: Metrics) -> Sink:
        """The sink this entry describes, its spool opened (:class:`ConfigError` if it cannot)."""
        url = self.url or redis_url_from_settings(settings)
        if url is None:
            raise ConfigError(
                "sinks: redis_streams: no Redis to deliver to: set REDIS_HOST (and REDIS_PORT) "
                "or the sink's url"
            )
        spool_dir = self.spool_dir or settings.HERITAGE_DATA_DIR / "spool" / "redis"
        try:
            spool = Spool(
                spool_dir,
                self.spool_max_bytes,
                self.spool_segment_bytes,
                fsync=self.spool_fsync or settings.HERITAGE_SPOOL_FSYNC,
                fsync_interval_s=self.spool_fsync_interval_s
                or settings.HERITAGE_SPOOL_FSYNC_INTERVAL_S,
            )
        except SpoolLockedError as exc:
            raise ConfigError(
                f"sinks: redis_streams: {exc}; give each Redis sink its own spool_dir"
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"sinks: redis_streams: spool_dir {spool_dir}: cannot use it ({exc.strerror})"
            ) from None
        return RedisStreamsSink(self, url, spool, metrics)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One stream entry to add: the stream, and what identifies and carries the event."""

    key: str
    source: str
    run_id: str
    seq: int
    event: str
    type: str


class RedisStreamsSink(Sink):
    """XADDs batches to Redis; spools them in order while Redis is unreachable."""

    def __init__(
        self, config: RedisStreamsSinkConfig, url: str, spool: Spool, metrics: Metrics
    ) -> None:
        self.name = f"redis_streams:{redact_url(url)}"
        self.batch_size = config.batch_size
        self._config = config
        self._url = url
        self._spool = spool
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=config.socket_timeout_s,
            socket_connect_timeout=config.socket_timeout_s,
            # One quick retry reconnects a pooled connection that Redis closed; more would
            # only delay noticing an outage, which the spool and its backoff handle.
            retry=Retry(NoBackoff(), 1),
        )
        self._publish_script = self._redis.register_script(_PUBLISH_SCRIPT)
        self._duplicates_skipped = 0
        self._backoff = EqualJitterBackoff(
            cap=config.reconnect_max_s, base=config.reconnect_initial_s
        )
        self._spooling = len(spool) > 0  # leftovers from an earlier run go out first
        self._down_since: float | None = None
        self._recovery: asyncio.Task[None] | None = None
        self._sync_timer: asyncio.TimerHandle | None = None
        self._delivered = 0
        self._dropped_seen = 0  # so lines torn by a crash are counted too
        self._errors = metrics.sink_errors.labels(self.name)
        self._connected = metrics.redis_connected.labels(self.name)
        self._spool_events = metrics.spool_events.labels(self.name)
        self._spool_bytes = metrics.spool_bytes.labels(self.name)
        self._spool_dropped = metrics.spool_dropped.labels(self.name)
        self._connected.set(0)
        self._update_spool_metrics()

    @property
    def spooled(self) -> int:
        """Events waiting in the spool."""
        return len(self._spool)

    @property
    def duplicates_skipped(self) -> int:
        """Events sent again (a batch retried after a lost reply) that Redis already had."""
        return self._duplicates_skipped

    @property
    def connected(self) -> bool:
        """True while events go straight to Redis."""
        return not self._spooling

    async def start(self) -> None:
        """A spool left by an earlier run goes out now, not with the first new event."""
        if self._spooling and (self._recovery is None or self._recovery.done()):
            self._recovery = asyncio.create_task(self._recover(), name=f"{self.name} recovery")

    async def publish(self, item: Published) -> None:
        await self.publish_many([item])

    async def publish_many(self, items: list[Published]) -> None:
        """XADD ``items`` in one pipeline, or spool them behind the events already waiting."""
        if self._spooling:
            self._append_to_spool(items)
            return
        try:
            await self._xadd([self._entry_of(item) for item in items])
        except _UNAVAILABLE as exc:
            self._redis_lost(exc)
            self._append_to_spool(items)
            return
        self._delivered += len(items)
        self._connected.set(1)

    async def close(self) -> None:
        """Deliver the spool within ``close_timeout_s``; what is left stays on disk."""
        try:
            await self._stop_recovery()
            if len(self._spool):
                await self._drain_before_exit()
        finally:
            if self._sync_timer is not None:
                self._sync_timer.cancel()
                self._sync_timer = None
            self._spool.close()  # fsyncs what is left
            await self._redis.aclose()
            self._connected.set(0)
            logger.info(
                "%s: closed; %d event(s) delivered, %d sent again and skipped by Redis, "
                "%d dropped by the spool, %d left in %s",
                self.name,
                self._delivered,
                self._duplicates_skipped,
                self._spool.dropped,
                len(self._spool),
                self._spool.directory,
            )

    # -- direct delivery -----------------------------------------------------

    def _entry_of(self, item: Published) -> _Entry:
        event = item.event
        key = stream_key(self._config.stream_key, event.installation_id, event.source)
        return _Entry(key, event.source, event.run_id, event.seq, item.json, event.type)

    async def _xadd(self, entries: list[_Entry]) -> None:
        """Add ``entries`` in order, in one atomic round trip, skipping any added before.

        Raises if Redis did not answer; the script then either ran whole or not at
        all, and sending the batch again adds only what is missing.
        """
        keys: list[KeyT] = []
        args: list[EncodableT] = [self._config.maxlen]
        for e in entries:
            keys += [e.key, e.key + MARKS_SUFFIX]
            args += [e.source, e.run_id, e.seq, e.event, e.type]
        added = await self._publish_script(keys=keys, args=args)
        if skipped := len(entries) - int(added):
            self._duplicates_skipped += skipped
            logger.info(
                "%s: %d event(s) Redis already had were not added again", self.name, skipped
            )

    # -- spooling ------------------------------------------------------------

    def _redis_lost(self, exc: BaseException) -> None:
        """Switch to spooling; the append that follows starts probing Redis in the background."""
        self._spooling = True
        self._down_since = time.monotonic()
        self._connected.set(0)
        logger.warning(
            "%s: Redis unreachable (%s); spooling events to %s (bound %s) until it is back",
            self.name,
            _describe(exc),
            self._spool.directory,
            human_bytes(self._config.spool_max_bytes),
        )

    def _append_to_spool(self, items: list[Published]) -> None:
        self._spool.append([item.json for item in items])
        self._update_spool_metrics()
        if self._spool.unsynced and self._sync_timer is None:
            # The spool fsyncs on appends once the interval has passed; this covers the
            # last appends of a burst, so the loss bound holds when appends stop.
            self._sync_timer = asyncio.get_running_loop().call_later(
                self._spool.fsync_interval_s, self._sync_spool
            )
        if self._recovery is None or self._recovery.done():
            self._recovery = asyncio.create_task(self._recover(), name=f"{self.name} recovery")

    def _sync_spool(self) -> None:
        self._sync_timer = None
        self._spool.sync()

    def _update_spool_metrics(self) -> None:
        self._spool_events.set(len(self._spool))
        self._spool_bytes.set(self._spool.size_bytes)
        self._spool_dropped.inc(self._spool.dropped - self._dropped_seen)
        self._dropped_seen = self._spool.dropped

    # -- recovery ------------------------------------------------------------

    async def _recover(self) -> None:
        """Probe Redis with backoff until it answers and the spool is delivered."""
        failures = 0 if self._down_since is None else 1  # just failed: wait before probing
        last_report = time.monotonic()
        while True:
            if failures:
                # Capped: the backoff computes 2**failures, and an outage may last days.
                await asyncio.sleep(self._backoff.compute(min(failures, 32) - 1))
            try:
                await self._redis.ping()
                await self._drain()
                return
            except _UNAVAILABLE as exc:
                failures += 1
                if self._down_since is None:  # a spool left by an earlier run, and no Redis
                    self._redis_lost(exc)
                    continue
                logger.debug("%s: Redis still unreachable (%s)", self.name, _describe(exc))
                if time.monotonic() - last_report >= _STILL_DOWN_LOG_S:
                    last_report = time.monotonic()
                    self._report_still_down(exc)
            except Exception:
                # A bug or a broken spool file: keep the events and keep trying, loudly.
                failures += 1
                self._errors.inc()
                logger.exception("%s: delivering the spool failed; retrying", self.name)

    async def _drain(self) -> None:
        """Deliver the spool in order, batch by batch, then go back to direct delivery."""
        started = time.monotonic()
        down_since = self._down_since
        total = len(self._spool)
        if total:
            logger.info(
                "%s: Redis answers; delivering %d spooled event(s) (%s)",
                self.name,
                total,
                human_bytes(self._spool.size_bytes),
            )
        delivered = 0
        while lines := self._spool.peek(self.batch_size):
            entries = self._entries_of_lines(lines)
            if entries:
                await self._xadd(entries)
            self._spool.ack(len(lines))
            delivered += len(entries)
            self._update_spool_metrics()
        self._spooling = False
        self._down_since = None
        self._connected.set(1)
        self._delivered += delivered
        outage = f" after {started - down_since:.0f} s" if down_since is not None else ""
        logger.info(
            "%s: Redis back%s: %d spooled event(s) delivered in %.1f s; delivering directly again",
            self.name,
            outage,
            delivered,
            time.monotonic() - started,
        )

    def _entries_of_lines(self, lines: list[str]) -> list[_Entry]:
        """Entries for spooled JSON lines; an unreadable line is logged and counted as dropped."""
        entries = []
        for line in lines:
            try:
                event: dict[str, Any] = json.loads(line)
                key = stream_key(self._config.stream_key, event["installation_id"], event["source"])
                entry = _Entry(
                    key,
                    str(event["source"]),
                    str(event.get("run_id", "")),  # spooled before events carried one
                    int(event["seq"]),
                    line,
                    str(event["type"]),
                )
            except (ValueError, KeyError, TypeError) as exc:
                self._spool_dropped.inc()
                logger.warning("%s: skipped an unreadable spooled event (%s)", self.name, exc)
                continue
            entries.append(entry)
        return entries

    def _report_still_down(self, exc: BaseException) -> None:
        since = self._down_since or time.monotonic()
        logger.warning(
            "%s: Redis still unreachable after %.0f s (%s); %d event(s) spooled (%s), %d dropped",
            self.name,
            time.monotonic() - since,
            _describe(exc),
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
        try:
            async with asyncio.timeout(self._config.close_timeout_s):
                await self._redis.ping()
                await self._drain()
        except (*_UNAVAILABLE, TimeoutError) as exc:
            logger.warning(
                "%s: shutting down with %d event(s) spooled in %s (%s); they go out at next start",
                self.name,
                len(self._spool),
                self._spool.directory,
                _describe(exc),
            )


def _describe(exc: BaseException) -> str:
    """A short reason for a log line: the exception's message, or its type."""
    return str(exc) or type(exc).__name__
