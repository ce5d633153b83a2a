"""Curators' label corrections, as both routes store them: archivists' and MAXXI's.

Both write a :class:`MaxxiFeedback` row of kind ``correction`` whose payload holds
``{"corrections": {"category": ...}, ...}``; an archivist's also names a time range
(``start``/``end`` in seconds, both ``None`` for the whole file). Retraining reads them
all back through :func:`stored_corrections`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from sinks.store.database import Database
from sinks.store.models import MaxxiFeedback, Task
from stream.events import HERITAGE_CATEGORIES

CORRECTION = "correction"


@dataclass(frozen=True)
class StoredCorrection:
    """One stored correction of a task's heritage category (of a range, or the whole file)."""

    id: int
    task_id: str
    content_sha256: str
    filename: str
    category: str
    start: float | None  # seconds from the start of the audio; None: the whole file
    end: float | None
    note: str
    source: str  # "archivist" (API) or "maxxi"
    reported_by: str
    received_at: datetime


def correction_payload(
    category: str, start: float | None, end: float | None, note: str
) -> dict[str, Any]:
    """The payload an archivist's correction is stored with (the MAXXI route's shape)."""
    return {
        "corrections": {"category": category},
        "start": start,
        "end": end,
        "note": note,
        "source": "archivist",
    }


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def parse(row: MaxxiFeedback, task: Task) -> StoredCorrection | None:
    """The heritage correction a feedback row holds; ``None`` when it names no category."""
    payload = row.payload if isinstance(row.payload, dict) else {}
    corrections = payload.get("corrections")
    category = corrections.get("category") if isinstance(corrections, dict) else None
    if row.kind != CORRECTION or category not in HERITAGE_CATEGORIES:
        return None  # an acknowledgement, or speaker names only
    start, end = _seconds(payload.get("start")), _seconds(payload.get("end"))
    if start is not None and end is not None and end <= start:
        start = end = None  # never written by the routes; read as the whole file
    return StoredCorrection(
        id=row.id,
        task_id=row.task_id,
        content_sha256=task.content_sha256,
        filename=task.filename,
        category=str(category),
        start=start,
        end=end,
        note=str(payload.get("note") or ""),
        source=str(payload.get("source") or "maxxi"),
        reported_by=row.reported_by,
        received_at=row.received_at,
    )


async def _query(session: AsyncSession, task_id: str | None) -> list[StoredCorrection]:
    query = (
        select(MaxxiFeedback, Task)
        .join(Task, Task.id == MaxxiFeedback.task_id)
        .where(MaxxiFeedback.kind == CORRECTION)
        .order_by(MaxxiFeedback.received_at, MaxxiFeedback.id)
    )
    if task_id is not None:
        query = query.where(MaxxiFeedback.task_id == task_id)
    rows = await session.execute(query)
    return [c for row, task in rows if (c := parse(row, task)) is not None]


async def task_corrections(session: AsyncSession, task_id: str) -> list[StoredCorrection]:
    """A task's heritage corrections, oldest first."""
    return await _query(session, task_id)


async def stored_corrections(db: Database) -> list[StoredCorrection]:
    """Every heritage correction in the store, oldest first."""
    async with db.session() as session:
        return await _query(session, None)


def latest_per_range(corrections: list[StoredCorrection]) -> list[StoredCorrection]:
    """The newest correction of each (task, range): a curator's second thought replaces the
    first. ``corrections`` must be oldest first, as :func:`stored_corrections` returns them."""
    latest: dict[tuple[str, float | None, float | None], StoredCorrection] = {}
    for c in corrections:
        latest.pop((c.task_id, c.start, c.end), None)
        latest[(c.task_id, c.start, c.end)] = c
    return list(latest.values())
