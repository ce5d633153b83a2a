"""Health: ``/health`` (everything, with a score), ``/health/live``, ``/health/ready``.

``/health`` never fails with a 500: each dependency is checked with a short
timeout and reported; when one the service cannot work without is down (the
database; Redis when configured) the answer is 503 with ``Retry-After``.
No authentication: orchestrators and load balancers call these.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Literal

import psutil
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.service import Service
from config.settings import Settings
from config.version import VERSION
from stream.runtime import Runtime

logger = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])

_BAD_SOURCE_STATES = {"lost", "error"}
CHECK_TIMEOUT_S = 2.0
RETRY_AFTER_S = "10"
REQUIRED = ("database", "redis")
HealthState = Literal["healthy", "degraded", "unhealthy"]


class SystemMetrics(BaseModel):
    cpu_percent: float
    memory_percent: float
    process_rss_mb: float
    disk_percent: float
    disk_free_gb: float


class Check(BaseModel):
    """One dependency: ``ok``, ``down``, or ``off`` when not configured."""

    status: Literal["ok", "down", "off"]
    detail: str = ""


class JobsHealth(BaseModel):
    backend: str
    queued: int | None
    running: int | None
    workers: int | None


class Penalty(BaseModel):
    """One reason the score is below 1, and the points (of 100) it costs."""

    reason: str
    points: float


class HealthResponse(BaseModel):
    status: HealthState
    health_score: float = Field(ge=0, le=1, description="1 = all well; the brief's 0.95.")
    health_details: list[Penalty] = Field(
        description="What lowers the score, each with its cost in points of 100."
    )
    version: str
    environment: str
    installation_id: str
    uptime_seconds: float
    checks: dict[str, Check]
    jobs: JobsHealth
    system_metrics: SystemMetrics
    sources: list[dict[str, Any]]
    maxxi: dict[str, dict[str, Any]]


def _existing(path: Path) -> Path:
    """``path`` or its nearest existing parent (the data dir may not exist yet)."""
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _system_metrics(data_dir: Path) -> SystemMetrics:
    disk = psutil.disk_usage(str(_existing(data_dir)))
    return SystemMetrics(
        cpu_percent=psutil.cpu_percent(interval=None),
        memory_percent=psutil.virtual_memory().percent,
        process_rss_mb=round(psutil.Process().memory_info().rss / 2**20, 1),
        disk_percent=disk.percent,
        disk_free_gb=round(disk.free / 2**30, 2),
    )


def health_penalties(
    sources: list[dict[str, Any]],
    system: SystemMetrics,
    checks: dict[str, Check] | None = None,
    workers: int | None = None,
) -> list[Penalty]:
    """What takes the score below 1, each with its cost (out of 100 points)."""
    found: list[Penalty] = []
    if sources:
        bad = [s for s in sources if s["state"] in _BAD_SOURCE_STATES]
        if bad:
            names = ", ".join(str(s.get("name", "?")) for s in bad)
            found.append(Penalty(reason=f"sources not delivering: {names}",
                                 points=round(60.0 * len(bad) / len(sources), 1)))  # fmt: skip
    for name, check in (checks or {}).items():
        if check.status == "down":
            found.append(Penalty(reason=f"{name} down: {check.detail}"[:200], points=50))
    if workers == 0:
        found.append(Penalty(reason="no worker is running jobs", points=20))
    if system.disk_percent > 95:
        found.append(Penalty(reason=f"disk {system.disk_percent:.0f}% full", points=30))
    elif system.disk_percent > 90:
        found.append(Penalty(reason=f"disk {system.disk_percent:.0f}% full", points=10))
    if system.memory_percent > 95:
        found.append(Penalty(reason=f"memory {system.memory_percent:.0f}% used", points=20))
    return found


def health_score(penalties: list[Penalty]) -> float:
    """1.0 when everything works and the machine has room, down to 0 (the brief's 0.95)."""
    return round(max(0.0, 100.0 - sum(p.points for p in penalties)) / 100, 2)


async def _check(name: str, probe: Any) -> tuple[str, Check]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await probe
    except Exception as exc:  # every failure is a finding, never a 500
        return name, Check(status="down", detail=f"{type(exc).__name__}: {exc}"[:300])
    return name, Check(status="ok")


async def _redis_ping(settings: Settings) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis(
        host=settings.REDIS_HOST or "", port=settings.REDIS_PORT,
        socket_timeout=CHECK_TIMEOUT_S, socket_connect_timeout=CHECK_TIMEOUT_S,
    )  # fmt: skip
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _jobs(service: Service) -> JobsHealth:
    from api import jobs

    queued = running = workers = None
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            counts = await jobs.status_counts(service.db)
        queued, running = counts.get("queued", 0), counts.get("running", 0)
    except Exception as exc:  # the database check reports it as down
        logger.debug("health: job counts unavailable: %s", exc)
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            workers = await service.queue.workers()
    except Exception as exc:
        logger.debug("health: worker count unavailable: %s", exc)
    return JobsHealth(backend=service.queue.kind, queued=queued, running=running, workers=workers)


async def _maxxi(service: Service) -> dict[str, dict[str, Any]]:
    from api.routes.maxxi import latest_statuses

    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            return await latest_statuses(service)
    except Exception:
        return {}


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "A required dependency is down."}},
)
async def get_health(request: Request) -> JSONResponse:
    """Database, Redis, storage, jobs, workers, disk, sources and MAXXI status, with a
    ``health_score`` from 0 to 1 and the reasons it is below 1."""
    runtime: Runtime = request.app.state.runtime
    settings: Settings = request.app.state.settings
    service: Service = request.app.state.service
    probes = [_check("database", service.db.ping())]
    if settings.redis_enabled:
        probes.append(_check("redis", _redis_ping(settings)))
    checks = dict(await asyncio.gather(*probes))
    checks.setdefault("redis", Check(status="off", detail="REDIS_HOST is not set"))
    storage = service.storage.state()
    checks["storage"] = Check(status="down" if storage.full else "ok", detail=storage.detail)
    job_health, maxxi = await asyncio.gather(_jobs(service), _maxxi(service))
    sources = runtime.sources_status()
    system = _system_metrics(settings.HERITAGE_DATA_DIR)
    penalties = health_penalties(sources, system, checks, job_health.workers)
    score = health_score(penalties)
    # Without the database (or a configured Redis) nothing works: 503. A full disk
    # refuses uploads (507) but reads still work: it lowers the score.
    down = any(checks[name].status == "down" for name in REQUIRED if name in checks)
    state: HealthState = (
        "unhealthy" if down or score < 0.5 else "healthy" if score >= 0.8 else "degraded"
    )
    body = HealthResponse(
        status=state,
        health_score=score,
        health_details=penalties,
        version=VERSION,
        environment=settings.ENVIRONMENT,
        installation_id=runtime.config.installation_id,
        uptime_seconds=round(time.monotonic() - runtime.started_at, 3),
        checks=checks,
        jobs=job_health,
        system_metrics=system,
        sources=sources,
        maxxi=maxxi,
    )
    headers = {"Retry-After": RETRY_AFTER_S} if down else None
    return JSONResponse(body.model_dump(mode="json"), status_code=503 if down else 200,
                        headers=headers)  # fmt: skip


class Probe(BaseModel):
    status: Literal["ok", "unavailable"]
    detail: str = ""


@router.get("/health/live", response_model=Probe)
async def live() -> Probe:
    """The process answers (for restart decisions: never depends on other services)."""
    return Probe(status="ok")


@router.get(
    "/health/ready",
    response_model=Probe,
    responses={503: {"model": Probe, "description": "Database unreachable or schema behind."}},
)
async def ready(request: Request) -> JSONResponse:
    """Ready for traffic: the database answers and its schema is current."""
    service: Service = request.app.state.service
    _, check = await _check("database", service.db.check_schema())
    if check.status != "ok":
        return JSONResponse(
            Probe(status="unavailable", detail=check.detail).model_dump(),
            status_code=503,
            headers={"Retry-After": RETRY_AFTER_S},
        )
    return JSONResponse(Probe(status="ok").model_dump())
