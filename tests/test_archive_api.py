"""The archive application's API: search, jobs list, live job events, overview, playback,
downloads, Dublin Core edits and speaker/segment corrections, on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
import soundfile as sf
from lxml import etree

from tests.conftest import DATA
from tests.service import api, postgres_database, settings_for

pytestmark = pytest.mark.timeout(300)
RECORDING = DATA / "diarization" / "conversation_2spk.flac"


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_recordings_are_found_by_dublin_core_category_speaker_date_and_duration(
    store: str, tmp_path: Path
) -> None:
    with contextlib.ExitStack() as stack:
        name = stack.enter_context(postgres_database()) if store == "postgresql" else None
        client = stack.enter_context(api(settings_for(store, tmp_path, name)))
        first = client.upload(
            RECORDING, title="Intervista con Maria Lai", creator="Archivio MAXXI", date="1987-05"
        ).json()["task_id"]
        second = client.upload(DATA / "vad_clean.flac", title="Guided tour", date="2001").json()
        for task_id in (first, second["task_id"]):
            assert client.wait(task_id)["status"] == "completed"
        duration = sf.info(str(RECORDING)).duration

        def find(**params: object) -> list[str]:
            response = client.http.get(
                "/api/v1/recordings", params=params, headers=client.auth("viewer")
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["full_text"] is (store == "postgresql")
            return [item["task_id"] for item in body["items"]]

        assert find(q="maria intervista") == [first]
        assert find(q="inter") == [first]  # a word's beginning is enough
        assert find(q="archivio maxxi 1987") == [first]
        assert find(q="nobody") == []
        assert find(date_from="1987-05-20", date_to="1990-01-01") == [first]
        assert find(date_from="1988-01-01") == [second["task_id"]]
        assert find(min_duration=duration - 0.5, max_duration=duration + 0.5) == [first]
        assert len(find(limit=1)) == 1
        assert set(find()) == {first, second["task_id"]}
        category = client.http.get(f"/api/v1/results/{first}", headers=client.auth()).json()
        predicted = category["results"]["heritage_classification"]["predicted_category"]
        assert first in find(category=predicted)

        # A curator names a speaker and relabels the file: search follows.
        named = client.http.post(
            f"/api/v1/results/{first}/speakers",
            json={"speaker": "Speaker_1", "name": "Maria Lai"},
            headers=client.auth("operator"),
        )
        assert named.status_code == 201, named.text
        assert find(speaker="maria") == [first]
        other = "opera" if predicted != "opera" else "folk_music"
        corrected = client.http.post(
            f"/api/v1/results/{first}/corrections",
            json={"category": other},
            headers=client.auth("operator"),
        )
        assert corrected.status_code == 201, corrected.text
        assert find(category=other) == [first]

        # The curator's title changes; the old one no longer finds it.
        edit = client.http.patch(
            f"/api/v1/recordings/{first}/dublin-core",
            json={"title": "Conversazione nello studio"},
            headers=client.auth("operator"),
        )
        assert edit.status_code == 200, edit.text
        assert edit.json()["elements"]["title"] == ["Conversazione nello studio"]
        assert find(q="conversazione") == [first]
        assert find(q="intervista") == []


def test_bad_dublin_core_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    with api(settings_for("sqlite", tmp_path)) as client:
        bad_date = client.upload(DATA / "vad_clean.flac", title="T", date="last spring")
        assert bad_date.status_code == 422
        assert "'last spring' is not a date" in bad_date.json()["detail"]
        huge = client.upload(DATA / "vad_clean.flac", title="x" * 10_000_000)
        assert huge.status_code == 413
        assert "form fields are too large" in huge.json()["detail"]
        listed = client.http.get("/api/v1/tasks", headers=client.auth("viewer")).json()
        assert listed["total"] == 0
        assert not [p for p in (tmp_path / "uploads").rglob("*") if p.is_file()]

        task_id = client.upload(DATA / "vad_clean.flac", title="Tour").json()["task_id"]
        client.wait(task_id)
        refused = client.http.patch(
            f"/api/v1/recordings/{task_id}/dublin-core",
            json={"date": "1999-13-01", "title": "New"},
            headers=client.auth("operator"),
        )
        assert refused.status_code == 422
        assert "not a calendar date" in refused.json()["detail"]
        viewer = client.http.patch(
            f"/api/v1/recordings/{task_id}/dublin-core",
            json={"title": "New"},
            headers=client.auth("viewer"),
        )
        assert viewer.status_code == 403
        record = client.http.get(
            f"/api/v1/recordings/{task_id}/dublin-core", headers=client.auth("viewer")
        ).json()
        assert record["elements"]["title"] == ["Tour"]


def test_jobs_list_filters_by_status_and_title_and_streams_changes(tmp_path: Path) -> None:
    with api(settings_for("sqlite", tmp_path)) as client:
        with client.http.stream(
            "GET", "/api/v1/task-events", headers=client.auth("viewer"), timeout=60
        ) as events:
            lines = events.iter_lines()
            assert next(lines) == "retry: 2000"
            task_id = client.upload(DATA / "vad_clean.flac", title="Sala 100%_a").json()["task_id"]
            statuses = []
            for line in lines:
                if line.startswith("data: "):
                    change = json.loads(line[6:])
                    assert change["task_id"] == task_id
                    statuses.append(change["status"])
                    if change["status"] == "completed":
                        break
        assert statuses[-1] == "completed"
        assert set(statuses) <= {"queued", "running", "completed"}
        client.upload(DATA / "vad_silence.flac", title="Silenzio", processing_type="quick")

        def listed(**params: object) -> list[str | None]:
            body = client.http.get("/api/v1/tasks", params=params, headers=client.auth()).json()
            return [item["title"] for item in body["items"]]

        assert listed(q="100%_") == ["Sala 100%_a"]  # % and _ are literal
        assert listed(q="SILEN") == ["Silenzio"]
        assert listed(q="vad_clean") == ["Sala 100%_a"]  # the file name counts too
        assert listed(q="x%") == []
        assert "Sala 100%_a" in listed(status="completed")
        first = client.http.get("/api/v1/tasks", headers=client.auth()).json()["items"][-1]
        assert first["submitted_by"] == "operator"


def test_overview_playback_downloads_and_corrections_of_a_result(tmp_path: Path) -> None:
    with api(settings_for("sqlite", tmp_path)) as client:
        task_id = client.upload(RECORDING, title="Studio", language="it").json()["task_id"]
        assert client.wait(task_id)["status"] == "completed"
        viewer = client.auth("viewer")
        # The overview was computed when the job completed.
        assert list((tmp_path / "overviews").glob("*.json"))
        overview = client.http.get(f"/api/v1/recordings/{task_id}/overview", headers=viewer)
        data = overview.json()
        info = sf.info(str(RECORDING))
        assert data["duration"] == pytest.approx(info.duration)
        assert len(data["peaks"]) == 2 * 2000
        assert max(data["peaks"]) > 10
        assert data["spectrogram"]["columns"] == 400

        link = client.http.get(f"/api/v1/recordings/{task_id}/audio-link", headers=viewer).json()
        assert link["media_type"] == "audio/flac"
        whole = client.http.get(link["url"])
        assert whole.content == RECORDING.read_bytes()
        part = client.http.get(link["url"], headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206
        assert part.content == RECORDING.read_bytes()[1000:2000]
        forged = link["url"][:-4] + ("0000" if not link["url"].endswith("0000") else "1111")
        assert client.http.get(forged).status_code == 401

        rttm = client.http.get(f"/api/v1/results/{task_id}/rttm", headers=viewer).text
        assert rttm.startswith(f"SPEAKER {task_id} 1 ")
        assert "Speaker_1" in rttm
        xml = client.http.get(f"/api/v1/results/{task_id}/oai_dc", headers=viewer)
        root = etree.fromstring(xml.content)
        titles = root.findall("{http://purl.org/dc/elements/1.1/}title")
        assert [(t.text, t.get("{http://www.w3.org/XML/1998/namespace}lang")) for t in titles] == [
            ("Studio", "it")
        ]

        op = client.auth("operator")
        url = f"/api/v1/results/{task_id}"
        merge = client.http.post(
            f"{url}/speakers", json={"speaker": "Speaker_2", "merge_into": "Speaker_1"}, headers=op
        )
        assert merge.status_code == 201, merge.text
        unknown = client.http.post(
            f"{url}/speakers", json={"speaker": "Speaker_9", "name": "X"}, headers=op
        )
        assert unknown.status_code == 422
        assert "Speaker_9" in unknown.json()["detail"]
        wrong = client.http.post(
            f"{url}/wrong-segments", json={"lane": "speech", "start": 1.0, "end": 2.5}, headers=op
        )
        assert wrong.status_code == 201
        denied = client.http.post(
            f"{url}/wrong-segments", json={"lane": "speech", "start": 1, "end": 2}, headers=viewer
        )
        assert denied.status_code == 403
        stored = client.http.get(f"{url}/annotations", headers=viewer).json()
        assert [(a["kind"], a["reported_by"]) for a in stored] == [
            ("speaker_merge", "operator"),
            ("wrong_segment", "operator"),
        ]
        assert stored[1]["detail"]["start"] == 1.0


def test_results_stored_before_search_existed_are_indexed_at_start(tmp_path: Path) -> None:
    settings = settings_for("sqlite", tmp_path)
    with api(settings) as client:
        task_id = client.upload(DATA / "vad_clean.flac", title="Archivio").json()["task_id"]
        client.wait(task_id)
    import sqlite3

    with contextlib.closing(sqlite3.connect(tmp_path / "heritage-audio.db")) as db, db:
        db.execute("DELETE FROM recordings")
    with api(settings, users=False) as client:
        found = client.http.get(
            "/api/v1/recordings", params={"q": "archivio"}, headers=client.auth()
        )
        assert [i["task_id"] for i in found.json()["items"]] == [task_id]


def test_search_refuses_bad_criteria(tmp_path: Path) -> None:
    with api(settings_for("sqlite", tmp_path)) as client:
        for params in ({"category": "jazz"}, {"date_from": "spring"}, {"limit": 0}):
            response = client.http.get(
                "/api/v1/recordings", params=params, headers=client.auth("viewer")
            )
            assert response.status_code == 422, params
