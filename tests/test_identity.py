"""Tokens follow their user: removed, disabled, logged-out or re-passworded users lose access.

Each test reproduces an attack from issue 17 against a live server and the real CLI,
and checks the refusal.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from api.security import TokenClaims, hash_password, issue_token, signing_key
from sinks.store import Database, User
from tests.conftest import DATA
from tests.service import Client, api, env_of, settings_for

pytestmark = pytest.mark.timeout(300)
BIN = Path(sys.executable).parent
CACHE_S = 1.0
PASSWORD = "a long enough passphrase"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    settings = settings_for(
        "sqlite", tmp_path_factory.mktemp("identity"), IDENTITY_CACHE_SECONDS=CACHE_S
    )
    with api(settings) as c:
        yield c


def _add_user(client: Client, name: str, role: str = "operator") -> None:
    async def add() -> None:
        db = Database(client.settings, pooled=False)
        try:
            async with db.session() as session:
                session.add(User(username=name, password_hash=hash_password(PASSWORD), role=role))
        finally:
            await db.close()

    asyncio.run(add())


def _login(client: Client, name: str, password: str = PASSWORD) -> httpx.Response:
    return client.http.post("/api/v1/auth/login", json={"username": name, "password": password})


def _token(client: Client, name: str) -> str:
    response = _login(client, name)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def _cli(client: Client, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "heritage-audio"), *args], env=env_of(client.settings),
                          input=stdin, capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip


def _tasks(client: Client, token: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    return client.http.get("/api/v1/tasks", headers=headers).status_code


def _upload(client: Client, token: str) -> int:
    with (DATA / "vad_silence.flac").open("rb") as f:
        return client.http.post(
            "/api/v1/process",
            headers={"Authorization": f"Bearer {token}"},
            files={"audio_file": ("x.flac", f, "application/octet-stream")},
        ).status_code


def _refused_within(check: Callable[[], int], seconds: float) -> float:
    """Poll ``check`` until it answers 401; how long that took (fails past ``seconds``)."""
    started = time.monotonic()
    while (code := check()) != 401:
        assert code in (200, 202), code
        if time.monotonic() - started > seconds:
            pytest.fail(f"still {code} after {seconds} s")
        time.sleep(0.1)
    return time.monotonic() - started


def test_a_removed_users_token_is_refused(client: Client) -> None:
    _add_user(client, "leaver")
    token = _token(client, "leaver")
    assert _upload(client, token) == 202
    assert _cli(client, "users", "remove", "leaver").returncode == 0
    # Another process removed the user: seen within the cache's lifetime, then always.
    _refused_within(lambda: _upload(client, token), CACHE_S + 1.5)
    assert _tasks(client, token) == 401
    assert (
        "no longer exists"
        in client.http.get("/api/v1/tasks", headers={"Authorization": f"Bearer {token}"}).json()[
            "detail"
        ]
    )


def test_a_token_for_a_user_that_never_existed_is_refused(client: Client) -> None:
    key = signing_key(client.settings)
    ghost = TokenClaims(user_id=987_654, username="ghost", version=0)
    assert _tasks(client, issue_token(ghost, "admin", key, timedelta(minutes=5))) == 401
    # A real user's id under another name (or the reverse) is no better.
    admin = client.claims("admin")
    renamed = TokenClaims(user_id=admin.user_id, username="ghost", version=admin.version)
    assert _tasks(client, issue_token(renamed, "admin", key, timedelta(minutes=5))) == 401
    stale = TokenClaims(user_id=admin.user_id, username="admin", version=admin.version - 1)
    assert _tasks(client, issue_token(stale, "admin", key, timedelta(minutes=5))) == 401


def test_a_disabled_user_is_refused_and_enabling_does_not_revive_old_tokens(
    client: Client,
) -> None:
    _add_user(client, "suspended")
    token = _token(client, "suspended")
    assert _tasks(client, token) == 200
    assert _cli(client, "users", "disable", "suspended").returncode == 0
    _refused_within(lambda: _tasks(client, token), CACHE_S + 1.5)
    assert _login(client, "suspended").status_code == 401
    assert "suspended\toperator (disabled)" in _cli(client, "users", "list").stdout
    assert _cli(client, "users", "enable", "suspended").returncode == 0
    time.sleep(CACHE_S + 0.2)
    assert _tasks(client, token) == 401
    assert _tasks(client, _token(client, "suspended")) == 200


def test_logout_all_revokes_every_token_of_the_user(client: Client) -> None:
    _add_user(client, "roamer")
    phone, laptop = _token(client, "roamer"), _token(client, "roamer")
    other = client.token("viewer")
    assert _cli(client, "users", "logout-all", "roamer").returncode == 0
    _refused_within(lambda: _tasks(client, phone), CACHE_S + 1.5)
    assert _tasks(client, laptop) == 401
    assert _tasks(client, other) == 200  # nobody else is logged out
    assert _tasks(client, _token(client, "roamer")) == 200


def test_the_role_comes_from_the_store_not_the_token(client: Client) -> None:
    key = signing_key(client.settings)
    viewer = client.claims("viewer")
    promoted = issue_token(viewer, "admin", key, timedelta(minutes=5))
    headers = {"Authorization": f"Bearer {promoted}"}
    unknown = "00000000-0000-4000-8000-000000000000"
    assert client.http.delete(f"/api/v1/tasks/{unknown}", headers=headers).status_code == 403


def test_a_password_change_revokes_old_tokens_at_once(client: Client) -> None:
    _add_user(client, "rotator")
    old = _token(client, "rotator")
    assert _tasks(client, old) == 200  # now cached as valid
    headers = {"Authorization": f"Bearer {old}"}
    wrong = {"current_password": "not it at all", "new_password": "the next passphrase"}
    assert client.http.post("/api/v1/auth/password", json=wrong, headers=headers).status_code == 401
    short = {"current_password": PASSWORD, "new_password": "short"}
    assert client.http.post("/api/v1/auth/password", json=short, headers=headers).status_code == 422
    body = {"current_password": PASSWORD, "new_password": "the next passphrase"}
    changed = client.http.post("/api/v1/auth/password", json=body, headers=headers)
    assert changed.status_code == 200, changed.text
    # Changed through this process: no wait for the cache.
    assert _tasks(client, old) == 401
    assert _tasks(client, changed.json()["access_token"]) == 200
    assert _login(client, "rotator").status_code == 401
    assert _login(client, "rotator", "the next passphrase").status_code == 200
    # The CLI's password command revokes too.
    fresh = _token_with(client, "rotator", "the next passphrase")
    assert (
        _cli(client, "users", "password", "rotator", stdin="a third passphrase\n").returncode == 0
    )
    _refused_within(lambda: _tasks(client, fresh), CACHE_S + 1.5)
    assert _login(client, "rotator", "a third passphrase").status_code == 200


def _token_with(client: Client, name: str, password: str) -> str:
    response = _login(client, name, password)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def test_api_keys_cannot_change_a_password(client: Client) -> None:
    created = _cli(client, "keys", "create", "robot", "--role", "admin")
    assert created.returncode == 0, created.stderr
    body = {"current_password": "whatever it is", "new_password": "the next passphrase"}
    response = client.http.post(
        "/api/v1/auth/password", json=body, headers={"X-API-Key": created.stdout.strip()}
    )
    assert response.status_code == 403
