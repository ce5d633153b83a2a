"""Uploads and their jobs: ``/api/v1/process``, ``/status``, ``/results``, ``/tasks``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import func, or_, select

from api.deps import AUTH_ERRORS, Admin, AnyCaller, ServiceDep, Submitter, client_address, errors
from api.jobs import BRIEF_PRIORITIES, PRIORITIES, PROCESSING_TYPES, ProcessingType
from api.service import Service
from api.uploads import FILE_FIELD, StorageFull, receive_upload
from sinks.store import AuditEntry, Result, Task
from sinks.store.search import contains, date_range

router = APIRouter(prefix="/api/v1", tags=["analysis"])

DUBLIN_CORE_FIELDS = (
    "title", "creator", "subject", "description", "publisher", "contributor", "date",
    "type", "format", "identifier", "source", "language", "relation", "coverage", "rights",
)  # fmt: skip
Status = Literal["queued", "running", "completed", "failed"]
PriorityName = Literal["low", "normal", "high", "urgent"]


class CuratorDublinCore(BaseModel):
    """The Dublin Core elements a person gives (``format`` and ``identifier`` are the
    machine's, except at upload); ``date`` should be W3CDTF, as the search reads it."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(None, max_length=1000)
    creator: str | None = Field(None, max_length=1000)
    subject: str | None = Field(None, max_length=1000)
    description: str | None = Field(None, max_length=4000)
    publisher: str | None = Field(None, max_length=1000)
    contributor: str | None = Field(None, max_length=1000)
    date: str | None = Field(None, max_length=100)
    type: str | None = Field(None, max_length=100)
    source: str | None = Field(None, max_length=1000)
    language: str | None = Field(None, max_length=100)
    relation: str | None = Field(None, max_length=1000)
    coverage: str | None = Field(None, max_length=1000)
    rights: str | None = Field(None, max_length=1000)


class ProcessForm(CuratorDublinCore):
    """The form fields beside ``audio_file``."""

    processing_type: ProcessingType = "comprehensive"
    priority: PriorityName | Annotated[int, Field(ge=1, le=4)] = Field(
        "normal",
        description="low, normal, high or urgent; or the brief's integers 1 (urgent, the "
        "highest) 2 (high) 3 (normal) 4 (low).",
    )
    n_speakers: int | None = Field(None, ge=1, le=32)
    accurate_speakers: bool = Field(
        False,
        description="Separate real voices better (CAM++ embeddings joined to GE2E's), at "
        "about 0.01 CPU-s more per second of speech: for real conversations and lectures.",
    )
    format: str | None = Field(None, max_length=100)
    identifier: str | None = Field(None, max_length=1000)

    @field_validator("date")
    @classmethod
    def _a_date(cls, value: str | None) -> str | None:
        if value:
            date_range(value)  # its ValueError says what a date looks like
        return value

    @property
    def priority_name(self) -> PriorityName:
        """The priority as a name, whichever way it was given."""
        if isinstance(self.priority, int):
            return BRIEF_PRIORITIES[self.priority]  # type: ignore[return-value]
        return self.priority


def _form_schema() -> dict[str, Any]:
    schema = ProcessForm.model_json_schema()
    schema["properties"] = {
        FILE_FIELD: {"type": "string", "format": "binary", "description": "The recording."},
        **schema["properties"],
    }
    schema["required"] = [FILE_FIELD]
    return schema


class ProcessResponse(BaseModel):
    task_id: uuid.UUID
    status: Literal["queued"] = "queued"
    message: str


class TaskStatus(BaseModel):
    task_id: uuid.UUID
    status: Status
    processing_type: str
    priority: int = Field(description="Queue level, 0 (urgent) to 9; lower runs sooner.")
    filename: str
    size_bytes: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    processing_time: float | None = Field(description="Seconds from start to completion.")
    progress: float = Field(ge=0, le=1)
    error: str | None
    submitted_by: str
    title: str | None = Field(description="The curator's Dublin Core title, if given.")

    @classmethod
    def of(cls, task: Task) -> TaskStatus:
        return cls(
            task_id=uuid.UUID(task.id),
            status=task.status,
            processing_type=task.processing_type,
            priority=task.priority,
            filename=task.filename,
            size_bytes=task.size_bytes,
            created_at=task.created_at,
            started_at=task.started_at,
            completed_at=task.completed_at,
            processing_time=task.processing_time,
            progress=task.progress,
            error=task.error,
            submitted_by=task.submitted_by,
            title=_title(task),
        )


def _title(task: Task) -> str | None:
    title = ((task.options or {}).get("dublin_core") or {}).get("title")
    return str(title) if title else None


class TaskList(BaseModel):
    items: list[TaskStatus]
    total: int
    limit: int
    offset: int


@router.post(
    "/process",
    status_code=202,
    response_model=ProcessResponse,
    responses=errors(*AUTH_ERRORS, 413, 415, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"multipart/form-data": {"schema": _form_schema()}},
        }
    },
)
async def process(
    request: Request,
    principal: Submitter,
    service: ServiceDep,
) -> ProcessResponse:
    """Upload a recording for analysis. The file and its job are durable before the 202."""
    max_bytes = service.settings.MAX_UPLOAD_MB * 1024 * 1024
    try:
        upload = await receive_upload(request, service.blobs, max_bytes, _form)
    except StorageFull:
        service.storage_full_seen()
        raise
    form = _form(upload.fields)
    curator = {k: v for k in DUBLIN_CORE_FIELDS if (v := getattr(form, k)) is not None}
    options: dict[str, Any] = {"dublin_core": curator}
    options["original_filename"] = upload.original_filename  # escaped: api/filenames.py
    if form.n_speakers is not None:
        options["n_speakers"] = form.n_speakers
    if form.accurate_speakers:
        options["accurate_speakers"] = True
    task = Task(
        id=str(uuid.uuid4()),
        status="queued",
        processing_type=form.processing_type,
        priority=PRIORITIES[form.priority_name],
        filename=upload.filename,
        content_sha256=upload.sha256,
        size_bytes=upload.size,
        options=options,
        submitted_by=principal.name,
    )
    try:
        async with service.db.session() as session:
            session.add(task)
            session.add(
                AuditEntry(
                    action="task.submitted", actor=principal.name,
                    address=client_address(request), target=task.id,
                )
            )  # fmt: skip
    except BaseException:
        if upload.created:  # a file no task will ever name: not kept
            await service.discard_unreferenced(upload.sha256)
        raise
    await service.submit(task.id, task.priority)
    return ProcessResponse(
        task_id=uuid.UUID(task.id),
        message=f"{form.processing_type} analysis of {upload.filename} queued",
    )


