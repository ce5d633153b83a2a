"""The Redis Streams sink against real Redis servers: order, fields, trimming, outages, the spool.

Outages use a redis-server of the test's own on a free port, killed and started
again on the same port; the shared server at 6379 only serves the steady case.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from config.errors import ConfigError
from config.pipeline import load_pipeline_config
from config.settings import Settings
from sinks.base import pump
from sinks.bus import EventBus, Published
from sinks.metrics import Metrics
from sinks.redis_streams import RedisStreamsSink, RedisStreamsSinkConfig, redis_url_from_settings
from sinks.spool import SEGMENT_SUFFIX
from stream.cli import _pipeline_config
from stream.events import Level
from tests.conftest import free_port

SHARED_URL = "redis://127.0.0.1:6379/0"


class RedisServer:
    """A redis-server of this test's own, without persistence, that can be killed and restarted."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(port=self.port, socket_timeout=1) as client:
                    client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL: Redis vanishes at once, with everything it held in memory."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def freeze(self) -> None:
        """SIGSTOP: Redis stops answering but keeps its connections and what it holds."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private Redis, not started: the test starts (and kills) it when it wants."""
    server = RedisServer(tmp_path)
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def installation() -> Iterator[str]:
    """A unique installation id, its stream deleted from the shared Redis afterwards."""
    installation_id = f"test-{uuid.uuid4().hex[:12]}"
    yield installation_id
    with redis.Redis.from_url(SHARED_URL) as client:
        client.delete(
            f"heritage:{installation_id}:events", f"heritage:{installation_id}:events:published"
        )


def _events(start: int, stop: int, installation_id: str = "hall") -> list[Published]:
    """Level events of source "stage" with seq ``start`` to ``stop - 1``, serialized once."""
    items = []
    for seq in range(start, stop):
        event = Level(
            installation_id=installation_id, source="stage", seq=seq, channel=0,
            t_start=seq / 10, t_end=seq / 10 + 0.1, rms_dbfs=-30.0, peak_dbfs=-12.0, clipped=0.0,
        )  # fmt: skip
        items.append(Published(event, event.to_json()))
    return items


def _sink(metrics: Metrics, tmp_path: Path, url: str, **options: object) -> RedisStreamsSink:
    fast = {"reconnect_initial_s": 0.05, "reconnect_max_s": 0.2, "close_timeout_s": 1.0}
    config = RedisStreamsSinkConfig.model_validate(
        {"url": url, "spool_dir": tmp_path / "spool", **fast, **options}
    )
    sink = config.build(Settings(), metrics)
    assert isinstance(sink, RedisStreamsSink)
    return sink


async def _publish(sink: RedisStreamsSink, items: list[Published]) -> None:
    """Hand ``items`` to the sink in batches, as the pump does."""
    for start in range(0, len(items), sink.batch_size):
        await sink.publish_many(items[start : start + sink.batch_size])


async def _until(condition: Callable[[], bool]) -> None:
    """Wait for ``condition``, at most 30 s (the sink offers no event to wait on)."""
    async with asyncio.timeout(30):
        while not condition():  # noqa: ASYNC110 - polling another component's state
            await asyncio.sleep(0.01)


def _seqs(client: redis.Redis, key: str) -> list[int]:
    return [int(fields["seq"]) for _, fields in client.xrange(key)]


def _metric(metrics: Metrics, name: str, sink: RedisStreamsSink) -> float | None:
    return metrics.registry.get_sample_value(name, {"sink": sink.name})


def test_events_arrive_in_order_with_their_fields_and_the_stream_is_trimmed(
    tmp_path: Path, installation: str
) -> None:
    items = _events(0, 3000, installation)

    async def scenario() -> None:
        metrics = Metrics()
        sink = _sink(metrics, tmp_path, SHARED_URL, maxlen=1000)
        bus = EventBus(metrics)
        subscription = bus.subscribe(sink.name, maxsize=10_000)
        pumping = asyncio.create_task(pump(sink, subscription, metrics))
        bus.publish(item.event for item in items)
        await _until(lambda: len(subscription) == 0)
        bus.close()
        await pumping  # the pump closes the sink
        assert _metric(metrics, "heritage_sink_errors_total", sink) == 0
        assert _metric(metrics, "heritage_spool_events", sink) == 0

    asyncio.run(scenario())
    with redis.Redis.from_url(SHARED_URL, decode_responses=True) as client:
        key = f"heritage:{installation}:events"
        entries = client.xrange(key)
    # MAXLEN ~ trims whole macro nodes (100 entries each by default): never fewer than asked.
    assert 1000 <= len(entries) < 1200
    assert [int(f["seq"]) for _, f in entries] == list(range(3000 - len(entries), 3000))
    assert entries[-1][1] == {
        "event": items[-1].json,
        "type": "level",
        "source": "stage",
        "run_id": "",
        "seq": "2999",
    }


