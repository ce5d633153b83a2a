"""The Celery app both sides share: the broker, its options, the queue and the task name.

The API sends task ids by name (:class:`api.queue.CeleryQueue`); the worker registers the
task's body on the same app (:mod:`api.worker`). Neither imports the other.

Broker options are chosen so that a job whose worker is killed outright is
delivered again within about 30 s: kombu's Redis transport restores an
unacknowledged message once ``visibility_timeout`` has passed, sweeping every
``unacked_restore_interval`` * ``unacked_restore_throttle`` seconds (defaults:
3600 s, and a 10 * 10 s sweep). A job that legitimately runs longer than the
visibility timeout may be delivered twice; the database lease (api/jobs.py)
makes the second delivery a no-op while the first worker is alive.
"""

from __future__ import annotations

from celery import Celery

from config.settings import Settings, load_settings

WORKER_KEY = "heritage:worker:"
"""Prefix of the Redis keys by which live workers announce themselves (``/health``)."""
QUEUE = "heritage-analysis"
TASK_NAME = "heritage.analyze"
VISIBILITY_TIMEOUT_S = 20


def broker_url(settings: Settings) -> str:
    host = settings.REDIS_HOST or "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"redis://{host}:{settings.REDIS_PORT}/0"


def celery_app(settings: Settings | None = None) -> Celery:
    """The Celery app without tasks: the worker registers its one (``api.worker.worker_app``)."""
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

    return app
