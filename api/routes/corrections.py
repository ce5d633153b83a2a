"""Archivists' corrections of a result's heritage category: ``/api/v1/results/{id}/corrections``.

Stored like MAXXI's corrections (``POST /api/maxxi/results``), so both feed
``heritage-audio train --from-store``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AUTH_ERRORS, AnyCaller, ServiceDep, client_address, errors, require
from api.routes.recordings import current_annotations
from api.routes.tasks import _task
from api.security import Principal
from sinks.store import AuditEntry, MaxxiFeedback, search
from sinks.store.corrections import (
    CORRECTION,
    StoredCorrection,
    correction_payload,
    task_corrections,
)
from stream.events import HeritageCategory

router = APIRouter(prefix="/api/v1", tags=["analysis"])
Archivist = Annotated[Principal, Depends(require("admin", "operator"))]

MAX_SECONDS = 1e7  # about 116 days: longer than any recording


class CorrectionIn(BaseModel):
    """The right heritage category of a whole file (no ``start``/``end``) or of a time range."""

    model_config = ConfigDict(extra="forbid")

    category: HeritageCategory = Field(description="The right category; 'other' is valid.")
    start: float | None = Field(
        None, ge=0, le=MAX_SECONDS, description="Range start, seconds from the audio's start."
    )
    end: float | None = Field(
        None, ge=0, le=MAX_SECONDS, description="Range end in seconds; after ``start``."
    )
    note: str = Field("", max_length=4000, description="Why, for the next archivist.")


class CorrectionOut(BaseModel):
    """A stored correction."""

    id: int
    task_id: uuid.UUID
    category: HeritageCategory
    start: float | None = Field(description="Seconds; null with end: the whole file.")
    end: float | None
    note: str
    source: str = Field(description="'archivist' (this route) or 'maxxi'.")
    reported_by: str
    received_at: datetime

    @classmethod
    def of(cls, c: StoredCorrection) -> CorrectionOut:
        return cls(
            id=c.id,
            task_id=uuid.UUID(c.task_id),
            category=c.category,  # parse() checked it is a HeritageCategory
            start=c.start,
            end=c.end,
            note=c.note,
            source=c.source,
            reported_by=c.reported_by,
            received_at=c.received_at,
        )


def _check_range(body: CorrectionIn) -> None:
    # Checked after the task is found: a schema-valid body for an unknown task is a 404.
    if (body.start is None) != (body.end is None):
        raise HTTPException(422, "start and end: give both (a time range) or neither (the file)")
    if body.start is not None and body.end is not None and body.start >= body.end:
        raise HTTPException(422, f"start ({body.start:g} s) must be before end ({body.end:g} s)")


@router.post(
    "/results/{task_id}/corrections",
    status_code=201,
    response_model=CorrectionOut,
    responses=errors(*AUTH_ERRORS, 400, 404, 409, 422),
)
async def add_correction(
    task_id: uuid.UUID,
    body: CorrectionIn,
    request: Request,
    principal: Archivist,
    service: ServiceDep,
) -> CorrectionOut:
    """Correct the heritage category of a completed task's file, or of a time range of it.
    Kept to retrain the classifier (``heritage-audio train --from-store``)."""
    task = await _task(service, task_id)
    if task.status != "completed":
        raise HTTPException(409, f"task is {task.status}: only a completed result is corrected")
    _check_range(body)
    row = MaxxiFeedback(
        task_id=task.id,
        kind=CORRECTION,
        payload=correction_payload(body.category, body.start, body.end, body.note),
        reported_by=principal.name,
    )
    where = "file" if body.start is None else f"{body.start:g}-{body.end:g} s"
    async with service.db.session() as session:
        session.add(row)
        session.add(
            AuditEntry(
                action="result.corrected", actor=principal.name, address=client_address(request),
                target=task.id, detail=f"{body.category} ({where})",
            )
        )  # fmt: skip
        await session.flush()
        await search.reindex(session, task.id, await current_annotations(session, task.id))
    return CorrectionOut(
        id=row.id,
        task_id=task_id,
        category=body.category,
        start=body.start,
        end=body.end,
        note=body.note,
        source="archivist",
        reported_by=principal.name,
        received_at=row.received_at,
    )


@router.get(
    "/results/{task_id}/corrections",
    response_model=list[CorrectionOut],
    responses=errors(*AUTH_ERRORS, 404, 422),
)
async def list_corrections(
    task_id: uuid.UUID,
    _: AnyCaller,
    service: ServiceDep,
) -> list[CorrectionOut]:
    """A task's heritage corrections from archivists and MAXXI, oldest first."""
    await _task(service, task_id)
    async with service.db.session() as session:
        return [CorrectionOut.of(c) for c in await task_corrections(session, str(task_id))]
