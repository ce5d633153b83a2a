"""The API's contract as third parties see it: OpenAPI checked by schemathesis, the
WebSocket's authentication, and the service commands of the CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

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


def test_schemathesis_finds_nothing_undocumented_and_no_server_error(client: Client) -> None:
    """Every check schemathesis has, over every operation, with a valid token."""
    url = f"{client.http.base_url}/openapi.json"
    result = subprocess.run(
        [str(BIN / "schemathesis"), "--config-file", str(ROOT / "tests" / "schemathesis.toml"),
         "run", url, "--checks", "all", "--max-examples", "25", "--workers", "1",
         # No example database: cases saved by runs against an older schema break generation.
         "--generation-database", "none",
         "--header", f"Authorization: Bearer {client.token('admin')}", "--no-color"],
        capture_output=True, text=True, timeout=800, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout


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
