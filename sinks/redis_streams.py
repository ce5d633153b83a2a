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

import logging
import re
from dataclasses import dataclass
from string import Formatter
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field, field_validator

from config.errors import ConfigError
from config.settings import Settings
from sinks.base import Sink
from sinks.bus import Published
from sinks.metrics import Metrics
from sinks.spool import Spool
from sinks.spooling import SpoolingSink, SpoolingSinkConfig

if TYPE_CHECKING:
    from redis.typing import EncodableT, KeyT

# redis is imported where a client is made, not here: the pipeline configuration imports
# this module for RedisStreamsSinkConfig, and every `heritage-audio analyze` with it.

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
DRAIN_BATCH = 1000
"""Most spooled events per script call while draining: fewer round trips (and, with an
always-fsynced append-only file, fewer fsyncs in Redis) after a long outage."""
MARKS_SUFFIX = ":published"
"""The hash beside each stream: the last ``run_id seq`` added per source."""


def _unavailable() -> tuple[type[BaseException], ...]:
    """Whatever keeps an event from being stored: Redis gone, timing out, or refusing writes."""
    from redis.exceptions import RedisError

    return (RedisError, OSError)


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


class RedisStreamsSinkConfig(SpoolingSinkConfig):
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
    socket_timeout_s: float = Field(
        5.0,
        title="Socket timeout",
        gt=0,
        le=300,
        description="Seconds to connect or wait for a reply before Redis counts as unreachable.",
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

    def build(self, settings: Settings, metrics: Metrics) -> Sink:
        """The sink this entry describes, its spool opened (:class:`ConfigError` if it cannot)."""
        url = self.url or redis_url_from_settings(settings)
        if url is None:
            raise ConfigError(
                "sinks: redis_streams: no Redis to deliver to: set REDIS_HOST (and REDIS_PORT) "
                "or the sink's url"
            )
        spool = self.open_spool(settings, "redis_streams", "Redis")
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


class RedisStreamsSink(SpoolingSink[_Entry]):
    """XADDs batches to Redis; spools them in order while Redis is unreachable."""

    service = "Redis"

    def __init__(
        self, config: RedisStreamsSinkConfig, url: str, spool: Spool, metrics: Metrics
    ) -> None:
        name = f"redis_streams:{redact_url(url)}"
        super().__init__(
            name,
            config,
            spool,
            metrics,
            metrics.redis_connected.labels(name),
            batch_size=config.batch_size,
            drain_batch=max(config.batch_size, DRAIN_BATCH),
            spooling=len(spool) > 0,  # leftovers from an earlier run go out first
        )
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.unavailable = _unavailable()
        self._config = config
        self._url = url
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
        self._duplicates = metrics.redis_duplicates.labels(name)

    @property
    def duplicates_skipped(self) -> int:
        """Events sent again (a batch retried after a lost reply) that Redis already had."""
        return self._duplicates_skipped

    async def start(self) -> None:
        """A spool left by an earlier run goes out now, not with the first new event."""
        self._start_recovery()

    # -- the transport -------------------------------------------------------

    async def _probe(self) -> None:
        await self._redis.ping()

    async def _deliver(self, batch: list[_Entry]) -> None:
        """Add ``batch`` in order, in one atomic round trip, skipping any added before.

        Raises if Redis did not answer; the script then either ran whole or not at
        all, and sending the batch again adds only what is missing.
        """
        keys: list[KeyT] = []
        args: list[EncodableT] = [self._config.maxlen]
        for e in batch:
            keys += [e.key, e.key + MARKS_SUFFIX]
            args += [e.source, e.run_id, e.seq, e.event, e.type]
        added = await self._publish_script(keys=keys, args=args)
        if skipped := len(batch) - int(added):
            self._duplicates_skipped += skipped
            self._duplicates.inc(skipped)
            logger.info(
                "%s: %d event(s) Redis already had were not added again", self.name, skipped
            )

    def _batch_of_items(self, items: list[Published]) -> list[_Entry]:
        entries = []
        for item in items:
            event = item.event
            key = stream_key(self._config.stream_key, event.installation_id, event.source)
            entries.append(
                _Entry(key, event.source, event.run_id, event.seq, item.json, event.type)
            )
        return entries

    def _record_of_line(self, event: dict[str, Any], line: str) -> _Entry:
        return _Entry(
            stream_key(self._config.stream_key, event["installation_id"], event["source"]),
            str(event["source"]),
            str(event.get("run_id", "")),  # spooled before events carried one
            int(event["seq"]),
            line,
            str(event["type"]),
        )

    async def _release(self) -> None:
        await self._redis.aclose()

    def _closing_detail(self) -> str:
        return f", {self._duplicates_skipped} sent again and skipped by Redis"
