"""The file-analysis service end to end, on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from sqlalchemy import func, select

from sinks.maxxi import verify_signature
from sinks.store import AuditEntry, Database, MaxxiFeedback, Result, Task
from tests.conftest import DATA
from tests.service import Client, api, postgres_database, settings_for

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(params=["sqlite", "postgresql"])
def client(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Client]:
    if request.param == "sqlite":
        with api(settings_for("sqlite", tmp_path)) as c:
            yield c
    else:
        with postgres_database() as name, api(settings_for("postgresql", tmp_path, name)) as c:
            yield c


def _count(client: Client, model: type, **where: object) -> int:
    async def count() -> int:
        db = Database(client.settings, pooled=False)
        try:
            async with db.session() as session:
                query = select(func.count()).select_from(model)
                for column, value in where.items():
                    query = query.where(getattr(model, column) == value)
                return int(await session.scalar(query) or 0)
        finally:
            await db.close()

    return asyncio.run(count())


def test_upload_poll_and_read_the_result(client: Client) -> None:
    path = DATA / "vad_clean.flac"
    answer = client.upload(path, processing_type="quick", priority="high", title="Guided tour")
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["status"] == "queued"
    task_id = body["task_id"]

    status = client.wait(task_id)
    assert status["status"] == "completed", status
    assert status["progress"] == 1.0
    assert status["priority"] == 3
    assert status["started_at"] <= status["completed_at"]
    assert status["processing_time"] > 0

    document = client.http.get(f"/api/v1/results/{task_id}", headers=client.auth("viewer")).json()
    assert document["task_id"] == task_id
    assert document["audio_info"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert document["audio_info"]["filename"] == "vad_clean.flac"
    assert document["audio_info"]["duration"] == pytest.approx(20.0, abs=0.01)
    assert set(document["results"]) == {"voice_activity"}  # quick: voice activity only
    segments = document["results"]["voice_activity"]["segments"]
    assert segments
    assert all(s["end"] > s["start"] for s in segments)
    assert _count(client, Result, task_id=task_id) == 1

    listing = client.http.get("/api/v1/tasks?status=completed", headers=client.auth("viewer"))
    assert [t["task_id"] for t in listing.json()["items"]] == [task_id]


def test_identical_uploads_share_one_file(client: Client) -> None:
    path = DATA / "vad_silence.flac"
    first = client.upload(path, processing_type="quick").json()["task_id"]
    second = client.upload(path, processing_type="quick", name="copy.flac").json()["task_id"]
    assert first != second
    stored = [p for p in (client.settings.HERITAGE_DATA_DIR / "uploads").rglob("*") if p.is_file()]
    assert len(stored) == 1
    assert stored[0].name == hashlib.sha256(path.read_bytes()).hexdigest()
    for task_id in (first, second):
        assert client.wait(task_id)["status"] == "completed"

    # Deleting one task keeps the shared file; deleting the last removes it.
    assert (
        client.http.delete(f"/api/v1/tasks/{first}", headers=client.auth("admin")).status_code
        == 204
    )
    assert stored[0].exists()
    assert (
        client.http.delete(f"/api/v1/tasks/{second}", headers=client.auth("admin")).status_code
        == 204
    )
    assert not stored[0].exists()
    assert client.http.get(f"/api/v1/status/{second}", headers=client.auth()).status_code == 404
    assert _count(client, AuditEntry, action="task.deleted") == 2
    assert _count(client, Task) == 0


class _Callbacks(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers.items()), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def maxxi_receiver() -> Iterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A local HTTP server standing in for MAXXI's callback endpoint."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Callbacks)
    _Callbacks.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/maxxi/callback", _Callbacks.received
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_maxxi_export_archive_and_signed_callback(
    store: str, tmp_path: Path, maxxi_receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    url, received = maxxi_receiver
    secret = "maxxi-shared-secret"
    with contextlib.ExitStack() as stack:
        name = stack.enter_context(postgres_database()) if store == "postgresql" else None
        settings = settings_for(
            store, tmp_path, name, MAXXI_CALLBACK_URL=url, MAXXI_CALLBACK_SECRET=secret
        )
        client = stack.enter_context(api(settings))
        answer = client.upload(
            DATA / "vad_clean.flac", title="Oral history 12", creator="Museum archive",
            rights="CC BY 4.0", processing_type="comprehensive",
        )  # fmt: skip
        task_id = answer.json()["task_id"]
        assert client.wait(task_id)["status"] == "completed"

        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(received) == 1
        headers, body = received[0]
        assert verify_signature(body, headers, secret)
        assert not verify_signature(body + b" ", headers, secret)
        export = json.loads(body)
        assert export["task_id"] == task_id

        archived = list((tmp_path / "maxxi").rglob(f"{task_id}.json"))
        assert len(archived) == 1
        assert json.loads(archived[0].read_bytes()) == export
        assert not [p for p in (tmp_path / "maxxi").rglob("*") if p.name.startswith(".")]

        served = client.http.get(
            f"/api/maxxi/metadata/{task_id}", headers=client.auth("integration")
        )
        assert served.status_code == 200
        document = client.http.get(f"/api/v1/results/{task_id}", headers=client.auth()).json()
        assert set(document["results"]) == {
            "voice_activity", "speaker_recognition", "heritage_classification",
            "metadata_generation",
        }  # fmt: skip
        assert "Oral history 12" in served.text
        assert "CC BY 4.0" in served.text
        xml = client.http.get(
            f"/api/maxxi/metadata/{task_id}?format=xml", headers=client.auth("integration")
        )
        assert xml.headers["content-type"].startswith("application/xml")
        assert b"Oral history 12" in xml.content

        correction = {
            "task_id": task_id, "kind": "correction",
            "corrections": {"category": "spoken_word", "speakers": {"Speaker_1": "Anna Rossi"}},
        }  # fmt: skip
        posted = client.http.post(
            "/api/maxxi/results", json=correction, headers=client.auth("integration")
        )
        assert posted.status_code == 201
        assert _count(client, MaxxiFeedback, task_id=task_id, kind="correction") == 1
        task = client.stored_task(task_id)
        assert task.maxxi_notified_at is not None
        unknown = {**correction, "task_id": "00000000-0000-4000-8000-000000000000"}
        assert (
            client.http.post(
                "/api/maxxi/results", json=unknown, headers=client.auth("integration")
            ).status_code
            == 404
        )


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_migrations_build_exactly_the_models(store: str, tmp_path: Path) -> None:
    """Alembic's autogenerate finds nothing to add: the migrations and the models agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from sinks.store import Base, upgrade
    from sinks.store.search import include_name

    def diff(connection: object) -> list[object]:
        context = MigrationContext.configure(connection, opts={"include_name": include_name})  # type: ignore[arg-type]
        return list(compare_metadata(context, Base.metadata))

    async def compare(settings: object) -> list[object]:
        db = Database(settings, pooled=False)  # type: ignore[arg-type]
        try:
            async with db.engine.connect() as connection:
                return await connection.run_sync(diff)
        finally:
            await db.close()

    with contextlib.ExitStack() as stack:
        name = stack.enter_context(postgres_database()) if store == "postgresql" else None
        settings = settings_for(store, tmp_path, name)
        upgrade(settings)
        assert asyncio.run(compare(settings)) == []


