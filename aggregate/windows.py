"""Windowed figures of one source (a room): pure state and arithmetic, no Kafka.

A source's state is one JSON-able dict, kept as one value of the changelogged table:
the position it has counted up to, ``(run_id, seq)`` and the record offset, and its
open windows. Position and figures change in the same table write, so after a crash
they can never disagree, and an event read again is recognised and counted once.

Windows are placed by event time (``wall_time`` of the event's start, UTC):
tumbling 1 min and 15 min, and 1 h windows hopping every 15 min. An event counts in
every window that contains its start; durations are not split across windows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

Verdict = Literal["new", "duplicate", "gap"]


@dataclass(frozen=True)
class WindowSpec:
    """A window family: windows of ``size_s`` starting every ``step_s`` (tumbling if equal)."""

    name: str
    size_s: int
    step_s: int

    def starts(self, t: float) -> list[int]:
        """Start times (epoch s) of the windows of this family that contain ``t``."""
        last = int(t // self.step_s) * self.step_s
        return [s for s in range(last - self.size_s + self.step_s, last + 1, self.step_s)
                if s <= t < s + self.size_s]  # fmt: skip


WINDOWS: tuple[WindowSpec, ...] = (
    WindowSpec("1m", 60, 60),
    WindowSpec("15m", 900, 900),
    WindowSpec("1h", 3600, 900),
)
WINDOW_NAMES = tuple(w.name for w in WINDOWS)
RETENTION_S = 900
"""A source keeps windows that ended less than this before its newest event."""


def event_time(event: dict[str, Any]) -> float:
    """Epoch seconds of the event's start (its ``wall_time``, ISO 8601 UTC)."""
    stamp = datetime.fromisoformat(str(event["wall_time"]).replace("Z", "+00:00"))
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.timestamp()


def new_figures() -> dict[str, Any]:
    """Empty figures of one window."""
    return {"events": 0, "speech_s": 0.0, "speakers": [], "category_s": {},
            "level_n": 0, "rms_sum": 0.0, "rms_max": None, "peak_max": None}  # fmt: skip


def add_event(figures: dict[str, Any], event: dict[str, Any]) -> None:
    """Count ``event`` into one window's figures."""
    figures["events"] += 1
    kind = event["type"]
    if kind == "speech.ended":
        figures["speech_s"] += float(event["duration"])
    elif kind == "speaker.turn":
        speaker = str(event["speaker"])
        if speaker not in figures["speakers"]:
            figures["speakers"] = sorted([*figures["speakers"], speaker])
    elif kind == "heritage.classified":
        category = str(event["category"])
        seconds = max(0.0, float(event["t_end"]) - float(event["t_start"]))
        figures["category_s"][category] = figures["category_s"].get(category, 0.0) + seconds
    elif kind == "level":
        rms, peak = float(event["rms_dbfs"]), float(event["peak_dbfs"])
        figures["level_n"] += 1
        figures["rms_sum"] += rms
        figures["rms_max"] = rms if figures["rms_max"] is None else max(figures["rms_max"], rms)
        figures["peak_max"] = (
            peak if figures["peak_max"] is None else max(figures["peak_max"], peak)
        )


def summary(figures: dict[str, Any], size_s: int) -> dict[str, Any]:
    """What consumers read: speech minutes, speakers, dominant category, occupancy, levels."""
    categories: dict[str, float] = figures["category_s"]
    classified = sum(categories.values())
    dominant = max(sorted(categories), key=lambda c: categories[c]) if categories else None
    return {
        "events": figures["events"],
        "speech_minutes": round(figures["speech_s"] / 60, 6),
        "distinct_speakers": len(figures["speakers"]),
        "speakers": list(figures["speakers"]),
        "dominant_category": dominant,
        "dominant_share": round(categories[dominant] / classified, 6) if dominant else None,
        "category_seconds": {c: round(s, 6) for c, s in sorted(categories.items())},
        # Share of the window with speech by the VAD (speech segments that ended in it).
        "occupancy": round(min(1.0, figures["speech_s"] / size_s), 6),
        "level": {
            "count": figures["level_n"],
            "rms_mean_dbfs": round(figures["rms_sum"] / figures["level_n"], 6)
            if figures["level_n"] else None,
            "rms_max_dbfs": figures["rms_max"],
            "peak_max_dbfs": figures["peak_max"],
        },
    }  # fmt: skip


def window_key(spec: WindowSpec, start: int) -> str:
    return f"{spec.name}@{start}"


