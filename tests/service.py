"""Helpers for the file-analysis service tests: real databases, a served app, a client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.security import TokenClaims, decode_token, hash_password, signing_key
from config.pipeline import PipelineConfig
from config.settings import Settings
from sinks.store import Database, Task, User, upgrade
from stream.runtime import Runtime
from tests.conftest import serving

PG_HOST = "127.0.0.1"
PASSWORD = "correct horse battery staple"
ROLES = ("admin", "operator", "viewer", "integration")


def _admin_sql(sql: str, port: int = 5432) -> None:
    subprocess.run(
        ["psql", "-h", PG_HOST, "-p", str(port), "-U", "postgres", "-d", "postgres",
         "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True, capture_output=True, text=True,
    )  # fmt: skip


@contextmanager
def postgres_database(port: int = 5432) -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the machine's server; dropped afterwards."""
    name = f"heritage_test_{uuid.uuid4().hex[:10]}"
    _admin_sql(f'CREATE DATABASE "{name}"', port)
    try:
        yield name
    finally:
        _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', port)


def settings_for(store: str, data_dir: Path, database: str | None = None, **extra: Any) -> Settings:
    """Settings of a test service: SQLite in ``data_dir``, or the given PostgreSQL database."""
    values: dict[str, Any] = {
        "ENVIRONMENT": "testing",
        "SECRET_KEY": "test-secret-" + uuid.uuid4().hex,
        "HERITAGE_DATA_DIR": data_dir,
        "MAXXI_OUTPUT_DIR": data_dir / "maxxi",
        "REDIS_HOST": None,
    }
    if store == "postgresql":
        values.update(DB_HOST=PG_HOST, DB_USER="postgres", DB_NAME=database, DB_PASSWORD="unused")
    values.update(extra)
    return Settings(**values)


def add_users(settings: Settings) -> None:
    """One user per role, named after it, all with :data:`PASSWORD`."""

    async def add() -> None:
        db = Database(settings, pooled=False)
        try:
            async with db.session() as session:
                for role in ROLES:
                    session.add(
                        User(username=role, password_hash=hash_password(PASSWORD), role=role)
                    )
        finally:
            await db.close()

    upgrade(settings)
    asyncio.run(add())


@contextmanager
def api(settings: Settings, *, users: bool = True) -> Iterator[Client]:
    """The API for ``settings`` on a real uvicorn server; yields a client for it."""
    if users:
        add_users(settings)
    runtime = Runtime(PipelineConfig(sources=[], sinks=[]), settings)
    with serving(runtime) as url, httpx.Client(base_url=url, timeout=60) as http:
        yield Client(http, settings)


class Client:
    """An HTTP client that logs in per role and knows the service's routes."""

    def __init__(self, http: httpx.Client, settings: Settings) -> None:
        self.http = http
        self.settings = settings
        self._tokens: dict[str, str] = {}

    def token(self, role: str = "admin") -> str:
        if role not in self._tokens:
            response = self.http.post(
                "/api/v1/auth/login", json={"username": role, "password": PASSWORD}
            )
            assert response.status_code == 200, response.text
            self._tokens[role] = response.json()["access_token"]
        return self._tokens[role]

    def claims(self, username: str) -> TokenClaims:
        """What a valid token of ``username`` asserts (read from the token login gives)."""
        token = self.token(username)
        return decode_token(token, signing_key(self.settings))

    def auth(self, role: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role)}"}

    def upload(
        self, path: Path, role: str = "operator", name: str | None = None, **fields: Any
    ) -> httpx.Response:
        with path.open("rb") as f:
            return self.http.post(
                "/api/v1/process",
                headers=self.auth(role),
                files={"audio_file": (name or path.name, f, "application/octet-stream")},
                data={k: str(v) for k, v in fields.items()},
            )

    def status(self, task_id: str, role: str = "viewer") -> dict[str, Any]:
        response = self.http.get(f"/api/v1/status/{task_id}", headers=self.auth(role))
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    def stored_task(self, task_id: str) -> Task:
        """The task's database row, read directly (not through the API)."""

        async def read() -> Task:
            db = Database(self.settings, pooled=False)
            try:
                async with db.session() as session:
                    task = await session.get(Task, task_id)
                    assert task is not None, f"no task row {task_id}"
                    return task
            finally:
                await db.close()

        return asyncio.run(read())

    def wait(
        self, task_id: str, timeout: float = 180, until: tuple[str, ...] = ("completed", "failed")
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(task_id)
            if status["status"] in until:
                return status
            if time.monotonic() > deadline:
                pytest.fail(f"task {task_id} still {status['status']} after {timeout} s")
            time.sleep(0.2)


class PrivateCluster:
    """A PostgreSQL server of our own (initdb in a temp dir), to stop and start at will."""

    def __init__(self, port: int) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            pytest.fail("PostgreSQL server binaries are missing: apt install postgresql")
        self.bin = bins[-1]
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="heritage-pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-U", "postgres",
                          "--auth=trust", "-E", "UTF8")  # fmt: skip

    def _as_postgres(self, *argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *argv], check=True,
                       capture_output=True, text=True)  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses={PG_HOST}"
        self._as_postgres(
            str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-w", "-l",
            str(self.dir / "log"), "-o", options, "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-w", "-m",
                          "fast", "stop")  # fmt: skip

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def env_of(settings: Settings) -> dict[str, str]:
    """The environment that gives a subprocess these settings."""
    env = dict(os.environ)
    for name, value in settings.model_dump().items():
        if value is None:
            env.pop(name, None)
        elif hasattr(value, "get_secret_value"):
            env[name] = value.get_secret_value()
        else:
            env[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return env
