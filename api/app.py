"""The FastAPI application factory: health, metrics, live events and the dashboard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api import health, live
from config.settings import Settings
from config.version import VERSION
from stream.runtime import Runtime

STATIC_DIR = Path(str(resources.files("api") / "static"))


def create_app(settings: Settings, runtime: Runtime) -> FastAPI:
    """Build the app; its lifespan starts ``runtime`` and stops it on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="heritage-audio",
        version=VERSION,
        lifespan=lifespan,
        docs_url="/docs" if settings.ENVIRONMENT != "production" else None,
    )
    app.state.settings = settings
    app.state.runtime = runtime
    app.include_router(health.router)
    app.include_router(live.router)

    @app.get("/metrics", include_in_schema=True, response_class=Response, tags=["operations"])
    def metrics() -> Response:
        """Prometheus metrics in the text exposition format."""
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # Last, so every route above wins: "/" is the dashboard, its files sit beside it.
    app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="dashboard")
    return app
