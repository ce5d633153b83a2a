"""The API's contract as third parties see it: OpenAPI checked by schemathesis, the
WebSocket's authentication, and the service commands of the CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from config.settings import Settings
from tests.conftest import ROOT
from tests.service import ROLES, Client, api, env_of, settings_for

pytestmark = pytest.mark.timeout(900)
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    with api(settings_for("sqlite", tmp_path_factory.mktemp("api"))) as c:
        # Logged in before schemathesis's wrong passwords lock this address out.
        for role in ROLES:
            c.token(role)
        yield c


def _schemathesis(
    client: Client, *options: str, hooks: bool = False
) -> subprocess.CompletedProcess[str]:
    """``schemathesis run`` with every check and a valid token; with ``hooks``, uploads
    carry real audio (tests/schemathesis_hooks.py)."""
    url = f"{client.http.base_url}/openapi.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if hooks:
        env["SCHEMATHESIS_HOOKS"] = "tests.schemathesis_hooks"
    return subprocess.run(
        [str(BIN / "schemathesis"), "--config-file", str(ROOT / "tests" / "schemathesis.toml"),
         "run", url, "--checks", "all", "--workers", "1",
         # No example database: cases saved by runs against an older schema break generation.
         "--generation-database", "none",
         "--header", f"Authorization: Bearer {client.token('admin')}", "--no-color", *options],
        capture_output=True, text=True, timeout=800, check=False, cwd=ROOT, env=env,
    )  # fmt: skip


def _task_count(client: Client) -> int:
    response = client.http.get("/api/v1/tasks", headers=client.auth(), params={"limit": 1})
    assert response.status_code == 200, response.text
    total: int = response.json()["total"]
    return total


def test_schemathesis_finds_nothing_undocumented_and_no_server_error(client: Client) -> None:
    """Every check schemathesis has, over every operation, with a valid token."""
    result = _schemathesis(client, "--max-examples", "25")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


def test_schemathesis_uploads_real_audio_and_no_upload_is_a_server_error(client: Client) -> None:
    """The upload alone, with many more cases: the hook's audio is accepted and analysed
    (without it every generated body is refused as not audio), and nothing answers 5xx."""
    before = _task_count(client)
    # Every check but negative_data_rejection: once a hook has given a case real audio,
    # schemathesis 4.32 re-marks some positive multipart cases as negative and reports
    # their 202 as "schema-violating request accepted" (ST201, "Invalid component:
    # positive test case"). The negative cases themselves are checked by the test above.
    result = _schemathesis(client, "--include-path", "/api/v1/process", "--max-examples", "60",
                           "--exclude-checks", "negative_data_rejection", hooks=True)  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    accepted = _task_count(client) - before
    assert accepted >= 10, result.stdout[-3000:]


def test_every_route_documents_its_failures(client: Client) -> None:
    spec = client.http.get("/openapi.json").json()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if path.startswith("/health"):
                continue
            assert {"401", "503"} <= codes or path == "/api/v1/auth/login", (method, path)
            if "{task_id}" in path:
                assert {"404", "422"} <= codes, (method, path)
    assert {"413", "415", "422"} <= set(spec["paths"]["/api/v1/process"]["post"]["responses"])


def test_the_websocket_wants_a_token_outside_development(client: Client) -> None:
    ws_url = str(client.http.base_url).replace("http://", "ws://") + "/ws/events"

    async def scenario() -> None:
        async with connect(ws_url) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1008
            assert "unauthorised" in closed.value.rcvd.reason
        async with connect(f"{ws_url}?token=forged") as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
        async with connect(f"{ws_url}?token={client.token('viewer')}") as ws:
            await ws.send('{"action": "subscribe", "types": ["speech.*"]}')
            await asyncio.sleep(0.5)  # still open: a frame would raise on a closed socket
            await ws.ping()

    asyncio.run(scenario())


def test_service_commands(tmp_path: Path) -> None:
    settings = settings_for("sqlite", tmp_path)
    env = env_of(settings)

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "heritage-audio"), *args], env=env, input=stdin,
                              capture_output=True, text=True, timeout=300, check=False)  # fmt: skip

    behind = cli("api", "--port", "1")
    assert behind.returncode == 78
    assert "heritage-audio db upgrade" in behind.stderr
    assert cli("db", "current").returncode == 1
    assert cli("db", "upgrade").returncode == 0
    assert cli("db", "current").returncode == 0
    short = cli("users", "add", "curator", "--role", "operator", stdin="short\n")
    assert short.returncode == 78
    assert (
        cli("users", "add", "curator", "--role", "operator", stdin="a long passphrase\n").returncode
        == 0
    )
    assert (
        cli("users", "add", "curator", "--role", "viewer", stdin="another passphrase\n").returncode
        == 78
    )
    assert "curator\toperator" in cli("users", "list").stdout
    created = cli("keys", "create", "maxxi-archive", "--role", "integration")
    assert created.returncode == 0
    secret = created.stdout.strip()
    assert secret.startswith("ha_")
    assert secret not in cli("keys", "list").stdout

    with api(settings, users=False) as client:
        headers = {"X-API-Key": secret}
        report = {"component": "archive", "status": "maintenance", "message": "disk swap"}
        assert (
            client.http.post("/api/maxxi/status", json=report, headers=headers).status_code == 201
        )
        assert client.http.get("/health").json()["maxxi"]["archive"]["status"] == "maintenance"
        credentials = {"username": "curator", "password": "a long passphrase"}
        login = client.http.post("/api/v1/auth/login", json=credentials)
        assert login.json()["role"] == "operator"
        assert (
            client.http.get("/api/v1/tasks", headers={"X-API-Key": secret + "x"}).status_code == 401
        )
    assert cli("keys", "revoke", "maxxi-archive").returncode == 0
    with api(settings, users=False) as client, httpx.Client(base_url=client.http.base_url) as http:
        assert http.get("/api/v1/tasks", headers={"X-API-Key": secret}).status_code == 401


def _demo_on_all_interfaces(tmp_path: Path, *flags: str) -> tuple[int | None, str]:
    """``run --demo`` in development on 0.0.0.0: the close code a token-less WebSocket
    client gets (None: it received an event) and what the server logged."""
    from tests.conftest import free_port

    port = free_port()
    env = {**os.environ, "ENVIRONMENT": "development", "HERITAGE_DATA_DIR": str(tmp_path)}
    for name in ("HOST", "SECRET_KEY", "DB_HOST", "REDIS_HOST"):
        env.pop(name, None)
    server = subprocess.Popen(
        [str(BIN / "heritage-audio"), "run", "--demo", "--host", "0.0.0.0", "--port", str(port),
         *flags],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip

    async def listen() -> int | None:
        deadline = time.monotonic() + 60
        while True:
            try:
                async with connect(f"ws://127.0.0.1:{port}/ws/events") as ws:
                    try:
                        await asyncio.wait_for(ws.recv(), 20)
                    except ConnectionClosed as closed:
                        return closed.rcvd.code if closed.rcvd else -1
                    return None
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    try:
        code = asyncio.run(listen())
    finally:
        server.terminate()
        _, log = server.communicate(timeout=30)
    return code, log


def test_development_off_loopback_wants_a_websocket_token(tmp_path: Path) -> None:
    assert Settings(ENVIRONMENT="development").bind_host == "127.0.0.1"
    assert Settings(ENVIRONMENT="production", SECRET_KEY="k" * 32, DB_PASSWORD="x").bind_host == (
        "0.0.0.0"
    )
    code, log = _demo_on_all_interfaces(tmp_path / "closed")
    assert code == 1008
    assert "/ws/events asks for a token" in log
    code, log = _demo_on_all_interfaces(tmp_path / "open", "--insecure-open")
    assert code is None  # events flow without a token
    assert "--insecure-open: anyone who can reach 0.0.0.0 may watch live events" in log
