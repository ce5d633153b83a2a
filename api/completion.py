"""What happens after a job completes, for every executor (the API's in-process queue and
the Celery workers): the MAXXI archive copy and the signed callback.

Its own module so that the worker needs neither the service nor the queue.

A crash between a job's completion and its callback's outbox row (a worker killed in
the completion hook, the database gone at that moment) would lose the callback: the
API's sweep (:func:`enqueue_missing`, at start-up and every ``SWEEP_S``) gives every
completed task without a row its row, within the callback's retry period.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import exists, select

from api.filenames import xml_safe
from config.settings import Settings
from sinks.store import Database, OutboxItem, Result, Task
from sinks.store.models import utcnow

logger = logging.getLogger(__name__)

SWEEP_S = 60.0
"""Seconds between the API's looks for completed tasks without a callback row."""
SWEEP_GRACE_S = 60.0
"""A task completed this recently may still be in its completion hook: left alone."""
SWEEP_BATCH = 100


def completion_hook(
    settings: Settings, db: Database
) -> Callable[[str, dict[str, Any]], Awaitable[bool]]:
    """What happens after a job completes: the MAXXI archive copy and the signed callback.

    The callback goes into the outbox (:mod:`sinks.maxxi_outbox`) and is tried once
    at once; returns True if MAXXI acknowledged it then. Later attempts are the
    API's outbox dispatcher's.
    """

    async def on_complete(task_id: str, document: dict[str, Any]) -> bool:
        if not settings.MAXXI_COMPATIBILITY_MODE:
            return False
        from sinks.maxxi_outbox import OutboxDispatcher

        item_id = await _archive_and_enqueue(settings, db, task_id, document)
        if item_id is None:
            return False
        return await OutboxDispatcher(db, settings).deliver(item_id) == "delivered"

    return on_complete


async def _archive_and_enqueue(
    settings: Settings, db: Database, task_id: str, document: dict[str, Any]
) -> int | None:
    """The archive copy, and the callback's outbox row if a callback URL is set (its id)."""
    from sinks.maxxi import MAXXIConnector
    from sinks.maxxi_outbox import enqueue

    connector = MAXXIConnector(settings)
    export = connector.format_for_maxxi(document)
    if settings.MAXXI_OUTPUT_FORMAT == "xml":  # any stored text must serialise
        export = xml_safe(export)
    await asyncio.to_thread(connector.store_in_archive, export)
    if not settings.MAXXI_CALLBACK_URL:
        return None
    return await enqueue(db, settings, task_id, export)


async def enqueue_missing(
    settings: Settings, db: Database, *, grace_s: float = SWEEP_GRACE_S
) -> list[str]:
    """Give each completed task that has no callback row (and was not notified) its row:
    the ids of the tasks swept. Only tasks completed within the callback's retry period
    (``MAXXI_CALLBACK_RETRY_FOR_S``) and more than ``grace_s`` ago: an older callback
    would be a dead letter already, a newer one may be on its way."""
    if not (settings.MAXXI_COMPATIBILITY_MODE and settings.MAXXI_CALLBACK_URL):
        return []
    now = utcnow()
    async with db.session() as session:
        rows = (
            await session.execute(
                select(Task.id, Result.document)
                .join(Result, Result.task_id == Task.id)
                .where(
                    Task.status == "completed",
                    Task.maxxi_notified_at.is_(None),
                    Task.completed_at
                    >= now - timedelta(seconds=settings.MAXXI_CALLBACK_RETRY_FOR_S),
                    Task.completed_at <= now - timedelta(seconds=grace_s),
                    ~exists().where(OutboxItem.task_id == Task.id),
                )
                .order_by(Task.completed_at)
                .limit(SWEEP_BATCH)
            )
        ).all()
    for task_id, document in rows:
        await _archive_and_enqueue(settings, db, task_id, document)
        logger.warning("MAXXI callback of task %s had no outbox row (a crash after the job "
                       "completed?): queued now", task_id)  # fmt: skip
    return [task_id for task_id, _ in rows]
