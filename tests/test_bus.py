import asyncio
import time

from sinks.base import Sink, pump
from sinks.bus import EventBus, Published
from sinks.metrics import Metrics
from stream.events import Level


def _level(i: int) -> Level:
    return Level(channel=0, t_start=i, t_end=i + 0.1, rms_dbfs=-20, peak_dbfs=-6, clipped=0)


def test_a_full_subscription_drops_its_oldest_events_and_counts_them() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        bus = EventBus(metrics)
        slow = bus.subscribe("slow", maxsize=3)
        fast = bus.subscribe("fast", maxsize=100)
        bus.publish([_level(i) for i in range(10)])
        assert slow.dropped == 7
        dropped = metrics.registry.get_sample_value(
            "heritage_sink_dropped_events_total", {"sink": "slow"}
        )
        assert dropped == 7
        kept = [(await slow.get()).event.t_start for _ in range(3)]
        assert kept == [7, 8, 9]
        assert fast.dropped == 0
        assert len(fast) == 10

    asyncio.run(scenario())


def test_closing_lets_readers_drain_then_end() -> None:
    async def scenario() -> None:
        bus = EventBus(Metrics())
        sub = bus.subscribe("x", maxsize=10)
        bus.publish([_level(1)])
        bus.close()
        first = await sub.get()
        assert first is not None
        assert first.json == _level(1).to_json()
        assert await sub.get() is None

    asyncio.run(scenario())


def test_a_waiting_reader_wakes_on_publish() -> None:
    async def scenario() -> None:
        bus = EventBus(Metrics())
        sub = bus.subscribe("x", maxsize=10)
        reader = asyncio.create_task(sub.get())
        await asyncio.sleep(0.01)
        assert not reader.done()
        bus.publish([_level(5)])
        item = await asyncio.wait_for(reader, 1)
        assert item is not None
        assert item.event.t_start == 5

    asyncio.run(scenario())


def test_batches_take_what_is_queued_up_to_the_limit_in_order() -> None:
    async def scenario() -> None:
        bus = EventBus(Metrics())
        sub = bus.subscribe("x", maxsize=100)
        bus.publish([_level(i) for i in range(5)])
        first = await sub.get_batch(3)
        second = await sub.get_batch(3)
        assert [p.event.t_start for p in first + second] == [0, 1, 2, 3, 4]
        bus.close()
        assert await sub.get_batch(3) == []

    asyncio.run(scenario())


def test_a_busy_synchronous_sink_does_not_starve_the_event_loop() -> None:
    class BlockingSink(Sink):
        name = "blocking"

        async def publish(self, item: Published) -> None:
            time.sleep(0.0002)  # noqa: ASYNC251 - stands for a synchronous write to a pipe

    async def scenario() -> float:
        bus = EventBus(Metrics())
        sub = bus.subscribe("blocking", maxsize=10_000)
        bus.publish([_level(i) for i in range(5_000)])  # a second of work, already queued
        bus.close()
        pumping = asyncio.create_task(pump(BlockingSink(), sub, Metrics()))
        started = time.monotonic()
        await asyncio.sleep(0)  # the pump starts; when does this task get the loop back?
        waited = time.monotonic() - started
        await pumping
        return waited

    assert asyncio.run(scenario()) < 0.1, "other tasks run between batches, not after all"