def _form(fields: dict[str, str]) -> ProcessForm:
    """The form fields, validated (422 naming the first bad one)."""
    try:
        return ProcessForm.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "form"
        raise HTTPException(422, f"{where}: {first['msg']}") from None


async def _task(service: Service, task_id: uuid.UUID) -> Task:
    async with service.db.session() as session:
        task = await session.get(Task, str(task_id))
    if task is None:
        raise HTTPException(404, f"no task {task_id}")
    return task


@router.get(
    "/status/{task_id}", response_model=TaskStatus, responses=errors(*AUTH_ERRORS, 404, 422)
)
async def status(
    task_id: uuid.UUID,
    _: AnyCaller,
    service: ServiceDep,
) -> TaskStatus:
    """Where a job stands: status, timestamps, progress, error."""
    return TaskStatus.of(await _task(service, task_id))


async def completed_document(service: Service, task_id: uuid.UUID) -> dict[str, Any]:
    """The result document of a completed task; 404 / 409 otherwise."""
    task = await _task(service, task_id)
    if task.status != "completed":
        reason = f": {task.error}" if task.error else ""
        raise HTTPException(409, f"task is {task.status}{reason}")
    async with service.db.session() as session:
        result = await session.get(Result, str(task_id))
    if result is None:
        raise HTTPException(409, "task has no result")
    return result.document


@router.get(
    "/results/{task_id}",
    response_model=dict[str, Any],
    responses=errors(*AUTH_ERRORS, 404, 409, 422),
)
async def results(
    task_id: uuid.UUID,
    _: AnyCaller,
    service: ServiceDep,
) -> dict[str, Any]:
    """The full result document (DESIGN.md) of a completed task."""
    return await completed_document(service, task_id)


@router.get("/tasks", response_model=TaskList, responses=errors(*AUTH_ERRORS, 422))
async def list_tasks(
    _: AnyCaller,
    service: ServiceDep,
    status: Status | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=10_000_000),
    q: str | None = Query(None, max_length=200, description="Part of the title or file name."),
) -> TaskList:
    """Tasks, newest first, optionally of one status and matching a title."""
    query = select(Task)
    count = select(func.count()).select_from(Task)
    if status is not None:
        query = query.where(Task.status == status)
        count = count.where(Task.status == status)
    if q and q.strip():
        words = q.strip().lower()
        title = func.lower(Task.options["dublin_core"]["title"].as_string())
        match = or_(contains(title, words), contains(func.lower(Task.filename), words))
        query = query.where(match)
        count = count.where(match)
    async with service.db.session() as session:
        total = int(await session.scalar(count) or 0)
        rows = await session.scalars(
            query.order_by(Task.created_at.desc(), Task.id).limit(limit).offset(offset)
        )
        items = [TaskStatus.of(t) for t in rows]
    return TaskList(items=items, total=total, limit=limit, offset=offset)


@router.delete("/tasks/{task_id}", status_code=204, responses=errors(*AUTH_ERRORS, 404, 422))
async def delete_task(
    task_id: uuid.UUID,
    request: Request,
    principal: Admin,
    service: ServiceDep,
) -> Response:
    """Delete a task, its result and (if no other task shares it) its file. Admin only."""
    async with service.db.session() as session:
        task = await session.get(Task, str(task_id))
        if task is None:
            raise HTTPException(404, f"no task {task_id}")
        sha = task.content_sha256
        await session.delete(task)
        await session.flush()
        shared = await session.scalar(
            select(func.count()).select_from(Task).where(Task.content_sha256 == sha)
        )
        session.add(
            AuditEntry(
                action="task.deleted", actor=principal.name, address=client_address(request),
                target=str(task_id),
            )
        )  # fmt: skip
    if not shared:
        service.blobs.remove(sha)
    return Response(status_code=204)


__all__ = ["PROCESSING_TYPES", "router"]
