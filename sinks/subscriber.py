"""The reference consumer of an event stream: a consumer group, delivered at least once.

It joins a consumer group (created on first use), first re-delivers what this
consumer left pending, then in a loop claims the entries that a dead consumer
left pending longer than ``claim_idle_ms`` (XAUTOCLAIM) and reads new ones
(XREADGROUP ``>`` with BLOCK). Each event goes to standard output as one JSON
line, or to a webhook as one POST; an entry is acknowledged (XACK) only after
its event was written or the webhook answered 2xx. A crash in between delivers
it again: receivers drop duplicates by ``(source, run_id, seq)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TextIO

import httpx
import redis.asyncio as aioredis
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_base,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base

from sinks.redis_streams import redact_url

logger = logging.getLogger(__name__)

_REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
_SOCKET_MARGIN_S = 10.0
"""Added to the BLOCK time, so a blocked read is not mistaken for a dead connection."""

Fields = dict[str, str] | None
"""An entry's fields; ``None`` for an entry trimmed from the stream while it was pending."""


def default_consumer() -> str:
    """``hostname-pid``: unique per process, so a restarted consumer is a new one."""
    return f"{socket.gethostname()}-{os.getpid()}"


class SubscriberConfig(BaseModel):
    """Where to read from and where to deliver to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(pattern=r"^(redis|rediss|unix)://", description="Redis URL.")
    stream: str = Field(min_length=1, description="Stream key.")
    group: str = Field("maxxi", min_length=1, description="Consumer group.")
    consumer: str = Field(default_factory=default_consumer, min_length=1)
    start: Literal["new", "start"] = Field(
        "new", description="Where a group created now starts: new entries, or the oldest kept."
    )
    claim_idle_ms: int = Field(
        60_000, ge=0, description="Claim entries another consumer left pending this long, ms."
    )
    block_ms: int = Field(2_000, ge=1, le=600_000, description="Longest wait for new entries, ms.")
    count: int = Field(100, ge=1, le=10_000, description="Most entries read at once.")
    burst: bool = Field(False, description="Exit once nothing is pending or new.")
    webhook: str | None = Field(
        None, pattern=r"^https?://", description="POST each event here instead of stdout."
    )
    webhook_timeout_s: float = Field(10.0, gt=0, le=300, description="Per POST, seconds.")
    attempts: int = Field(8, ge=1, le=1000, description="Tries per webhook POST.")
    retry_initial_s: float = Field(0.5, gt=0, le=60, description="First retry wait, seconds.")
    retry_max_s: float = Field(30.0, gt=0, le=3600, description="Longest retry wait, seconds.")


class DeliveryError(RuntimeError):
    """An event could not be delivered; its entry stays pending for a later try."""


class _StopRequested(stop_base):
    """Stop retrying once the subscriber was asked to stop."""

    def __init__(self, stopping: asyncio.Event) -> None:
        self._stopping = stopping

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._stopping.is_set()


def _transient(exc: BaseException) -> bool:
    """Worth retrying: no answer, a timeout, 5xx, 408 or 429; other 4xx are final."""
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return status >= 500 or status in (408, 429)
    return isinstance(exc, httpx.TransportError)


class Subscriber:
    """Reads a stream through a consumer group and delivers each event, at least once."""

    def __init__(self, config: SubscriberConfig, out: TextIO | None = None) -> None:
        self.config = config
        self.delivered = 0
        self._out = out or sys.stdout
        self._stopping = asyncio.Event()
        self._redis: aioredis.Redis | None = None
        self._http: httpx.AsyncClient | None = None
        self._claim_cursor = "0-0"

    def stop(self) -> None:
        """Stop reading; the batch in hand is delivered first. Safe from a signal handler."""
        self._stopping.set()

    async def run(self) -> int:
        """Deliver until :meth:`stop` (or, in burst mode, until caught up); the events delivered."""
        c = self.config
        self._redis = aioredis.Redis.from_url(
            c.url, decode_responses=True, socket_timeout=c.block_ms / 1000 + _SOCKET_MARGIN_S
        )
        if c.webhook:
            self._http = httpx.AsyncClient(timeout=c.webhook_timeout_s)
        try:
            await self._retrying_redis(self._start)
            while not self._stopping.is_set():
                if not await self._retrying_redis(self._step) and c.burst:
                    break
        except (*_REDIS_DOWN, DeliveryError) as exc:
            if not self._stopping.is_set():
                raise
            logger.warning("subscriber: stopping with an entry left pending (%s)", exc)
        finally:
            await self._close()
        logger.info(
            "subscriber %s/%s: stopped; %d event(s) delivered", c.group, c.consumer, self.delivered
        )
        return self.delivered

    # -- the loop ------------------------------------------------------------

    async def _start(self) -> int:
        """Join the group, then re-deliver what this consumer name left pending."""
        c = self.config
        await self._create_group("$" if c.start == "new" else "0")
        logger.info(
            "subscriber: reading %s as %s/%s from %s",
            c.stream,
            c.group,
            c.consumer,
            redact_url(c.url),
        )
        delivered = 0
        while not self._stopping.is_set() and (batch := await self._read("0")):
            delivered += await self._deliver(batch)
        return delivered

    async def _step(self) -> int:
        """Claim abandoned entries, then read new ones; the number of entries handled."""
        try:
            handled = await self._claim_abandoned()
            if self._stopping.is_set():
                return handled
            return handled + await self._deliver(await self._read(">"))
        except ResponseError as exc:
            if not str(exc).startswith(("NOGROUP", "UNBLOCKED")):
                raise
            # The stream was deleted or Redis restarted empty: all it holds now is new to us.
            logger.warning("subscriber: group %s is gone; creating it again", self.config.group)
            await self._create_group("0")
            return 1

    async def _create_group(self, start_id: str) -> None:
        c = self.config
        try:
            await self._client.xgroup_create(c.stream, c.group, id=start_id, mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):  # the group exists already: join it
                raise

    async def _claim_abandoned(self) -> int:
        """Take over entries pending longer than ``claim_idle_ms`` (their consumer died)."""
        c = self.config
        handled = 0
        while not self._stopping.is_set():
            reply: list[Any] = await self._client.xautoclaim(
                c.stream, c.group, c.consumer, c.claim_idle_ms, self._claim_cursor, count=c.count
            )
            self._claim_cursor, entries = reply[0], reply[1]
            if entries:
                logger.info(
                    "subscriber: claimed %d entr(ies) pending over %d ms from a stopped consumer",
                    len(entries),
                    c.claim_idle_ms,
                )
                handled += await self._deliver(entries)
            if self._claim_cursor == "0-0":  # scanned the whole pending list
                break
        return handled

    async def _read(self, start_id: str) -> list[tuple[str, Fields]]:
        """Entries for this consumer: its own pending ones (``"0"``) or new ones (``">"``)."""
        c = self.config
        block = c.block_ms if start_id == ">" else None
        reply: Any = await self._client.xreadgroup(
            c.group, c.consumer, {c.stream: start_id}, count=c.count, block=block
        )
        if not reply:
            return []
        entries: list[tuple[str, Fields]] = reply[0][1]
        return entries

    async def _deliver(self, entries: list[tuple[str, Fields]]) -> int:
        """Deliver ``entries`` in order, acknowledging those that went out."""
        done: list[str] = []
        try:
            # A stop request lets the batch finish (a failing webhook gives up at once), so
            # nothing read is left pending for a claim to find a minute later.
            for entry_id, fields in entries:
                if fields and "event" in fields:
                    await self._deliver_one(entry_id, fields["event"])
                    self.delivered += 1
                else:
                    logger.warning(
                        "subscriber: entry %s has no event (trimmed?); skipped", entry_id
                    )
                done.append(entry_id)
        finally:
            if done:
                await self._client.xack(self.config.stream, self.config.group, *done)
        return len(done)

    # -- output --------------------------------------------------------------

    async def _deliver_one(self, entry_id: str, event: str) -> None:
        if self._http is None:
            self._out.write(event + "\n")
            self._out.flush()
            return
        try:
            retry = retry_if_exception(_transient)
            async for attempt in self._retrying(retry, stop_after_attempt(self.config.attempts)):
                with attempt:
                    await self._post(entry_id, event)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook refused entry {entry_id}: {_reason(exc)}") from exc

    async def _post(self, entry_id: str, event: str) -> None:
        if self._http is None or self.config.webhook is None:
            raise DeliveryError("no webhook configured")
        response = await self._http.post(
            self.config.webhook,
            content=event,
            headers={
                "Content-Type": "application/json",
                "X-Heritage-Stream": self.config.stream,
                "X-Heritage-Entry-Id": entry_id,
            },
        )
        response.raise_for_status()

    # -- retries -------------------------------------------------------------

    async def _retrying_redis(self, step: Callable[[], Awaitable[int]]) -> int:
        """Run ``step``; unless in burst mode, wait for Redis with backoff while it is away."""
        stop = stop_after_attempt(1) if self.config.burst else stop_never
        result = 0
        async for attempt in self._retrying(retry_if_exception_type(_REDIS_DOWN), stop):
            with attempt:
                result = await step()
        return result

    def _retrying(self, retry: retry_base, stop: stop_base) -> AsyncRetrying:
        """Exponential backoff with jitter, cut short when the subscriber is asked to stop."""
        c = self.config
        return AsyncRetrying(
            retry=retry,
            wait=wait_exponential(multiplier=c.retry_initial_s, max=c.retry_max_s)
            + wait_random(0, c.retry_initial_s),
            stop=stop | _StopRequested(self._stopping),
            sleep=self._sleep,
            before_sleep=_log_retry,
            reraise=True,
        )

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less if asked to stop meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    @property
    def _client(self) -> aioredis.Redis:
        if self._redis is None:
            raise RuntimeError("the subscriber is not running")
        return self._redis

    async def _close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._redis is not None:
            await self._redis.aclose()


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    logger.warning(
        "subscriber: %s (try %d); retrying in %.1f s",
        _reason(exc) if exc else "failed",
        state.attempt_number,
        wait,
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return str(exc) or type(exc).__name__
