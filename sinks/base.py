"""The sink interface: where events leave the process."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod

from sinks.bus import Published, Subscription
from sinks.metrics import Metrics

logger = logging.getLogger(__name__)


class Sink(ABC):
    """Delivers events somewhere; fed by its own bounded subscription on the bus."""

    name: str

    @abstractmethod
    async def publish(self, item: Published) -> None:
        """Deliver one event (already serialized in ``item.json``)."""

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
        while (item := await subscription.get()) is not None:
            depth.set(len(subscription))
            try:
                await sink.publish(item)
            except Exception:
                errors.inc()
                logger.exception("sink %s: delivery of %s failed", sink.name, item.event.type)
    finally:
        await sink.close()
