"""Where jobs wait: Celery on Redis when Redis is configured, else an in-process executor.

Both only carry task ids; the database holds every job's state, so a lost
message, a killed worker or a restarted API never loses an accepted job.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from api.broker import QUEUE, TASK_NAME, WORKER_KEY, celery_app
from config.settings import Settings

logger = logging.getLogger(__name__)

Runner = Callable[[str], Awaitable[Any]]
__all__ = ["WORKER_KEY", "CeleryQueue", "InProcessQueue", "JobQueue"]


class JobQueue(ABC):
    """Hands task ids to whatever executes them."""

    kind: str

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Begin executing (in-process) or connect (broker)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop taking jobs; running ones are left to their lease."""

    @abstractmethod
    async def submit(self, task_id: str, priority: int) -> None:
        """Queue a job; raises if it could not be handed over (it stays queued in the DB)."""

    @abstractmethod
    async def workers(self) -> int:
        """Executors able to run jobs right now."""


class InProcessQueue(JobQueue):
    """A priority queue consumed by ``concurrency`` tasks of this event loop."""

    kind = "in-process"

    def __init__(self, run: Runner, concurrency: int = 1) -> None:
        self._run = run
        self._concurrency = concurrency
        self._queue: asyncio.PriorityQueue[tuple[int, int, str]] = asyncio.PriorityQueue()
        self._order = itertools.count()
        self._consumers: list[asyncio.Task[None]] = []
        self._pending: set[str] = set()

    async def start(self) -> None:
        self._consumers = [
            asyncio.create_task(self._consume(), name=f"job-executor-{i}")
            for i in range(self._concurrency)
        ]

    async def stop(self) -> None:
        for consumer in self._consumers:
            consumer.cancel()
        for consumer in self._consumers:
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
        self._consumers = []

    async def submit(self, task_id: str, priority: int) -> None:
        if task_id in self._pending:
            return
        self._pending.add(task_id)
        await self._queue.put((priority, next(self._order), task_id))

    async def workers(self) -> int:
        return sum(1 for c in self._consumers if not c.done())

    async def _consume(self) -> None:
        while True:
            _, _, task_id = await self._queue.get()
            self._pending.discard(task_id)
            try:
                await self._run(task_id)
            except Exception:  # the executor outlives any one job
                logger.exception("job %s: executor error", task_id)


class CeleryQueue(JobQueue):
    """Sends task ids to the Celery workers (``heritage-audio worker``) through Redis."""

    kind = "celery"

    def __init__(self, settings: Settings) -> None:
        self._app = celery_app(settings)  # sends by task name: the worker's code stays out
        self._settings = settings

    async def submit(self, task_id: str, priority: int) -> None:
        await asyncio.to_thread(
            self._app.send_task, TASK_NAME, args=[task_id], priority=priority, queue=QUEUE
        )

    async def workers(self) -> int:
        import redis.asyncio as aioredis

        client = aioredis.Redis(
            host=self._settings.REDIS_HOST or "", port=self._settings.REDIS_PORT,
            socket_timeout=2, socket_connect_timeout=2,
        )  # fmt: skip
        try:
            return len([key async for key in client.scan_iter(match=WORKER_KEY + "*")])
        finally:
            await client.aclose()
