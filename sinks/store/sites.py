"""Windowed aggregates of many sites, as the API serves them (``/api/v1/sites``).

One row per ``(site, room, window kind, window start)``: the latest upsert of the
aggregates topic for that key (``heritage-audio aggregate`` writes them). Upserts can
arrive twice or out of order (a consumer re-reads after a crash, two API replicas
hand partitions over), and a window's event count only grows, so a row is replaced
only by a record that counted at least as many events: the latest wins, and an older
one read again never takes its place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from sinks.store.models import Base, utcnow

WINDOW_KINDS = {"1m": 60, "15m": 900, "1h": 3600}
"""Window kinds the aggregate app emits, and their length in seconds."""
RETENTION = {"1m": timedelta(days=7), "15m": timedelta(days=90), "1h": timedelta(days=730)}
"""How long rows of each kind are kept (by window start): 1 min rows are 10,080 a week
per room, so they are pruned soonest."""


class SiteAggregate(Base):
    """The latest figures of one room of a site over one window."""

    __tablename__ = "site_aggregates"
    __table_args__ = (Index("ix_site_aggregates_window_start", "window", "start"),)

    site: Mapped[str] = mapped_column(String(128), primary_key=True)
    room: Mapped[str] = mapped_column(String(128), primary_key=True)
    window: Mapped[str] = mapped_column(String(8), primary_key=True)
    start: Mapped[datetime] = mapped_column(primary_key=True)
    end: Mapped[datetime] = mapped_column()
    events: Mapped[int] = mapped_column(Integer)
    last_event: Mapped[datetime | None] = mapped_column(default=None)
    figures: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class BadAggregate(ValueError):  # noqa: N818 - reads as what the record is
    """A record of the aggregates topic that is not an aggregate upsert."""


FIGURES = ("speech_minutes", "distinct_speakers", "speakers", "dominant_category",
           "dominant_share", "category_seconds", "occupancy", "level")  # fmt: skip


def _instant(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise BadAggregate(f"no {name}")
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadAggregate(f"{name} is not an ISO 8601 time") from None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


def parse_record(value: bytes | None) -> dict[str, Any]:
    """The row of one aggregates record (``aggregate.windows.output_record`` JSON)."""
    try:
        record = json.loads(value or b"")
    except ValueError as exc:
        raise BadAggregate(f"not JSON ({exc})") from None
    if not isinstance(record, dict):
        raise BadAggregate("not a JSON object")
    for name in ("site", "room"):
        if not isinstance(record.get(name), str) or not 0 < len(record[name]) <= 128:
            raise BadAggregate(f"no {name}")
    if record.get("window") not in WINDOW_KINDS:
        raise BadAggregate(f"unknown window {str(record.get('window'))[:16]!r}")
    if not isinstance(record.get("events"), int) or record["events"] < 0:
        raise BadAggregate("no valid events count")
    missing = [name for name in FIGURES if name not in record]
    if missing:
        raise BadAggregate(f"no {', '.join(missing)}")
    last = record.get("last_event")
    return {
        "site": record["site"],
        "room": record["room"],
        "window": record["window"],
        "start": _instant(record.get("start"), "start"),
        "end": _instant(record.get("end"), "end"),
        "events": record["events"],
        "last_event": _instant(last, "last_event") if last is not None else None,
        "figures": {name: record[name] for name in ("events", *FIGURES)},
    }


async def upsert(session: AsyncSession, dialect: str, rows: list[dict[str, Any]]) -> None:
    """Store ``rows``; a stored row is replaced only by one with at least as many events."""
    if not rows:
        return
    # One statement per key, in arrival order, so the last record of a key in a batch wins.
    latest: dict[tuple[str, str, str, datetime], dict[str, Any]] = {}
    for row in rows:
        key = (row["site"], row["room"], row["window"], row["start"])
        if key not in latest or row["events"] >= latest[key]["events"]:
            latest[key] = row
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    statement = insert(SiteAggregate).values(
        [{**row, "updated_at": now} for row in latest.values()]
    )
    table = SiteAggregate.__table__
    statement = statement.on_conflict_do_update(
        index_elements=[table.c.site, table.c.room, table.c.window, table.c.start],
        set_={
            name: statement.excluded[name]
            for name in ("end", "events", "last_event", "figures", "updated_at")
        },
        where=statement.excluded.events >= table.c.events,
    )
    await session.execute(statement)


async def prune(session: AsyncSession) -> int:
    """Delete rows older than their kind's :data:`RETENTION` before the newest row of that
    kind (not before now: a deployment that was stopped, or a replayed old log, keeps its
    history); returns how many."""
    removed = 0
    for window, keep in RETENTION.items():
        newest = await session.scalar(
            select(func.max(SiteAggregate.start)).where(SiteAggregate.window == window)
        )
        if newest is None:
            continue
        result = await session.execute(
            delete(SiteAggregate).where(
                SiteAggregate.window == window, SiteAggregate.start < _utc(newest) - keep
            )
        )
        removed += int(getattr(result, "rowcount", 0) or 0)
    return removed


@dataclass(frozen=True)
class RoomSeen:
    """A room of a site and when its newest counted event happened."""

    site: str
    room: str
    last_event: datetime
    updated_at: datetime


async def rooms_seen(session: AsyncSession) -> list[RoomSeen]:
    """Every (site, room) with an aggregate, with its newest event time, by site and room."""
    newest = func.max(func.coalesce(SiteAggregate.last_event, SiteAggregate.start))
    rows = await session.execute(
        select(SiteAggregate.site, SiteAggregate.room, newest, func.max(SiteAggregate.updated_at))
        .group_by(SiteAggregate.site, SiteAggregate.room)
        .order_by(SiteAggregate.site, SiteAggregate.room)
    )
    return [RoomSeen(site, room, _utc(last), _utc(updated)) for site, room, last, updated in rows]


def _utc(value: datetime | str) -> datetime:
    """Aggregates over a timestamp column come back untyped from SQLite (text, naive)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def window_starts(
    session: AsyncSession,
    site: str,
    window: str,
    *,
    start_from: datetime | None,
    start_to: datetime | None,
    limit: int,
    offset: int,
) -> tuple[int, list[datetime]]:
    """How many windows of ``site`` match, and a page of their starts, newest first."""
    where = [SiteAggregate.site == site, SiteAggregate.window == window]
    if start_from is not None:
        where.append(SiteAggregate.start >= start_from)
    if start_to is not None:
        where.append(SiteAggregate.start < start_to)
    starts = select(SiteAggregate.start).where(*where).distinct().subquery()
    total = int(await session.scalar(select(func.count()).select_from(starts)) or 0)
    page = await session.scalars(
        select(starts.c.start).order_by(starts.c.start.desc()).limit(limit).offset(offset)
    )
    return total, [_utc(s) for s in page]


