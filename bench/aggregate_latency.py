"""End-to-end latency from a site's event to its aggregate update, on a real broker.

A Kafka sink (as a site's daemon runs it) publishes level events of two sites at a
steady rate, stamped with the current time; `heritage-audio aggregate` runs as its own
process; a reader of the aggregates topic notes when each event's 1-minute window first
shows it (the window's event count reaches the event's rank in it). Prints p50/p95/p99.

Usage: python bench/aggregate_latency.py [--rate 20] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.kafka_broker

from config.settings import Settings
from sinks.bus import Published
from sinks.kafka import KafkaSink, KafkaSinkConfig, aggregates_topic, events_topic
from sinks.metrics import Metrics
from stream.events import Level
from tests.kafka_broker import Broker, create_topics

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "bench"
SITES = ("site-a", "site-b")


def level(site: str, seq: int, now: datetime) -> Published:
    event = Level(installation_id=site, source="room-1", seq=seq, channel=0, t_start=seq / 10,
                  t_end=seq / 10 + 0.1, wall_time=now, rms_dbfs=-30.0, peak_dbfs=-10.0,
                  clipped=0.0)  # fmt: skip
    return Published(event, event.to_json())


async def run(broker: Broker, data_dir: Path, rate: int, seconds: float) -> list[float]:
    settings = Settings(KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap, HERITAGE_DATA_DIR=data_dir,
                        KAFKA_TOPIC_PREFIX=PREFIX)  # fmt: skip
    sink = KafkaSinkConfig(partitions=4, linger_ms=0).build(settings, Metrics())
    assert isinstance(sink, KafkaSink)
    await sink.start()
    sent: dict[tuple[str, int], float] = {}  # (1m window key, rank in it) -> send time
    ranks: dict[str, int] = {}
    latencies: list[float] = []
    reader = AIOKafkaConsumer(aggregates_topic(PREFIX), bootstrap_servers=broker.bootstrap,
                              auto_offset_reset="latest")  # fmt: skip
    await reader.start()

    async def read() -> None:
        while True:
            batches = await reader.getmany(timeout_ms=200)
            now = time.perf_counter()
            for batch in batches.values():
                for record in batch:
                    row = json.loads(record.value)
                    if row["window"] != "1m":
                        continue
                    key = f"{row['site']}/{row['start']}"
                    sent_at = sent.pop((key, row["events"]), None)
                    if sent_at is not None:
                        latencies.append(now - sent_at)

    reading = asyncio.create_task(read())
    await asyncio.sleep(1)
    seq = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seq += 1
        for site in SITES:
            now = datetime.now(UTC)
            minute = now.replace(second=0, microsecond=0).isoformat().replace("+00:00", "Z")
            key = f"{site}/{minute}"
            ranks[key] = ranks.get(key, 0) + 1
            sent[(key, ranks[key])] = time.perf_counter()
            await sink.publish_many([level(site, seq, now)])
        await asyncio.sleep(len(SITES) / rate)
    await asyncio.sleep(5)
    reading.cancel()
    await reader.stop()
    await sink.close()
    print(f"{sum(ranks.values())} events sent, {len(latencies)} updates seen, {len(sent)} not")
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=20, help="events per second, all sites")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp))
        broker.start()
        names = [events_topic(PREFIX), aggregates_topic(PREFIX), f"{PREFIX}.dead-letter"]
        asyncio.run(create_topics(broker.bootstrap, names, 4))
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
               "KAFKA_TOPIC_PREFIX": PREFIX, "LOG_LEVEL": "WARNING"}  # fmt: skip
        with Path(os.environ.get("AGGREGATE_LOG", Path(tmp) / "aggregate.log")).open("wb") as log:
            app = subprocess.Popen([sys.executable, "-m", "stream", "aggregate"], env=env,
                                   cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            time.sleep(10)  # the group join (about 5 s on Tansu with these timeouts)
            latencies = asyncio.run(run(broker, Path(tmp), args.rate, args.seconds))
        finally:
            app.send_signal(signal.SIGTERM)
            app.wait(30)
            broker.stop()
    if len(latencies) < 2:
        raise SystemExit("no aggregate updates seen")
    q = statistics.quantiles(latencies, n=100)
    print(f"event -> aggregate update at {args.rate} events/s for {args.seconds:.0f} s: "
          f"p50 {q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, p99 {q[98] * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
