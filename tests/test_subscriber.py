"""`heritage-audio subscribe` against the shared Redis: acks, claims, signals and the webhook."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
import redis.asyncio

from config.settings import Settings
from sinks.bus import Published
from sinks.metrics import Metrics
from sinks.redis_streams import RedisStreamsSinkConfig
from sinks.subscriber import DeliveryError, Subscriber, SubscriberConfig
from stream.cli import build_parser
from stream.events import Level
from stream.subscribe_cli import subscriber_config

URL = "redis://127.0.0.1:6379/0"
GROUP = "maxxi"
CLI = [sys.executable, "-m", "stream.cli", "subscribe", "--url", URL]


@pytest.fixture
def stream() -> Iterator[str]:
    """A unique stream key on the shared Redis, deleted (with its groups) afterwards."""
    key = f"heritage:test-{uuid.uuid4().hex[:12]}:events"
    yield key
    with redis.Redis.from_url(URL) as client:
        client.delete(key)


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    with redis.Redis.from_url(URL, decode_responses=True) as c:
        yield c


def _publish(stream: str, count: int, tmp_path: Path) -> list[str]:
    """Publish ``count`` events through the real sink; their JSON, in order."""
    installation = stream.split(":")[1]
    events = [
        Level(
            installation_id=installation, source="stage", seq=seq, channel=0,
            t_start=seq / 10, t_end=seq / 10 + 0.1, rms_dbfs=-30.0, peak_dbfs=-12.0, clipped=0.0,
        )
        for seq in range(count)
    ]  # fmt: skip

    async def send() -> None:
        config = RedisStreamsSinkConfig(url=URL, spool_dir=tmp_path / "spool")
        sink = config.build(Settings(), Metrics())
        await sink.publish_many([Published(e, e.to_json()) for e in events])
        await sink.close()

    asyncio.run(send())
    return [e.to_json() for e in events]


def _config(stream: str, **options: object) -> SubscriberConfig:
    base = {"url": URL, "stream": stream, "start": "start", "burst": True, "block_ms": 100}
    return SubscriberConfig.model_validate({**base, **options})


def _pending(client: redis.Redis, stream: str) -> int:
    count: int = client.xpending(stream, GROUP)["pending"]
    return count


def test_the_cli_prints_every_event_once_in_order_and_acknowledges_them(
    stream: str, client: redis.Redis, tmp_path: Path
) -> None:
    sent = _publish(stream, 250, tmp_path)
    proc = subprocess.run(
        [*CLI, "--stream", stream, "--from", "start", "--burst", "--block-ms", "100"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == sent
    assert _pending(client, stream) == 0


def test_a_new_group_from_new_skips_what_came_before(
    stream: str, client: redis.Redis, tmp_path: Path
) -> None:
    _publish(stream, 10, tmp_path)
    out = io.StringIO()
    delivered = asyncio.run(Subscriber(_config(stream, start="new"), out).run())
    assert delivered == 0
    assert out.getvalue() == ""
    assert client.xinfo_groups(stream)[0]["name"] == GROUP


def test_entries_a_dead_consumer_read_are_claimed_and_delivered(
    stream: str, client: redis.Redis, tmp_path: Path
) -> None:
    sent = _publish(stream, 100, tmp_path)
    client.xgroup_create(stream, GROUP, id="0")
    client.xreadgroup(GROUP, "dead", {stream: ">"}, count=30)  # read, never acknowledged
    assert _pending(client, stream) == 30
    time.sleep(0.1)  # longer than claim_idle_ms below

    out = io.StringIO()
    asyncio.run(Subscriber(_config(stream, consumer="alive", claim_idle_ms=50), out).run())
    assert out.getvalue().splitlines() == sent  # the claimed 30 first, then the rest
    assert _pending(client, stream) == 0


@dataclass
class Webhook:
    """A local HTTP receiver: answers each POST with the next status from ``statuses``."""

    statuses: list[int]
    redis: redis.Redis
    stream: str
    requests: list[tuple[str, str, int, bool]] = field(default_factory=list)
    """(entry id, body, status answered, whether the entry was still pending then)."""
    hold: threading.Event | None = None
    """When set up, every request waits for it (a receiver that hangs)."""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                entry_id = self.headers["X-Heritage-Entry-Id"]
                if hook.hold is not None:
                    hook.hold.wait(30)
                pending = bool(hook.redis.xpending_range(hook.stream, GROUP, entry_id, entry_id, 1))
                status = hook.statuses.pop(0) if hook.statuses else 200
                hook.requests.append((entry_id, body, status, pending))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def webhook(stream: str, client: redis.Redis) -> Iterator[tuple[Webhook, str]]:
    """A receiver on 127.0.0.1 (never beyond this machine), with its URL."""
    hook = Webhook(statuses=[], redis=client, stream=stream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), hook.handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hook, f"http://127.0.0.1:{server.server_address[1]}/events"
    finally:
        if hook.hold is not None:
            hook.hold.set()
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_webhook_retries_a_failure_and_acknowledges_only_after_success(
    stream: str, client: redis.Redis, tmp_path: Path, webhook: tuple[Webhook, str]
) -> None:
    hook, url = webhook
    hook.statuses = [500]  # the first POST fails, its retry succeeds
    sent = _publish(stream, 5, tmp_path)
    config = _config(stream, webhook=url, retry_initial_s=0.05, retry_max_s=0.1)
    assert asyncio.run(Subscriber(config).run()) == 5

    statuses = [status for _, _, status, _ in hook.requests]
    assert statuses == [500, 200, 200, 200, 200, 200]
    assert hook.requests[0][:2] == hook.requests[1][:2]  # the same entry, sent again
    assert [body for _, body, status, _ in hook.requests if status == 200] == sent
    assert all(pending for *_, pending in hook.requests)  # not acknowledged before its 2xx
    assert _pending(client, stream) == 0


def test_a_refused_event_stays_pending_and_the_subscriber_fails(
    stream: str, client: redis.Redis, tmp_path: Path, webhook: tuple[Webhook, str]
) -> None:
    hook, url = webhook
    hook.statuses = [422]  # a final refusal: not retried
    _publish(stream, 3, tmp_path)
    with pytest.raises(DeliveryError, match="HTTP 422"):
        asyncio.run(Subscriber(_config(stream, webhook=url)).run())
    assert len(hook.requests) == 1
    assert _pending(client, stream) == 3


def test_a_subscriber_killed_mid_delivery_leaves_its_entries_to_the_next_one(
    stream: str, client: redis.Redis, tmp_path: Path, webhook: tuple[Webhook, str]
) -> None:
    hook, url = webhook
    hook.hold = threading.Event()  # the receiver hangs: the entries stay unacknowledged
    sent = _publish(stream, 20, tmp_path)
    victim = subprocess.Popen(
        [*CLI, "--stream", stream, "--from", "start", "--consumer", "victim", "--webhook", url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait(lambda: _has_group(client, stream) and _pending(client, stream) == 20)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    hook.hold.set()
    hook.hold = None
    time.sleep(0.1)  # longer than claim_idle_ms below

    out = io.StringIO()
    asyncio.run(Subscriber(_config(stream, consumer="heir", claim_idle_ms=50), out).run())
    assert out.getvalue().splitlines() == sent
    assert _pending(client, stream) == 0


def test_sigterm_stops_the_subscriber_with_exit_code_0(stream: str, client: redis.Redis) -> None:
    proc = subprocess.Popen(
        [*CLI, "--stream", stream, "--block-ms", "200"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait(lambda: _has_group(client, stream) and _consumers(client, stream) == 1)
        os.kill(proc.pid, signal.SIGTERM)
        _, stderr = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, stderr
    assert "stopped; 0 event(s) delivered" in stderr


def _has_group(client: redis.Redis, stream: str) -> bool:
    return bool(client.exists(stream)) and bool(client.xinfo_groups(stream))


def _consumers(client: redis.Redis, stream: str) -> int:
    return len(client.xinfo_consumers(stream, GROUP))


def _wait(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` for up to 30 s."""
    deadline = time.monotonic() + 30
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def test_a_stream_deleted_under_a_running_subscriber_is_read_again_from_its_start(
    stream: str, tmp_path: Path
) -> None:
    # What a Redis restarted without persistence looks like to a consumer: no stream, no group.
    out = io.StringIO()

    async def scenario() -> None:
        subscriber = Subscriber(_config(stream, burst=False, start="new"), out)
        running = asyncio.create_task(subscriber.run())
        async with asyncio.timeout(30), redis.asyncio.Redis.from_url(URL) as client:
            while not (await client.exists(stream) and await client.xinfo_groups(stream)):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            await client.delete(stream)  # the subscriber is blocked reading it
            await asyncio.to_thread(_publish, stream, 10, tmp_path)
            while out.getvalue().count("\n") < 10 and not running.done():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        subscriber.stop()
        await running

    asyncio.run(scenario())
    assert [json.loads(line)["seq"] for line in out.getvalue().splitlines()] == list(range(10))


def test_the_command_line_defaults_to_redis_host_and_the_installation_stream() -> None:
    args = build_parser().parse_args(["subscribe", "--installation", "maxxi-hall-2", "--burst"])
    config = subscriber_config(args, Settings(REDIS_HOST="redis.local", REDIS_PORT=6380))
    assert (config.url, config.stream, config.group) == (
        "redis://redis.local:6380/0", "heritage:maxxi-hall-2:events", "maxxi"
    )  # fmt: skip
    assert (config.start, config.claim_idle_ms, config.burst) == ("new", 60_000, True)
    fallback = subscriber_config(args, Settings(REDIS_HOST=None))
    assert fallback.url == "redis://127.0.0.1:6379/0"
