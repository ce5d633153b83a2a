"""The file-analysis service end to end, on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from sinks.store import AuditEntry, Database, Result, Task
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
