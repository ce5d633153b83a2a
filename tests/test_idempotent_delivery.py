"""Redis delivery through faults: a frozen Redis adds nothing twice, and delivery resumes fast.

Redis is a real server of the test's own, frozen with SIGSTOP (it keeps its
connections and reads what was sent meanwhile once it resumes, as a Redis stalled
by a fork, swap or a slow disk does) or killed and started again.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from sinks.metrics import Metrics
from sinks.redis_streams import RedisStreamsSink
from tests.test_redis_sink import RedisServer, _events, _seqs, _sink, private_redis

__all__ = ["private_redis"]  # the fixture, used by name

KEY = "heritage:hall:events"
BATCH = 50


def _fast_failing_sink(metrics: Metrics, tmp_path: Path, url: str) -> RedisStreamsSink:
    """The default backoff (0.1 s doubling to 1 s, with jitter); a 1 s reply timeout."""
    return _sink(
        metrics, tmp_path, url,
        socket_timeout_s=1.0, reconnect_initial_s=0.1, reconnect_max_s=1.0, close_timeout_s=5.0,
    )  # fmt: skip


async def _produce(sink: RedisStreamsSink, start: int, seconds: float) -> int:
    """Publish batches of level events every 20 ms for ``seconds``; returns the next seq."""
    seq = start
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await sink.publish_many(_events(seq, seq + BATCH))
        seq += BATCH
        await asyncio.sleep(0.02)
    return seq


async def _connected_after(sink: RedisStreamsSink, since: float) -> float:
    """Seconds from ``since`` until the sink delivers directly again (spool drained)."""
    async with asyncio.timeout(30):
        while not sink.connected:  # noqa: ASYNC110 - polling the sink's state
            await asyncio.sleep(0.005)
    return time.monotonic() - since


def test_a_frozen_redis_gets_every_event_once_and_delivery_resumes_within_2_s(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    private_redis.start()

    async def scenario() -> tuple[int, float, int]:
        sink = _fast_failing_sink(Metrics(), tmp_path, private_redis.url)
        seq = await _produce(sink, 0, 0.5)
        private_redis.freeze()
        # The batch in flight now times out, is spooled, and is applied by Redis later:
        # the spool sends it again once Redis answers.
        frozen = asyncio.create_task(_produce(sink, seq, 4.0))
        await asyncio.sleep(3.0)
        assert not sink.connected
        private_redis.thaw()
        thawed = time.monotonic()
        recovery = await _connected_after(sink, thawed)
        seq = await frozen
        seq = await _produce(sink, seq, 0.5)
        skipped = sink.duplicates_skipped
        await sink.close()
        return seq, recovery, skipped

    produced, recovery, skipped = asyncio.run(scenario())
    with private_redis.client() as client:
        seqs = _seqs(client, KEY)
    assert seqs == list(range(produced))  # none lost, none twice, in order
    assert skipped >= BATCH  # the retried in-flight batch really reached Redis twice
    assert recovery < 2.0


def test_delivery_resumes_within_2_s_of_a_killed_redis_coming_back(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    private_redis.start()

    async def scenario() -> tuple[int, int, float]:
        sink = _fast_failing_sink(Metrics(), tmp_path, private_redis.url)
        seq = await _produce(sink, 0, 0.3)
        private_redis.kill()  # its entries go with it: no persistence
        lost_with_redis = seq
        seq = await _produce(sink, seq, 5.0)  # long enough for the backoff to reach its cap
        assert not sink.connected
        private_redis.start()
        recovery = await _connected_after(sink, time.monotonic())
        seq = await _produce(sink, seq, 0.3)
        await sink.close()
        return lost_with_redis, seq, recovery

    first, produced, recovery = asyncio.run(scenario())
    with private_redis.client() as client:
        assert _seqs(client, KEY) == list(range(first, produced))
    assert recovery < 2.0
