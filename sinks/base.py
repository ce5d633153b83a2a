"""The sink interface: where events leave the process."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod

from sinks.bus import Published, Subscription
from sinks.metrics import Metrics

logger = logging.getLogger(__name__)


class Sink(ABC):
    """Delivers events somewhere; fed by its own bounded subscription on the bus."""

    name: str
    batch_size: int = 1
    """Most events handed to :meth:`publish_many` at once."""

    @abstractmethod
    async def publish(self, item: Published) -> None:
        """Deliver one event (already serialized in ``item.json``)."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Called once on the event loop before the first event (e.g. to deliver a spool)."""

    async def publish_many(self, items: list[Published]) -> None:
        """Deliver events in order; sinks that can batch (a pipeline, a spool) override this."""
        for item in items:
            await self.publish(item)

    async def close(self) -> None:  # noqa: B027 - optional hook, most sinks hold nothing
        """Release resources after the last event."""


async def pump(sink: Sink, subscription: Subscription, metrics: Metrics) -> None:
    """Feed ``sink`` from ``subscription`` until it is closed and drained.

    A failed delivery is logged and counted, and the pump goes on: one bad
    event or a flaky sink never stops the others.
    """
    depth = metrics.queue_depth.labels(sink.name)
    errors = metrics.sink_errors.labels(sink.name)
    try:
        while items := await subscription.get_batch(sink.batch_size):
            depth.set(len(subscription))
            try:
                await sink.publish_many(items)
            except Exception:
                errors.inc()
                logger.exception("sink %s: delivery of %d event(s) failed", sink.name, len(items))
            # get_batch() does not suspend while events are queued, and a sink that writes
            # synchronously never does: yield once per batch so other tasks still run.
            await asyncio.sleep(0)
    finally:
        await sink.close()
