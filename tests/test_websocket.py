"""The WebSocket hub with real clients against a real uvicorn server.

The runtime runs without sources; the tests publish exact events into its bus
through ``Runtime.emit``, the same entry point source threads use.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from config.pipeline import PipelineConfig, QueueConfig
from config.settings import Settings
from stream.events import Event, Heartbeat, Level, SourceStatus, SpeakerTurn, SpeechStarted, stamp
from stream.runtime import Runtime
from tests.conftest import serving

Received = list[dict[str, Any]]


@dataclass
class Hub:
    url: str
    runtime: Runtime
    seq: dict[str, int]

    def publish(self, events: list[tuple[str, str, Event]]) -> list[dict[str, Any]]:
        """Stamp (installation, source, event) triples and emit them; returns their JSON."""
        stamped: list[Event] = []
        for installation, source, event in events:
            self.seq[source] = self.seq.get(source, 0) + 1
            stamped.append(
                stamp(event, installation_id=installation, source=source,
                      seq=self.seq[source], wall_time=datetime.now(UTC))
            )  # fmt: skip
        self.runtime.emit(stamped)
        return [json.loads(e.to_json()) for e in stamped]


@pytest.fixture
def hub() -> Iterator[Hub]:
    # Room for a 100 ms stall of this process (the server shares it with the test clients);
    # still a small fraction of what the slow-client test sends.
    config = PipelineConfig(sources=[], queues=QueueConfig(client_events=1000))
    runtime = Runtime(config, Settings())
    with serving(runtime) as url:
        yield Hub(url.replace("http", "ws") + "/ws/events", runtime, {})


def _level(channel: int, t: float) -> Level:
    return Level(channel=channel, t_start=t, t_end=t + 0.1, rms_dbfs=-30, peak_dbfs=-20, clipped=0)


def _mixed(n: int) -> list[tuple[str, str, Event]]:
    """Events over two installations, three sources, two channels and several types."""
    out: list[tuple[str, str, Event]] = []
    for i in range(n):
        installation = "sala-1" if i % 2 else "sala-2"
        source = ("mic-a", "mic-b", "line")[i % 3]
        channel = i % 2
        kind = i % 4
        event: Event
        if kind == 0:
            event = _level(channel, i)
        elif kind == 1:
            event = SpeechStarted(channel=channel, t_start=i, t_end=i + 0.1)
        elif kind == 2:
            event = SpeakerTurn(channel=channel, t_start=i, t_end=i + 1, speaker="Speaker_1",
                                confidence=0.9)  # fmt: skip
        else:
            event = Heartbeat(channel=None, t_start=i, t_end=i, uptime_s=i)
        out.append((installation, source, event))
    return out


async def _receive(ws: ClientConnection, count: int, within: float = 10) -> Received:
    got: Received = []
    async with asyncio.timeout(within):
        while len(got) < count:
            got.append(json.loads(await ws.recv()))
    return got


CLIENTS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "": lambda e: True,
    "?types=speech.*": lambda e: e["type"].startswith("speech."),
    "?source=mic-b": lambda e: e["source"] == "mic-b",
    "?channel=1": lambda e: e["channel"] in (1, None),
    "?installation=sala-1&types=level,heartbeat": lambda e: (
        e["installation_id"] == "sala-1" and e["type"] in ("level", "heartbeat")
    ),
}


def test_each_client_receives_exactly_what_its_filter_asks_for(hub: Hub) -> None:
    async def scenario() -> None:
        sockets = {query: await connect(hub.url + query) for query in CLIENTS}
        await asyncio.sleep(0.2)
        sent = await asyncio.to_thread(hub.publish, _mixed(120))
        for query, ws in sockets.items():
            expected = [e for e in sent if CLIENTS[query](e)]
            assert expected, query
            assert await _receive(ws, len(expected)) == expected, query
            with pytest.raises(TimeoutError):  # and nothing more
                await _receive(ws, 1, within=0.3)
            await ws.close()

    asyncio.run(scenario())


def test_a_new_client_starts_from_a_snapshot_of_current_state(hub: Hub) -> None:
    async def scenario() -> None:
        history = hub.publish([
            ("sala-1", "mic-a", SourceStatus(channel=None, t_start=0, t_end=0, state="running")),
            ("sala-1", "mic-a", _level(0, 1.0)),
            ("sala-1", "mic-a", SpeechStarted(channel=0, t_start=1.2, t_end=1.3)),
            ("sala-1", "mic-a", SpeakerTurn(channel=0, t_start=1.2, t_end=2.0,
                                            speaker="Guide", confidence=0.8)),
            ("sala-1", "mic-a", _level(0, 2.0)),
            ("sala-1", "mic-a", Heartbeat(channel=None, t_start=2, t_end=2, uptime_s=2)),
        ])  # fmt: skip
        await asyncio.sleep(0.2)
        async with connect(hub.url) as ws:
            snapshot = await _receive(ws, 4)
            # Status, speech state, speaker and the latest level; never a stale heartbeat.
            assert [(e["type"], e["seq"]) for e in snapshot] == [
                ("source.status", 1), ("speech.started", 3), ("speaker.turn", 4), ("level", 5)
            ]  # fmt: skip
            assert snapshot[3] == history[4]
            live = hub.publish([("sala-1", "mic-a", _level(0, 3.0))])
            assert await _receive(ws, 1) == live
        async with connect(hub.url + "?types=speaker.turn") as ws:
            assert [e["speaker"] for e in await _receive(ws, 1)] == ["Guide"]

    asyncio.run(scenario())


def test_a_subscribe_message_replaces_the_filter(hub: Hub) -> None:
    async def scenario() -> None:
        async with connect(hub.url) as ws:
            await ws.send(json.dumps({"action": "subscribe", "types": ["speech.started"]}))
            await asyncio.sleep(0.2)
            sent = hub.publish(_mixed(40))
            expected = [e for e in sent if e["type"] == "speech.started"]
            assert await _receive(ws, len(expected)) == expected

    asyncio.run(scenario())


def _stalled_client(url: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads again."""
    host, port = url.removeprefix("ws://").split("/")[0].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws/events HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    assert sock.recv(12) == b"HTTP/1.1 101"
    return sock


