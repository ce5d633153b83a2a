"""Recordings for archivists: search, the curator's Dublin Core, downloads, speaker and
segment corrections (``/api/v1/recordings``, ``/api/v1/results/{id}/...``).

Speaker names, merges and segments marked wrong are stored like the heritage
corrections (a ``correction`` feedback row, who and when), so MAXXI's route
and this one share one history; retraining reads only the category ones.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import date, datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from api.deps import AUTH_ERRORS, AnyCaller, ServiceDep, client_address, errors, require
from api.enrolment import enrol
from api.routes.tasks import DUBLIN_CORE_FIELDS, CuratorDublinCore, _task, completed_document
from api.security import Principal
from sinks.store import AuditEntry, MaxxiFeedback, Result, Task, search
from sinks.store.corrections import CORRECTION, task_corrections
from stream.events import HeritageCategory

router = APIRouter(prefix="/api/v1", tags=["archive"])
Archivist = Annotated[Principal, Depends(require("admin", "operator"))]
CURATOR_FIELDS = tuple(f for f in DUBLIN_CORE_FIELDS if f not in ("format", "identifier"))
"""Elements a curator owns; ``format`` and ``identifier`` describe the file itself."""
LABEL = r"^[A-Za-z0-9_. -]{1,64}$"
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class RecordingItem(BaseModel):
    task_id: uuid.UUID
    title: str
    filename: str
    category: str | None
    speakers: list[str]
    date_from: date | None
    date_to: date | None
    duration: float | None = Field(description="Seconds.")
    completed_at: datetime | None


class RecordingPage(BaseModel):
    items: list[RecordingItem]
    total: int
    limit: int
    offset: int
    full_text: bool = Field(description="True when the database's full-text index answered.")


class SearchParams(BaseModel):
    """What to find; every given criterion must hold."""

    model_config = ConfigDict(extra="forbid")

    q: str | None = Field(None, max_length=500, description="Words of the Dublin Core record.")
    category: HeritageCategory | None = None
    speaker: str | None = Field(None, max_length=200, description="Part of a speaker's name.")
    date_from: date | None = Field(None, description="Recorded on or after (YYYY-MM-DD).")
    date_to: date | None = Field(None, description="Recorded on or before (YYYY-MM-DD).")
    min_duration: float | None = Field(None, ge=0, le=1e7, description="Seconds.")
    max_duration: float | None = Field(None, ge=0, le=1e7, description="Seconds.")
    limit: int = Field(20, ge=1, le=200)
    offset: int = Field(0, ge=0, le=10_000_000)

    @field_validator("date_from", "date_to", mode="before")
    @classmethod
    def _iso_date(cls, value: object) -> object:
        # pydantic alone would read "0" as a Unix time
        if value is not None and not (isinstance(value, str) and ISO_DAY.fullmatch(value)):
            raise ValueError("expected a date as YYYY-MM-DD")
        return value


@router.get("/recordings", response_model=RecordingPage, responses=errors(*AUTH_ERRORS, 422))
async def find_recordings(
    _: AnyCaller, service: ServiceDep, p: Annotated[SearchParams, Query()]
) -> RecordingPage:
    """Completed analyses matching every given criterion, most recent first."""
    query = search.Query(
        p.q, p.category, p.speaker, p.date_from, p.date_to, p.min_duration, p.max_duration
    )
    dialect = service.db.backend
    async with service.db.session() as session:
        total, rows = await search.search(session, query, dialect, p.limit, p.offset)
    items = [
        RecordingItem(
            task_id=uuid.UUID(r.task_id),
            title=r.title,
            filename=t.filename,
            category=r.category,
            speakers=[s for s in r.speakers.split("|") if s],
            date_from=r.date_from,
            date_to=r.date_to,
            duration=r.duration,
            completed_at=t.completed_at,
        )
        for r, t in rows
    ]
    return RecordingPage(
        items=items, total=total, limit=p.limit, offset=p.offset, full_text=dialect == "postgresql"
    )


class DublinCoreEdit(CuratorDublinCore):
    """Curator elements to set; an empty string removes the curator's value."""


