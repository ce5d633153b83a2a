"""`heritage-audio aggregate` (faust) on a real broker, against a plain Python computation.

The event log is real pipeline output of three rooms at two sites
(tests/data/events/multisite.jsonl, made by tools/make_event_log.py). The reference
below computes the same windows directly from the definitions, without the app's code.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from aggregate.windows import WindowSpec, combine_rooms
from sinks.kafka import aggregates_topic, dead_letter_topic, events_topic
from tests.kafka_broker import ROOT, Broker

LOG = Path(__file__).parent / "data" / "events" / "multisite.jsonl"
PARTITIONS = 4
FAMILIES = {"1m": (60, 60), "15m": (900, 900), "1h": (3600, 900)}
MALFORMED = [
    b"not json at all",
    json.dumps({"installation_id": "maxxi", "source": "gallery-5", "type": "level"}).encode(),
    json.dumps({"installation_id": "maxxi", "source": "gallery-5", "type": "level", "seq": 5,
                "wall_time": "2026-05-16T14:00:00Z", "rms_dbfs": "loud",
                "peak_dbfs": -1.0}).encode(),
]  # fmt: skip


def _log() -> list[dict[str, Any]]:
    """The recorded log, then one heartbeat per room, as live daemons send every 5 s: a
    record faust skipped at the end of a room's stream shows as a seq gap there."""
    events = [json.loads(line) for line in LOG.read_text().splitlines()]
    last: dict[tuple[str, str], dict[str, Any]] = {}
    for event in events:
        last[event["installation_id"], event["source"]] = event
    heartbeats = [
        {"schema": 1, "type": "heartbeat", "installation_id": e["installation_id"],
         "source": e["source"], "channel": None, "run_id": e["run_id"], "seq": e["seq"] + 1,
         "t_start": e["t_end"], "t_end": e["t_end"], "wall_time": e["wall_time"]}
        for e in last.values()
    ]  # fmt: skip
    return events + heartbeats


def _with_upstream_loss(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A copy of ``events`` where gallery-5 lost three events before reaching Kafka."""
    room = [e for e in events if e["source"] == "gallery-5"]
    lost = {id(e) for e in room[100:103]}
    return [e for e in events if id(e) not in lost]


def reference(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each (site, room, window)'s figures, computed straight from the definitions."""
    acc: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"events": 0, "speech": 0.0, "speakers": set(), "cats": defaultdict(float),
                 "rms": [], "peaks": []}
    )  # fmt: skip
    for e in events:
        t = datetime.fromisoformat(e["wall_time"].replace("Z", "+00:00")).timestamp()
        for name, (size, step) in FAMILIES.items():
            start = int(t // step) * step
            while start > t - size:
                a = acc[f"{e['installation_id']}/{e['source']}/{name}@{start}"]
                a["events"] += 1
                if e["type"] == "speech.ended":
                    a["speech"] += e["duration"]
                elif e["type"] == "speaker.turn":
                    a["speakers"].add(e["speaker"])
                elif e["type"] == "heritage.classified":
                    a["cats"][e["category"]] += e["t_end"] - e["t_start"]
                elif e["type"] == "level":
                    a["rms"].append(e["rms_dbfs"])
                    a["peaks"].append(e["peak_dbfs"])
                start -= step
    result = {}
    for key, a in acc.items():
        size = FAMILIES[key.rsplit("/", 1)[1].split("@")[0]][0]
        cats = a["cats"]
        dominant = max(sorted(cats), key=cats.__getitem__) if cats else None
        result[key] = {
            "events": a["events"],
            "speech_minutes": pytest.approx(a["speech"] / 60, abs=1e-5),
            "distinct_speakers": len(a["speakers"]),
            "dominant_category": dominant,
            "dominant_share": pytest.approx(cats[dominant] / sum(cats.values()), abs=1e-5)
            if dominant else None,
            "occupancy": pytest.approx(min(1.0, a["speech"] / size), abs=1e-5),
            "rms_mean_dbfs": pytest.approx(sum(a["rms"]) / len(a["rms"]), abs=1e-5)
            if a["rms"] else None,
            "peak_max_dbfs": max(a["peaks"]) if a["peaks"] else None,
        }  # fmt: skip
    return result


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "events": record["events"],
        "speech_minutes": record["speech_minutes"],
        "distinct_speakers": record["distinct_speakers"],
        "dominant_category": record["dominant_category"],
        "dominant_share": record["dominant_share"],
        "occupancy": record["occupancy"],
        "rms_mean_dbfs": record["level"]["rms_mean_dbfs"],
        "peak_max_dbfs": record["level"]["peak_max_dbfs"],
    }


