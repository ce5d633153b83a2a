"""The MAXXI outbox: callbacks retried until a real HTTP receiver recovers, dead letters, replay.

The API runs on a real uvicorn server with SQLite (and PostgreSQL for the main
case); MAXXI is a local HTTP server that answers from a script of statuses, or
is not listening at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, update

from sinks.maxxi import DELIVERY_HEADER, verify_signature
from sinks.store import Database, OutboxItem, Task
from sinks.store.models import utcnow
from tests.conftest import DATA, free_port
from tests.service import Client, api, postgres_database, settings_for

SECRET = "maxxi-outbox-secret"
FAST_RETRY = {
    "MAXXI_CALLBACK_SECRET": SECRET,
    "MAXXI_CALLBACK_BACKOFF_S": 0.2,
    "MAXXI_CALLBACK_MAX_BACKOFF_S": 0.4,
}


class Receiver:
    """MAXXI's callback endpoint: answers ``script`` in turn (then 200), records every request."""

    def __init__(self, port: int | None = None) -> None:
        self.script: list[int] = []
        self.always: int | None = None
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.port = port or free_port()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/maxxi/callback"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers.items()), body))
                status = receiver.script.pop(0) if receiver.script else receiver.always or 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                del format, args

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.stop()


def _until(condition: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s")
        time.sleep(0.1)
    return value


def _outbox(client: Client, status: str, role: str = "admin") -> list[dict[str, Any]]:
    response = client.http.get(
        "/api/maxxi/outbox", params={"status": status}, headers=client.auth(role)
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()
    return items


def _complete_a_job(client: Client) -> str:
    task_id: str = client.upload(DATA / "vad_silence.flac", processing_type="quick").json()[
        "task_id"
    ]
    assert client.wait(task_id)["status"] == "completed"
    return task_id


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_a_failing_receiver_gets_the_callback_once_it_recovers_with_one_delivery_id(
    store: str, tmp_path: Path, receiver: Receiver
) -> None:
    receiver.script = [503, 500, 429]  # then 200
    receiver.start()
    with contextlib.ExitStack() as stack:
        name = stack.enter_context(postgres_database()) if store == "postgresql" else None
        settings = settings_for(
            store, tmp_path, name, MAXXI_CALLBACK_URL=receiver.url, **FAST_RETRY
        )
        client = stack.enter_context(api(settings))
        task_id = _complete_a_job(client)
        [item] = _until(lambda: _outbox(client, "delivered"))
        assert item["task_id"] == task_id
        assert item["attempts"] == 4
        assert item["last_status"] == 200
        assert _outbox(client, "pending") == _outbox(client, "dead") == []
    assert len(receiver.requests) == 4
    assert {headers[DELIVERY_HEADER] for headers, _ in receiver.requests} == {item["delivery_id"]}
    for headers, body in receiver.requests:
        assert verify_signature(body, headers, SECRET)  # each attempt signed afresh
        assert json.loads(body)["task_id"] == task_id


def test_an_unreachable_receiver_becomes_a_dead_letter_that_an_admin_replays(
    tmp_path: Path, receiver: Receiver
) -> None:
    # Nothing listens at the receiver's port yet: every attempt is "unreachable".
    settings = settings_for(
        "sqlite", tmp_path, MAXXI_CALLBACK_URL=receiver.url, MAXXI_CALLBACK_RETRY_FOR_S=1.5,
        **FAST_RETRY,
    )  # fmt: skip
    with api(settings) as client:
        task_id = _complete_a_job(client)
        [dead] = _until(lambda: _outbox(client, "dead"))
        assert dead["task_id"] == task_id
        assert dead["attempts"] >= 2  # retried for the whole period, not once
        assert dead["last_status"] is None
        assert "unreachable" in dead["last_error"]

        for role in ("operator", "viewer", "integration"):
            response = client.http.get("/api/maxxi/outbox", headers=client.auth(role))
            assert response.status_code == 403
            replay = client.http.post(
                f"/api/maxxi/outbox/{dead['id']}/replay", headers=client.auth(role)
            )
            assert replay.status_code == 403
        assert _outbox(client, "dead") == [dead]  # refused replays changed nothing

        receiver.start()
        replay = client.http.post(f"/api/maxxi/outbox/{dead['id']}/replay", headers=client.auth())
        assert replay.status_code == 200, replay.text
        assert replay.json()["status"] == "pending"
        [delivered] = _until(lambda: _outbox(client, "delivered"))
        assert delivered["id"] == dead["id"]
        again = client.http.post(f"/api/maxxi/outbox/{dead['id']}/replay", headers=client.auth())
        assert again.status_code == 409
        missing = client.http.post("/api/maxxi/outbox/999999/replay", headers=client.auth())
        assert missing.status_code == 404
        # An id past the database's integers is refused, not a server error (schemathesis).
        huge = client.http.post(f"/api/maxxi/outbox/{2**80}/replay", headers=client.auth())
        assert huge.status_code == 422
    [(headers, _)] = receiver.requests
    assert headers[DELIVERY_HEADER] == dead["delivery_id"]


def test_a_refusal_is_a_dead_letter_at_once(tmp_path: Path, receiver: Receiver) -> None:
    receiver.always = 400
    receiver.start()
    settings = settings_for("sqlite", tmp_path, MAXXI_CALLBACK_URL=receiver.url, **FAST_RETRY)
    with api(settings) as client:
        _complete_a_job(client)
        [dead] = _until(lambda: _outbox(client, "dead"))
        assert dead["attempts"] == 1
        assert dead["last_status"] == 400
    assert len(receiver.requests) == 1


def _crash_before_the_outbox_row(settings: Any, task_id: str, completed_ago_s: float) -> None:
    """The state a crash between a job's completion and its outbox insert leaves: the
    task completed ``completed_ago_s`` ago, with its result, and no callback row."""

    async def rewrite() -> None:
        db = Database(settings, pooled=False)
        try:
            async with db.session() as session:
                await session.execute(delete(OutboxItem).where(OutboxItem.task_id == task_id))
                await session.execute(
                    update(Task)
                    .where(Task.id == task_id)
                    .values(
                        maxxi_notified_at=None,
                        completed_at=utcnow() - timedelta(seconds=completed_ago_s),
                    )
                )
        finally:
            await db.close()

    asyncio.run(rewrite())


def test_a_completed_task_without_its_callback_row_gets_one_at_start_up(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.start()
    settings = settings_for("sqlite", tmp_path, MAXXI_CALLBACK_URL=receiver.url,
                            MAXXI_CALLBACK_RETRY_FOR_S=3600, **FAST_RETRY)  # fmt: skip
    with api(settings) as client:
        crashed = _complete_a_job(client)
        too_old = _complete_a_job(client)  # beyond the retry period: would be dead by now
        too_new = _complete_a_job(client)  # may still be in its completion hook
        _until(lambda: len(_outbox(client, "delivered")) == 3)
    _crash_before_the_outbox_row(settings, crashed, completed_ago_s=120)
    _crash_before_the_outbox_row(settings, too_old, completed_ago_s=7200)
    _crash_before_the_outbox_row(settings, too_new, completed_ago_s=5)
    receiver.requests.clear()
    with api(settings, users=False) as client:
        [item] = _until(lambda: _outbox(client, "delivered"))
        assert item["task_id"] == crashed
        assert _outbox(client, "pending") == _outbox(client, "dead") == []
    with api(settings, users=False) as client:  # a second start adds nothing twice
        assert [i["task_id"] for i in _outbox(client, "delivered")] == [crashed]
    [(headers, body)] = receiver.requests
    assert verify_signature(body, headers, SECRET)
    assert json.loads(body)["task_id"] == crashed