async def rows_at(
    session: AsyncSession, site: str, window: str, starts: list[datetime]
) -> list[SiteAggregate]:
    """The rooms' rows of ``site`` for the windows starting at ``starts``."""
    if not starts:
        return []
    rows = await session.scalars(
        select(SiteAggregate)
        .where(
            SiteAggregate.site == site,
            SiteAggregate.window == window,
            SiteAggregate.start.in_(starts),
        )
        .order_by(SiteAggregate.start.desc(), SiteAggregate.room)
    )
    return list(rows)


async def latest_rows(session: AsyncSession, window: str) -> list[SiteAggregate]:
    """Each site's rows of its newest window of kind ``window``."""
    newest = (
        select(SiteAggregate.site, func.max(SiteAggregate.start).label("start"))
        .where(SiteAggregate.window == window)
        .group_by(SiteAggregate.site)
        .subquery()
    )
    rows = await session.scalars(
        select(SiteAggregate)
        .join(
            newest,
            (SiteAggregate.site == newest.c.site) & (SiteAggregate.start == newest.c.start),
        )
        .where(SiteAggregate.window == window)
        .order_by(SiteAggregate.site, SiteAggregate.room)
    )
    return list(rows)


async def site_exists(session: AsyncSession, site: str) -> bool:
    """Whether any aggregate of ``site`` is stored."""
    found = await session.scalar(
        select(SiteAggregate.site).where(SiteAggregate.site == site).limit(1)
    )
    return found is not None
