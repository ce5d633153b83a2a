"""File-analysis jobs: claim, run, complete — the same code under Celery and in-process.

The database is the source of truth. A job is claimed with one conditional
UPDATE (queued, or running with an expired lease), so however many times a
message is delivered, one worker runs it at a time; the running worker renews
its lease every few seconds, and a job whose worker died is re-queued once the
lease lapses. Completion is conditional on still holding the lease, and the
result's primary key is the task id: a job that runs twice leaves one result.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import and_, func, or_, select, update

from api.overviews import cached_overview
from config.settings import Settings
from sinks.store import BlobStore, Database, Result, Task, search
from sinks.store.models import utcnow
from stream.sources import SourceError

logger = logging.getLogger(__name__)

ProcessingType = Literal["quick", "comprehensive", "speaker", "heritage", "metadata"]
PROCESSING_TYPES: tuple[str, ...] = ("quick", "comprehensive", "speaker", "heritage", "metadata")
PRIORITIES: dict[str, int] = {"urgent": 0, "high": 3, "normal": 5, "low": 8}
"""Priority names and their queue levels: lower runs sooner (Celery's Redis convention)."""
BRIEF_PRIORITIES: dict[int, str] = {1: "urgent", 2: "high", 3: "normal", 4: "low"}
"""The product brief's integer priorities (``curl -F priority=1``): 1 is the highest."""

LEASE_S = 15.0
RENEW_S = 5.0
MAX_ATTEMPTS = 3
PROGRESS_EVERY_S = 1.0

Analysis = Callable[[Path, dict[str, Any], Callable[[float], None]], dict[str, Any]]


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def blob_store(settings: Settings) -> BlobStore:
    return BlobStore(settings.HERITAGE_DATA_DIR / "uploads")


SECTIONS_OF: dict[str, frozenset[str]] = {
    "quick": frozenset({"voice_activity"}),
    "speaker": frozenset({"voice_activity", "speaker_recognition"}),
    "heritage": frozenset({"voice_activity", "heritage_classification"}),
    "metadata": frozenset({"voice_activity", "heritage_classification", "metadata_generation"}),
    "comprehensive": frozenset(
        {"voice_activity", "speaker_recognition", "heritage_classification", "metadata_generation"}
    ),
}
"""The result sections each processing type computes."""


def default_analysis(
    path: Path, options: dict[str, Any], progress: Callable[[float], None]
) -> dict[str, Any]:
    """Run the analysis a processing type asks for (the whole pipeline for ``comprehensive``)."""
    from threadpoolctl import threadpool_limits

    from config.pipeline import ACCURATE_SPEAKERS, load_pipeline_config, with_speaker_settings
    from stream.analyze import analyze_file

    config = load_pipeline_config(options.get("config_path"))
    if options.get("accurate_speakers"):
        config = with_speaker_settings(config, **ACCURATE_SPEAKERS)
    # One core per job: workers scale by process, and BLAS/OpenMP threads fighting over
    # the same cores only slow every job down (and the API, when jobs run inside it).
    with threadpool_limits(1):
        return analyze_file(
            path,
            config,
            progress=progress,
            n_speakers=options.get("n_speakers"),
            sections=SECTIONS_OF[options["processing_type"]],
            task_id=options["task_id"],
            curator=options.get("dublin_core") or None,
        )


async def claim(db: Database, task_id: str, owner: str) -> Task | None:
    """Take the job if it is free; ``None`` if another worker holds it or it is finished."""
    now = utcnow()
    async with db.session() as session:
        result = await session.execute(
            update(Task)
            .where(
                Task.id == task_id,
                or_(
                    Task.status == "queued",
                    and_(Task.status == "running", Task.lease_until < now),
                ),
            )
            .values(
                status="running",
                lease_owner=owner,
                lease_until=now + timedelta(seconds=LEASE_S),
                started_at=func.coalesce(Task.started_at, now),
                attempts=Task.attempts + 1,
                progress=0.0,
            )
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        task = await session.get(Task, task_id)
    if task is not None and task.attempts > MAX_ATTEMPTS:
        await _finish(db, task_id, owner, "failed", f"abandoned by its worker {MAX_ATTEMPTS} times")
        return None
    return task


async def _renew(db: Database, task_id: str, owner: str, state: dict[str, float]) -> None:
    """Extend the lease and publish progress until cancelled."""
    while True:
        await asyncio.sleep(min(RENEW_S, PROGRESS_EVERY_S))
        async with db.session() as session:
            await session.execute(
                update(Task)
                .where(Task.id == task_id, Task.lease_owner == owner, Task.status == "running")
                .values(
                    lease_until=utcnow() + timedelta(seconds=LEASE_S),
                    progress=round(state["progress"], 4),
                )
            )


async def _finish(
    db: Database,
    task_id: str,
    owner: str,
    status: str,
    error: str | None = None,
    *,
    document: dict[str, Any] | None = None,
) -> bool:
    """Record the outcome if this worker still holds the job; False if it lost it."""
    now = utcnow()
    async with db.session() as session:
        task = await session.get(Task, task_id, with_for_update=db.backend != "sqlite")
        if task is None or task.status != "running" or task.lease_owner != owner:
            return False
        task.status = status
        task.error = error
        task.completed_at = now
        task.lease_owner = None
        task.lease_until = None
        if task.started_at is not None:
            task.processing_time = round((now - task.started_at).total_seconds(), 3)
        if document is not None:
            task.progress = 1.0
            session.add(Result(task_id=task_id, document=document))
            session.add(search.entry_of(task, document))
    return True


async def execute(
    db: Database,
    settings: Settings,
    task_id: str,
    *,
    owner: str | None = None,
    analysis: Analysis = default_analysis,
    on_complete: Callable[[str, dict[str, Any]], Awaitable[bool]] | None = None,
) -> str | None:
    """Claim and run one job; returns its final status, or ``None`` if not ours to run."""
    owner = owner or worker_name()
    task = await claim(db, task_id, owner)
    if task is None:
        return None
    path = blob_store(settings).path(task.content_sha256)
    state = {"progress": 0.0}
    renewer = asyncio.create_task(_renew(db, task_id, owner, state))
    started = time.monotonic()
    options = {
        **task.options,
        "processing_type": task.processing_type,
        "task_id": task_id,
        "config_path": settings.HERITAGE_CONFIG,
    }
    try:
        document = await asyncio.to_thread(
            analysis, path, options, lambda f: state.__setitem__("progress", f)
        )
    except SourceError as exc:
        await _finish(db, task_id, owner, "failed", str(exc))
        return "failed"
    except Exception as exc:
        logger.exception("job %s failed", task_id)
        await _finish(db, task_id, owner, "failed", f"internal error: {type(exc).__name__}")
        return "failed"
    finally:
        renewer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewer
    document["task_id"] = task_id
    try:  # drawn by the recording's page; ready before the job shows as completed
        await asyncio.to_thread(cached_overview, settings, path, task.content_sha256)
    except Exception as exc:
        logger.warning("job %s: no overview for the archive application (%s)", task_id, exc)
    document["audio_info"]["filename"] = task.filename
    document.setdefault("provenance", {})["processing_type"] = task.processing_type
    if not await _finish(db, task_id, owner, "completed", document=document):
        logger.warning("job %s: lease lost to another worker; result discarded", task_id)
        return None
    logger.info("job %s completed in %.2f s", task_id, time.monotonic() - started)
    if on_complete is not None:
        try:
            notified = await on_complete(task_id, document)
        except Exception:
            logger.exception("job %s: completion hook failed", task_id)
        else:
            if notified:
                async with db.session() as session:
                    await session.execute(
                        update(Task).where(Task.id == task_id).values(maxxi_notified_at=utcnow())
                    )
    return "completed"


async def requeue_stale(db: Database) -> list[tuple[str, int]]:
    """Jobs whose worker stopped renewing its lease, back to ``queued``: [(id, priority)]."""
    now = utcnow()
    async with db.session() as session:
        rows = await session.execute(
            select(Task.id, Task.priority).where(Task.status == "running", Task.lease_until < now)
        )
        stale = [(row.id, row.priority) for row in rows]
        requeued = []
        for task_id, priority in stale:
            result = await session.execute(
                update(Task)
                .where(Task.id == task_id, Task.status == "running", Task.lease_until < now)
                .values(status="queued", lease_owner=None, lease_until=None)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                requeued.append((task_id, priority))
    for task_id, _ in requeued:
        logger.warning("job %s: its worker went away; queued again", task_id)
    return requeued


async def queued(db: Database) -> list[tuple[str, int]]:
    """Every queued job, in the order it should run."""
    async with db.session() as session:
        rows = await session.execute(
            select(Task.id, Task.priority)
            .where(Task.status == "queued")
            .order_by(Task.priority, Task.created_at)
        )
        return [(row.id, row.priority) for row in rows]


async def status_counts(db: Database) -> dict[str, int]:
    async with db.session() as session:
        rows = await session.execute(select(Task.status, func.count()).group_by(Task.status))
        return {row[0]: row[1] for row in rows}


async def completed_since(
    db: Database, since: datetime
) -> list[tuple[str, float | None, datetime]]:
    """(status, processing_time, completed_at) of jobs finished after ``since``."""
    async with db.session() as session:
        rows = await session.execute(
            select(Task.status, Task.processing_time, Task.completed_at)
            .where(Task.completed_at > since)
            .order_by(Task.completed_at)
        )
        return [(r.status, r.processing_time, r.completed_at) for r in rows]
