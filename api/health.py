"""``GET /health``: is this process doing its job, and how is the machine."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

import psutil
from fastapi import APIRouter, Request
from pydantic import BaseModel

from config.settings import Settings
from config.version import VERSION
from stream.runtime import Runtime

router = APIRouter(tags=["operations"])

_BAD_SOURCE_STATES = {"lost", "error"}


class SystemMetrics(BaseModel):
    cpu_percent: float
    memory_percent: float
    process_rss_mb: float
    disk_percent: float
    disk_free_gb: float


class HealthResponse(BaseModel):
    status: Literal["healthy", "degraded", "unhealthy"]
    health_score: int
    version: str
    environment: str
    installation_id: str
    uptime_seconds: float
    system_metrics: SystemMetrics
    sources: list[dict[str, Any]]


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


def health_score(sources: list[dict[str, Any]], system: SystemMetrics) -> int:
    """100 when every source delivers audio and the machine has room; less for each problem."""
    score = 100.0
    if sources:
        bad = sum(1 for s in sources if s["state"] in _BAD_SOURCE_STATES)
        score -= 60.0 * bad / len(sources)
    if system.disk_percent > 95:
        score -= 30
    elif system.disk_percent > 90:
        score -= 10
    if system.memory_percent > 95:
        score -= 20
    return max(0, round(score))


@router.get("/health", response_model=HealthResponse)
def get_health(request: Request) -> HealthResponse:
    """Process and machine health with a 0-100 score; no authentication."""
    runtime: Runtime = request.app.state.runtime
    settings: Settings = request.app.state.settings
    sources = runtime.sources_status()
    system = _system_metrics(settings.HERITAGE_DATA_DIR)
    score = health_score(sources, system)
    status: Literal["healthy", "degraded", "unhealthy"] = (
        "healthy" if score >= 80 else "degraded" if score >= 50 else "unhealthy"
    )
    return HealthResponse(
        status=status,
        health_score=score,
        version=VERSION,
        environment=settings.ENVIRONMENT,
        installation_id=runtime.config.installation_id,
        uptime_seconds=round(time.monotonic() - runtime.started_at, 3),
        system_metrics=system,
        sources=sources,
    )
