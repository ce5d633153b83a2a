"""``heritage-audio worker``: a Celery worker executing file-analysis jobs from Redis.

Broker options are chosen so that a job whose worker is killed outright is
delivered again within about 30 s: kombu's Redis transport restores an
unacknowledged message once ``visibility_timeout`` has passed, sweeping every
``unacked_restore_interval`` * ``unacked_restore_throttle`` seconds (defaults:
3600 s, and a 10 * 10 s sweep). A job that legitimately runs longer than the
visibility timeout may be delivered twice; the database lease (api/jobs.py)
makes the second delivery a no-op while the first worker is alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from celery import Celery, signals

from config.settings import Settings, load_settings

logger = logging.getLogger(__name__)

QUEUE = "heritage-analysis"
TASK_NAME = "heritage.analyze"
VISIBILITY_TIMEOUT_S = 20
HEARTBEAT_S = 5


def broker_url(settings: Settings) -> str:
    host = settings.REDIS_HOST or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"redis://{host}:{settings.REDIS_PORT}/0"


def celery_app(settings: Settings | None = None) -> Celery:
    """The Celery app; its one task runs :func:`api.jobs.execute`."""
    settings = settings or load_settings()
    app = Celery("heritage_audio", broker=broker_url(settings), set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=QUEUE,
        task_queue_max_priority=9,
        task_default_priority=5,
        worker_prefetch_multiplier=1,
        worker_max_tasks_per_child=100,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": VISIBILITY_TIMEOUT_S,
            "unacked_restore_interval": 2,
            "unacked_restore_throttle": 1,
            "priority_steps": list(range(10)),
            "sep": ":",
            "queue_order_strategy": "priority",
            "socket_timeout": 10,
            "socket_connect_timeout": 5,
            "health_check_interval": 10,
        },
    )

    @app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True)  # type: ignore[untyped-decorator]
    def analyze(task_id: str) -> str | None:
        return asyncio.run(_execute(settings, task_id))

    return app


async def _execute(settings: Settings, task_id: str) -> str | None:
    from api.jobs import execute
    from api.service import completion_hook
    from sinks.store import Database

    db = Database(settings, pooled=False)
    try:
        return await execute(db, settings, task_id, on_complete=completion_hook(settings, db))
    finally:
        await db.close()


def _heartbeat(settings: Settings, name: str, stop: threading.Event) -> None:
    """Announce this worker in Redis (``/health`` counts workers by these keys)."""
    import redis

    from api.queue import WORKER_KEY

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
    app = celery_app(settings)
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
