"""The FastAPI application factory: analysis API, MAXXI, health, metrics, live events, dashboard."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import Scope
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from api import health, live
from api.deps import ServiceDep, authenticate, client_address, errors, in_networks
from api.headers import SecurityHeaders
from api.routes import (
    admin,
    auth,
    corrections,
    job_events,
    maxxi,
    playback,
    recordings,
    sites,
    tasks,
)
from api.service import DB_ERRORS, Service
from api.uploads import storage_full
from config.settings import Settings
from config.version import VERSION
from sinks.kafka import KafkaClient
from sinks.redis_streams import redis_url_from_settings
from sinks.relay import RedisRelay
from sinks.site_aggregates import AggregatesFollower
from stream.runtime import Runtime

STATIC_DIR = Path(str(resources.files("api") / "static"))
logger = logging.getLogger(__name__)
API_PREFIXES = ("/api/", "/health", "/metrics", "/ws/")


def create_app(
    settings: Settings,
    runtime: Runtime,
    *,
    migrate: bool = True,
    relay_pattern: str | None = None,
    live_open: bool | None = None,
) -> FastAPI:
    """Build the app; its lifespan starts the analysis service and ``runtime``.

    ``migrate``: bring the database schema up to date at start-up (the all-in-one
    ``run``); ``False`` only checks it and refuses to start if it is behind (``api``).
    ``relay_pattern``: with Redis configured, follow the streams of this key pattern
    and serve their events on the WebSocket hub (``api``, fed by capture daemons).
    ``live_open``: ``/ws/events`` without a token (default: in development only; the
    CLI passes ``False`` for a development server on a non-loopback address).
    """

    service = Service(settings, runtime.metrics.registry)
    redis_url = redis_url_from_settings(settings)
    relay = (
        RedisRelay(redis_url, relay_pattern, runtime.bus.publish)
        if relay_pattern and redis_url
        else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start(migrate=migrate)
        app.state.service = service
        if runtime.recording is not None and runtime.config.recorder.analyze:
            runtime.recording.analyse = service.recording_hook(asyncio.get_running_loop())
        await runtime.start()
        relaying = asyncio.create_task(relay.run(), name="redis-relay") if relay else None
        following = (
            asyncio.create_task(follower_of(settings, service).run(), name="site-aggregates")
            if settings.kafka_enabled
            else None
        )
        try:
            yield
        finally:
            for task in (relaying, following):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await runtime.stop()
            await service.stop()

    app = FastAPI(
        title="heritage-audio",
        version=VERSION,
        summary="Real-time audio analysis for museums, exhibitions and sound archives.",
        lifespan=lifespan,
        docs_url="/docs" if settings.docs_enabled else None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.live_open = settings.ENVIRONMENT == "development" if live_open is None else live_open
    for router in (
        health.router,
        auth.router,
        job_events.router,
        tasks.router,
        corrections.router,
        recordings.router,
        sites.router,
        playback.router,
        admin.router,
        maxxi.router,
        live.router,
    ):
        app.include_router(router)

    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        if storage_full(exc):
            service.storage_full_seen()
            logger.error("%s %s: storage full (%s)", request.method, request.url.path, exc)
            return JSONResponse({"detail": "storage full: retry when space has been freed"},
                                status_code=507)  # fmt: skip
        logger.warning("%s %s: database unavailable (%s)", request.method, request.url.path, exc)
        service.metrics.database_up.set(0)
        return JSONResponse(
            {"detail": "the database is unavailable; retry shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    for error in DB_ERRORS:
        app.add_exception_handler(error, database_unavailable)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        """FastAPI's answer, but a 405's ``Allow`` names every method of the path: Starlette
        names only the first route's when a path has one route per method."""
        if exc.status_code == 405:
            headers = {**(exc.headers or {}), "Allow": ", ".join(_allowed(request))}
            exc = StarletteHTTPException(405, exc.detail, headers=headers)
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 with one readable reason (the documented ``{"detail": str}``), not a list."""
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"])
        return JSONResponse({"detail": f"{where}: {first['msg']}"}, status_code=422)

    _add_middleware(app, settings, service)

    @app.get(
        "/metrics",
        response_class=Response,
        tags=["operations"],
        responses={
            200: {"content": {"text/plain": {}}, "description": "Prometheus text format."},
            **errors(401, 403),
        },
        # Open to METRICS_ALLOW_NETWORKS ({}: no credentials), else a token or a key.
        openapi_extra={"security": [{}, {"HTTPBearer": []}, {"APIKeyHeader": []}]},
    )
    async def metrics(request: Request, svc: ServiceDep) -> Response:
        """Prometheus metrics: open to METRICS_ALLOW_NETWORKS, else any authenticated caller."""
        if not in_networks(client_address(request), settings.METRICS_ALLOW_NETWORKS):
            await authenticate(request, svc)
        return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # Last, so every route above wins: "/" is the dashboard, its files sit beside it.
    app.router.routes.append(_ReadOnlyMount("/", StaticFiles(directory=STATIC_DIR, html=True)))
    return app


def follower_of(settings: Settings, service: Service) -> AggregatesFollower:
    """The follower of the Kafka aggregates topic that fills ``/api/v1/sites``."""
    return AggregatesFollower(
        KafkaClient.from_settings(settings), settings.KAFKA_TOPIC_PREFIX, service.db
    )


def _add_middleware(app: FastAPI, settings: Settings, service: Service) -> None:
    """Request metrics, security headers and, from ``FORWARDED_ALLOW_IPS`` only, proxy
    headers (added last, so it runs first and every later step sees the client's address)."""

    @app.middleware("http")
    async def count_requests(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = _route_of(request)
        service.metrics.http_requests.labels(request.method, route, response.status_code).inc()
        service.metrics.http_duration.labels(route).observe(time.perf_counter() - started)
        return response

    app.add_middleware(SecurityHeaders, docs_path=app.docs_url)
    if settings.FORWARDED_ALLOW_IPS.strip():
        # Only these peers may say who the client is; uvicorn's own handling (which
        # trusts 127.0.0.1 unless told otherwise) is off: see uvicorn_config().
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.FORWARDED_ALLOW_IPS)


def uvicorn_config(app: FastAPI, host: str, port: int, **options: Any) -> uvicorn.Config:
    """uvicorn's config for the app. Proxy headers are the app's business (set by
    ``FORWARDED_ALLOW_IPS``): uvicorn would otherwise believe any local peer's
    ``X-Forwarded-For``, letting a local client pick its address past the login lockout."""
    return uvicorn.Config(app, host=host, port=port, proxy_headers=False, **options)


HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed(request: Request) -> list[str]:
    """The methods some route answers at the request's path."""
    routes = request.app.router.routes
    return [
        method
        for method in HTTP_METHODS
        if any(r.matches({**request.scope, "method": method})[0] == Match.FULL for r in routes)
    ]


class _ReadOnlyMount(Mount):
    """The dashboard's files, for GET and HEAD outside the API's paths: everything else falls
    through to the API routes, so ``GET /api/v1/process`` is a 405 with its ``Allow`` header."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and (
            scope["method"] not in ("GET", "HEAD") or scope["path"].startswith(API_PREFIXES)
        ):
            return Match.NONE, {}
        match, child_scope = super().matches(scope)
        if match == Match.FULL:
            child_scope["route"] = self  # labelled "static" in the request metrics
        return match, child_scope


def _route_of(request: Request) -> str:
    """The template of the route the router matched (bounded label values), or 'other'."""
    route = request.scope.get("route")
    if route is None:
        return "other"
    return getattr(route, "path", "other") or "static"