class DublinCoreOut(BaseModel):
    elements: dict[str, list[str]]
    curator: dict[str, str]
    editable: list[str]


async def _curated(service: Any, task_id: uuid.UUID) -> DublinCoreOut:
    task = await _task(service, task_id)
    async with service.db.session() as session:
        result = await session.get(Result, str(task_id))
    curator = (task.options or {}).get("dublin_core") or {}
    return DublinCoreOut(
        elements=search.dublin_core_of(task, result.document if result else None),
        curator={k: str(v) for k, v in curator.items()},
        editable=list(CURATOR_FIELDS),
    )


@router.get(
    "/recordings/{task_id}/dublin-core",
    response_model=DublinCoreOut,
    responses=errors(*AUTH_ERRORS, 404, 422),
)
async def dublin_core(task_id: uuid.UUID, _: AnyCaller, service: ServiceDep) -> DublinCoreOut:
    """The record as it stands: the analysis's elements with the curator's on top."""
    return await _curated(service, task_id)


@router.patch(
    "/recordings/{task_id}/dublin-core",
    response_model=DublinCoreOut,
    responses=errors(*AUTH_ERRORS, 400, 404, 422),
)
async def edit_dublin_core(
    task_id: uuid.UUID,
    body: DublinCoreEdit,
    request: Request,
    principal: Archivist,
    service: ServiceDep,
) -> DublinCoreOut:
    """Set or clear the curator's elements; the search row follows."""
    changes = body.model_dump(exclude_unset=True)
    async with service.db.session() as session:
        task = await session.get(Task, str(task_id))
        if task is None:
            raise HTTPException(404, f"no task {task_id}")
        if body.date:  # checked here, after the 404: the schema cannot say what a date is
            try:
                search.date_range(body.date)
            except ValueError as exc:
                raise HTTPException(422, f"date: {exc}") from None
        curator = dict((task.options or {}).get("dublin_core") or {})
        for name, value in changes.items():
            if value is None or not str(value).strip():
                curator.pop(name, None)
            else:
                curator[name] = str(value).strip()
        task.options = {**(task.options or {}), "dublin_core": curator}
        await session.flush()
        await search.reindex(session, task.id, await current_annotations(session, task.id))
        session.add(
            AuditEntry(
                action="dublin_core.edited", actor=principal.name,
                address=client_address(request), target=task.id, detail=", ".join(changes),
            )
        )  # fmt: skip
    return await _curated(service, task_id)


@router.get(
    "/results/{task_id}/rttm",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "The speaker timeline as RTTM."},
        **errors(*AUTH_ERRORS, 404, 409, 422),
    },
)
async def rttm(task_id: uuid.UUID, _: AnyCaller, service: ServiceDep) -> Response:
    """The speaker timeline in RTTM (NIST), one ``SPEAKER`` line per segment."""
    from stream.speaker_report import rttm_lines

    document = await completed_document(service, task_id)
    section = document.get("results", {}).get("speaker_recognition", {})
    body = "".join(rttm_lines(str(task_id), section))
    return Response(body, media_type="text/plain; charset=utf-8")


@router.get(
    "/results/{task_id}/oai_dc",
    response_class=Response,
    responses={
        200: {"content": {"application/xml": {}}, "description": "The oai_dc record."},
        **errors(*AUTH_ERRORS, 404, 409, 422),
    },
)
async def oai_dc(task_id: uuid.UUID, _: AnyCaller, service: ServiceDep) -> Response:
    """The Dublin Core record as OAI-PMH ``oai_dc`` XML, the curator's edits included."""
    from detectors.metadata.dublin_core import to_oai_dc

    await completed_document(service, task_id)
    record = await _curated(service, task_id)
    language = record.curator.get("language")
    xml = to_oai_dc(record.elements, language, frozenset(record.curator))
    return Response(xml, media_type="application/xml")


