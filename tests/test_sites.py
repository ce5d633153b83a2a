"""Many sites in the API: the aggregates topic -> the database -> ``/api/v1/sites``.

The topic is recorded: the multi-site event log (tests/data/events/multisite.jsonl)
counted window by window as the aggregate app does, one upsert per changed window, in
order (the app itself on the real broker is tests/test_aggregate.py). The served figures
are checked against test_aggregate's plain computation from the event definitions.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregate import windows
from sinks.kafka import aggregates_topic
from sinks.store import Database, upgrade
from sinks.store.sites import BadAggregate, parse_record, prune, upsert
from tests.kafka_broker import Broker
from tests.service import Client, api, postgres_database, settings_for
from tests.test_aggregate import _log, _produce, reference

pytestmark = pytest.mark.timeout(300)


def recorded_upserts(events: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    """The aggregates topic the app writes for ``events``: each event's changed windows."""
    states: dict[str, dict[str, Any]] = {}
    out = []
    for offset, event in enumerate(events):
        key = f"{event['installation_id']}/{event['source']}"
        state = states.setdefault(key, windows.new_state())
        for window_key in windows.count(state, event, str(event.get("run_id") or ""), offset):
            record = windows.output_record(*key.split("/", 1), window_key,
                                           state["windows"][window_key])  # fmt: skip
            out.append((f"{key}/{window_key}".encode(), json.dumps(record).encode()))
    return out


def _record(site: str, room: str, window: str, start: datetime, events: int,
            **figures: Any) -> dict[str, Any]:  # fmt: skip
    size = {"1m": 60, "15m": 900, "1h": 3600}[window]
    iso = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731
    return {
        "site": site, "room": room, "window": window, "start": iso(start),
        "end": iso(start + timedelta(seconds=size)),
        "last_event": iso(start + timedelta(seconds=size / 2)),
        "events": events, "speech_minutes": 0.5, "distinct_speakers": 1,
        "speakers": ["Speaker_1"], "dominant_category": "opera", "dominant_share": 1.0,
        "category_seconds": {"opera": 30.0}, "occupancy": 0.5,
        "level": {"count": 2, "rms_mean_dbfs": -30.0, "rms_max_dbfs": -28.0,
                  "peak_max_dbfs": -10.0},
        **figures,
    }  # fmt: skip


def store_records(settings: Any, records: list[dict[str, Any]]) -> None:
    async def store() -> None:
        db = Database(settings, pooled=False)
        try:
            async with db.session() as session:
                await upsert(session, db.backend, [parse_record(json.dumps(r).encode())
                                                   for r in records])  # fmt: skip
        finally:
            await db.close()

    asyncio.run(store())


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str | None]]:
    if request.param == "sqlite":
        yield "sqlite", None
    else:
        with postgres_database() as name:
            yield "postgresql", name


def test_the_latest_upsert_wins_and_an_older_one_read_again_does_not(
    store: tuple[str, str | None], tmp_path: Path
) -> None:
    settings = settings_for(store[0], tmp_path, store[1])
    upgrade(settings)
    start = datetime(2026, 5, 16, 14, 0, tzinfo=UTC)
    first = _record("maxxi", "gallery-5", "1m", start, 3, speech_minutes=0.1)
    newer = _record("maxxi", "gallery-5", "1m", start, 7, speech_minutes=0.3)
    other_kind = _record("maxxi", "gallery-5", "15m", start, 1)
    store_records(settings, [first, newer, first])  # the last: a re-read of an old upsert
    store_records(settings, [first, other_kind])

    async def rows() -> list[tuple[str, int, float]]:
        from sqlalchemy import select

        from sinks.store import SiteAggregate

        db = Database(settings, pooled=False)
        try:
            async with db.session() as session:
                found = await session.scalars(select(SiteAggregate).order_by(SiteAggregate.window))
                return [(r.window, r.events, r.figures["speech_minutes"]) for r in found]
        finally:
            await db.close()

    assert asyncio.run(rows()) == [("15m", 1, 0.5), ("1m", 7, 0.3)]
    store_records(settings, [{**newer, "speech_minutes": 0.4}])  # same count: the later wins
    assert asyncio.run(rows()) == [("15m", 1, 0.5), ("1m", 7, 0.4)]


