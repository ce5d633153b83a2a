"""The Kafka sink against a real Kafka-protocol broker (Tansu): order, outage, spool, TLS/SASL.

Outages use a broker of the test's own, killed and started again on the same port;
Tansu keeps nothing across a restart, so each life of the broker is read on its own
and the two readings are joined, duplicates dropped by (source, run_id, seq).
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from config.errors import ConfigError
from config.settings import Settings
from sinks.bus import Published
from sinks.kafka import KafkaClient, KafkaSink, KafkaSinkConfig, events_topic, record_key
from sinks.kafka_consumer import Dedup
from sinks.metrics import Metrics
from sinks.spool import Spool
from stream.events import Level
from stream.sources_cli import pipeline_config
from tests.kafka_broker import ROOT, Broker, create_topics

SOURCES = ("stage", "hall-a", "hall-b")


def _events(start: int, stop: int, installation_id: str = "site-1") -> list[Published]:
    """Level events of three sources, interleaved, with seq ``start`` to ``stop - 1`` each."""
    items = []
    for seq in range(start, stop):
        for source in SOURCES:
            event = Level(
                installation_id=installation_id, source=source, seq=seq, channel=0,
                t_start=seq / 10, t_end=seq / 10 + 0.1, rms_dbfs=-30.0, peak_dbfs=-12.0,
                clipped=0.0,
            )  # fmt: skip
            items.append(Published(event, event.to_json()))
    return items


def _sink(tmp_path: Path, bootstrap: str, prefix: str, **options: Any) -> KafkaSink:
    fast = {"reconnect_initial_s": 0.05, "reconnect_max_s": 0.3, "close_timeout_s": 2.0,
            "send_timeout_s": 2.0, "partitions": 4}  # fmt: skip
    config = KafkaSinkConfig(topic_prefix=prefix, **{**fast, **options})
    settings = Settings(KAFKA_BOOTSTRAP_SERVERS=bootstrap, HERITAGE_DATA_DIR=tmp_path)
    sink = config.build(settings, Metrics())
    assert isinstance(sink, KafkaSink)
    return sink


async def _read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30) -> list[Any]:
    """Every record of ``topic`` from the start, once at least ``expected`` have arrived."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(records) < expected:
                batches = await consumer.getmany(timeout_ms=500)
                records += [r for batch in batches.values() for r in batch]
        # Nothing more than expected should follow; wait a little to see extras too.
        batches = await consumer.getmany(timeout_ms=300)
        records += [r for batch in batches.values() for r in batch]
    finally:
        await consumer.stop()
    return records


def _per_source(records: list[Any]) -> dict[str, list[int]]:
    """The seq of each source in the order the topic holds them, after dropping duplicates."""
    dedup = Dedup()
    seqs: dict[str, list[int]] = {}
    for record in records:
        event = json.loads(record.value)
        assert record.key == record_key(event["installation_id"], event["source"])
        if dedup.is_new(event):
            seqs.setdefault(event["source"], []).append(event["seq"])
    return seqs