def test_hopping_windows_contain_every_instant_four_times() -> None:
    hour = WindowSpec("1h", 3600, 900)
    assert hour.starts(7200.0) == [4500, 5400, 6300, 7200]
    assert hour.starts(7199.9) == [3600, 4500, 5400, 6300]
    assert WindowSpec("1m", 60, 60).starts(61.0) == [60]


def test_site_figures_combine_their_rooms() -> None:
    rows = [
        {"events": 3, "speech_minutes": 0.5, "distinct_speakers": 2, "occupancy": 0.5,
         "category_seconds": {"opera": 10.0}, "level": {"count": 2, "rms_mean_dbfs": -30.0}},
        {"events": 1, "speech_minutes": 0.25, "distinct_speakers": 1, "occupancy": 0.25,
         "category_seconds": {"opera": 5.0, "folk_music": 20.0},
         "level": {"count": 1, "rms_mean_dbfs": -18.0}},
    ]  # fmt: skip
    site = combine_rooms(rows)
    assert site["dominant_category"] == "folk_music"
    assert site["dominant_share"] == pytest.approx(20 / 35)
    assert site["speech_minutes"] == 0.75
    assert site["distinct_speakers"] == 3
    assert site["rms_mean_dbfs"] == pytest.approx(-26.0)


class AggregateApp:
    """`heritage-audio aggregate` as a subprocess on the test broker."""

    def __init__(self, broker: Broker, prefix: str, log_dir: Path) -> None:
        self.env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
                    "KAFKA_TOPIC_PREFIX": prefix, "LOG_LEVEL": "INFO"}  # fmt: skip
        self.log_dir = log_dir
        self.runs = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.runs += 1
        with (self.log_dir / f"aggregate-{self.runs}.log").open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stream", "aggregate"],  # partitions read from the topic
                env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip

    def signal(self, sig: int) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(60)
        self.process = None
        return code

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.log_dir.glob("*.log")))

    def stop(self) -> None:
        if self.alive():
            self.signal(signal.SIGKILL)


@pytest.fixture
def app(kafka_broker: Broker, tmp_path: Path) -> Iterator[AggregateApp]:
    prefix = f"agg{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topics(
        [events_topic(prefix), aggregates_topic(prefix), dead_letter_topic(prefix)], PARTITIONS
    )
    runner = AggregateApp(kafka_broker, prefix, tmp_path)
    try:
        yield runner
    finally:
        runner.stop()