def test_old_rows_are_pruned_by_kind_relative_to_the_newest(tmp_path: Path) -> None:
    settings = settings_for("sqlite", tmp_path)
    upgrade(settings)
    now = datetime(2026, 5, 16, 14, 0, tzinfo=UTC)
    store_records(settings, [
        _record("a", "r", "1m", now, 1), _record("a", "r", "1m", now - timedelta(days=8), 1),
        _record("a", "r", "1h", now - timedelta(days=8), 1),
    ])  # fmt: skip

    async def run() -> int:
        db = Database(settings, pooled=False)
        try:
            async with db.session() as session:
                return await prune(session)
        finally:
            await db.close()

    assert asyncio.run(run()) == 1
    assert asyncio.run(run()) == 0


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{", "not JSON"),
        (b"[1]", "not a JSON object"),
        (json.dumps({"site": "a"}).encode(), "no room"),
        (json.dumps({"site": "a", "room": "r", "window": "2m"}).encode(), "unknown window '2m'"),
        (json.dumps({**_record("a", "r", "1m", datetime(2026, 1, 1, tzinfo=UTC), 1),
                     "start": "yesterday"}).encode(), "start is not an ISO 8601 time"),
    ],
)  # fmt: skip
def test_a_record_that_is_not_an_aggregate_is_refused_with_its_reason(
    value: bytes, reason: str
) -> None:
    with pytest.raises(BadAggregate, match=reason):
        parse_record(value)


