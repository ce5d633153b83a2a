"""MAXXI integration: status reports, acknowledgements and corrections in; exports out."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as FastPath
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.deps import (
    AUTH_ERRORS,
    Admin,
    AnyCaller,
    MaxxiCaller,
    ServiceDep,
    client_address,
    errors,
)
from api.routes.tasks import completed_document
from api.service import Service
from sinks.store import AuditEntry, MaxxiFeedback, MaxxiStatus, OutboxItem, Task
from sinks.store.models import utcnow
from stream.events import HeritageCategory

router = APIRouter(prefix="/api/maxxi", tags=["maxxi"])
ComponentState = Literal["ok", "degraded", "down", "maintenance"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StatusReport(_Strict):
    """MAXXI reports the state of an installation or of its archive."""

    component: str = Field(min_length=1, max_length=128, description="e.g. 'archive', 'room-3'.")
    status: ComponentState
    message: str = Field("", max_length=4000)
    details: dict[str, Any] = Field(default_factory=dict)


class StatusReceipt(BaseModel):
    id: int
    received_at: datetime


class Corrections(_Strict):
    category: HeritageCategory | None = Field(None, description="The right heritage category.")
    speakers: dict[str, str] = Field(
        default_factory=dict, description="Speaker label (Speaker_1, ...) to a person's name."
    )


class ResultFeedback(_Strict):
    """An acknowledgement that a result was archived, or a curator's corrections."""

    task_id: uuid.UUID
    kind: Literal["acknowledgement", "correction"]
    corrections: Corrections = Field(default_factory=Corrections)
    archive_reference: str | None = Field(None, max_length=1000)
    note: str = Field("", max_length=4000)


@router.post(
    "/status",
    status_code=201,
    response_model=StatusReceipt,
    responses=errors(*AUTH_ERRORS, 400, 422),
)
async def report_status(
    report: StatusReport,
    request: Request,
    principal: MaxxiCaller,
    service: ServiceDep,
) -> StatusReceipt:
    """Store MAXXI's status report; the latest per component shows in ``/health``."""
    row = MaxxiStatus(
        component=report.component,
        status=report.status,
        message=report.message,
        details=report.details,
        reported_by=principal.name,
    )
    async with service.db.session() as session:
        session.add(row)
        session.add(
            AuditEntry(
                action="maxxi.status", actor=principal.name, address=client_address(request),
                target=report.component, detail=report.status,
            )
        )  # fmt: skip
    return StatusReceipt(id=row.id, received_at=row.received_at)


@router.post(
    "/results",
    status_code=201,
    response_model=StatusReceipt,
    responses=errors(*AUTH_ERRORS, 400, 404, 422),
)
async def report_result(
    feedback: ResultFeedback,
    principal: MaxxiCaller,
    service: ServiceDep,
) -> StatusReceipt:
    """Store an acknowledgement or corrections (kept to retrain the classifier)."""
    async with service.db.session() as session:
        if await session.get(Task, str(feedback.task_id)) is None:
            raise HTTPException(404, f"no task {feedback.task_id}")
        row = MaxxiFeedback(
            task_id=str(feedback.task_id),
            kind=feedback.kind,
            payload=feedback.model_dump(mode="json", exclude={"task_id", "kind"}),
            reported_by=principal.name,
        )
        session.add(row)
    return StatusReceipt(id=row.id, received_at=row.received_at)


@router.get(
    "/metadata/{task_id}",
    responses={
        200: {
            "description": "The MAXXI export of a completed task.",
            "content": {"application/json": {}, "application/xml": {}},
        },
        **errors(*AUTH_ERRORS, 404, 409, 422),
    },
)
async def metadata(
    task_id: uuid.UUID,
    _: AnyCaller,
    service: ServiceDep,
    format: Literal["json", "xml"] | None = Query(
        None, description="Overrides MAXXI_OUTPUT_FORMAT."
    ),
) -> Response:
    """The export MAXXI archives: Dublin Core and the analysis summary, as JSON or XML."""
    from sinks.maxxi import MAXXIConnector

    document = await completed_document(service, task_id)
    connector = MAXXIConnector(service.settings)
    export = connector.format_for_maxxi(document)
    chosen = format or service.settings.MAXXI_OUTPUT_FORMAT
    body, media_type = connector.serialize(export, chosen)
    return Response(body, media_type=media_type)


