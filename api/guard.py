"""Login guards: atomic attempt counters and a bounded pool for password hashing.

An attempt is *taken* from the account's (and the address's) counter before the
password is checked, in one atomic statement (an upsert that PostgreSQL runs under
the row's lock and SQLite under its write lock), and given back when the password
was right. So concurrent guesses past the limit are refused with 429 without a
check, however many arrive at once: the counter, not a count of past failures,
decides. A window starts with the first attempt taken and lasts
``LOGIN_LOCKOUT_SECONDS``.

Where Redis is configured (``REDIS_HOST``) the counters are Redis keys instead, taken
with ``INCR`` in one script (the window is the key's expiry), so a login flood costs
no database writes; if Redis does not answer, the database's counter takes over.

Argon2 runs in a thread pool of ``PASSWORD_HASH_THREADS``, never on the event loop;
at most ``PASSWORD_HASH_QUEUE`` checks wait for it, and the next is refused with 429
at once (a login flood costs CPU, not the latency of every other request).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from sqlalchemy import case, literal, update
from sqlalchemy.dialects import postgresql, sqlite

from api.security import hash_password, verify_password
from config.settings import Settings
from sinks.store import Database, LoginAttempt
from sinks.store.models import utcnow

T = TypeVar("T")
HASH_NICE = 10
logger = logging.getLogger(__name__)
REDIS_CONNECTIONS = 8


class HashPoolFull(Exception):  # noqa: N818 - reads as a state
    """Too many password checks are waiting: answer 429 without queueing another."""


def _lower_priority() -> None:
    """Run this pool thread (and the lane threads Argon2 starts from it) at nice 10: on a
    busy machine the event loop, which answers every other request, gets the CPU first.
    Linux sets niceness per thread; elsewhere this changes nothing."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICE)


class PasswordPool:
    """Argon2 off the event loop, at a lower CPU priority, with a bounded queue."""

    def __init__(self, threads: int, queue: int) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=threads, thread_name_prefix="argon2", initializer=_lower_priority
        )
        self._slots = threads + queue
        self._busy = 0

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._busy >= self._slots:
            raise HashPoolFull("too many logins at once: retry in a moment")
        self._busy += 1  # the event loop is one thread: no lock needed
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, fn, *args)
        finally:
            self._busy -= 1

    async def verify(self, password: str, password_hash: str | None) -> bool:
        return await self._run(verify_password, password, password_hash)

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass(frozen=True, slots=True)
class Taken:
    """The outcome of taking an attempt: allowed, or refused for ``retry_after`` seconds."""

    allowed: bool
    retry_after: int


async def take_attempt(db: Database, key: str, limit: int, window_s: int) -> Taken:
    """Atomically count one attempt against ``key``; refused past ``limit`` in the window."""
    now = utcnow()
    since = literal(now - timedelta(seconds=window_s), LoginAttempt.window_start.type)
    expired = LoginAttempt.window_start < since
    dialect = postgresql if db.backend == "postgresql" else sqlite
    statement = (
        dialect.insert(LoginAttempt)
        .values(key=key, count=1, window_start=now)
        .on_conflict_do_update(
            index_elements=[LoginAttempt.key],
            set_={
                "count": case((expired, 1), else_=LoginAttempt.count + 1),
                "window_start": case(
                    (expired, literal(now, LoginAttempt.window_start.type)),
                    else_=LoginAttempt.window_start,
                ),
            },
        )
        .returning(LoginAttempt.count, LoginAttempt.window_start)
    )
    async with db.session() as session:
        count, started = (await session.execute(statement)).one()
    if count <= limit:
        return Taken(True, 0)
    return Taken(False, _seconds_left(started, window_s, now))


def _seconds_left(started: datetime, window_s: int, now: datetime) -> int:
    return max(1, math.ceil((started + timedelta(seconds=window_s) - now).total_seconds()))


async def give_back(db: Database, key: str) -> None:
    """Return an attempt that was not a failure (the password was right, or never checked)."""
    async with db.session() as session:
        await session.execute(
            update(LoginAttempt)
            .where(LoginAttempt.key == key, LoginAttempt.count > 0)
            .values(count=LoginAttempt.count - 1)
        )


class AttemptCounter(Protocol):
    """Where login attempts are counted: the database, or Redis where configured."""

    async def take(self, key: str, limit: int, window_s: int) -> Taken: ...

    async def give_back(self, key: str) -> None: ...

    async def close(self) -> None: ...


class DatabaseAttempts:
    """Counters in the ``login_attempts`` table (:func:`take_attempt`)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def take(self, key: str, limit: int, window_s: int) -> Taken:
        return await take_attempt(self.db, key, limit, window_s)

    async def give_back(self, key: str) -> None:
        await give_back(self.db, key)

    async def close(self) -> None:
        return None


_TAKE = """
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then
    redis.call('EXPIRE', KEYS[1], ARGV[1])
    ttl = tonumber(ARGV[1])
end
return {n, ttl}
"""
_GIVE_BACK = """
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
    return redis.call('DECR', KEYS[1])
end
return 0
"""


class RedisAttempts:
    """Counters as Redis keys: ``INCR`` and the window's expiry in one script call.

    Keys are named after a hash of the signing key, so API processes of one deployment
    share them and two deployments on one Redis do not. Any Redis error falls back to
    the database's counter for that call (both are atomic; during the switch an attacker
    gains at most one window's limit).
    """

    def __init__(self, settings: Settings, signing_key: str, fallback: DatabaseAttempts) -> None:
        # A login flood waits for one of a few connections rather than opening one each.
        pool = aioredis.BlockingConnectionPool(
            host=settings.REDIS_HOST or "127.0.0.1", port=settings.REDIS_PORT,
            socket_timeout=2, socket_connect_timeout=2, max_connections=REDIS_CONNECTIONS,
            timeout=2,
        )  # fmt: skip
        self.client = aioredis.Redis(connection_pool=pool)
        deployment = hashlib.sha256(signing_key.encode()).hexdigest()[:16]
        self.prefix = f"heritage:login:{deployment}:"
        self.fallback = fallback
        self._take = self.client.register_script(_TAKE)
        self._give_back = self.client.register_script(_GIVE_BACK)

    async def take(self, key: str, limit: int, window_s: int) -> Taken:
        try:
            count, ttl = await self._take(keys=[self.prefix + key], args=[window_s])
        except RedisError as exc:
            logger.warning("login attempts: Redis unavailable (%s); counting in the database", exc)
            return await self.fallback.take(key, limit, window_s)
        return Taken(True, 0) if int(count) <= limit else Taken(False, max(1, int(ttl)))

    async def give_back(self, key: str) -> None:
        try:
            await self._give_back(keys=[self.prefix + key])
        except RedisError as exc:
            logger.warning("login attempts: Redis unavailable (%s); giving back in the database",
                           exc)  # fmt: skip
            await self.fallback.give_back(key)

    async def close(self) -> None:
        await self.client.aclose()
        await self.client.connection_pool.disconnect()


def attempt_counter(settings: Settings, db: Database, signing_key: str) -> AttemptCounter:
    """Redis counters where Redis is configured, else the database's."""
    database = DatabaseAttempts(db)
    return RedisAttempts(settings, signing_key, database) if settings.redis_enabled else database
