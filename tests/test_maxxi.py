"""MAXXI connector: export formats, atomic archive writes, signed callbacks to a real server."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from config.settings import Settings
from detectors.metadata import generate_metadata, validate_oai_dc
from sinks.maxxi import (
    DELIVERY_HEADER,
    EXPORT_SCHEMA,
    SIGNATURE_HEADER,
    CallbackError,
    MAXXIConnector,
    sign,
    verify_signature,
)
from stream.analyze import audio_info
from tests.conftest import DATA, ROOT, free_port

SECRET = "maxxi-test-secret"
EXPORTED_AT = datetime(2026, 11, 24, 7, 30, tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    """A result document: real audio info and metadata of a fixture; the classifier and
    speaker sections as DESIGN.md shows them (their own tests cover how they are made)."""
    path = DATA / "vad_clean.flac"
    task_id = str(uuid.uuid4())
    heritage = {
        "predicted_category": "spoken_word", "confidence": 0.91,
        "scores": {"spoken_word": 0.91, "historical_speech": 0.05, "folk_music": 0.01,
                   "classical_music": 0.01, "opera": 0.01, "religious_chant": 0.01},
        "timeline": [{"start": 0.0, "end": 20.0, "category": "spoken_word", "confidence": 0.9}],
    }  # fmt: skip
    speakers = {
        "speakers_detected": 2, "dominant_speaker": "Speaker_1", "interruptions": 0,
        "segments": [{"start": 0.6, "end": 3.16, "speaker": "Speaker_1"}],
        "speakers": {
            "Speaker_1": {"speaking_time": 6.2, "turns": 3, "name": None},
            "Speaker_2": {"speaking_time": 3.8, "turns": 2, "name": "Maria Rossi"},
        },
    }  # fmt: skip
    info = audio_info(path)
    return {
        "task_id": task_id,
        "audio_info": info,
        "results": {
            "heritage_classification": heritage,
            "speaker_recognition": speakers,
            "metadata_generation": generate_metadata(
                path,
                heritage=heritage,
                identifier=task_id,
                sha256=info["sha256"],
                curator={"title": "Letture", "language": "en"},
            ),
        },
        "provenance": {"software_version": "test", "models": {"vad": "sha256:0"}},
    }


def connector(tmp_path: Path, **settings: Any) -> MAXXIConnector:
    values = {"MAXXI_OUTPUT_DIR": tmp_path / "archive", "MAXXI_CALLBACK_SECRET": SECRET}
    return MAXXIConnector(
        Settings(**(values | settings)), max_attempts=4, backoff_s=0.01, clock=lambda: EXPORTED_AT
    )


def test_json_export_carries_dublin_core_category_speakers_and_provenance(
    tmp_path: Path, result: dict[str, Any]
) -> None:
    c = connector(tmp_path)
    export = c.format_for_maxxi(result)
    assert export["schema"] == EXPORT_SCHEMA
    assert export["task_id"] == result["task_id"]
    assert export["exported_at"] == "2026-11-24T07:30:00+00:00"
    assert len(export["dublin_core"]) == 15
    assert export["dublin_core"]["type"] == ["Sound"]
    assert export["heritage"]["predicted_category"] == "spoken_word"
    assert export["dublin_core"]["subject"] == ["Spoken word"]
    assert export["dublin_core"]["title"] == ["Letture"]
    assert export["speakers"]["speakers"] == [
        {"label": "Speaker_1", "name": None, "speaking_time": 6.2, "turns": 3},
        {"label": "Speaker_2", "name": "Maria Rossi", "speaking_time": 3.8, "turns": 2},
    ]
    assert export["provenance"] == result["provenance"]
    body, media_type = c.serialize(export, "json")
    assert media_type == "application/json"
    assert json.loads(body) == export


def test_xml_export_is_well_formed_and_embeds_a_valid_oai_dc_record(
    tmp_path: Path, result: dict[str, Any]
) -> None:
    c = connector(tmp_path, MAXXI_OUTPUT_FORMAT="xml")
    export = c.format_for_maxxi(result)
    body, media_type = c.serialize(export)
    assert media_type == "application/xml"
    root = etree.fromstring(body)
    ns = {
        "m": "urn:heritage-audio:maxxi-export:1",
        "oai_dc": "http://www.openarchives.org/OAI/2.0/oai_dc/",
    }
    assert root.findtext("m:taskId", namespaces=ns) == result["task_id"]
    record = root.find("m:metadata/oai_dc:dc", ns)
    assert record is not None
    assert validate_oai_dc(etree.tostring(record)) == []
    scores = {s.get("category"): float(s.text) for s in root.iterfind("m:heritage/m:score", ns)}
    assert scores == pytest.approx(export["heritage"]["scores"])
    assert scores["spoken_word"] == pytest.approx(0.91)
    names = [s.get("name") for s in root.iterfind("m:speakers/m:speaker", ns)]
    assert names == ["", "Maria Rossi"]


def test_unknown_format_is_a_value_error(tmp_path: Path, result: dict[str, Any]) -> None:
    c = connector(tmp_path)
    with pytest.raises(ValueError, match="yaml"):
        c.serialize(c.format_for_maxxi(result), "yaml")


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_store_writes_year_month_task_layout_and_nothing_else(
    tmp_path: Path, result: dict[str, Any], fmt: str
) -> None:
    c = connector(tmp_path, MAXXI_OUTPUT_FORMAT=fmt)
    export = c.format_for_maxxi(result)
    path = c.store_in_archive(export)
    assert path == tmp_path / "archive" / "2026" / "11" / f"{result['task_id']}.{fmt}"
    assert path.read_bytes() == c.serialize(export)[0]
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    assert path.stat().st_mode & 0o777 == 0o644  # readable by the archive's other users


def test_the_archive_stays_readable_under_the_services_private_umask(
    tmp_path: Path, result: dict[str, Any]
) -> None:
    before = os.umask(0o077)  # as config.private.restrict_umask leaves the API
    try:
        path = connector(tmp_path).store_in_archive(connector(tmp_path).format_for_maxxi(result))
    finally:
        os.umask(before)
    assert path.stat().st_mode & 0o777 == 0o644
    for directory in (path.parent, path.parent.parent, tmp_path / "archive"):
        assert directory.stat().st_mode & 0o777 == 0o755, directory


def test_a_failed_write_leaves_no_partial_file_and_keeps_the_previous_export(
    tmp_path: Path, result: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    c = connector(tmp_path)
    export = c.format_for_maxxi(result)
    path = c.store_in_archive(export)
    before = path.read_bytes()
    seen_temp: list[str] = []

    def failing_fsync(fd: int) -> None:
        # The disk fills up just as the new version is being flushed.
        seen_temp.extend(p.name for p in path.parent.iterdir() if p.name != path.name)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space"):
        c.store_in_archive(export | {"dublin_core": {"title": ["changed"]}})
    monkeypatch.undo()
    # The new bytes were only ever in a hidden temporary file, which is gone now.
    assert len(seen_temp) == 1
    assert seen_temp[0].startswith(f".{result['task_id']}.")
    assert seen_temp[0].endswith(".tmp")
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    assert path.read_bytes() == before


def test_a_task_id_that_is_not_a_uuid_never_names_a_file(
    tmp_path: Path, result: dict[str, Any]
) -> None:
    c = connector(tmp_path)
    export = c.format_for_maxxi(result) | {"task_id": "../../etc/passwd"}
    with pytest.raises(ValueError, match="not a UUID"):
        c.store_in_archive(export)
    assert not (tmp_path / "archive").exists()


@dataclass
class Recorder:
    """What a scripted MAXXI endpoint received; it answers with ``statuses`` in turn."""

    statuses: list[int]
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def maxxi_server() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder(statuses=[])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            recorder.requests.append((dict(self.headers.items()), body))
            status = recorder.statuses.pop(0) if recorder.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            del format, args

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/callback", recorder
    finally:
        server.shutdown()
        server.server_close()


def test_signed_callback_is_received_and_verifies(
    tmp_path: Path, result: dict[str, Any], maxxi_server: tuple[str, Recorder]
) -> None:
    url, recorder = maxxi_server
    c = connector(tmp_path, MAXXI_CALLBACK_URL=url)
    export = c.format_for_maxxi(result)
    assert c.notify(result["task_id"], export) == 200
    [(headers, body)] = recorder.requests
    assert verify_signature(body, headers, SECRET, now=EXPORTED_AT)
    assert json.loads(body) == export
    assert headers["X-Heritage-Task-Id"] == result["task_id"]


def test_callback_retries_503_then_succeeds_with_one_delivery_id(
    tmp_path: Path, result: dict[str, Any], maxxi_server: tuple[str, Recorder]
) -> None:
    url, recorder = maxxi_server
    recorder.statuses = [503, 503, 200]
    c = connector(tmp_path, MAXXI_CALLBACK_URL=url)
    assert c.notify(result["task_id"], {"task_id": result["task_id"]}) == 200
    assert len(recorder.requests) == 3
    assert len({h[DELIVERY_HEADER] for h, _ in recorder.requests}) == 1
    assert all(verify_signature(b, h, SECRET, now=EXPORTED_AT) for h, b in recorder.requests)


@pytest.mark.parametrize("status", [400, 401, 302])
def test_callback_does_not_retry_a_client_error_or_redirect(
    tmp_path: Path, result: dict[str, Any], maxxi_server: tuple[str, Recorder], status: int
) -> None:
    url, recorder = maxxi_server
    recorder.statuses = [status]
    c = connector(tmp_path, MAXXI_CALLBACK_URL=url)
    with pytest.raises(CallbackError) as raised:
        c.notify(result["task_id"], {"task_id": result["task_id"]})
    assert raised.value.status == status
    assert len(recorder.requests) == 1


def test_callback_gives_up_after_the_last_attempt_when_maxxi_is_down(
    tmp_path: Path, result: dict[str, Any], maxxi_server: tuple[str, Recorder]
) -> None:
    url, recorder = maxxi_server
    recorder.statuses = [503] * 10
    c = connector(tmp_path, MAXXI_CALLBACK_URL=url)
    with pytest.raises(CallbackError) as raised:
        c.notify(result["task_id"], {})
    assert raised.value.status == 503
    assert len(recorder.requests) == c.max_attempts


def test_unreachable_callback_is_retried_then_reported(
    tmp_path: Path, result: dict[str, Any]
) -> None:
    c = connector(tmp_path, MAXXI_CALLBACK_URL=f"http://127.0.0.1:{free_port()}/callback")
    with pytest.raises(CallbackError, match="unreachable"):
        c.notify(result["task_id"], {})


def test_no_callback_url_means_no_request(tmp_path: Path, result: dict[str, Any]) -> None:
    assert connector(tmp_path).notify(result["task_id"], {}) is None


def test_secret_key_signs_when_no_callback_secret_is_set(
    tmp_path: Path, result: dict[str, Any], maxxi_server: tuple[str, Recorder]
) -> None:
    url, recorder = maxxi_server
    c = connector(
        tmp_path, MAXXI_CALLBACK_URL=url, MAXXI_CALLBACK_SECRET=None, SECRET_KEY="app-key"
    )
    c.notify(result["task_id"], {})
    [(headers, body)] = recorder.requests
    assert verify_signature(body, headers, "app-key", now=EXPORTED_AT)
    assert not verify_signature(body, headers, SECRET, now=EXPORTED_AT)
    unsigned = connector(tmp_path, MAXXI_CALLBACK_URL=url, MAXXI_CALLBACK_SECRET=None)
    with pytest.raises(ValueError, match="SECRET_KEY"):
        unsigned.notify(result["task_id"], {})


def test_verify_signature_rejects_tampering_wrong_keys_and_replays() -> None:
    body = b'{"task_id": "x"}'
    headers = {SIGNATURE_HEADER: sign(body, SECRET.encode(), 1_000_000)}
    assert verify_signature(body, headers, SECRET, now=1_000_010)
    assert verify_signature(body, {k.lower(): v for k, v in headers.items()}, SECRET, now=1_000_010)
    assert not verify_signature(body + b" ", headers, SECRET, now=1_000_010)
    assert not verify_signature(body, headers, "other", now=1_000_010)
    assert not verify_signature(body, headers, SECRET, now=1_000_000 + 301)  # replayed later
    assert not verify_signature(body, {}, SECRET, now=1_000_010)
    assert not verify_signature(body, {SIGNATURE_HEADER: "t=abc,v1=00"}, SECRET, now=1_000_010)
    # During a key rotation the sender may put two MACs in; either key verifies.
    rotated = f"{headers[SIGNATURE_HEADER]},v1={sign(body, b'new', 1_000_000).split('v1=')[1]}"
    assert verify_signature(body, {SIGNATURE_HEADER: rotated}, "new", now=1_000_010)
    assert verify_signature(body, {SIGNATURE_HEADER: rotated}, SECRET, now=1_000_010)
    # Re-stamping a captured signature with a fresh time breaks it.
    forged = headers[SIGNATURE_HEADER].replace("t=1000000", "t=1000500")
    assert not verify_signature(body, {SIGNATURE_HEADER: forged}, SECRET, now=1_000_500)


def test_a_result_with_only_voice_activity_still_exports(tmp_path: Path) -> None:
    # The quick processing type: no speakers, no category, no metadata section.
    minimal = {
        "task_id": "0b7f3a52-93a4-4c39-8f7e-2c1d5e6f7a8b",
        "audio_info": {"duration": 1.0, "sample_rate": 16000, "channels": 1},
        "results": {"voice_activity": {"speech_ratio": 0.0, "segments": []}},
        "provenance": {"software_version": "0.1.0", "models": {}},
    }
    c = connector(tmp_path, MAXXI_OUTPUT_FORMAT="xml")
    export = c.format_for_maxxi(minimal)
    assert export["heritage"] is None
    assert export["speakers"] is None
    assert export["oai_dc"] is None
    root = etree.fromstring(c.serialize(export)[0])
    ns = {"m": "urn:heritage-audio:maxxi-export:1"}
    assert root.find("m:heritage", ns).get("present") == "false"
    assert root.find("m:metadata", ns).getchildren() == []
    assert c.store_in_archive(export).name == f"{minimal['task_id']}.xml"


def export_schema() -> etree.XMLSchema:
    """The export's XSD, its oai_dc import resolved to the shipped copies (no network)."""
    from detectors.metadata.dublin_core import SCHEMA_DIR, SCHEMA_FILES

    class Shipped(etree.Resolver):  # type: ignore[misc]
        def resolve(self, url: str, public_id: str, context: object) -> Any:
            if url not in SCHEMA_FILES:
                return None  # a local file: lxml reads it itself
            return self.resolve_filename(str(SCHEMA_DIR / SCHEMA_FILES[url]), context)

    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(Shipped())
    return etree.XMLSchema(etree.parse(str(ROOT / "schemas" / "maxxi-export-1.xsd"), parser))


