"""What happens after a job completes, for every executor (the API's in-process queue and
the Celery workers): the MAXXI archive copy and the signed callback.

Its own module so that the worker needs neither the service nor the queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from api.filenames import xml_safe
from config.settings import Settings
from sinks.store import Database


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
        from sinks.maxxi import MAXXIConnector
        from sinks.maxxi_outbox import OutboxDispatcher, enqueue

        connector = MAXXIConnector(settings)
        export = connector.format_for_maxxi(document)
        if settings.MAXXI_OUTPUT_FORMAT == "xml":  # any stored text must serialise
            export = xml_safe(export)
        await asyncio.to_thread(connector.store_in_archive, export)
        if not settings.MAXXI_CALLBACK_URL:
            return False
        item_id = await enqueue(db, settings, task_id, export)
        return await OutboxDispatcher(db, settings).deliver(item_id) == "delivered"

    return on_complete
