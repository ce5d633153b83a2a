"""The pipeline end to end on files: chunk-size invariance, event contract, bad samples."""

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from jsonschema import Draft202012Validator, FormatChecker

from config.pipeline import PipelineConfig
from sinks.metrics import Metrics
from stream.events import json_schema, parse_event
from stream.pipeline import SourceRunner
from stream.sources import FileSource, FileSourceConfig
from tests.conftest import DATA, ROOT, run_file

SCHEMA_FILE = ROOT / "schemas" / "events.schema.json"


def _comparable(events: list[Any]) -> dict[str, list[dict[str, Any]]]:
    """Events by type, without the fields that legitimately differ between runs."""
    out: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        fields = e.model_dump(exclude={"run_id", "seq", "wall_time", "uptime_s"})
        out.setdefault(e.type, []).append(fields)
    return out


def test_the_same_audio_in_different_chunk_sizes_gives_the_same_events() -> None:
    path = DATA / "vad_music.flac"
    runs = [_comparable(run_file(path, block_size=size)) for size in (160, 1024, 4096)]
    assert runs[0] == runs[1] == runs[2]
    assert len(runs[0]["speech.started"]) >= 3
    assert len(runs[0]["level"]) == 300  # 30 s at 10 per second


def test_seq_is_strictly_increasing_and_wall_time_follows_the_sample_clock() -> None:
    events = run_file(DATA / "vad_clean.flac")
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    first = events[0]
    for e in events:
        offset = (e.wall_time - first.wall_time).total_seconds()
        assert offset == pytest.approx(e.t_start - first.t_start, abs=1e-6)


def test_committed_schema_matches_the_event_models() -> None:
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == json_schema(), "run: python tools/export_event_schema.py"


def test_real_pipeline_output_validates_against_the_committed_schema() -> None:
    validator = Draft202012Validator(
        json.loads(SCHEMA_FILE.read_text()), format_checker=FormatChecker()
    )
    events = run_file(DATA / "vad_music.flac", PipelineConfig(heartbeat_s=1))
    types = {e.type for e in events}
    assert {"speech.started", "speech.ended", "level", "heartbeat", "source.status"} <= types
    for e in events:
        document = json.loads(e.to_json())
        errors = [err.message for err in validator.iter_errors(document)]
        assert errors == [], document
        assert parse_event(e.to_json()) == e


def test_a_broken_document_fails_the_schema() -> None:
    validator = Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    event = json.loads(run_file(DATA / "vad_clean.flac")[-1].to_json())
    del event["seq"]
    assert not validator.is_valid(event)
    event["seq"] = 1
    event["type"] = "speech.whispered"
    assert not validator.is_valid(event)


def test_nan_samples_are_replaced_by_silence_and_counted(tmp_path: Path) -> None:
    x = np.zeros(16000, np.float32)
    x[1000:3000] = np.nan
    x[5000] = np.inf
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    metrics = Metrics()
    events: list[Any] = []
    source = FileSource(FileSourceConfig(path=path, realtime=False))
    SourceRunner(source, PipelineConfig(), events.extend, metrics).run(threading.Event())
    invalid = metrics.registry.get_sample_value(
        "heritage_invalid_samples_total", {"source": "file"}
    )
    assert invalid == 2001
    levels = [e for e in events if e.type == "level"]
    assert len(levels) == 10
    assert all(e.rms_dbfs == -120.0 for e in levels)
    assert events[-1].type == "source.status"
    assert events[-1].state == "ended"


def test_each_channel_of_a_multichannel_file_is_analysed_on_its_own(tmp_path: Path) -> None:
    speech, rate = sf.read(DATA / "vad_clean.flac", dtype="float32")
    stereo = np.stack([speech, np.zeros_like(speech)], axis=1)
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, rate)
    source = FileSource(FileSourceConfig(path=path, realtime=False, mixdown=False))
    events: list[Any] = []
    SourceRunner(source, PipelineConfig(), events.extend, Metrics()).run(threading.Event())
    starts = {e.channel for e in events if e.type == "speech.started"}
    assert starts == {0}
    quiet = [e.rms_dbfs for e in events if e.type == "level" and e.channel == 1]
    assert quiet
    assert max(quiet) == -120.0


def test_level_reports_rms_peak_and_clipping(tmp_path: Path) -> None:
    rate = 16000
    t = np.arange(rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 1000 * t)
    tone[8000:8100] = 1.0
    path = tmp_path / "tone.wav"
    sf.write(path, tone.astype(np.float32), rate, subtype="FLOAT")
    levels = [e for e in run_file(path) if e.type == "level"]
    assert levels[0].rms_dbfs == pytest.approx(-9.03, abs=0.05)  # 0.5 / sqrt(2)
    assert levels[0].peak_dbfs == pytest.approx(-6.02, abs=0.05)
    assert levels[0].clipped == 0
    assert levels[5].clipped == pytest.approx(100 / 1600, abs=0.01)
