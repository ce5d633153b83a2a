"""What clients send cannot hurt the server: file names, stored text, refused uploads,
paths in errors, a full disk, file modes, response headers, docs and OpenAPI security.
Each finding of issue 17 reproduced against a live server."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import select

from api.filenames import escaped, normalise
from sinks.store import Database, Result, Task
from tests.conftest import DATA
from tests.service import Client, api, settings_for

pytestmark = pytest.mark.timeout(300)
OPEN_PATHS = ("/api/v1/auth/login", "/api/v1/recordings/{task_id}/audio")


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    with api(settings_for("sqlite", tmp_path_factory.mktemp("hygiene"), MAX_UPLOAD_MB=5)) as c:
        yield c


def _wav(seconds: float = 1.0, seed: int | None = None) -> bytes:
    """A valid WAV of noise whose content (and so hash) is new each call."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    sf.write(buffer, rng.normal(0, 0.1, int(16000 * seconds)).astype(np.float32), 16000,
             format="WAV", subtype="PCM_16")  # fmt: skip
    return buffer.getvalue()


def _post(client: Client, content: bytes, name: str, **fields: str) -> Any:
    """A multipart upload built by hand: the file name's bytes go out exactly as given
    (httpx would percent-encode control characters, as browsers do)."""
    boundary = b"hygiene-boundary"
    parts = [
        b'Content-Disposition: form-data; name="%s"\r\n\r\n%s'
        % (key.encode(), value.encode("utf-8", "surrogatepass"))
        for key, value in fields.items()
    ]
    parts.append(
        b'Content-Disposition: form-data; name="audio_file"; filename="%s"\r\n'
        b"Content-Type: audio/wav\r\n\r\n%s" % (name.encode(), content)
    )
    body = b"".join(b"--%s\r\n%s\r\n" % (boundary, part) for part in parts)
    body += b"--%s--\r\n" % boundary
    headers = {
        **client.auth("operator"),
        "Content-Type": f"multipart/form-data; boundary={boundary.decode()}",
    }
    return client.http.post("/api/v1/process", headers=headers, content=body)


def _uploads(client: Client) -> list[Path]:
    root = client.settings.HERITAGE_DATA_DIR / "uploads"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("../../../../tmp/evil.wav", "evil.wav"),
        ("C:\\Users\\x\\tape.wav", "tape.wav"),
        ("a\x00b\x1b[31m.wav", "ab[31m.wav"),
        ("invoice\u202egpj.wav", "invoicegpj.wav"),
        ("zero\u200bwidth\u2066.wav", "zerowidth.wav"),
        ("x" * 400 + ".wav", "x" * 196 + ".wav"),
        (" .. ", "upload"),
    ],
)
def test_file_names_are_normalised_and_the_original_kept_escaped(
    client: Client, raw: str, stored: str
) -> None:
    response = _post(client, _wav(0.5), raw)
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    assert client.status(task_id)["filename"] == stored
    task = client.stored_task(task_id)
    # python-multipart itself cuts a Windows path (an old browser's habit) to its last part.
    sent = raw.rsplit("\\", 1)[-1] if raw.startswith("C:") else raw
    assert task.options["original_filename"] == escaped(sent)
    assert escaped(raw).isascii()
    assert escaped(raw).isprintable()
    assert normalise(raw) == stored


def test_exports_serialise_any_stored_text(client: Client) -> None:
    response = _post(client, _wav(1.0), "tape\x00.wav", processing_type="metadata",
                     title="bell\x07 and \x00 nul", creator="\ud7ff\x1f")  # fmt: skip
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    assert client.wait(task_id)["status"] == "completed"

    async def plant_nul() -> None:  # as a row written before names were normalised
        db = Database(client.settings, pooled=False)
        try:
            async with db.session() as session:
                task = await session.get(Task, task_id)
                result = await session.scalar(select(Result).where(Result.task_id == task_id))
                assert task is not None
                assert result is not None
                task.filename = "old\x00name.wav"
                result.document = {
                    **result.document,
                    "audio_info": {**result.document["audio_info"], "filename": "old\x00.wav"},
                }
        finally:
            await db.close()

    asyncio.run(plant_nul())
    for fmt in ("xml", "json"):
        served = client.http.get(
            f"/api/maxxi/metadata/{task_id}?format={fmt}", headers=client.auth("integration")
        )
        assert served.status_code == 200, (fmt, served.text)
    xml = client.http.get(
        f"/api/maxxi/metadata/{task_id}?format=xml", headers=client.auth("integration")
    ).text
    assert '<field name="filename">old\ufffd.wav</field>' in xml  # the NUL, replaced


def test_a_refused_upload_leaves_nothing_behind(client: Client) -> None:
    before = _uploads(client)
    for fields in ({"processing_type": "everything"}, {"priority": "asap"}, {"colour": "red"}):
        response = _post(client, _wav(0.5), "valid.wav", **fields)
        assert response.status_code == 422, fields
    assert _post(client, b"RIFF" + os.urandom(2000), "noise.wav").status_code == 415
    assert _post(client, b"", "empty.wav").status_code == 422
    assert _uploads(client) == before


