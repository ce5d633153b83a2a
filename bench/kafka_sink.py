"""Kafka sink throughput and a broker outage, against a real broker (Tansu from .tools/bin).

1. Throughput: N events of three sources handed to the sink in its batches (as the
   daemon's pump does), timed until the broker acknowledged the last one.
2. With --outage-s S: the broker is killed for S seconds while events keep coming at
   --rate events/s; the sink spools them, and after the restart the topic is read back:
   lost events and per-source order are counted (duplicates dropped by source/run/seq).

Usage: python bench/kafka_sink.py [--events 100000] [--outage-s 300 --rate 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.kafka_broker

from config.settings import Settings
from sinks.bus import Published
from sinks.kafka import KafkaSink, KafkaSinkConfig, events_topic
from sinks.kafka_consumer import Dedup
from sinks.metrics import Metrics
from stream.events import Level
from tests.kafka_broker import Broker, create_topics

SOURCES = ("stage", "hall-a", "hall-b")


def events(start: int, stop: int) -> list[Published]:
    items = []
    for seq in range(start, stop):
        event = Level(
            installation_id="bench-site", source=SOURCES[seq % 3], seq=seq // 3, channel=0,
            t_start=seq / 30, t_end=seq / 30 + 0.1, rms_dbfs=-31.5, peak_dbfs=-12.25, clipped=0.0,
        )  # fmt: skip
        items.append(Published(event, event.to_json()))
    return items


def sink(data_dir: Path, bootstrap: str) -> KafkaSink:
    settings = Settings(KAFKA_BOOTSTRAP_SERVERS=bootstrap, HERITAGE_DATA_DIR=data_dir)
    built = KafkaSinkConfig(partitions=4, reconnect_max_s=2.0, send_timeout_s=3.0).build(
        settings, Metrics()
    )
    assert isinstance(built, KafkaSink)
    return built


async def throughput(broker: Broker, data_dir: Path, count: int) -> float:
    items = events(0, count)
    out = sink(data_dir, broker.bootstrap)
    await out.start()
    started = time.perf_counter()
    for i in range(0, count, out.batch_size):
        await out.publish_many(items[i : i + out.batch_size])
    elapsed = time.perf_counter() - started
    await out.close()
    return count / elapsed


async def read_back(bootstrap: str, topic: str) -> list[dict[str, object]]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    found: list[dict[str, object]] = []
    try:
        while batches := await consumer.getmany(timeout_ms=3000):
            found += [json.loads(r.value) for batch in batches.values() for r in batch]
    finally:
        await consumer.stop()
    return found


async def outage(broker: Broker, data_dir: Path, outage_s: float, rate: int) -> None:
    topic = events_topic(KafkaSinkConfig().topic_prefix or "heritage")
    out = sink(data_dir, broker.bootstrap)
    await out.start()
    seq = 0
    period = 0.1  # publish rate/10 events every 100 ms, as a daemon would

    async def feed(seconds: float) -> None:
        nonlocal seq
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            batch = max(1, int(rate * period))
            await out.publish_many(events(seq, seq + batch))
            seq += batch
            await asyncio.sleep(period)

    await feed(5)
    first_life = await read_back(broker.bootstrap, topic)
    broker.kill()
    down = time.monotonic()
    await feed(outage_s)
    spooled = out.spooled
    broker.start()
    await create_topics(broker.bootstrap, [topic])
    up = time.monotonic()
    await feed(5)
    while not out.connected or out.spooled:  # noqa: ASYNC110 - polling the sink's state
        await asyncio.sleep(0.1)
    caught_up = time.monotonic() - up
    await out.close()
    second_life = await read_back(broker.bootstrap, topic)
    dedup = Dedup()
    per_source: dict[str, list[int]] = {}
    for event in first_life + second_life:
        if dedup.is_new(event):
            per_source.setdefault(str(event["source"]), []).append(int(str(event["seq"])))
    expected = {s: list(range(len(range(i, seq, 3)))) for i, s in enumerate(SOURCES)}
    lost = sum(len(set(expected[s]) - set(per_source.get(s, []))) for s in SOURCES)
    ordered = all(per_source.get(s) == expected[s] for s in SOURCES)
    print(f"outage {time.monotonic() - down - caught_up:.0f} s at {rate} events/s: "
          f"{seq} events published, {spooled} spooled at the restart, {lost} lost, "
          f"order kept: {ordered}, {dedup.duplicates} duplicate(s) dropped, "
          f"spool delivered {caught_up:.1f} s after the restart")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--outage-s", type=float, default=0.0)
    parser.add_argument("--rate", type=int, default=200)
    args = parser.parse_args()
    print(f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()},"
          f" Python {platform.python_version()}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        broker = Broker(Path(tmp))
        broker.start()
        try:
            asyncio.run(create_topics(broker.bootstrap, [events_topic("heritage")]))
            rate = asyncio.run(throughput(broker, Path(tmp) / "a", args.events))
            print(f"throughput: {args.events} events in batches of 500: {rate:,.0f} events/s")
            if args.outage_s:
                broker.kill()
                broker.start()
                asyncio.run(outage(broker, Path(tmp) / "b", args.outage_s, args.rate))
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