def test_xml_exports_validate_against_the_published_export_schema(
    tmp_path: Path, result: dict[str, Any]
) -> None:
    schema = export_schema()
    c = connector(tmp_path, MAXXI_OUTPUT_FORMAT="xml")
    full = c.format_for_maxxi(result)
    minimal = c.format_for_maxxi(
        {"task_id": str(uuid.uuid4()), "results": {}, "provenance": {"models": {}}}
    )
    for export in (full, minimal):
        document = etree.fromstring(c.serialize(export)[0])
        assert schema.validate(document), schema.error_log
    # The schema is not a rubber stamp: a record with a foreign element in the DC fails.
    broken = (
        c.serialize(full)[0]
        .replace(b"<dc:type>", b"<dc:medium>")
        .replace(b"</dc:type>", b"</dc:medium>")
    )
    assert not schema.validate(etree.fromstring(broken))


def test_json_exports_validate_against_the_published_json_schema(
    tmp_path: Path, result: dict[str, Any]
) -> None:
    import jsonschema

    schema = json.loads((ROOT / "schemas" / "maxxi-export-1.schema.json").read_text())
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    c = connector(tmp_path)
    full = c.format_for_maxxi(result)
    minimal = c.format_for_maxxi(
        {"task_id": str(uuid.uuid4()), "results": {}, "provenance": {"models": {}}}
    )
    for export in (full, minimal):
        validator.validate(json.loads(c.serialize(export)[0]))
    wrong = json.loads(c.serialize(full)[0]) | {"heritage": {**full["heritage"], "confidence": 2}}
    assert not validator.is_valid(wrong)
