"""The login lockout under concurrency, the hashing pool's bound, proxy headers, and the
audit of refusals: each attack of issue 17 reproduced against a live server."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import select

from sinks.store import AuditEntry, Database, LoginAttempt
from tests.service import PASSWORD, Client, api, postgres_database, settings_for

pytestmark = pytest.mark.timeout(300)
LIMIT = 5


@contextlib.contextmanager
def _server(store: str, tmp_path: Path, **extra: Any) -> Iterator[Client]:
    """The API on SQLite, PostgreSQL, or SQLite with the counters in Redis ("redis")."""
    with contextlib.ExitStack() as stack:
        name = stack.enter_context(postgres_database()) if store == "postgresql" else None
        if store == "redis":
            store, extra = "sqlite", {"REDIS_HOST": "127.0.0.1", **extra}
        settings = settings_for(store, tmp_path, name, **{"LOGIN_MAX_ATTEMPTS": LIMIT, **extra})
        yield stack.enter_context(api(settings))


async def _logins(client: Client, passwords: list[str], **headers: str) -> list[int]:
    """All the logins at once, as ``operator``; their status codes, in order."""
    async with httpx.AsyncClient(
        base_url=client.http.base_url,
        timeout=120,
        limits=httpx.Limits(max_connections=len(passwords)),
    ) as http:

        async def one(password: str) -> int:
            body = {"username": "operator", "password": password}
            return (await http.post("/api/v1/auth/login", json=body, headers=headers)).status_code

        return list(await asyncio.gather(*(one(p) for p in passwords)))


def _audited(client: Client, action: str, actor: str | None = None) -> list[AuditEntry]:
    async def read() -> list[AuditEntry]:
        db = Database(client.settings, pooled=False)
        try:
            async with db.session() as session:
                query = select(AuditEntry).where(AuditEntry.action == action)
                if actor is not None:
                    query = query.where(AuditEntry.actor == actor)
                return list(await session.scalars(query))
        finally:
            await db.close()

    return asyncio.run(read())


@pytest.mark.parametrize("store", ["sqlite", "postgresql", "redis"])
def test_concurrent_wrong_passwords_are_checked_at_most_limit_times(
    store: str, tmp_path: Path
) -> None:
    with _server(store, tmp_path) as client:
        codes = asyncio.run(_logins(client, [f"wrong-{i}" for i in range(40)]))
        assert codes.count(401) <= LIMIT, codes
        assert codes.count(429) >= 40 - LIMIT, codes
        assert set(codes) <= {401, 429}
        # What the audit log saw: one "login" row per password actually checked.
        assert len(_audited(client, "login", "operator")) == codes.count(401)
        assert len(_audited(client, "login.locked", "operator")) == codes.count(429)


@pytest.mark.parametrize("store", ["sqlite", "postgresql", "redis"])
def test_150_concurrent_guesses_with_the_right_one_check_at_most_limit_passwords(
    store: str, tmp_path: Path
) -> None:
    """The server takes the requests in whatever order they reach it, so the right password
    (sent 60th) may be among the first LIMIT checked, and then it logs in: that is the
    lockout's design (LIMIT tries). What must hold is that no more than LIMIT passwords are
    checked, and that a login succeeds only if its password was one of them."""
    with _server(store, tmp_path) as client:
        guesses = [f"guess-{i}" for i in range(150)]
        guesses[59] = PASSWORD
        codes = asyncio.run(_logins(client, guesses))
        assert codes.count(200) + codes.count(401) <= LIMIT, codes
        assert codes.count(429) >= 150 - LIMIT, codes
        assert [i for i, code in enumerate(codes) if code == 200] in ([], [59]), codes
        checked = _audited(client, "login", "operator")
        assert len(checked) == codes.count(200) + codes.count(401)
        assert sum(entry.ok for entry in checked) == codes.count(200)


def test_with_redis_configured_the_counters_are_redis_keys_not_rows(tmp_path: Path) -> None:
    with _server("redis", tmp_path) as client:
        codes = asyncio.run(_logins(client, [f"wrong-{i}" for i in range(40)]))
        assert codes.count(401) == LIMIT, codes
        keys = redis.Redis().keys(f"heritage:login:{_deployment(client)}:*")
        counts = {k.decode().rsplit(":", 2)[-2]: int(redis.Redis().get(k) or 0) for k in keys}
        assert counts["account"] == 40  # every attempt counted, LIMIT of them checked
        assert 0 < redis.Redis().ttl(keys[0]) <= client.settings.LOGIN_LOCKOUT_SECONDS
        assert _attempt_rows(client) == 0
        # A second deployment on the same Redis (another signing key) counts on its own.
        other = settings_for("sqlite", tmp_path / "other", REDIS_HOST="127.0.0.1",
                             LOGIN_MAX_ATTEMPTS=LIMIT)  # fmt: skip
        with api(other) as second:
            body = {"username": "operator", "password": PASSWORD}
            assert second.http.post("/api/v1/auth/login", json=body).status_code == 200


def _deployment(client: Client) -> str:
    key = client.settings.SECRET_KEY
    assert key is not None
    return hashlib.sha256(key.get_secret_value().encode()).hexdigest()[:16]


def _attempt_rows(client: Client) -> int:
    async def count() -> int:
        db = Database(client.settings, pooled=False)
        try:
            async with db.session() as session:
                return len(list(await session.scalars(select(LoginAttempt))))
        finally:
            await db.close()

    return asyncio.run(count())


def test_a_right_password_gives_its_attempt_back(tmp_path: Path) -> None:
    with _server("sqlite", tmp_path) as client:
        statuses = [
            client.http.post(
                "/api/v1/auth/login", json={"username": "operator", "password": PASSWORD}
            ).status_code
            for _ in range(3 * LIMIT)
        ]
        assert statuses == [200] * 3 * LIMIT  # successes never lock anyone out


def test_a_full_hashing_pool_answers_429_at_once(tmp_path: Path) -> None:
    with _server(
        "sqlite", tmp_path, LOGIN_MAX_ATTEMPTS=1000, PASSWORD_HASH_THREADS=1, PASSWORD_HASH_QUEUE=1
    ) as client:
        codes = asyncio.run(_logins(client, [PASSWORD] * 12))
        assert set(codes) == {200, 429}, codes
        assert codes.count(200) >= 2
        busy = _audited(client, "login.busy", "operator")
        assert len(busy) == codes.count(429)
        # Refused for load, not for the password: nothing counts against the account.
        later = client.http.post(
            "/api/v1/auth/login", json={"username": "operator", "password": PASSWORD}
        )
        assert later.status_code == 200


def test_forwarded_for_from_an_untrusted_peer_is_ignored(tmp_path: Path) -> None:
    with _server("sqlite", tmp_path, LOGIN_MAX_ATTEMPTS=1) as client:
        # Four accounts' worth of failures from one address, each claiming another address.
        codes = []
        for i in range(6):
            body = {"username": f"nobody-{i}", "password": "x"}
            headers = {"X-Forwarded-For": f"203.0.113.{i}"}
            codes.append(
                client.http.post("/api/v1/auth/login", json=body, headers=headers).status_code
            )
        assert codes == [401, 401, 401, 401, 429, 429]
        assert {e.address for e in _audited(client, "login")} == {"127.0.0.1"}


def test_forwarded_for_from_a_trusted_proxy_names_the_client(tmp_path: Path) -> None:
    with _server("sqlite", tmp_path, FORWARDED_ALLOW_IPS="127.0.0.1") as client:
        body = {"username": "nobody", "password": "x"}
        headers = {"X-Forwarded-For": "203.0.113.7"}
        assert client.http.post("/api/v1/auth/login", json=body, headers=headers).status_code == 401
        assert [e.address for e in _audited(client, "login")] == ["203.0.113.7"]


def test_rejected_keys_and_logins_are_audited(tmp_path: Path) -> None:
    with _server("sqlite", tmp_path) as client:
        bad_key = {"X-API-Key": "ha_not-a-real-key-at-all"}
        assert client.http.get("/api/v1/tasks", headers=bad_key).status_code == 401
        # A wrong (even empty) key beside a good token is refused, not passed over.
        for key in ("ha_not-a-real-key-at-all", ""):
            both = {**client.auth("admin"), "X-API-Key": key}
            assert client.http.get("/api/v1/tasks", headers=both).status_code == 401
        assert client.http.get("/api/v1/tasks", headers=client.auth("admin")).status_code == 200
        rejected = _audited(client, "key.rejected")
        assert len(rejected) == 3
        assert rejected[0].address == "127.0.0.1"
        assert not rejected[0].ok
        body = {"username": "operator", "password": "wrong"}
        assert client.http.post("/api/v1/auth/login", json=body).status_code == 401
        assert [e.ok for e in _audited(client, "login", "operator")] == [False]
