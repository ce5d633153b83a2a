"""The WebSocket hub's state: subscription filters and the snapshot a new client starts from.

Transport-free (the FastAPI route in ``api/live.py`` moves the bytes): it keeps
the latest event of each kind per source and channel, so a screen that
connects mid-stream sees the current speaker, category, levels and source
states at once, then live events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sinks.bus import EventBus, Published
from stream.events import EVENT_TYPES, Event

# The kind an event is retained under: speech.started and speech.ended share one slot.
_RETAINED_KIND = {
    "source.status": "source.status",
    "speaker.turn": "speaker.turn",
    "heritage.classified": "heritage.classified",
    "level": "level",
    "speech.started": "speech",
    "speech.ended": "speech",
}


class FilterError(ValueError):
    """A subscription filter that cannot be applied; the message names the field."""


def _names(value: Any, field: str) -> frozenset[str] | None:
    """A list of names from ``a,b`` (query string) or ``["a", "b"]`` (JSON); None for all."""
    if value is None or value in ("", []):
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and i for i in items):
        raise FilterError(f"{field}: expected names separated by commas or a list of strings")
    return frozenset(i.strip() for i in items)


def _types(value: Any) -> frozenset[str] | None:
    types = _names(value, "types")
    if types is None:
        return None
    for t in types:
        prefix = t.removesuffix("*")
        known = t in EVENT_TYPES or (t.endswith(".*") and any(
            e.startswith(prefix) for e in EVENT_TYPES
        ))  # fmt: skip
        if not known:
            raise FilterError(f"types: unknown event type {t!r} (known: {', '.join(EVENT_TYPES)})")
    return types


def _channels(value: Any) -> frozenset[int] | None:
    names = _names(value if not isinstance(value, list) else [str(v) for v in value], "channel")
    if names is None:
        return None
    if not all(n.isdigit() for n in names):
        raise FilterError("channel: expected channel numbers, e.g. channel=0,1")
    return frozenset(int(n) for n in names)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a client wants; ``None`` in a field means any."""

    installations: frozenset[str] | None = None
    sources: frozenset[str] | None = None
    channels: frozenset[int] | None = None
    types: frozenset[str] | None = None

    @classmethod
    def parse(cls, fields: Mapping[str, Any]) -> EventFilter:
        """From query parameters or a subscribe message; :class:`FilterError` if malformed."""
        unknown = set(fields) - {"installation", "source", "channel", "types", "token", "action"}
        if unknown:
            raise FilterError(f"unknown filter field(s): {', '.join(sorted(unknown))}")
        return cls(
            installations=_names(fields.get("installation"), "installation"),
            sources=_names(fields.get("source"), "source"),
            channels=_channels(fields.get("channel")),
            types=_types(fields.get("types")),
        )

    def __call__(self, event: Event) -> bool:
        if self.installations is not None and event.installation_id not in self.installations:
            return False
        if self.sources is not None and event.source not in self.sources:
            return False
        # Source-wide events (channel null) concern every channel of their source.
        channel = event.channel
        if self.channels is not None and channel is not None and channel not in self.channels:
            return False
        if self.types is not None and event.type not in self.types:
            return any(t.endswith(".*") and event.type.startswith(t[:-1]) for t in self.types)
        return True


class LiveState:
    """The latest event of each kind per (source, channel), fed synchronously by the bus."""

    def __init__(self, bus: EventBus) -> None:
        self._latest: dict[tuple[str, int | None, str], Published] = {}
        bus.add_tap(self._update)

    def _update(self, item: Published) -> None:
        event = item.event
        kind = _RETAINED_KIND.get(event.type)
        if kind is not None:
            self._latest[(event.source, event.channel, kind)] = item

    def snapshot(self, accepts: EventFilter) -> list[Published]:
        """The retained events ``accepts`` lets through, oldest first per source."""
        items = [p for p in self._latest.values() if accepts(p.event)]
        return sorted(items, key=lambda p: (p.event.source, p.event.seq))
