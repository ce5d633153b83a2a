"""Many sites: every site seen and its windowed aggregates (``/api/v1/sites``).

The figures come from ``heritage-audio aggregate`` through the Kafka aggregates topic,
which the API follows into the database (:mod:`sinks.site_aggregates`); these routes
read only the database, so they answer while the brokers are away.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field

from aggregate.windows import combine_rooms
from api.deps import AUTH_ERRORS, AnyCaller, ErrorResponse, ServiceDep, errors
from sinks.store import sites
from sinks.store.models import utcnow

router = APIRouter(prefix="/api/v1", tags=["sites"])
WindowKind = Literal["1m", "15m", "1h"]
WINDOW_DOC = (
    "Tumbling 1 min (`1m`) or 15 min (`15m`) windows, or 1 h windows hopping every 15 min (`1h`)."
)
TIME_EXAMPLE = "2026-05-16T14:00:00Z"


class Level(BaseModel):
    count: int = Field(description="Level events counted.")
    rms_mean_dbfs: float | None
    rms_max_dbfs: float | None
    peak_max_dbfs: float | None


class RoomFigures(BaseModel):
    """One room's (source's) figures over one window."""

    room: str
    events: int = Field(description="Events counted in the window (heartbeats included).")
    speech_minutes: float
    distinct_speakers: int
    speakers: list[str]
    dominant_category: str | None = Field(description="Most heard heritage category.")
    dominant_share: float | None = Field(description="Its share of classified time, 0..1.")
    category_seconds: dict[str, float]
    occupancy: float = Field(description="Share of the window with speech, 0..1.")
    level: Level
    last_event: datetime | None = Field(description="Time of the newest event counted.")


class SiteFigures(BaseModel):
    """A site's figures over one window, from its rooms' (speakers count per room)."""

    rooms: int
    events: int
    speech_minutes: float
    distinct_speakers: int
    dominant_category: str | None
    dominant_share: float | None
    occupancy: float = Field(description="The busiest room's occupancy, 0..1.")
    rms_mean_dbfs: float | None


class WindowAggregate(BaseModel):
    start: datetime
    end: datetime
    site: SiteFigures
    rooms: list[RoomFigures]


class AggregatePage(BaseModel):
    site: str
    window: WindowKind
    items: list[WindowAggregate] = Field(description="Newest window first.")
    total: int = Field(description="Windows matching, on every page.")
    limit: int
    offset: int


class RoomSeen(BaseModel):
    room: str
    last_event: datetime
    fresh: bool


class SiteSummary(BaseModel):
    site: str
    rooms: list[RoomSeen]
    last_event: datetime = Field(description="Time of the site's newest counted event.")
    fresh: bool = Field(description="Its newest event is at most `fresh_within` seconds old.")
    latest: WindowAggregate | None = Field(
        description="The site's newest window of the asked kind (with `window` only)."
    )


class SitePage(BaseModel):
    items: list[SiteSummary]
    total: int
    limit: int
    offset: int
    fresh_within: int = Field(description="Seconds.")


def _figures(row: sites.SiteAggregate) -> RoomFigures:
    return RoomFigures(room=row.room, last_event=row.last_event, **row.figures)


def _window(rows: list[sites.SiteAggregate]) -> WindowAggregate:
    rooms = [_figures(row) for row in rows]
    site = combine_rooms([room.model_dump() for room in rooms])
    return WindowAggregate(start=rows[0].start, end=rows[0].end, site=SiteFigures(**site),
                           rooms=rooms)  # fmt: skip


def _instant(value: str | None, name: str) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone); 422 naming the parameter otherwise."""
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(
            422, f"{name}: expected an ISO 8601 time such as {TIME_EXAMPLE}, got {value[:40]!r}"
        ) from None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


Limit = Annotated[int, Query(ge=1, le=200, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]


@router.get("/sites", response_model=SitePage, responses=errors(*AUTH_ERRORS, 422))
async def list_sites(
    *,
    _: AnyCaller,
    service: ServiceDep,
    window: Annotated[WindowKind | None, Query(description=WINDOW_DOC)] = None,
    fresh_within: Annotated[
        int, Query(ge=1, le=86_400, description="Seconds after which a site is not fresh.")
    ] = 120,
    limit: Limit = 50,
    offset: Offset = 0,
) -> SitePage:
    """Every site an aggregate was received for, its rooms, when each was last heard and
    whether that is recent; with ``window``, each site's newest window of that kind."""
    async with service.db.session() as session:
        seen = await sites.rooms_seen(session)
        latest = await sites.latest_rows(session, window) if window else []
    now = utcnow()
    fresh_after = now - timedelta(seconds=fresh_within)
    by_site: dict[str, list[sites.RoomSeen]] = {}
    for room in seen:
        by_site.setdefault(room.site, []).append(room)
    latest_by_site: dict[str, list[sites.SiteAggregate]] = {}
    for row in latest:
        latest_by_site.setdefault(row.site, []).append(row)
    names = sorted(by_site)
    items = []
    for name in names[offset : offset + limit]:
        rooms = by_site[name]
        last = max(room.last_event for room in rooms)
        items.append(
            SiteSummary(
                site=name,
                rooms=[
                    RoomSeen(
                        room=r.room, last_event=r.last_event, fresh=r.last_event >= fresh_after
                    )
                    for r in rooms
                ],
                last_event=last,
                fresh=last >= fresh_after,
                latest=_window(latest_by_site[name]) if name in latest_by_site else None,
            )
        )
    return SitePage(
        items=items, total=len(names), limit=limit, offset=offset, fresh_within=fresh_within
    )


@router.get(
    "/sites/{site}/aggregates",
    response_model=AggregatePage,
    responses={
        **errors(*AUTH_ERRORS, 404, 422),
        404: {"model": ErrorResponse, "description": "No aggregate was received for this site."},
    },
)
async def site_aggregates(
    *,
    _: AnyCaller,
    service: ServiceDep,
    site: Annotated[str, Path(min_length=1, max_length=128, description="Installation id.")],
    window: Annotated[WindowKind, Query(description=WINDOW_DOC)] = "1m",
    start_from: Annotated[
        str | None,
        Query(
            alias="from",
            max_length=64,
            json_schema_extra={"format": "date-time"},
            description=f"Windows starting at or after this ISO 8601 time ({TIME_EXAMPLE}).",
        ),
    ] = None,
    to: Annotated[
        str | None,
        Query(
            max_length=64,
            json_schema_extra={"format": "date-time"},
            description="Windows starting before this ISO 8601 time.",
        ),
    ] = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> AggregatePage:
    """A site's windows of one kind, newest first, each with the site's figures and its
    rooms'; without ``from``/``to`` the first page is the latest ``limit`` windows."""
    first, last = _instant(start_from, "from"), _instant(to, "to")
    if first is not None and last is not None and first >= last:
        raise HTTPException(422, "from: must be earlier than to")
    async with service.db.session() as session:
        total, starts = await sites.window_starts(
            session, site, window, start_from=first, start_to=last, limit=limit, offset=offset
        )
        rows = await sites.rows_at(session, site, window, starts)
        if total == 0 and not await sites.site_exists(session, site):
            raise HTTPException(404, f"no aggregates were received for site {site!r}")
    by_start: dict[datetime, list[sites.SiteAggregate]] = {}
    for row in rows:
        by_start.setdefault(row.start, []).append(row)
    items = [_window(by_start[start]) for start in starts if start in by_start]
    return AggregatePage(
        site=site, window=window, items=items, total=total, limit=limit, offset=offset
    )