def parse_window_key(key: str) -> tuple[WindowSpec, int]:
    name, start = key.split("@")
    return next(w for w in WINDOWS if w.name == name), int(start)


def windows_of(t: float) -> Iterator[tuple[WindowSpec, int]]:
    for spec in WINDOWS:
        for start in spec.starts(t):
            yield spec, start


RUNS_KEPT = 16
"""Runs of a source whose last seq is remembered, so a re-read of an older run's events
(after a daemon restart) is still recognised; older runs are forgotten."""


def new_state() -> dict[str, Any]:
    """The state of a source nothing was counted for."""
    return {"run_id": None, "seq": -1, "offset": -1, "runs": {}, "windows": {}}


def verdict(state: dict[str, Any], run_id: str, seq: int) -> Verdict:
    """Whether an event at ``(run_id, seq)`` is new, was counted already, or skips some.

    ``seq`` rises by one per event within a run; a new run (a daemon restart) may start
    anywhere, so only a jump within the current run is a gap.
    """
    runs: dict[str, int] = state["runs"]
    if run_id not in runs:
        return "new"  # the first event of the source, or of a new run of its daemon
    if seq <= runs[run_id]:
        return "duplicate"
    if seq == runs[run_id] + 1 or run_id != state["run_id"]:
        return "new"
    return "gap"


def count(state: dict[str, Any], event: dict[str, Any], run_id: str, offset: int) -> list[str]:
    """Count a new ``event`` into ``state``; returns the keys of the windows it changed."""
    t = event_time(event)
    changed = []
    for spec, start in windows_of(t):
        key = window_key(spec, start)
        figures = state["windows"].setdefault(key, new_figures())
        add_event(figures, event)
        # The newest event time the window counted: "last seen" of a site (.get: states
        # written before this field was kept have none).
        figures["last_t"] = max(figures.get("last_t") or t, t)
        changed.append(key)
    runs: dict[str, int] = state["runs"]
    if run_id not in runs:  # a new run becomes the current one
        state["run_id"] = run_id
        while len(runs) >= RUNS_KEPT:
            del runs[next(iter(runs))]
    runs[run_id] = max(runs.get(run_id, -1), int(event["seq"]))
    state["seq"] = runs[state["run_id"]]
    state["offset"] = max(state["offset"], offset)
    _expire(state, t)
    return changed


def _expire(state: dict[str, Any], now: float) -> None:
    for key in list(state["windows"]):
        spec, start = parse_window_key(key)
        if start + spec.size_s < now - RETENTION_S:
            del state["windows"][key]


def keys_of(event: dict[str, Any]) -> list[str]:
    """The window keys an event falls in (to re-emit them when it is read again)."""
    return [window_key(spec, start) for spec, start in windows_of(event_time(event))]


def output_record(site: str, room: str, key: str, figures: dict[str, Any]) -> dict[str, Any]:
    """One upsert of the aggregates topic, keyed by (site, room, window)."""
    spec, start = parse_window_key(key)
    return {
        "site": site,
        "room": room,
        "window": spec.name,
        "start": _iso(start),
        "end": _iso(start + spec.size_s),
        "last_event": _iso(figures["last_t"]) if figures.get("last_t") is not None else None,
        **summary(figures, spec.size_s),
    }


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def combine_rooms(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A site's figures for one window from its rooms' rows (speakers are per room: a
    voice heard in two rooms counts twice)."""
    categories: dict[str, float] = {}
    for row in rows:
        for category, seconds in row["category_seconds"].items():
            categories[category] = categories.get(category, 0.0) + seconds
    classified = sum(categories.values())
    dominant = max(sorted(categories), key=lambda c: categories[c]) if categories else None
    levels = [row["level"] for row in rows if row["level"]["count"]]
    level_n = sum(level["count"] for level in levels)
    return {
        "rooms": len(rows),
        "events": sum(row["events"] for row in rows),
        "speech_minutes": round(sum(row["speech_minutes"] for row in rows), 6),
        "distinct_speakers": sum(row["distinct_speakers"] for row in rows),
        "dominant_category": dominant,
        "dominant_share": round(categories[dominant] / classified, 6) if dominant else None,
        "occupancy": round(max((row["occupancy"] for row in rows), default=0.0), 6),
        "rms_mean_dbfs": round(
            sum(level["rms_mean_dbfs"] * level["count"] for level in levels) / level_n, 6
        ) if level_n else None,
    }  # fmt: skip