def test_an_outage_is_spooled_and_delivered_in_order_once_redis_is_back(
    tmp_path: Path, private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    # 30,000 events during the outage stand in for 10 minutes of a busy installation:
    # 30,000 / 50 events/s = 600 s. Here they are published as fast as the sink takes them.
    before, during, after = 1_000, 30_000, 2_000
    key = "heritage:hall:events"
    private_redis.start()
    caplog.set_level(logging.INFO, logger="sinks")

    async def scenario() -> None:
        metrics = Metrics()
        sink = _sink(metrics, tmp_path, private_redis.url)
        await _publish(sink, _events(0, before))
        assert sink.connected
        with private_redis.client() as client:
            assert _seqs(client, key) == list(range(before))  # what Redis held before dying

        private_redis.kill()
        await _publish(sink, _events(before, before + during))
        assert not sink.connected
        assert sink.spooled == during
        assert _metric(metrics, "heritage_spool_events", sink) == during
        assert _metric(metrics, "heritage_redis_connected", sink) == 0

        private_redis.start()
        await _until(lambda: sink.spooled < during)  # the spool is draining
        late = _events(before + during, before + during + after)
        for start in range(0, after, 100):  # published meanwhile: they must queue behind
            await sink.publish_many(late[start : start + 100])
            await asyncio.sleep(0.001)
        assert not sink.connected
        await _until(lambda: sink.connected)
        assert sink.spooled == 0
        assert _metric(metrics, "heritage_spool_events", sink) == 0
        assert _metric(metrics, "heritage_spool_dropped_events_total", sink) == 0
        assert _metric(metrics, "heritage_redis_connected", sink) == 1
        await sink.close()

    asyncio.run(scenario())
    with private_redis.client() as client:
        assert _seqs(client, key) == list(range(before, before + during + after))
    assert list((tmp_path / "spool").glob("*" + SEGMENT_SUFFIX)) == []
    messages = [r.getMessage() for r in caplog.records]
    assert any("Redis unreachable" in m and "spooling events" in m for m in messages)
    assert any("Redis back" in m and "delivered in" in m for m in messages)


def test_a_full_spool_drops_the_oldest_events_and_counts_them(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    published = 2_000  # ~420 kB of events for a 64 kB spool; Redis is down all along
    key = "heritage:hall:events"

    async def scenario() -> None:
        metrics = Metrics()
        sink = _sink(
            metrics, tmp_path, private_redis.url,
            batch_size=20, spool_max_bytes=64 * 1024, spool_segment_bytes=4096,
        )  # fmt: skip
        await _publish(sink, _events(0, published))
        kept = sink.spooled
        assert 0 < kept < published
        assert _metric(metrics, "heritage_spool_dropped_events_total", sink) == published - kept
        on_disk = sum(p.stat().st_size for p in (tmp_path / "spool").glob("*" + SEGMENT_SUFFIX))
        assert on_disk <= 64 * 1024

        private_redis.start()
        await _until(lambda: sink.connected)
        await sink.close()
        with private_redis.client() as client:
            assert _seqs(client, key) == list(range(published - kept, published))

    asyncio.run(scenario())


def test_a_restarted_sink_delivers_the_spool_it_left_before_new_events(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    key = "heritage:hall:events"

    async def scenario() -> None:
        first = _sink(Metrics(), tmp_path, private_redis.url)
        await _publish(first, _events(0, 500))
        await first.close()  # Redis is down: the spool stays on disk

        private_redis.start()
        second = _sink(Metrics(), tmp_path, private_redis.url)
        assert second.spooled == 500
        await _publish(second, _events(500, 600))
        await second.close()  # drains what is left within close_timeout_s

    asyncio.run(scenario())
    with private_redis.client() as client:
        assert _seqs(client, key) == list(range(600))
    assert list((tmp_path / "spool").glob("*" + SEGMENT_SUFFIX)) == []


def test_without_url_or_redis_host_building_the_sink_names_the_problem(tmp_path: Path) -> None:
    config = RedisStreamsSinkConfig(spool_dir=tmp_path)
    with pytest.raises(ConfigError, match="set REDIS_HOST"):
        config.build(Settings(REDIS_HOST=None), Metrics())


def test_the_url_defaults_to_redis_host_and_port() -> None:
    assert redis_url_from_settings(Settings(REDIS_HOST="redis.local", REDIS_PORT=6380)) == (
        "redis://redis.local:6380/0"
    )
    assert redis_url_from_settings(Settings(REDIS_HOST="::1")) == "redis://[::1]:6379/0"
    assert redis_url_from_settings(Settings(REDIS_HOST=None)) is None


def test_a_redis_host_turns_the_redis_sink_on(tmp_path: Path) -> None:
    args = argparse.Namespace(config=None)
    on = _pipeline_config(args, Settings(REDIS_HOST="127.0.0.1", HERITAGE_CONFIG=None))
    off = _pipeline_config(args, Settings(REDIS_HOST=None, HERITAGE_CONFIG=None))
    assert [s.type for s in on.sinks] == ["redis_streams"]
    assert off.sinks == []


def test_the_sink_is_configured_from_toml_and_unknown_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "pipeline.toml"
    path.write_text('[[sinks]]\ntype = "redis_streams"\nstream_key = "museum:{source}"\n')
    (sink,) = load_pipeline_config(path).sinks
    assert sink == RedisStreamsSinkConfig(stream_key="museum:{source}")
    path.write_text('[[sinks]]\ntype = "redis_streams"\nmax_len = 10\n')
    with pytest.raises(ConfigError, match=r"sinks\.0\.redis_streams\.max_len: unknown key"):
        load_pipeline_config(path)
    path.write_text('[[sinks]]\ntype = "redis_streams"\nstream_key = "x:{room}"\n')
    with pytest.raises(ConfigError, match="unknown placeholder"):
        load_pipeline_config(path)