class SpeakerEdit(BaseModel):
    """Name a speaker label, or merge it into another label."""

    model_config = ConfigDict(extra="forbid")

    speaker: str = Field(pattern=LABEL, description="The label in the result, e.g. Speaker_2.")
    name: str | None = Field(None, min_length=1, max_length=200)
    merge_into: str | None = Field(None, pattern=LABEL)
    enrol: bool = Field(False, description="With a name: later analyses recognise this voice.")
    note: str = Field("", max_length=4000)


class SegmentFlag(BaseModel):
    """A segment of one lane that is wrong (no such speech, speaker, music, ...)."""

    model_config = ConfigDict(extra="forbid")

    lane: Literal["speech", "speaker", "heritage", "music", "silence"]
    start: float = Field(ge=0, le=1e7)
    end: float = Field(ge=0, le=1e7)
    speaker: str | None = Field(None, pattern=LABEL)
    note: str = Field("", max_length=4000)


class AnnotationOut(BaseModel):
    id: int
    kind: Literal["category", "speaker_name", "speaker_merge", "wrong_segment"]
    detail: dict[str, Any]
    reported_by: str
    received_at: datetime


def _annotation(row: MaxxiFeedback) -> list[AnnotationOut]:
    payload = row.payload if isinstance(row.payload, dict) else {}
    given = payload.get("corrections")
    found: dict[str, Any] = given if isinstance(given, dict) else {}
    out: list[tuple[str, dict[str, Any]]] = []
    if found.get("category"):
        extent = {"start": payload.get("start"), "end": payload.get("end")}
        out.append(("category", {"category": found["category"], **extent}))
    for label, name in (found.get("speakers") or {}).items():
        out.append(("speaker_name", {"speaker": label, "name": name}))
    for label, into in (found.get("merge") or {}).items():
        out.append(("speaker_merge", {"speaker": label, "merge_into": into}))
    if isinstance(found.get("wrong"), dict):
        out.append(("wrong_segment", found["wrong"]))
    return [
        AnnotationOut(
            id=row.id,
            kind=k,
            detail={**d, "note": payload.get("note", "")},
            reported_by=row.reported_by,
            received_at=row.received_at,
        )
        for k, d in out
    ]


async def _rows(session: Any, task_id: str) -> list[MaxxiFeedback]:
    rows = await session.scalars(
        select(MaxxiFeedback)
        .where(MaxxiFeedback.task_id == task_id, MaxxiFeedback.kind == CORRECTION)
        .order_by(MaxxiFeedback.received_at, MaxxiFeedback.id)
    )
    return list(rows)


async def current_annotations(session: Any, task_id: str) -> search.Annotations:
    """The state curators left: the newest whole-file category, the current speaker names."""
    whole = [c for c in await task_corrections(session, task_id) if c.start is None]
    names: dict[str, str] = {}
    for row in await _rows(session, task_id):
        for item in _annotation(row):
            if item.kind == "speaker_name":
                names[item.detail["speaker"]] = item.detail["name"]
    return search.Annotations(whole[-1].category if whole else None, tuple(names.values()))


@router.get(
    "/results/{task_id}/annotations",
    response_model=list[AnnotationOut],
    responses=errors(*AUTH_ERRORS, 404, 422),
)
async def list_annotations(
    task_id: uuid.UUID, _: AnyCaller, service: ServiceDep
) -> list[AnnotationOut]:
    """Every correction of a result (categories, speaker names and merges, segments marked
    wrong), with who made it and when, oldest first."""
    await _task(service, task_id)
    async with service.db.session() as session:
        return [a for row in await _rows(session, str(task_id)) for a in _annotation(row)]