def test_error_messages_never_show_server_paths(client: Client) -> None:
    data_dir = str(client.settings.HERITAGE_DATA_DIR.resolve())
    for name in ("not_audio.wav", "corrupt.wav", "truncated.flac", "empty.wav"):
        response = client.upload(DATA / name)
        assert response.status_code in (415, 422)
        detail = response.json()["detail"]
        assert data_dir not in detail, detail
        assert ".incoming" not in detail, detail
        assert "/" not in detail, detail
    assert "Format not recognised" in client.upload(DATA / "not_audio.wav").json()["detail"]


def test_orphans_are_swept_at_start_up(tmp_path: Path) -> None:
    settings = settings_for("sqlite", tmp_path)
    root = tmp_path / "uploads"
    orphan_sha = "ab" * 32
    (root / "ab").mkdir(parents=True)
    orphan = root / "ab" / orphan_sha
    old_temp = root / ".incoming-crashed"
    fresh_temp = root / ".incoming-in-flight"  # another process is receiving it now
    killed_temp = root / ".incoming-killed"  # its receiver was just killed: nobody holds it
    for path in (orphan, old_temp, fresh_temp, killed_temp):
        path.write_bytes(b"left behind")
    an_hour_ago = time.time() - 3600
    for path in (orphan, old_temp):
        os.utime(path, (an_hour_ago, an_hour_ago))
    receiver = subprocess.Popen(  # holds the lock a receiving API holds (BlobStore.incoming)
        ["flock", "--exclusive", str(fresh_temp), "sleep", "600"]
    )
    try:
        time.sleep(1.5)  # past the sweep's grace for files just written
        with api(settings) as client:
            kept = _post(client, _wav(0.5), "kept.wav")
            assert kept.status_code == 202
        with api(settings, users=False):
            pass  # a second start sweeps again: the referenced upload must survive it
    finally:
        receiver.kill()
        receiver.wait()
    assert not orphan.exists()
    assert not old_temp.exists()
    assert not killed_temp.exists()
    assert fresh_temp.exists()
    assert len([p for p in root.rglob("*") if p.is_file() and len(p.name) == 64]) == 1


@contextlib.contextmanager
def _tiny_disk(path: Path, size: str) -> Iterator[None]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)],
                   check=True, capture_output=True)  # fmt: skip
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True, capture_output=True)


def test_a_full_disk_answers_507_and_shows_in_health(tmp_path: Path) -> None:
    settings = settings_for("sqlite", tmp_path, MAX_UPLOAD_MB=5)
    with _tiny_disk(tmp_path / "uploads", "1m"), api(settings) as client:
        response = _post(client, _wav(40.0), "long.wav")  # 1.3 MB on a 1 MB disk
        assert response.status_code == 507, response.text
        assert response.json()["detail"].startswith("storage full")
        assert _uploads(client) == []
        health = client.http.get("/health")
        assert health.status_code == 200  # reads still work: degraded, not down
        storage = health.json()["checks"]["storage"]
        assert storage["status"] == "down"
        assert "storage full" in storage["detail"]
        assert health.json()["status"] != "healthy"
        assert _post(client, _wav(1.0), "short.wav").status_code == 202  # 32 KB still fits


def test_private_files_have_private_modes(client: Client) -> None:
    data = client.settings.HERITAGE_DATA_DIR
    _post(client, _wav(0.5), "mode.wav")
    assert (data / "heritage-audio.db").stat().st_mode & 0o777 == 0o600
    for wal in data.glob("heritage-audio.db-*"):
        assert wal.stat().st_mode & 0o077 == 0, wal
    assert (data / "uploads").stat().st_mode & 0o777 == 0o700
    for path in _uploads(client):
        assert path.stat().st_mode & 0o077 == 0, path


def test_a_world_readable_database_is_made_private(tmp_path: Path) -> None:
    (tmp_path / "heritage-audio.db").touch(mode=0o644)
    (tmp_path / "heritage-audio.db").chmod(0o644)
    settings = settings_for("sqlite", tmp_path)
    with api(settings):
        assert (tmp_path / "heritage-audio.db").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("path", ["/", "/dashboard.js", "/health", "/api/v1/tasks", "/nowhere"])
def test_every_response_carries_security_headers(client: Client, path: str) -> None:
    response = client.http.get(path)
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_docs_only_in_development_unless_configured(client: Client, tmp_path: Path) -> None:
    assert client.settings.ENVIRONMENT == "testing"
    assert client.http.get("/docs").status_code == 404
    assert client.http.get("/openapi.json").status_code == 200
    with api(settings_for("sqlite", tmp_path, API_DOCS=True), users=False) as opened:
        docs = opened.http.get("/docs")
        assert docs.status_code == 200
        assert "unsafe-inline" in docs.headers["content-security-policy"]


def test_openapi_declares_security_per_route(client: Client) -> None:
    spec = client.http.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "An access token from /api/v1/auth/login.",
    }  # fmt: skip
    assert schemes["APIKeyHeader"]["in"] == "header"
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            security = operation.get("security")
            # Open routes, and the player's link, which a signature in its query authorises.
            if path.startswith("/health") or path in OPEN_PATHS:
                assert security is None, (method, path)
            elif path == "/metrics":
                assert {} in security
            else:
                assert {"HTTPBearer": []} in security, (method, path)
                assert {"APIKeyHeader": []} in security, (method, path)
