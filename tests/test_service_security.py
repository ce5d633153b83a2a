"""Who gets in, and what bad input gets: the service's refusals, checked on a live server."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.security import issue_token
from tests.conftest import DATA
from tests.service import PASSWORD, Client, api, settings_for

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    data = tmp_path_factory.mktemp("security")
    settings = settings_for(
        "sqlite", data, MAX_UPLOAD_MB=1, LOGIN_MAX_ATTEMPTS=3, METRICS_ALLOW_NETWORKS="10.0.0.0/8"
    )
    with api(settings) as c:
        yield c


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _get(client: Client, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return client.http.get("/api/v1/tasks", headers=headers).status_code


def test_routes_need_credentials(client: Client) -> None:
    assert _get(client, None) == 401
    assert client.http.get("/api/v1/tasks").headers["www-authenticate"] == "Bearer"
    assert _get(client, client.token("viewer")) == 200
    assert client.http.get("/health").status_code == 200  # the one open route
    with (DATA / "vad_silence.flac").open("rb") as f:
        assert client.http.post("/api/v1/process", files={"audio_file": f}).status_code == 401


def test_forged_and_expired_tokens_are_refused(client: Client) -> None:
    key = client.settings.SECRET_KEY.get_secret_value()  # type: ignore[union-attr]
    admin = client.claims("admin")
    past = datetime.now(UTC) - timedelta(hours=2)
    expired = issue_token(admin, "admin", key, timedelta(minutes=5), now=past)
    assert _get(client, expired) == 401
    forged = issue_token(admin, "admin", "not-the-key-" + "x" * 40, timedelta(minutes=5))
    assert _get(client, forged) == 401
    now = int(datetime.now(UTC).timestamp())
    claims = {
        "sub": str(admin.user_id),
        "name": "admin",
        "ver": admin.version,
        "role": "admin",
        "iss": "heritage-audio",
        "iat": now,
        "exp": now + 600,
    }
    assert _get(client, f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.") == 401
    # RS256 header signed with the HMAC key (algorithm confusion): HS256 only is accepted.
    signing_input = f"{_b64({'alg': 'RS256', 'typ': 'JWT'})}.{_b64(claims)}"
    mac = hmac.new(key.encode(), signing_input.encode(), hashlib.sha256).digest()
    confused = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert _get(client, confused) == 401
    assert _get(client, "garbage") == 401
    assert _get(client, issue_token(admin, "admin", key, timedelta(minutes=5))) == 200


def test_roles_limit_what_a_caller_may_do(client: Client) -> None:
    assert client.upload(DATA / "vad_silence.flac", role="viewer").status_code == 403
    task_id = client.upload(DATA / "vad_silence.flac", role="integration").json()["task_id"]
    assert (
        client.http.delete(f"/api/v1/tasks/{task_id}", headers=client.auth("operator")).status_code
        == 403
    )
    report = {"component": "archive", "status": "ok"}
    assert (
        client.http.post(
            "/api/maxxi/status", json=report, headers=client.auth("viewer")
        ).status_code
        == 403
    )
    assert (
        client.http.post(
            "/api/maxxi/status", json=report, headers=client.auth("integration")
        ).status_code
        == 201
    )
    assert (
        client.http.delete(f"/api/v1/tasks/{task_id}", headers=client.auth("admin")).status_code
        == 204
    )


def test_brute_force_locks_the_account(client: Client) -> None:
    def login(password: str) -> int:
        body = {"username": "operator", "password": password}
        return client.http.post("/api/v1/auth/login", json=body).status_code

    assert [login(f"wrong-{i}") for i in range(3)] == [401, 401, 401]
    locked = client.http.post(
        "/api/v1/auth/login", json={"username": "operator", "password": PASSWORD}
    )
    assert locked.status_code == 429  # even the right password, while locked
    assert int(locked.headers["retry-after"]) > 0
    unknown = client.http.post("/api/v1/auth/login", json={"username": "nobody", "password": "x"})
    assert unknown.status_code == 401


def test_oversize_upload_is_refused_before_the_body_is_read(client: Client) -> None:
    host, port = client.http.base_url.host, client.http.base_url.port
    assert port is not None
    declared = 50 * 1024 * 1024
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(
            f"POST /api/v1/process HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {client.token('operator')}\r\n"
            "Content-Type: multipart/form-data; boundary=xyz\r\n"
            f"Content-Length: {declared}\r\n\r\n".encode()
        )
        s.sendall(b"--xyz\r\n" + b"\0" * 65536)  # a sliver of the 50 MB promised
        reply = s.recv(4096).decode("latin-1")
    assert reply.startswith("HTTP/1.1 413"), reply


def test_oversize_upload_without_length_stops_at_the_limit(client: Client) -> None:
    def body() -> Iterator[bytes]:
        yield b"--b\r\nContent-Disposition: form-data; "
        yield b'name="audio_file"; filename="big.wav"\r\n\r\n'
        for _ in range(40):  # 2.5 MB in all, over the 1 MB limit
            yield b"\1" * 65536
        yield b"\r\n--b--\r\n"

    headers = {**client.auth("operator"), "Content-Type": "multipart/form-data; boundary=b"}
    response = client.http.post("/api/v1/process", content=body(), headers=headers)
    assert response.status_code == 413
    uploads = client.settings.HERITAGE_DATA_DIR / "uploads"
    assert not [p for p in uploads.rglob("*") if p.is_file() and "incoming" in p.name]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("empty.wav", 422), ("not_audio.wav", 415), ("corrupt.wav", 415), ("truncated.flac", 422)],
)
def test_bad_files_get_a_reason_and_change_nothing(
    client: Client, name: str, expected: int
) -> None:
    before = client.http.get("/api/v1/tasks", headers=client.auth()).json()["total"]
    response = client.upload(DATA / name)
    assert response.status_code == expected, response.text
    assert response.json()["detail"]
    assert client.http.get("/api/v1/tasks", headers=client.auth()).json()["total"] == before


def test_bad_form_fields_are_refused(client: Client) -> None:
    for fields in ({"processing_type": "everything"}, {"priority": "asap"}, {"colour": "red"}):
        response = client.upload(DATA / "vad_silence.flac", **fields)
        assert response.status_code == 422, fields
        assert next(iter(fields)) in response.json()["detail"]
    headers = client.auth("operator")
    assert client.http.post("/api/v1/process", headers=headers, data={"a": "b"}).status_code == 415


def test_task_ids_must_be_uuids(client: Client, tmp_path: Path) -> None:
    headers = client.auth()
    for bad in ("not-a-uuid", "..%2F..%2Fetc%2Fpasswd", "1%20OR%201=1"):
        assert client.http.get(f"/api/v1/status/{bad}", headers=headers).status_code in (404, 422)
        assert client.http.get(f"/api/v1/results/{bad}", headers=headers).status_code in (404, 422)
    unknown = "00000000-0000-4000-8000-000000000000"
    assert client.http.get(f"/api/v1/status/{unknown}", headers=headers).status_code == 404
    # A file name cannot place the upload anywhere: only its last component is kept.
    response = client.upload(DATA / "vad_silence.flac", name="../../../../tmp/evil.flac")
    task_id = response.json()["task_id"]
    assert client.status(task_id)["filename"] == "evil.flac"


def test_metrics_need_a_token_outside_the_allowed_networks(client: Client) -> None:
    assert client.http.get("/metrics").status_code == 401
    response = client.http.get("/metrics", headers=client.auth("viewer"))
    assert response.status_code == 200
    assert "heritage_http_requests_total" in response.text
