"""Finding recordings: one search row per completed task, and the queries over it.

A result document is JSON, which neither database indexes well across both
dialects; the fields archivists search by (Dublin Core text, category, speaker
names, the recording date and duration) are copied into ``recordings`` when a
job completes and again whenever a curator edits or corrects it. PostgreSQL
matches words through a ``tsvector`` GIN index; SQLite (a single archivist's
machine) matches each word with ``LIKE``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Date,
    Float,
    ForeignKey,
    String,
    Text,
    and_,
    func,
    literal_column,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from sinks.store.models import Base, Result, Task, utcnow

INDEX_BATCH = 500
MAX_TEXT = 200_000  # characters of searchable text kept per recording
_DATE = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")
_WORD = re.compile(r"\w+", re.UNICODE)


MIGRATION_ONLY_INDEXES = frozenset({"ix_recordings_fulltext"})


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's name filter: autogenerate leaves the indexes only migrations make alone."""
    return not (type_ == "index" and name in MIGRATION_ONLY_INDEXES)


class Recording(Base):
    """The searchable facts of one completed analysis (rebuilt from its task and result)."""

    __tablename__ = "recordings"
    # PostgreSQL also has ix_recordings_fulltext, a GIN index on to_tsvector('simple', text),
    # made by the migration alone: SQLite cannot hold it, and Alembic cannot compare
    # expression indexes, so declaring it here would only make autogenerate warn.

    task_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    title: Mapped[str] = mapped_column(String(1000), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str | None] = mapped_column(String(32), default=None, index=True)
    speakers: Mapped[str] = mapped_column(Text, default="")
    date_from: Mapped[date | None] = mapped_column(Date, default=None, index=True)
    date_to: Mapped[date | None] = mapped_column(Date, default=None)
    duration: Mapped[float | None] = mapped_column(Float, default=None, index=True)
    indexed_at: Mapped[datetime] = mapped_column(default=utcnow)


def date_range(value: str) -> tuple[date, date]:
    """A Dublin Core date (W3CDTF ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``, or an interval
    ``start/end`` of those) as the first and last day it covers; ``ValueError`` otherwise."""
    parts = value.strip().split("/")
    if len(parts) > 2 or not all(parts):
        raise ValueError(
            f"{value[:40]!r} is not a date: use YYYY, YYYY-MM, YYYY-MM-DD or start/end"
        )
    first, _ = _one_date(parts[0])
    _, last = _one_date(parts[-1])
    if last < first:
        raise ValueError(f"{value[:40]!r}: the interval ends before it starts")
    return first, last


def _one_date(text: str) -> tuple[date, date]:
    match = _DATE.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text[:40]!r} is not a date: use YYYY, YYYY-MM, YYYY-MM-DD or start/end")
    year = int(match[1])
    month, day = (int(g) if g else None for g in match.groups()[1:])
    try:
        if month is None:
            return date(year, 1, 1), date(year, 12, 31)
        if day is None:
            following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
            return date(year, month, 1), date.fromordinal(following.toordinal() - 1)
        return date(year, month, day), date(year, month, day)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not a calendar date") from None


@dataclass(frozen=True)
class Annotations:
    """What curators changed after the analysis: whole-file category, speaker names."""

    category: str | None = None
    speaker_names: tuple[str, ...] = ()


def dublin_core_of(task: Task, document: dict[str, Any] | None) -> dict[str, list[str]]:
    """The record's elements: the analysis's record with the curator's current fields on top."""
    results = (document or {}).get("results", {})
    record = results.get("metadata_generation", {}).get("dublin_core", {})
    elements: dict[str, list[str]] = {
        k: [str(v) for v in values] if isinstance(values, list) else [str(values)]
        for k, values in (record.get("elements") or {}).items()
        if values
    }
    for name, value in ((task.options or {}).get("dublin_core") or {}).items():
        values = value if isinstance(value, list) else [value]
        if values := [str(v) for v in values if str(v).strip()]:
            elements[name] = values
        else:
            elements.pop(name, None)
    return elements


