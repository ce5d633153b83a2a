"""The API's WebSocket hub serves what capture daemons publish to Redis (real Redis)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from websockets.asyncio.client import connect

from config.pipeline import PipelineConfig
from config.settings import Settings
from sinks.relay import key_pattern
from stream.events import Level, stamp
from stream.runtime import Runtime
from tests.conftest import serving

pytestmark = pytest.mark.timeout(120)


def _entry(installation: str, seq: int) -> dict[str, str]:
    event = stamp(
        Level(channel=0, t_start=seq, t_end=seq + 0.1, rms_dbfs=-30, peak_dbfs=-20, clipped=0),
        installation_id=installation, source="mic", seq=seq, wall_time=datetime.now(UTC),
    )  # fmt: skip
    return {"event": event.to_json(), "type": event.type, "source": "mic", "seq": str(seq)}


def test_events_from_redis_reach_websocket_clients(tmp_path: Path) -> None:
    prefix = f"relay-test-{uuid.uuid4().hex[:8]}"
    template = prefix + ":{installation_id}:events"
    r = redis.Redis(host="127.0.0.1")
    old = template.format(installation_id="room-1")
    r.xadd(old, _entry("room-1", 1))  # before the API started: history, not live
    settings = Settings(HERITAGE_DATA_DIR=tmp_path, REDIS_HOST="127.0.0.1")
    runtime = Runtime(PipelineConfig(sources=[], sinks=[]), settings)
    try:
        with serving(runtime, relay_pattern=key_pattern(template)) as url:

            async def scenario() -> list[dict[str, object]]:
                async with connect(url.replace("http", "ws") + "/ws/events?types=level") as ws:
                    await asyncio.sleep(1.5)  # the relay has found room-1's stream
                    r.xadd(old, _entry("room-1", 2))
                    r.xadd(template.format(installation_id="room-2"), _entry("room-2", 1))
                    r.xadd(old, {"event": "not json", "type": "level"})  # skipped, reported
                    r.xadd(old, _entry("room-1", 3))
                    received = []
                    while len(received) < 3:
                        received.append(json.loads(await asyncio.wait_for(ws.recv(), 20)))
                    return received

            received = asyncio.run(scenario())
    finally:
        for key in r.scan_iter(prefix + "*"):
            r.delete(key)
    by_room = {(e["installation_id"], e["seq"]) for e in received}
    assert by_room == {("room-1", 2), ("room-1", 3), ("room-2", 1)}
