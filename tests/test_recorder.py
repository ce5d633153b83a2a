"""The recorder: privacy default, speech segments and continuous files, retention."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from config.pipeline import PipelineConfig
from sinks.metrics import Metrics
from stream.events import Event
from stream.pipeline import SourceRunner
from stream.recorder import RecorderConfig, RecordingWriter
from stream.runtime import analyse_recording
from stream.sources import FileSource, FileSourceConfig
from tests.conftest import DATA, run_file, truth


def _record(path: Path, config: RecorderConfig, analyse: bool = False) -> list[Event]:
    writer = RecordingWriter(config, analyse=analyse_recording if analyse else None)
    events: list[Event] = []
    source = FileSource(FileSourceConfig(path=path, realtime=False))
    SourceRunner(source, PipelineConfig(), events.extend, Metrics(), writer).run(threading.Event())
    writer.close()
    return events


def test_nothing_is_recorded_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert PipelineConfig().recorder.enabled is False
    run_file(DATA / "vad_clean.flac")
    assert list(tmp_path.iterdir()) == []


def test_speech_mode_records_each_segment_with_its_pre_roll(tmp_path: Path) -> None:
    config = RecorderConfig(enabled=True, directory=tmp_path, pre_roll_s=0.5)
    events = _record(DATA / "vad_clean.flac", config)
    segments = [e for e in events if e.type == "speech.ended"]
    files = sorted((tmp_path / "file").glob("*.flac"))
    assert len(files) == len(segments) == len(truth("vad_clean.flac")["speech"])
    assert not list(tmp_path.rglob("*.part"))
    original, rate = sf.read(DATA / "vad_clean.flac", dtype="int16")
    for path, segment in zip(files, segments, strict=True):
        audio, file_rate = sf.read(path, dtype="int16")
        start = round((segment.t_start - 0.5) * rate)
        end = round(segment.t_end * rate)
        assert file_rate == 16000
        assert len(audio) == end - start
        np.testing.assert_array_equal(audio, original[start:end])  # sample-exact


def test_continuous_mode_splits_into_files_that_add_up_to_the_stream(tmp_path: Path) -> None:
    config = RecorderConfig(enabled=True, mode="continuous", directory=tmp_path, max_segment_s=5.0)
    _record(DATA / "vad_noise.flac", config)
    files = sorted((tmp_path / "file").glob("*.flac"))
    assert [round(sf.info(str(f)).duration, 3) for f in files] == [5.0, 5.0, 5.0, 5.0]
    original, _ = sf.read(DATA / "vad_noise.flac", dtype="int16")
    joined = np.concatenate([sf.read(f, dtype="int16")[0] for f in files])
    np.testing.assert_array_equal(joined, original)


def test_retention_removes_old_recordings_then_the_oldest_beyond_the_size_limit(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "mic"
    folder.mkdir()
    now = time.time()
    ages_days = {"ancient": 40, "old": 3, "recent": 2, "new": 1}
    for name, age in ages_days.items():
        path = folder / f"{name}.flac"
        path.write_bytes(b"\0" * 400_000)
        path.with_suffix(".json").write_text("{}")
        os.utime(path, (now - age * 86400, now - age * 86400))
    config = RecorderConfig(enabled=True, directory=tmp_path, max_age_days=30, max_total_mb=0.8)
    RecordingWriter(config).close()
    assert sorted(p.name for p in folder.iterdir()) == [
        "new.flac", "new.json", "recent.flac", "recent.json"
    ]  # fmt: skip


def test_each_recording_can_be_analysed_as_it_is_written(tmp_path: Path) -> None:
    config = RecorderConfig(enabled=True, directory=tmp_path, analyze=True)
    _record(DATA / "vad_clean.flac", config, analyse=True)
    files = sorted((tmp_path / "file").glob("*.flac"))
    assert files
    for path in files:
        document = json.loads(path.with_suffix(".json").read_text())
        assert document["audio_info"]["duration"] == pytest.approx(sf.info(str(path)).duration)
        assert document["results"]["voice_activity"]["segments"], path.name