async def _produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def _records(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    return [(f"{e['installation_id']}/{e['source']}".encode(), json.dumps(e).encode())
            for e in events]  # fmt: skip


async def _latest(bootstrap: str, topic: str, until: Any, timeout_s: float) -> dict[str, Any]:
    """The latest value of each key of ``topic``, once ``until(latest)`` holds (or timeout)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    latest: dict[str, Any] = {}
    try:
        async with asyncio.timeout(timeout_s):
            while not until(latest):
                batches = await consumer.getmany(timeout_ms=500)
                for batch in batches.values():
                    for r in batch:
                        latest[r.key.decode()] = (r.value, dict(r.headers or []))
    except TimeoutError:
        pass
    finally:
        await consumer.stop()
    return latest


def _wait_for(app: AggregateApp, broker: Broker, expected: dict[str, Any]) -> dict[str, Any]:
    prefix = app.env["KAFKA_TOPIC_PREFIX"]

    def done(latest: dict[str, Any]) -> bool:
        return (
            not app.alive()
            or {k: _comparable(json.loads(v[0])) for k, v in latest.items()} == expected
        )

    latest = asyncio.run(_latest(broker.bootstrap, aggregates_topic(prefix), done, 180))
    return {k: _comparable(json.loads(v[0])) for k, v in latest.items()}


def test_aggregates_equal_a_plain_computation_and_bad_records_go_to_dead_letter(
    app: AggregateApp, kafka_broker: Broker, tmp_path: Path
) -> None:
    events = _with_upstream_loss(_log())  # a gap nothing can refill: counted as lost
    expected = reference(events)
    prefix = app.env["KAFKA_TOPIC_PREFIX"]
    half = len(events) // 2
    records = _records(events)
    bad = [(f"bad-{i}".encode(), value) for i, value in enumerate(MALFORMED)]
    asyncio.run(_produce(kafka_broker.bootstrap, events_topic(prefix),
                         records[:half] + bad + records[half:]))  # fmt: skip
    app.start()
    got = _wait_for(app, kafka_broker, expected)
    assert app.alive(), app.logs()[-3000:]
    assert got == expected, app.logs()[-3000:]
    dead = asyncio.run(_latest(kafka_broker.bootstrap, dead_letter_topic(prefix),
                               lambda d: False, 5))  # fmt: skip
    reasons = {key: headers["reason"].decode() for key, (_, headers) in dead.items()}
    assert reasons.keys() == {"bad-0", "bad-1", "bad-2"}
    assert reasons["bad-0"].startswith("not JSON")
    assert reasons["bad-1"] == "no wall_time"
    assert reasons["bad-2"].startswith("level: ValueError")
    assert app.signal(signal.SIGTERM) == 0
    _the_api_serves(app, kafka_broker, expected, tmp_path)
    assert "3 malformed" in app.logs()
    assert "3 event(s) lost upstream" in app.logs()
    assert "1 lost upstream" in app.logs()


def _the_api_serves(
    app: AggregateApp, broker: Broker, expected: dict[str, Any], tmp_path: Path
) -> None:
    """End to end: the app's aggregates topic, followed by the API into its database,
    served by /api/v1/sites/{site}/aggregates as the plain computation has it."""
    from tests.service import api, settings_for
    from tests.test_sites import served_figures

    settings = settings_for("sqlite", tmp_path / "api", KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
                            KAFKA_TOPIC_PREFIX=app.env["KAFKA_TOPIC_PREFIX"])  # fmt: skip
    with api(settings) as client:
        deadline = time.monotonic() + 60
        while (served := served_figures(client)) != expected and time.monotonic() < deadline:
            time.sleep(0.5)
    assert served == expected


def test_sigkill_and_restart_give_the_tables_of_a_run_without_the_kill(
    app: AggregateApp, kafka_broker: Broker
) -> None:
    events = _log()
    expected = reference(events)
    prefix = app.env["KAFKA_TOPIC_PREFIX"]
    records = _records(events)
    half = len(records) // 2
    asyncio.run(_produce(kafka_broker.bootstrap, events_topic(prefix), records[:half]))
    app.start()
    # Kill it while it works through the first half.
    seen = asyncio.run(_latest(kafka_broker.bootstrap, aggregates_topic(prefix),
                               lambda latest: len(latest) >= 1, 120))  # fmt: skip
    assert seen, app.logs()[-3000:]
    assert app.signal(signal.SIGKILL) == -signal.SIGKILL
    asyncio.run(_produce(kafka_broker.bootstrap, events_topic(prefix), records[half:]))
    app.start()
    got = _wait_for(app, kafka_broker, expected)
    assert got == expected, app.logs()[-4000:]
    assert app.signal(signal.SIGTERM) == 0
    assert "aggregate: stopped;" in app.logs()


def test_two_workers_share_the_partitions_and_a_rebalance_loses_nothing(
    app: AggregateApp, kafka_broker: Broker, tmp_path: Path
) -> None:
    # The log's three rooms all hash to partitions 1 and 3: a copy of it as a third site
    # whose gallery-5 lands on 2 and auditorium on 0 (murmur2, as every Kafka client).
    log = _log()
    # Interleaved, so that the half sent before one worker leaves reaches every partition.
    events = [x for e in log for x in (e, {**e, "installation_id": "site-3"})]
    assert {_partition(e) for e in events} == set(range(PARTITIONS))
    expected = reference(events)
    prefix = app.env["KAFKA_TOPIC_PREFIX"]
    second = AggregateApp(kafka_broker, prefix, tmp_path / "second")
    (tmp_path / "second").mkdir()
    app.start()
    second.start()
    try:
        deadline = time.monotonic() + 120
        while not _split_between(app, second) and time.monotonic() < deadline:
            time.sleep(0.2)
        records = _records(events)
        half = len(records) // 2
        sources = {f"{e['installation_id']}/{e['source']}" for e in events[:half]}
        asyncio.run(_produce(kafka_broker.bootstrap, events_topic(prefix), records[:half]))
        # Every source of the first half aggregated: both workers counted their share.
        asyncio.run(_latest(kafka_broker.bootstrap, aggregates_topic(prefix),
                            lambda latest: sources <= {k.rsplit("/", 1)[0] for k in latest},
                            120))  # fmt: skip
        # One worker leaves mid-stream: the other takes its partitions and their tables.
        assert second.signal(signal.SIGTERM) == 0
        asyncio.run(_produce(kafka_broker.bootstrap, events_topic(prefix), records[half:]))
        got = _wait_for(app, kafka_broker, expected)
        assert got == expected, app.logs()[-3000:] + second.logs()[-3000:]
        assert app.signal(signal.SIGTERM) == 0
    finally:
        second.stop()
    counted = [int(line.split("stopped; ")[1].split(" ")[0])
               for log in (app.logs(), second.logs())
               for line in log.splitlines() if "aggregate: stopped;" in line]  # fmt: skip
    # Both took part; a rebalance may make one re-read what the other counted, never lose it.
    assert len(counted) == 2
    assert all(counted), counted


def _assignment(app: AggregateApp) -> set[int]:
    """The partitions of the events topic the worker's latest assignment gave it."""
    said = [line for line in app.logs().splitlines() if "aggregate: reading partition(s)" in line]
    if not said:
        return set()
    listed = said[-1].split("reading partition(s) [", 1)[1].split("]", 1)[0]
    return {int(n) for n in listed.split(",") if n.strip()}


def _split_between(*apps: AggregateApp) -> bool:
    """Each worker reads some partitions, and together all of them, none twice."""
    parts = [_assignment(a) for a in apps]
    return all(parts) and sum(map(len, parts)) == PARTITIONS == len(set().union(*parts))


def _partition(event: dict[str, Any]) -> int:
    from aiokafka.partitioner import DefaultPartitioner

    partitions = list(range(PARTITIONS))
    key = f"{event['installation_id']}/{event['source']}".encode()
    number: int = DefaultPartitioner()(key, partitions, partitions)
    return number


def test_a_reread_of_an_older_run_counts_once_and_gaps_are_per_run() -> None:
    from aggregate.windows import count, new_state, verdict

    state = new_state()
    wall = "2026-05-16T14:00:00Z"
    for run_id, seq in [("A", 1), ("A", 2), ("A", 3), ("B", 4), ("B", 5)]:
        assert verdict(state, run_id, seq) == "new"
        count(state, {"type": "heartbeat", "seq": seq, "wall_time": wall}, run_id, seq)
    assert verdict(state, "A", 2) == "duplicate"  # re-read after the daemon restarted
    assert verdict(state, "B", 5) == "duplicate"
    assert verdict(state, "B", 6) == "new"
    assert verdict(state, "B", 8) == "gap"
    assert verdict(state, "C", 1) == "new"  # a daemon that lost its seq starts a new run
    assert state["windows"]["1m@1778940000"]["events"] == 5
