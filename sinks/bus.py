"""The event bus: fans events out to subscribers through bounded, drop-oldest queues.

Runs on the event loop. Each event is serialized once and shared by every
subscriber; a slow subscriber loses its oldest events (counted), never slows
the others, and never grows memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sinks.metrics import Metrics
from stream.events import Event

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Published:
    """An event with its JSON, serialized once for all transports."""

    event: Event
    json: str


class Subscription:
    """A bounded queue of published events for one consumer; the oldest is dropped when full.

    ``accepts`` filters what is queued at all; ``label`` names the consumer in metrics
    (shared by many short-lived clients, so Prometheus series stay bounded).
    """

    def __init__(
        self,
        name: str,
        maxsize: int,
        metrics: Metrics,
        accepts: Callable[[Event], bool] | None = None,
        label: str | None = None,
    ) -> None:
        self.name = name
        self.dropped = 0
        self.accepts = accepts
        self._items: deque[Published] = deque(maxlen=maxsize)
        self._ready = asyncio.Event()
        self._closed = False
        self._dropped_metric = metrics.sink_dropped.labels(label or name)

    def __len__(self) -> int:
        return len(self._items)

    def offer(self, item: Published) -> None:
        """Queue ``item`` if accepted, without waiting, dropping the oldest if full."""
        if self.accepts is not None and not self.accepts(item.event):
            return
        if len(self._items) == self._items.maxlen:
            self.dropped += 1
            self._dropped_metric.inc()
        self._items.append(item)
        self._ready.set()

    def restart(self, accepts: Callable[[Event], bool] | None, items: list[Published]) -> None:
        """Take a new filter and start over from ``items`` (a snapshot), dropping the queue."""
        self.accepts = accepts
        self._items.clear()
        self._items.extend(items)
        self._ready.set()

    def close(self) -> None:
        """No more items: :meth:`get` returns ``None`` once the queue is empty."""
        self._closed = True
        self._ready.set()

    async def get(self) -> Published | None:
        """The next item, waiting for one; ``None`` after :meth:`close` and the queue drained."""
        while not self._items:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    async def get_batch(self, max_items: int) -> list[Published]:
        """Wait for at least one item, then take up to ``max_items``; ``[]`` at the end."""
        first = await self.get()
        if first is None:
            return []
        batch = [first]
        while self._items and len(batch) < max_items:
            batch.append(self._items.popleft())
        return batch


class EventBus:
    """Publishes events to every current subscription."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._subscriptions: set[Subscription] = set()
        self._taps: list[Callable[[Published], None]] = []

    def add_tap(self, tap: Callable[[Published], None]) -> None:
        """Call ``tap`` synchronously with every event, before any subscription sees it."""
        self._taps.append(tap)

    def subscribe(
        self,
        name: str,
        maxsize: int,
        accepts: Callable[[Event], bool] | None = None,
        label: str | None = None,
    ) -> Subscription:
        """A new bounded subscription receiving every accepted event published from now on."""
        subscription = Subscription(name, maxsize, self.metrics, accepts, label)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop delivering to ``subscription`` and wake its reader."""
        self._subscriptions.discard(subscription)
        subscription.close()

    def publish(self, events: Iterable[Event]) -> None:
        """Fan ``events`` out, in order. Must be called on the event loop's thread."""
        for event in events:
            item = Published(event, event.to_json())
            self.metrics.events.labels(event.type).inc()
            for tap in self._taps:
                tap(item)
            for subscription in self._subscriptions:
                subscription.offer(item)

    def close(self) -> None:
        """Close every subscription (their readers drain, then see the end)."""
        for subscription in list(self._subscriptions):
            self.unsubscribe(subscription)