OutboxStatus = Literal["pending", "delivered", "dead"]


class OutboxEntry(BaseModel):
    """A MAXXI callback in the outbox: what became of it so far."""

    id: int
    task_id: str
    delivery_id: str = Field(description="X-Heritage-Delivery of every attempt.")
    status: OutboxStatus
    attempts: int
    created_at: datetime
    retry_until: datetime = Field(description="Failures past this make it a dead letter.")
    next_attempt_at: datetime
    last_status: int | None = Field(description="HTTP status of the last attempt; null: no answer.")
    last_error: str | None
    delivered_at: datetime | None


def _entry(row: OutboxItem) -> OutboxEntry:
    return OutboxEntry(
        id=row.id, task_id=row.task_id, delivery_id=row.delivery_id,
        status=row.status,
        attempts=row.attempts, created_at=row.created_at, retry_until=row.retry_until,
        next_attempt_at=row.next_attempt_at, last_status=row.last_status,
        last_error=row.last_error, delivered_at=row.delivered_at,
    )  # fmt: skip


@router.get("/outbox", response_model=list[OutboxEntry], responses=errors(*AUTH_ERRORS, 422))
async def outbox(
    _: Admin,
    service: ServiceDep,
    status: Annotated[
        OutboxStatus, Query(description="Which callbacks: dead letters by default.")
    ] = "dead",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[OutboxEntry]:
    """The callbacks to MAXXI in ``status``, oldest first (admins only)."""
    async with service.db.session() as session:
        rows = await session.scalars(
            select(OutboxItem)
            .where(OutboxItem.status == status)
            .order_by(OutboxItem.id)
            .limit(limit)
        )
        return [_entry(row) for row in rows]


@router.post(
    "/outbox/{item_id}/replay",
    response_model=OutboxEntry,
    responses=errors(*AUTH_ERRORS, 404, 409, 422),
)
async def replay(
    item_id: Annotated[int, FastPath(ge=1, le=2**63 - 1)],
    request: Request,
    principal: Admin,
    service: ServiceDep,
) -> OutboxEntry:
    """Send a dead letter again: pending now, with a fresh retry period (admins only)."""
    now = utcnow()
    async with service.db.session() as session:
        row = await session.get(OutboxItem, item_id)
        if row is None:
            raise HTTPException(404, f"no outbox item {item_id}")
        if row.status != "dead":
            raise HTTPException(409, f"outbox item {item_id} is {row.status}, not dead")
        row.status = "pending"
        row.next_attempt_at = now
        row.retry_until = now + timedelta(seconds=service.settings.MAXXI_CALLBACK_RETRY_FOR_S)
        session.add(
            AuditEntry(
                action="maxxi.outbox.replay", actor=principal.name,
                address=client_address(request), target=row.task_id, detail=str(item_id),
            )
        )  # fmt: skip
        await session.flush()
        return _entry(row)


async def latest_statuses(service: Service) -> dict[str, dict[str, Any]]:
    """The newest MAXXI report per component, for ``/health``."""
    async with service.db.session() as session:
        rows = await session.scalars(
            select(MaxxiStatus).order_by(MaxxiStatus.received_at.desc()).limit(500)
        )
        latest: dict[str, dict[str, Any]] = {}
        for row in rows:
            if row.component not in latest:
                latest[row.component] = {
                    "status": row.status,
                    "message": row.message,
                    "received_at": row.received_at.isoformat(),
                }
            if len(latest) >= 50:
                break
    return latest
