"""Events from the installations' Redis streams into this process's bus (``heritage-audio api``).

In a deployment the capture daemons publish to Redis Streams and the API serves
the dashboards, so the API's WebSocket hub follows those streams: it discovers
them by their key pattern (new installations appear within ``RESCAN_S``), reads
new entries with ``XREAD BLOCK`` from where it is (``$`` at start: dashboards want
the present, MAXXI's consumers use groups for replay), and republishes the events
unchanged (same ``seq``, same ``wall_time``). It reconnects by itself with backoff
when Redis goes away, and reports it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from pydantic import ValidationError
from redis.exceptions import RedisError

from stream.events import Event, parse_event

logger = logging.getLogger(__name__)

RESCAN_S = 10.0
BLOCK_MS = 1000
BATCH = 500
MAX_BACKOFF_S = 30.0


def key_pattern(template: str) -> str:
    """The SCAN pattern of every stream a ``stream_key`` template can name."""
    return template.replace("{installation_id}", "*").replace("{source}", "*")


class RedisRelay:
    """Follows every stream matching ``pattern`` and hands their events to ``emit``."""

    def __init__(self, url: str, pattern: str, emit: Callable[[list[Event]], None]) -> None:
        self.url = url
        self.pattern = pattern
        self.emit = emit
        self.positions: dict[str, str] = {}
        self.relayed = 0
        self.connected = False
        self._scanned_at = 0.0

    async def run(self) -> None:
        """Relay until cancelled; never raises for Redis trouble."""
        backoff = 0.5
        while True:
            client = aioredis.Redis.from_url(self.url, socket_connect_timeout=5)
            try:
                while True:
                    await self._step(client)
                    if not self.connected:
                        logger.info("relay: following %s on %s", self.pattern, self.url)
                    self.connected = True
                    backoff = 0.5
            except (RedisError, OSError) as exc:
                if self.connected:
                    logger.warning("relay: Redis lost (%s); retrying", exc)
                self.connected = False
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)
            finally:
                await client.aclose()

    async def _step(self, client: aioredis.Redis) -> None:
        now = time.monotonic()
        if now - self._scanned_at > RESCAN_S or not self.positions:
            await self._discover(client)
            self._scanned_at = now
        if not self.positions:
            await asyncio.sleep(BLOCK_MS / 1000)
            return
        streams: Any = dict(self.positions)
        replies: Any = await client.xread(streams, count=BATCH, block=BLOCK_MS)
        events: list[Event] = []
        for key, entries in replies or []:
            name = key.decode() if isinstance(key, bytes) else key
            for entry_id, fields in entries:
                self.positions[name] = (
                    entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                )
                raw = fields.get(b"event") or fields.get("event")
                try:
                    events.append(parse_event(raw))
                except (ValidationError, ValueError, TypeError):
                    logger.warning("relay: %s entry %s is not an event; skipped", name, entry_id)
        if events:
            self.relayed += len(events)
            self.emit(events)

    async def _discover(self, client: aioredis.Redis) -> None:
        async for key in client.scan_iter(match=self.pattern, _type="stream"):
            name = key.decode() if isinstance(key, bytes) else key
            if name in self.positions:
                continue
            # A stream found at start-up is followed from its newest entry on; one that
            # appears later is a new installation's, read from its start if it is short
            # (its first events should not be missed), else from its newest entry too.
            newest: Any = await client.xrevrange(name, count=1)
            last = newest[0][0] if newest else b"0-0"
            if self._scanned_at and await client.xlen(name) <= BATCH:
                last = b"0-0"
            self.positions[name] = last.decode() if isinstance(last, bytes) else str(last)