def test_recordings_become_jobs_whose_results_the_api_serves(tmp_path: Path) -> None:
    from config.pipeline import PipelineConfig
    from stream.recorder import RecorderConfig
    from stream.runtime import Runtime
    from stream.sources import FileSourceConfig
    from tests.conftest import serving
    from tests.service import add_users

    settings = settings_for("sqlite", tmp_path)
    add_users(settings)
    recordings = tmp_path / "recordings"
    config = PipelineConfig(
        sources=[FileSourceConfig(name="gallery", path=DATA / "vad_clean.flac", realtime=False)],
        recorder=RecorderConfig(enabled=True, directory=recordings, analyze=True),
    )
    runtime = Runtime(config, settings)
    with serving(runtime) as url, httpx.Client(base_url=url, timeout=60) as http:
        client = Client(http, settings)
        deadline = time.monotonic() + 180
        while True:
            files = sorted(recordings.rglob("*.flac"))
            tasks = client.http.get("/api/v1/tasks", headers=client.auth("viewer")).json()
            done = [t for t in tasks["items"] if t["status"] == "completed"]
            if files and len(done) == len(files):
                break
            assert time.monotonic() < deadline, (files, tasks)
            time.sleep(0.5)
    assert {t["filename"] for t in done} == {f.name for f in files}
    assert {t["processing_type"] for t in done} == {"comprehensive"}
    assert not list(recordings.rglob("*.json"))  # results live in the store, not beside