async def _store(
    service: Any, task_id: uuid.UUID, payload: dict[str, Any], *, who: Principal,
    request: Request, detail: str,
) -> list[AnnotationOut]:  # fmt: skip
    task = await _task(service, task_id)
    if task.status != "completed":
        raise HTTPException(409, f"task is {task.status}: only a completed result is corrected")
    row = MaxxiFeedback(
        task_id=task.id, kind=CORRECTION, reported_by=who.name,
        payload={**payload, "source": "archivist"},
    )  # fmt: skip
    async with service.db.session() as session:
        session.add(row)
        session.add(
            AuditEntry(action="result.corrected", actor=who.name,
                       address=client_address(request), target=task.id, detail=detail)
        )  # fmt: skip
        await session.flush()
        await search.reindex(session, task.id, await current_annotations(session, task.id))
    return _annotation(row)


@router.post(
    "/results/{task_id}/speakers",
    status_code=201,
    response_model=list[AnnotationOut],
    responses=errors(*AUTH_ERRORS, 400, 404, 409, 422),
)
async def edit_speaker(
    task_id: uuid.UUID,
    body: SpeakerEdit,
    request: Request,
    principal: Archivist,
    service: ServiceDep,
) -> list[AnnotationOut]:
    """Name a speaker (and, with ``enrol``, remember the voice for later analyses), or merge
    one speaker label into another."""
    document = await completed_document(service, task_id)
    if (body.name is None) == (body.merge_into is None):
        raise HTTPException(422, "give either name (rename) or merge_into (merge), not both")
    labels = set(document.get("results", {}).get("speaker_recognition", {}).get("speakers", {}))
    for label in filter(None, (body.speaker, body.merge_into)):
        if label not in labels:
            raise HTTPException(422, f"speaker {label!r} is not in this result")
    if body.merge_into == body.speaker:
        raise HTTPException(422, "a speaker cannot be merged into itself")
    if body.enrol:
        await _enrol(service, task_id, document, body)
    corrections = (
        {"speakers": {body.speaker: body.name.strip()}}
        if body.name is not None
        else {"merge": {body.speaker: body.merge_into}}
    )
    detail = f"{body.speaker} -> {body.name or body.merge_into}"
    payload = {"corrections": corrections, "note": body.note}
    return await _store(service, task_id, payload, who=principal, request=request, detail=detail)


async def _enrol(service: Any, task_id: uuid.UUID, document: dict[str, Any], body: Any) -> None:
    if body.name is None:
        raise HTTPException(422, "enrol needs a name for the voice")
    task = await _task(service, task_id)
    audio = service.blobs.path(task.content_sha256)
    if not audio.exists():
        raise HTTPException(409, "the upload is no longer stored: the voice cannot be enrolled")
    section = document["results"]["speaker_recognition"]
    data_dir = service.settings.HERITAGE_DATA_DIR
    try:
        await asyncio.to_thread(
            partial(enrol, data_dir=data_dir, source=f"task:{task_id}"),
            audio, section, body.speaker, body.name,
        )  # fmt: skip
    except ValueError as exc:
        raise HTTPException(422, f"the voice was not enrolled: {exc}") from None


@router.post(
    "/results/{task_id}/wrong-segments",
    status_code=201,
    response_model=list[AnnotationOut],
    responses=errors(*AUTH_ERRORS, 400, 404, 409, 422),
)
async def mark_wrong(
    task_id: uuid.UUID,
    body: SegmentFlag,
    request: Request,
    principal: Archivist,
    service: ServiceDep,
) -> list[AnnotationOut]:
    """Mark a segment of one lane as wrong."""
    await completed_document(service, task_id)
    if body.start >= body.end:
        raise HTTPException(422, f"start ({body.start:g} s) must be before end ({body.end:g} s)")
    wrong = {"lane": body.lane, "start": body.start, "end": body.end, "speaker": body.speaker}
    payload = {"corrections": {"wrong": wrong}, "note": body.note}
    detail = f"wrong {body.lane} {body.start:g}-{body.end:g} s"
    return await _store(service, task_id, payload, who=principal, request=request, detail=detail)
