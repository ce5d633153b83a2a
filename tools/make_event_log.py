"""Record a multi-site event log for the aggregate tests: tests/data/events/multisite.jsonl.

Real pipeline output (the default detectors over committed fixtures), re-stamped as if
three rooms of two sites had heard those recordings at chosen moments of one afternoon:
each room gets its own sequence of files, spread over 80 minutes so that every window
family (1 min, 15 min, hopping 1 h) has several windows. Each room's events carry one
run_id and a seq that increases by one, as a daemon's do. Deterministic; run from the
repository root:  .venv/bin/python tools/make_event_log.py
"""

from __future__ import annotations

import heapq
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import DATA, run_file  # noqa: E402

OUT = DATA / "events" / "multisite.jsonl"
START = datetime(2026, 5, 16, 14, 0, tzinfo=UTC)
# (site, room, [(minute, fixture), ...])
ROOMS = [
    ("maxxi", "gallery-5", [(0, "vad_clean.flac"), (7, "heritage/folk_music.flac"),
                            (16, "vad_music.flac"), (44, "heritage/opera.flac"),
                            (62, "speaker/kal_a.flac")]),
    ("maxxi", "auditorium", [(2, "heritage/spoken_word.flac"), (15, "vad_noise.flac"),
                             (31, "heritage/classical_music.flac"), (75, "vad_clean.flac")]),
    ("partner-museum", "chapel", [(1, "heritage/religious_chant.flac"),
                                  (29, "heritage/historical_speech.flac"),
                                  (58, "speaker/espeak_f3_a.flac"), (79, "vad_music.flac")]),
]  # fmt: skip


def room_events(site: str, room: str, plan: list[tuple[int, str]]) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    run_id = f"{site}-{room}-run-1"
    for minute, name in plan:
        start = START + timedelta(minutes=minute)
        for event in run_file(DATA / name):
            data = json.loads(event.to_json())
            data.update(installation_id=site, source=room, run_id=run_id, seq=len(events) + 1)
            data["wall_time"] = (
                (start + timedelta(seconds=event.t_start)).isoformat().replace("+00:00", "Z")
            )
            events.append(data)
    return events


def main() -> None:
    rooms = [room_events(site, room, plan) for site, room, plan in ROOMS]
    # As the topic would hold them: rooms interleaved roughly by time, each in seq order.
    merged = list(heapq.merge(*rooms, key=lambda e: str(e["wall_time"])))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in merged))
    print(f"{OUT.relative_to(ROOT)}: {len(merged)} events")


if __name__ == "__main__":
    main()