def test_a_client_that_stops_reading_never_holds_up_the_others(hub: Hub) -> None:
    async def scenario() -> None:
        async with connect(hub.url) as fast:
            await asyncio.sleep(0.2)
            await exchange(fast)

    async def exchange(fast: ClientConnection) -> None:
        received: Received = []

        async def read_all(total: int) -> None:
            while len(received) < total:
                received.append(json.loads(await fast.recv()))

        # ~8 MB in all, more than loopback's kernel buffers hold, so the stalled client's
        # sends back up. 100 events every 10 ms, but never more than 5 bursts ahead of the
        # reading client (half its queue): server and clients share this process, and on a
        # slow machine a pause of theirs must not be mistaken for the stalled client's
        # doing. Were the stalled client holding the hub up, the reader would stop and the
        # deadline below would fail the test.
        bursts, size, ahead = 300, 100, 5
        total = bursts * size
        reader = asyncio.create_task(read_all(total))
        deadline = asyncio.get_running_loop().time() + 60
        for burst in range(bursts):
            hub.publish([("sala-1", "mic-a", _level(0, burst * size + i)) for i in range(size)])
            await asyncio.sleep(0.01)
            while len(received) < (burst - ahead) * size and not reader.done():
                assert asyncio.get_running_loop().time() < deadline, "the reader was held up"
                await asyncio.sleep(0.005)
        await asyncio.wait_for(reader, 30)
        assert [e["seq"] for e in received] == list(range(1, total + 1))
        dropped = hub.runtime.metrics.registry.get_sample_value(
            "heritage_sink_dropped_events_total", {"sink": "websocket"}
        )
        assert dropped is not None
        assert dropped > 0, "the stalled client's queue is bounded: its oldest events go"

    with _stalled_client(hub.url):  # closed however the scenario ends
        asyncio.run(scenario())


@pytest.mark.parametrize(
    ("query", "message", "code", "reason"),
    [
        ("?types=speech.whispered", None, 1008, "unknown event type 'speech.whispered'"),
        ("?channel=left", None, 1008, "channel: expected channel numbers"),
        ("?colour=blue", None, 1008, "unknown filter field(s): colour"),
        ("", "not json", 1007, "messages must be JSON"),
        ("", json.dumps({"action": "dance"}), 1008, 'expected {"action": "subscribe"'),
        ("", json.dumps({"action": "subscribe", "source": 7}), 1008, "source: expected names"),
    ],
)
def test_protocol_errors_close_with_a_code_and_a_reason(
    hub: Hub, query: str, message: str | None, code: int, reason: str
) -> None:
    async def scenario() -> None:
        async with connect(hub.url + query) as ws:
            if message is not None:
                await ws.send(message)
            with pytest.raises(ConnectionClosed) as closed:
                await _receive(ws, 1, within=5)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == code
            assert reason in closed.value.rcvd.reason

    asyncio.run(scenario())


def test_clients_are_counted_while_connected(hub: Hub) -> None:
    def clients() -> float | None:
        return hub.runtime.metrics.registry.get_sample_value("heritage_websocket_clients")

    async def scenario() -> None:
        async with connect(hub.url), connect(hub.url):
            await asyncio.sleep(0.2)
            assert clients() == 2
        await asyncio.sleep(0.3)
        assert clients() == 0

    asyncio.run(scenario())
