"""``GET /api/v1/task-events``: job changes as server-sent events, for the jobs list.

The database is the only place every worker writes progress to, so the server
looks at the unfinished and just-finished jobs once a second and sends only
what changed (``event: task``, the job's status as ``/status`` gives it); the
browser never polls. A stream ends after a while and the client reconnects.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from sqlalchemy import or_, select

from api.deps import AUTH_ERRORS, AnyCaller, ServiceDep, errors
from api.routes.tasks import TaskStatus
from api.service import Service
from sinks.store import Task
from sinks.store.models import utcnow

router = APIRouter(prefix="/api/v1", tags=["analysis"])
LOOK_EVERY_S = 1.0
KEEPALIVE_S = 15.0
STREAM_FOR_S = 600.0
WATCHED = 500  # unfinished jobs followed at once, most urgent first


async def _changes(service: Service, seen: dict[str, tuple[str, float]]) -> list[TaskStatus]:
    since = utcnow() - timedelta(seconds=10 * LOOK_EVERY_S)
    async with service.db.session() as session:
        rows = await session.scalars(
            select(Task)
            .where(or_(Task.status.in_(("queued", "running")), Task.completed_at > since))
            .order_by(Task.status.desc(), Task.priority, Task.created_at)
            .limit(WATCHED)
        )
        changed = []
        for task in rows:
            state = (task.status, task.progress)
            if seen.get(task.id) != state:
                seen[task.id] = state
                changed.append(TaskStatus.of(task))
    if len(seen) > 4 * WATCHED:  # forget the oldest; a change brings them back
        for key in list(seen)[: len(seen) - WATCHED]:
            del seen[key]
    return changed


async def _stream(request: Request, service: Service) -> AsyncIterator[str]:
    seen: dict[str, tuple[str, float]] = {}
    await _changes(service, seen)  # the client has just loaded the list: only news follows
    yield "retry: 2000\n\n"
    started = last_sent = time.monotonic()
    while time.monotonic() - started < STREAM_FOR_S:
        await asyncio.sleep(LOOK_EVERY_S)
        if await request.is_disconnected():
            return
        for status in await _changes(service, seen):
            yield f"event: task\ndata: {status.model_dump_json()}\n\n"
            last_sent = time.monotonic()
        if time.monotonic() - last_sent > KEEPALIVE_S:
            yield ": keep-alive\n\n"
            last_sent = time.monotonic()


@router.get(
    "/task-events",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": "Job changes."},
        **errors(*AUTH_ERRORS),
    },
)
async def task_events(request: Request, _: AnyCaller, service: ServiceDep) -> StreamingResponse:
    """Server-sent events: one ``task`` event per job whose status or progress changed."""
    return StreamingResponse(
        _stream(request, service),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
