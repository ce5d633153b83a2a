"""The file-analysis service of one API process: store, uploads, job queue, upkeep.

Built in the app's lifespan. It owns the database engine, chooses the job
queue (Celery when Redis is configured, else in-process), re-queues jobs left
behind by a crash or a dead worker, and keeps the job metrics current.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from api import jobs
from api.completion import SWEEP_S as OUTBOX_SWEEP_S
from api.completion import completion_hook, enqueue_missing
from api.guard import PasswordPool, attempt_counter
from api.identity import IdentityCache
from api.queue import CeleryQueue, InProcessQueue, JobQueue
from api.security import signing_key
from api.storage import UploadStorage, is_referenced, referenced_blobs
from config.settings import Settings
from detectors.files import file_sha256
from sinks.store import BlobStore, Database, Task, search, upgrade
from sinks.store.models import JOB_STATUSES, utcnow

logger = logging.getLogger(__name__)

UPKEEP_S = 5.0
DB_ERRORS: tuple[type[Exception], ...]


def _db_errors() -> tuple[type[Exception], ...]:
    from sqlalchemy.exc import DBAPIError, OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    return (OperationalError, DBAPIError, PoolTimeout, OSError, TimeoutError)


DB_ERRORS = _db_errors()
"""What a database that is down or unreachable raises: answered with 503, never 500."""


class ServiceMetrics:
    """Job and HTTP families, registered beside the pipeline's in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.jobs = Counter(
            "heritage_jobs", "File-analysis jobs finished, by outcome.", ["status"], registry=r
        )
        self.job_duration = Histogram(
            "heritage_job_duration_seconds",
            "Wall time from start to end of a file-analysis job.",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600),
            registry=r,
        )
        self.queue_depth = Gauge(
            "heritage_job_queue_depth", "File-analysis jobs waiting to run.", registry=r
        )
        self.jobs_running = Gauge(
            "heritage_jobs_running", "File-analysis jobs being run now.", registry=r
        )
        self.workers = Gauge("heritage_job_workers", "Workers able to run jobs.", registry=r)
        self.requeued = Counter(
            "heritage_jobs_requeued", "Jobs queued again after their worker went away.", registry=r
        )
        self.http_requests = Counter(
            "heritage_http_requests",
            "HTTP requests answered, by method, route and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "heritage_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.database_up = Gauge(
            "heritage_database_up", "1 while the database answers.", registry=r
        )


class Service:
    """Everything the HTTP routes need, for the life of one API process."""

    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.db = Database(settings)
        self.blobs = BlobStore(settings.HERITAGE_DATA_DIR / "uploads")
        self.storage = UploadStorage(self.blobs)
        self.signing_key = signing_key(settings)
        self.identities = IdentityCache(self.db, settings.IDENTITY_CACHE_SECONDS)
        self.passwords = PasswordPool(settings.PASSWORD_HASH_THREADS, settings.PASSWORD_HASH_QUEUE)
        self.attempts = attempt_counter(settings, self.db, self.signing_key)
        self.metrics = ServiceMetrics(registry)
        self.on_complete = completion_hook(settings, self.db)
        self.queue: JobQueue = (
            CeleryQueue(settings)
            if settings.redis_enabled
            else InProcessQueue(self.run_job, settings.WORKER_CONCURRENCY)
        )
        self.database_ok = False
        self._unsent: dict[str, int] = {}
        self._requeue_after_outage = False
        self._undiscarded: set[str] = set()  # refused uploads the database's absence kept
        self._upkeep: asyncio.Task[None] | None = None
        self._outbox: asyncio.Task[None] | None = None
        self._seen_until: datetime = utcnow()
        self._outbox_swept = time.monotonic()

    async def start(self, *, migrate: bool) -> None:
        """Bring the schema up (``migrate``) or check it, then re-queue what was left behind."""
        if migrate:
            await asyncio.to_thread(upgrade, self.settings)
        await self.db.check_schema()
        self.database_ok = True
        temps, stored = await asyncio.to_thread(self.storage.sweep, await referenced_blobs(self.db))
        if temps or stored:
            logger.info("start-up: removed %d half-received and %d unreferenced upload files",
                        temps, stored)  # fmt: skip
        await self.index_recordings()
        await self.queue.start()
        # Jobs a crash left running, and every queued job (a restarted broker may have
        # lost its messages; a duplicate delivery is harmless), go back to the queue.
        for task_id, priority in await jobs.requeue_stale(self.db) + await jobs.queued(self.db):
            await self.submit(task_id, priority)
        self._upkeep = asyncio.create_task(self._upkeep_loop(), name="job-upkeep")
        from sinks.maxxi_outbox import OutboxDispatcher  # httpx and lxml, only for the API

        await enqueue_missing(self.settings, self.db)
        self._outbox = asyncio.create_task(
            OutboxDispatcher(self.db, self.settings).run(), name="maxxi-outbox"
        )

    async def index_recordings(self) -> None:
        """Search rows for results stored before recording search existed."""
        done = 0
        while True:
            async with self.db.session() as session:
                missing = await search.unindexed(session)
                for task_id in missing:
                    await search.reindex(session, task_id)
            done += len(missing)
            if len(missing) < search.INDEX_BATCH:
                break
        if done:
            logger.info("recording search: %d earlier results indexed", done)

    async def stop(self) -> None:
        for task in (self._upkeep, self._outbox):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.queue.stop()
        self.passwords.close()
        await self.attempts.close()
        await self.db.close()

    def storage_full_seen(self) -> None:
        self.storage.full_seen()

    async def discard_unreferenced(self, sha256: str) -> None:
        """Remove a stored upload whose task was not recorded, unless a task names it;
        with the database down it stays, and upkeep tries again once it is back."""
        try:
            if not await is_referenced(self.db, sha256):
                self.blobs.remove(sha256)
        except DB_ERRORS as exc:
            self._undiscarded.add(sha256)
            self._requeue_after_outage = True
            logger.warning("upload %s kept until the database is back: %s", sha256[:12], exc)
        else:
            self._undiscarded.discard(sha256)

    async def submit_file(
        self,
        path: Path,
        *,
        processing_type: str = "comprehensive",
        priority: int = jobs.PRIORITIES["low"],
        submitted_by: str = "recorder",
    ) -> str:
        """Queue the analysis of a file already on this machine (a finished recording).

        The file is linked (or copied) into the blob store first, so retention may
        delete the recording without touching the job.
        """
        sha256, size = await asyncio.to_thread(self._store_local, path)
        task = Task(
            id=str(uuid.uuid4()), status="queued", processing_type=processing_type,
            priority=priority, filename=path.name, content_sha256=sha256, size_bytes=size,
            options={}, submitted_by=submitted_by,
        )  # fmt: skip
        async with self.db.session() as session:
            session.add(task)
        await self.submit(task.id, task.priority)
        return task.id

    def _store_local(self, path: Path) -> tuple[str, int]:
        sha256 = file_sha256(path)
        self.blobs.add_file(path, sha256)
        return sha256, path.stat().st_size

    def recording_hook(self, loop: asyncio.AbstractEventLoop) -> Callable[[Path], None]:
        """For the recorder's writer thread: each finished recording becomes a job."""

        def submit(path: Path) -> None:
            future = asyncio.run_coroutine_threadsafe(self.submit_file(path), loop)
            try:
                task_id = future.result(timeout=60)
            except Exception as exc:
                logger.error("recorder: %s was not queued for analysis: %s", path.name, exc)
            else:
                logger.info("recorder: %s queued for analysis as task %s", path.name, task_id)

        return submit

    async def run_job(self, task_id: str) -> None:
        """Executor body of the in-process queue.

        A job the database's absence stopped (not claimed, or its result not stored)
        is dropped by the queue; upkeep puts every queued job back once the database
        answers again, and the lease of a claimed one runs out (``requeue_stale``).
        """
        try:
            await jobs.execute(self.db, self.settings, task_id, on_complete=self.on_complete)
        except DB_ERRORS:
            self._requeue_after_outage = True
            raise

    async def submit(self, task_id: str, priority: int) -> None:
        """Hand a durable job to the queue; if that fails, upkeep retries it."""
        try:
            await self.queue.submit(task_id, priority)
        except Exception as exc:
            logger.warning("job %s stays queued: the queue is unreachable (%s)", task_id, exc)
            self._unsent[task_id] = priority
        else:
            self._unsent.pop(task_id, None)

    async def _upkeep_loop(self) -> None:
        while True:
            await asyncio.sleep(UPKEEP_S)
            try:
                await self.upkeep()
            except DB_ERRORS as exc:
                self.database_ok = False
                self._requeue_after_outage = True
                self.metrics.database_up.set(0)
                logger.warning("job upkeep: database unavailable (%s)", exc)
            except Exception:
                logger.exception("job upkeep failed")

    async def upkeep(self) -> None:
        """Re-queue abandoned jobs, retry unsent ones, refresh the job metrics."""
        if self._requeue_after_outage:
            # An executor or worker may have dropped a job it could not claim while the
            # database was away; a second delivery of a live job is a no-op (the claim).
            queued = await jobs.queued(self.db)
            self._requeue_after_outage = False
            logger.info("database back: %d queued job(s) sent to the queue again", len(queued))
            for task_id, priority in queued:
                await self.submit(task_id, priority)
            for sha256 in list(self._undiscarded):
                await self.discard_unreferenced(sha256)
        if time.monotonic() - self._outbox_swept >= OUTBOX_SWEEP_S:
            await enqueue_missing(self.settings, self.db)
            self._outbox_swept = time.monotonic()
        for task_id, priority in await jobs.requeue_stale(self.db):
            self.metrics.requeued.inc()
            await self.submit(task_id, priority)
        for task_id, priority in list(self._unsent.items()):
            await self.submit(task_id, priority)
        counts = await jobs.status_counts(self.db)
        self.database_ok = True
        self.metrics.database_up.set(1)
        self.metrics.queue_depth.set(counts.get("queued", 0))
        self.metrics.jobs_running.set(counts.get("running", 0))
        with contextlib.suppress(Exception):
            self.metrics.workers.set(await self.queue.workers())
        for status, seconds, completed_at in await jobs.completed_since(self.db, self._seen_until):
            if status in JOB_STATUSES:
                self.metrics.jobs.labels(status).inc()
            if seconds is not None:
                self.metrics.job_duration.observe(seconds)
            self._seen_until = max(self._seen_until, completed_at)
