"""Redis Streams delivery: event sizes, how long an outage the spool covers, drain speed.

1. Bytes per event on disk (JSON line) for the demo scene's real event mix, and the
   outage the default 256 MiB spool covers at typical rates.
2. Redis memory per stream entry (MEMORY USAGE of a stream of demo events).
3. Time to deliver a spool of N events to a local Redis after an outage: the sink
   starts with a full spool left by "an earlier run" and drains it.

Needs a Redis server (default redis://127.0.0.1:6379/0); uses and deletes a key of its own.
Usage: python bench/redis_spool.py [--url URL] [--events 30000]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import redis

from config.pipeline import PipelineConfig
from config.settings import Settings
from sinks.metrics import Metrics
from sinks.redis_streams import RedisStreamsSink, RedisStreamsSinkConfig
from sinks.spool import Spool
from stream.events import Event
from stream.pipeline import SourceRunner
from stream.sources import FileSource, FileSourceConfig
from stream.sources.file import demo_scene_path

SPOOL_BYTES = RedisStreamsSinkConfig().spool_max_bytes


def demo_events() -> list[Event]:
    """The events of one pass over the demo scene with the default detectors."""
    events: list[Event] = []
    source = FileSource(FileSourceConfig(name="demo", path=demo_scene_path(), realtime=False))
    SourceRunner(source, PipelineConfig(), events.extend, Metrics()).run(threading.Event())
    return events


def sizes(events: list[Event], url: str) -> None:
    lines = [e.to_json() for e in events]
    per_event = sum(len(line.encode()) + 1 for line in lines) / len(lines)
    rate = len(events) / 60.0
    print(f"1. demo scene: {len(events)} events in 60 s ({rate:.1f}/s, one channel)")
    print(f"   spooled bytes per event: {per_event:.0f}")
    capacity = SPOOL_BYTES / per_event
    for label, r in (("one channel", rate), ("50 events/s", 50.0)):
        print(f"   default spool ({SPOOL_BYTES >> 20} MiB, {capacity:,.0f} events) at {label}: "
              f"{capacity / r / 3600:.1f} h of outage")  # fmt: skip
    key = f"bench:{uuid.uuid4().hex}"
    client = redis.Redis.from_url(url)
    try:
        pipe = client.pipeline(transaction=False)
        for e, line in zip(events, lines, strict=True):
            pipe.xadd(key, {"event": line, "type": e.type, "source": e.source, "seq": e.seq})
        pipe.execute()
        memory = client.memory_usage(key, samples=0) or 0
        print(f"2. Redis memory per stream entry: {memory / len(events):.0f} bytes")
    finally:
        client.delete(key)
        client.close()


async def drain(url: str, count: int, events: list[Event]) -> None:
    installation = f"bench-{uuid.uuid4().hex[:8]}"
    key = f"heritage:{installation}:events"
    with tempfile.TemporaryDirectory() as tmp:
        spool = Spool(Path(tmp), SPOOL_BYTES)
        lines = [
            e.model_copy(update={"installation_id": installation, "seq": i + 1}).to_json()
            for i, e in zip(range(count), events * (count // len(events) + 1), strict=False)
        ]
        spool.append(lines)
        spool.close()
        config = RedisStreamsSinkConfig(url=url, spool_dir=Path(tmp))
        sink = config.build(Settings(), Metrics())
        assert isinstance(sink, RedisStreamsSink)
        started = time.perf_counter()
        await sink.start()
        # Polled: the sink exposes no event for "spool empty", and 10 ms is fine here.
        while sink.spooled:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        await sink.close()
    client = redis.Redis.from_url(url)
    delivered = client.xlen(key)
    client.delete(key)
    client.close()
    print(f"3. spool of {count} events delivered to Redis in {elapsed:.2f} s "
          f"({count / elapsed:,.0f} events/s); entries in Redis: {delivered}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--events", type=int, default=30_000)
    args = parser.parse_args()
    print(f"redis_spool  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}")
    events = demo_events()
    sizes(events, args.url)
    asyncio.run(drain(args.url, args.events, events))


if __name__ == "__main__":
    main()