async def _caught_up(sink: KafkaSink, timeout_s: float) -> None:
    """Until the sink delivers directly with nothing spooled."""
    async with asyncio.timeout(timeout_s):
        while not sink.connected or sink.spooled:  # noqa: ASYNC110 - the sink has no event for it
            await asyncio.sleep(0.05)


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker only this test uses, started; the test may kill and restart it."""
    broker = Broker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def test_events_arrive_in_source_order_with_the_websocket_json(
    kafka_broker: Broker, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    items = _events(0, 400)

    async def scenario() -> list[Any]:
        sink = _sink(tmp_path, kafka_broker.bootstrap, prefix, batch_size=250)
        await sink.start()
        for i in range(0, len(items), 250):
            await sink.publish_many(items[i : i + 250])
        assert sink.connected
        await sink.close()
        return await _read_all(kafka_broker.bootstrap, events_topic(prefix), len(items))

    records = asyncio.run(scenario())
    assert len(records) == len(items)  # no duplicates when nothing failed
    assert _per_source(records) == {source: list(range(400)) for source in SOURCES}
    # Byte for byte what the WebSocket and Redis carry.
    assert sorted(r.value.decode() for r in records) == sorted(i.json for i in items)
    # One source, one partition.
    partitions: dict[bytes, set[int]] = {}
    for record in records:
        partitions.setdefault(record.key, set()).add(record.partition)
    assert all(len(p) == 1 for p in partitions.values())


def test_broker_outage_loses_nothing_and_keeps_order(own_broker: Broker, tmp_path: Path) -> None:
    prefix = "outage"
    topic = events_topic(prefix)

    async def scenario() -> tuple[list[Any], list[Any], KafkaSink]:
        sink = _sink(tmp_path, own_broker.bootstrap, prefix, batch_size=100)
        await sink.start()
        for i in range(0, 300, 100):
            await sink.publish_many(_events(0, 100)[i : i + 100])
        before = await _read_all(own_broker.bootstrap, topic, 300)
        own_broker.kill()
        for start in range(100, 300, 50):
            await sink.publish_many(_events(start, start + 50))
        assert not sink.connected
        assert sink.spooled >= 450  # the first batch may have timed out in the producer
        own_broker.start()
        await create_topics(own_broker.bootstrap, [topic])
        for start in range(300, 400, 50):
            await sink.publish_many(_events(start, start + 50))
        await _caught_up(sink, 60)
        await sink.publish_many(_events(400, 410))
        after = await _read_all(own_broker.bootstrap, topic, 3 * 310)
        await sink.close()
        return before, after, sink

    before, after, sink = asyncio.run(scenario())
    assert sink.spooled == 0
    assert _per_source(before + after) == {source: list(range(410)) for source in SOURCES}
    # The second life of the broker got the spool before the events that came after it.
    assert _per_source(after) == {source: list(range(100, 410)) for source in SOURCES}


def test_spool_left_by_an_earlier_run_goes_out_before_new_events(
    kafka_broker: Broker, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    nobody = "127.0.0.1:1"  # nothing listens: the first run can only spool

    async def first_run() -> int:
        sink = _sink(tmp_path, nobody, prefix, close_timeout_s=0.5)
        await sink.start()
        await sink.publish_many(_events(0, 50))
        spooled = sink.spooled
        await sink.close()
        return spooled

    async def second_run() -> list[Any]:
        sink = _sink(tmp_path, kafka_broker.bootstrap, prefix)
        await sink.start()
        await sink.publish_many(_events(50, 60))
        await _caught_up(sink, 30)
        await sink.close()
        return await _read_all(kafka_broker.bootstrap, events_topic(prefix), 180)

    assert asyncio.run(first_run()) == 150
    spool = Spool(tmp_path / "spool" / "kafka", 1 << 20, 4096)
    assert len(spool) == 150  # on disk, waiting
    spool.close()
    records = asyncio.run(second_run())
    assert len(records) == 180
    assert _per_source(records) == {source: list(range(60)) for source in SOURCES}


def _make_tls_files(directory: Path) -> tuple[Path, Path, Path]:
    """A self-signed CA and a client certificate signed by it (openssl), as PEM files."""
    names = ("ca.key", "ca.pem", "client.key", "client.csr", "client.pem")
    ca_key, ca, key, csr, cert = (directory / name for name in names)
    run = ["openssl"]
    subprocess.run([*run, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key,
                    "-out", ca, "-days", "2", "-subj", "/CN=heritage test CA"],
                   check=True, capture_output=True)  # fmt: skip
    subprocess.run([*run, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                    "-subj", "/CN=site-1"], check=True, capture_output=True)  # fmt: skip
    subprocess.run([*run, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                    "-CAcreateserial", "-out", cert, "-days", "2"],
                   check=True, capture_output=True)  # fmt: skip
    return ca, cert, key


def test_tls_and_sasl_settings_render_into_the_client_options(tmp_path: Path) -> None:
    ca, cert, key = _make_tls_files(tmp_path)
    settings = Settings(
        KAFKA_BOOTSTRAP_SERVERS="kafka-0.example:9093,kafka-1.example:9093",
        KAFKA_SECURITY_PROTOCOL="SASL_SSL",
        KAFKA_SASL_MECHANISM="SCRAM-SHA-512",
        KAFKA_SASL_USERNAME="site-1",
        KAFKA_SASL_PASSWORD="s3cret",
        KAFKA_SSL_CAFILE=ca,
        KAFKA_SSL_CERTFILE=cert,
        KAFKA_SSL_KEYFILE=key,
    )
    client = KafkaClient.from_settings(settings)
    options = client.options()
    assert options["bootstrap_servers"] == ["kafka-0.example:9093", "kafka-1.example:9093"]
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "site-1"
    assert options["sasl_plain_password"] == "s3cret"
    context: ssl.SSLContext = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    issuers = [dict(item[0] for item in c["subject"])["commonName"] for c in context.get_ca_certs()]
    assert issuers == ["heritage test CA"]
    assert "s3cret" not in repr(client) + client.describe()

    plain = KafkaClient.from_settings(Settings(KAFKA_BOOTSTRAP_SERVERS="k:9092")).options()
    assert plain == {"bootstrap_servers": ["k:9092"], "security_protocol": "PLAINTEXT"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "KAFKA_BOOTSTRAP_SERVERS"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
         "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "KAFKA_SSL_CAFILE": "/etc/hostname"},
         "use SSL or SASL_SSL"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "KAFKA_SECURITY_PROTOCOL": "SSL",
          "KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "/nonexistent/ca.pem: no such file"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "k:9092", "KAFKA_SECURITY_PROTOCOL": "SSL",
          "KAFKA_SSL_CERTFILE": "/etc/hostname"}, "go together"),
    ],
)  # fmt: skip
def test_incomplete_kafka_security_settings_name_what_is_missing(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        KafkaClient.from_settings(Settings(**env))  # type: ignore[arg-type]


def test_a_site_publishes_to_redis_kafka_or_both(tmp_path: Path) -> None:
    import argparse

    args = argparse.Namespace(config=None, demo=True)
    kinds = {
        name: [s.type for s in pipeline_config(args, Settings(**env)).sinks]  # type: ignore[arg-type]
        for name, env in {
            "none": {},
            "redis": {"REDIS_HOST": "127.0.0.1"},
            "kafka": {"KAFKA_BOOTSTRAP_SERVERS": "k:9092"},
            "both": {"REDIS_HOST": "127.0.0.1", "KAFKA_BOOTSTRAP_SERVERS": "k:9092"},
        }.items()
    }
    assert kinds == {
        "none": [],
        "redis": ["redis_streams"],
        "kafka": ["kafka"],
        "both": ["redis_streams", "kafka"],
    }


def _subscribe(broker: Broker, prefix: str, *extra: str) -> list[dict[str, Any]]:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, "KAFKA_TOPIC_PREFIX": prefix}
    done = subprocess.run(
        [sys.executable, "-m", "stream", "subscribe", "--kafka", "--burst", "--block-ms", "2000",
         *extra],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_subscribe_kafka_resumes_from_the_groups_committed_offsets(
    kafka_broker: Broker, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"

    async def publish(items: list[Published]) -> None:
        sink = _sink(tmp_path, kafka_broker.bootstrap, prefix)
        await sink.start()
        await sink.publish_many(items)
        await sink.close()

    asyncio.run(publish(_events(0, 20)))
    first = _subscribe(kafka_broker, prefix, "--group", "maxxi", "--from", "start")
    assert [(e["source"], e["seq"]) for e in first] != []
    assert sorted((e["source"], e["seq"]) for e in first) == sorted(
        (s, q) for q in range(20) for s in SOURCES
    )
    asyncio.run(publish(_events(20, 25)))
    second = _subscribe(kafka_broker, prefix, "--group", "maxxi", "--from", "start")
    assert sorted((e["source"], e["seq"]) for e in second) == sorted(
        (s, q) for q in range(20, 25) for s in SOURCES
    )
    only_site = _subscribe(
        kafka_broker, prefix, "--group", "other", "--from", "start", "--installation", "nowhere"
    )
    assert only_site == []


def test_dedup_recognises_a_reread_of_an_older_run() -> None:
    dedup = Dedup()
    seen = [
        dedup.is_new({"installation_id": "s", "source": "r", "run_id": run, "seq": seq})
        for run, seq in [("A", 1), ("A", 2), ("B", 3), ("A", 2), ("B", 3), ("B", 4), ("C", 1)]
    ]
    assert seen == [True, True, True, False, False, True, True]
    assert dedup.duplicates == 2
