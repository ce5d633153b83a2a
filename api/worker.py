"""``heritage-audio worker``: a Celery worker executing file-analysis jobs from Redis.

The broker and its options are in :mod:`api.broker`; this module adds the task's body
(:func:`api.jobs.execute` with the completion hook) to that app and runs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from celery import Celery, signals

from api.broker import QUEUE, TASK_NAME, WORKER_KEY, celery_app
from config.settings import Settings

logger = logging.getLogger(__name__)

HEARTBEAT_S = 5


def worker_app(settings: Settings) -> Celery:
    """The shared Celery app with the analysis task registered on it."""
    app = celery_app(settings)

    @app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
    def analyze(task_id: str) -> str | None:
        return asyncio.run(_execute(settings, task_id))

    return app


async def _execute(settings: Settings, task_id: str) -> str | None:
    from api.completion import completion_hook
    from api.jobs import execute
    from sinks.store import Database

    db = Database(settings, pooled=False)
    try:
        return await execute(db, settings, task_id, on_complete=completion_hook(settings, db))
    finally:
        await db.close()


def _heartbeat(settings: Settings, name: str, stop: threading.Event) -> None:
    """Announce this worker in Redis (``/health`` counts workers by these keys)."""
    import redis

    client = redis.Redis(
        host=settings.REDIS_HOST or "127.0.0.1", port=settings.REDIS_PORT,
        socket_timeout=2, socket_connect_timeout=2,
    )  # fmt: skip
    while not stop.is_set():
        try:
            client.set(WORKER_KEY + name, "1", ex=HEARTBEAT_S * 3)
        except redis.RedisError as exc:
            logger.warning("worker heartbeat: %s", exc)
        stop.wait(HEARTBEAT_S)
    with contextlib.suppress(redis.RedisError):
        client.delete(WORKER_KEY + name)


def run_worker(settings: Settings, concurrency: int, name: str) -> int:
    """Run a worker in the foreground until SIGTERM (warm shutdown) or SIGINT."""
    app = worker_app(settings)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(settings, name, stop), daemon=True)

    @signals.worker_ready.connect  # type: ignore[untyped-decorator]
    def _ready(**_: Any) -> None:
        beat.start()

    @signals.worker_shutdown.connect  # type: ignore[untyped-decorator]
    def _shutdown(**_: Any) -> None:
        stop.set()
        if beat.is_alive():
            beat.join(5)  # its key is deleted before the process exits: /health sees it go

    argv = [
        "worker",
        f"--concurrency={concurrency}",
        "--pool=prefork",
        f"--queues={QUEUE}",
        f"--hostname={name}",
        f"--loglevel={settings.LOG_LEVEL}",
        "--without-gossip",
        "--without-mingle",
    ]
    app.worker_main(argv)
    return 0