def _wait_sites(client: Client, count: int, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body: dict[str, Any] = client.http.get(
            "/api/v1/sites", headers=client.auth("viewer")
        ).json()
        rooms = sum(len(site["rooms"]) for site in body.get("items", []))
        if rooms >= count or time.monotonic() > deadline:
            return body
        time.sleep(0.3)


def _served(client: Client, site: str, window: str) -> dict[str, dict[str, Any]]:
    """Every room figure of ``site`` the API serves for ``window``, paged through."""
    found: dict[str, dict[str, Any]] = {}
    offset = 0
    while True:
        page = client.http.get(
            f"/api/v1/sites/{site}/aggregates",
            params={"window": window, "limit": 50, "offset": offset},
            headers=client.auth("viewer"),
        ).json()
        for item in page["items"]:
            start = int(datetime.fromisoformat(item["start"]).timestamp())
            for room in item["rooms"]:
                found[f"{site}/{room['room']}/{window}@{start}"] = room
        offset += 50
        if offset >= page["total"]:
            return found


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _comparable(room: dict[str, Any]) -> dict[str, Any]:
    return {k: room[k] for k in ("events", "speech_minutes", "distinct_speakers",
                                 "dominant_category", "dominant_share", "occupancy")} | {
        "rms_mean_dbfs": room["level"]["rms_mean_dbfs"],
        "peak_max_dbfs": room["level"]["peak_max_dbfs"],
    }  # fmt: skip


def served_figures(client: Client) -> dict[str, dict[str, Any]]:
    """Every room figure the API serves, keyed as test_aggregate's reference."""
    body = client.http.get("/api/v1/sites?limit=200", headers=client.auth("viewer")).json()
    return {
        key: _comparable(room)
        for site in {s["site"] for s in body["items"]}
        for kind in ("1m", "15m", "1h")
        for key, room in _served(client, site, kind).items()
    }


def test_the_api_serves_the_aggregates_topic_as_the_plain_computation_has_it(
    store: tuple[str, str | None], tmp_path: Path, kafka_broker: Broker
) -> None:
    events = _log()
    expected = reference(events)
    prefix = f"sites{uuid.uuid4().hex[:8]}"
    kafka_broker.create_topics([aggregates_topic(prefix)], 4)
    upserts = recorded_upserts(events)
    # An old upsert read again after the newest (a consumer re-read, a replica handover).
    stale = random.Random(15).sample(upserts[: len(upserts) // 2], 200)
    # A record that is no aggregate is skipped (logged and counted), nothing else.
    bad = [(b"maxxi/gallery-5/1m@0", b"not json"), (b"x", json.dumps({"site": "x"}).encode())]
    records = upserts[:100] + bad + upserts[100:] + stale
    asyncio.run(_produce(kafka_broker.bootstrap, aggregates_topic(prefix), records))
    settings = settings_for(store[0], tmp_path, store[1],
                            KAFKA_BOOTSTRAP_SERVERS=kafka_broker.bootstrap,
                            KAFKA_TOPIC_PREFIX=prefix)  # fmt: skip
    with api(settings) as client:
        rooms = {k.rsplit("/", 1)[0] for k in expected}
        body = _wait_sites(client, len(rooms))
        assert {(s["site"], r["room"]) for s in body["items"] for r in s["rooms"]} == {
            tuple(room.split("/")) for room in rooms
        }
        # Wait for the tail: every upsert stored (the last ones are the newest windows).
        deadline = time.monotonic() + 60
        while (served := served_figures(client)) != expected and time.monotonic() < deadline:
            time.sleep(0.5)
        assert served == expected
        body = client.http.get("/api/v1/sites", headers=client.auth("viewer")).json()
        newest = max(e["wall_time"] for e in events if e["installation_id"] == "maxxi")
        maxxi = next(s for s in body["items"] if s["site"] == "maxxi")
        assert _when(maxxi["last_event"]) == _when(newest)
        assert maxxi["fresh"] is False  # a recorded log of May: long silent

        with_latest = client.http.get(
            "/api/v1/sites?window=15m", headers=client.auth("viewer")
        ).json()
        latest = next(s for s in with_latest["items"] if s["site"] == "maxxi")["latest"]
        newest_start = max(
            int(k.rsplit("@", 1)[1]) for k in expected if k.startswith("maxxi/") and "/15m@" in k
        )
        assert int(datetime.fromisoformat(latest["start"]).timestamp()) == newest_start
        assert latest["site"]["rooms"] == len(latest["rooms"])
        assert latest["site"]["events"] == sum(r["events"] for r in latest["rooms"])


def test_the_routes_answer_from_the_database_while_kafka_is_away_and_refuse_bad_input(
    tmp_path: Path,
) -> None:
    settings = settings_for("sqlite", tmp_path, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9",
                            KAFKA_TOPIC_PREFIX="away")  # fmt: skip
    upgrade(settings)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    store_records(settings, [
        _record("sala-1", "gallery", "1m", now - timedelta(minutes=m), 10 + m) for m in range(5)
    ] + [_record("old-site", "hall", "1m", now - timedelta(days=1), 4)])  # fmt: skip
    with api(settings) as client:
        viewer = client.auth("viewer")
        sites = client.http.get("/api/v1/sites", headers=viewer)
        assert sites.status_code == 200, sites.text
        by_name = {s["site"]: s for s in sites.json()["items"]}
        assert by_name.keys() == {"sala-1", "old-site"}
        assert by_name["sala-1"]["fresh"] is True
        assert by_name["old-site"]["fresh"] is False

        page = client.http.get("/api/v1/sites/sala-1/aggregates?window=1m&limit=2",
                               headers=viewer).json()  # fmt: skip
        assert page["total"] == 5
        assert [i["site"]["events"] for i in page["items"]] == [10, 11]  # newest first
        page2 = client.http.get("/api/v1/sites/sala-1/aggregates?window=1m&limit=2&offset=2",
                                headers=viewer).json()  # fmt: skip
        assert [i["site"]["events"] for i in page2["items"]] == [12, 13]
        since = (now - timedelta(minutes=1)).isoformat()
        ranged = client.http.get(
            "/api/v1/sites/sala-1/aggregates", params={"window": "1m", "from": since},
            headers=viewer,
        ).json()  # fmt: skip
        assert [i["site"]["events"] for i in ranged["items"]] == [10, 11]

        bad = {
            "/api/v1/sites/sala-1/aggregates?window=2m": "query.window",
            "/api/v1/sites/sala-1/aggregates?limit=0": "query.limit",
            "/api/v1/sites/sala-1/aggregates?from=yesterday": "from: expected an ISO 8601 time",
            "/api/v1/sites/sala-1/aggregates?from=2026-05-02T00:00Z&to=2026-05-01T00:00Z":
                "from: must be earlier than to",
            "/api/v1/sites?fresh_within=0": "query.fresh_within",
        }  # fmt: skip
        for path, reason in bad.items():
            answer = client.http.get(path, headers=viewer)
            assert answer.status_code == 422, (path, answer.text)
            assert answer.json()["detail"].startswith(reason), (path, answer.text)
        missing = client.http.get("/api/v1/sites/nowhere/aggregates", headers=viewer)
        assert missing.status_code == 404
        assert "nowhere" in missing.json()["detail"]
        assert client.http.get("/api/v1/sites").status_code == 401
        assert client.http.get("/api/v1/sites/sala-1/aggregates").status_code == 401

        spec = client.http.get("/openapi.json").json()
        route = spec["paths"]["/api/v1/sites/{site}/aggregates"]["get"]
        assert {"200", "401", "403", "404", "422"} <= route["responses"].keys()
        assert "AggregatePage" in json.dumps(route["responses"]["200"])