def entry_of(
    task: Task, document: dict[str, Any] | None, annotations: Annotations = Annotations()
) -> Recording:
    """The search row of a task and its result document."""
    results = (document or {}).get("results", {})
    elements = dublin_core_of(task, document)
    heritage = results.get("heritage_classification") or {}
    category = annotations.category or heritage.get("predicted_category")
    speakers = results.get("speaker_recognition", {}).get("speakers") or {}
    names = [str(s["name"]) for s in speakers.values() if isinstance(s, dict) and s.get("name")]
    names += annotations.speaker_names
    first: date | None = None
    last: date | None = None
    for value in elements.get("date", []):
        try:
            first, last = date_range(value)
        except ValueError:
            continue
        break
    words = [task.filename, *(v for values in elements.values() for v in values), *names]
    duration = (document or {}).get("audio_info", {}).get("duration")
    return Recording(
        task_id=task.id,
        title=" / ".join(elements.get("title", []))[:1000],
        text=" ".join(words).lower()[:MAX_TEXT],
        category=category,
        speakers="|".join(n.lower() for n in names),
        date_from=first,
        date_to=last,
        duration=float(duration) if isinstance(duration, int | float) else None,
        indexed_at=utcnow(),
    )


async def reindex(
    session: AsyncSession, task_id: str, annotations: Annotations = Annotations()
) -> Recording | None:
    """Rewrite a completed task's search row; ``None`` if it has no result."""
    task = await session.get(Task, task_id)
    result = await session.get(Result, task_id)
    if task is None or result is None:
        return None
    row = entry_of(task, result.document, annotations)
    return await session.merge(row)


async def unindexed(session: AsyncSession, limit: int = INDEX_BATCH) -> list[str]:
    """Completed tasks without a search row (results stored before search existed)."""
    rows = await session.scalars(
        select(Result.task_id)
        .outerjoin(Recording, Recording.task_id == Result.task_id)
        .where(Recording.task_id.is_(None))
        .limit(limit)
    )
    return list(rows)


@dataclass(frozen=True)
class Query:
    """What to look for; every given criterion must hold."""

    text: str | None = None
    category: str | None = None
    speaker: str | None = None
    date_from: date | None = None  # the recording's date range overlaps [date_from, date_to]
    date_to: date | None = None
    min_duration: float | None = None  # seconds
    max_duration: float | None = None


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)][:20]


def contains(column: Any, word: str) -> ColumnElement[bool]:
    """``column LIKE %word%`` with the pattern's own ``%`` and ``_`` taken literally."""
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(f"%{escaped}%", escape="\\")  # type: ignore[no-any-return]


def conditions(query: Query, dialect: str) -> list[ColumnElement[bool]]:
    """SQL conditions of ``query`` for the given dialect (``postgresql`` or ``sqlite``)."""
    where: list[ColumnElement[bool]] = []
    words = _words(query.text or "")
    if words and dialect == "postgresql":
        tsquery = " & ".join(f"{w}:*" for w in words)
        vector = func.to_tsvector(literal_column("'simple'"), Recording.text)
        where.append(vector.op("@@")(func.to_tsquery(literal_column("'simple'"), tsquery)))
    else:
        where += [contains(Recording.text, w) for w in words]
    if query.category:
        where.append(Recording.category == query.category)
    if query.speaker and (name := query.speaker.strip().lower()):
        where.append(contains(Recording.speakers, name))
    if query.date_from is not None:
        where.append(Recording.date_to >= query.date_from)
    if query.date_to is not None:
        where.append(Recording.date_from <= query.date_to)
    if query.min_duration is not None:
        where.append(Recording.duration >= query.min_duration)
    if query.max_duration is not None:
        where.append(Recording.duration <= query.max_duration)
    return where


async def search(
    session: AsyncSession, query: Query, dialect: str, limit: int, offset: int
) -> tuple[int, list[tuple[Recording, Task]]]:
    """The total number of matches and one page of them, most recently analysed first."""
    where = and_(true(), *conditions(query, dialect))
    total = await session.scalar(select(func.count()).select_from(Recording).where(where))
    rows = await session.execute(
        select(Recording, Task)
        .join(Task, Task.id == Recording.task_id)
        .where(where)
        .order_by(Task.completed_at.desc(), Task.id)
        .limit(limit)
        .offset(offset)
    )
    return int(total or 0), [(r, t) for r, t in rows]
