"""Whole-file diarization with GE2E and CAM++ embeddings joined.

``file_encoder = "ge2e+campplus"``

On the real-voice room fixtures of tests/data/diarization (see test_speaker_rooms.py);
no threshold was tuned on them (CAM++'s cuts were chosen on the dev split of
tools/make_room_conversations.py).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from pyannote.core import Annotation, Segment, Timeline
from pyannote.database.util import load_rttm
from pyannote.metrics.diarization import DiarizationErrorRate

from config.pipeline import PipelineConfig
from detectors import SpeakerConfig
from detectors.speaker.campplus import CAMPPLUS_SIZE
from detectors.speaker.detector import SpeakerDetector, SpeakerHistory
from detectors.speaker.offline import Segment as Turn
from detectors.speaker.offline import diarize
from sinks.metrics import Metrics
from stream.pipeline import SourceRunner
from stream.sources import FileSource, FileSourceConfig
from stream.speaker_report import speaker_analysis_config
from tests.conftest import DATA

ROOMS = DATA / "diarization"
FIXTURES = {1: "room_1spk", 3: "room_3spk", 4: "room_4spk"}


def config(**overrides: Any) -> SpeakerConfig:
    return SpeakerConfig(profiles_path=Path("/nonexistent/profiles.json"), **overrides)


def histories(name: str, speaker: SpeakerConfig) -> list[SpeakerHistory]:
    pipeline = speaker_analysis_config(PipelineConfig(detectors=[speaker]))
    source = FileSource(FileSourceConfig(path=ROOMS / f"{name}.flac", realtime=False))
    runner = SourceRunner(source, pipeline, lambda _: None, Metrics())
    runner.run(threading.Event())
    return [
        d.history() for c in runner.chains for d in c.detectors if isinstance(d, SpeakerDetector)
    ]


@pytest.fixture(scope="module")
def campplus() -> dict[int, list[SpeakerHistory]]:
    return {
        n: histories(name, config(file_encoder="ge2e+campplus")) for n, name in FIXTURES.items()
    }


def der(name: str, segments: list[Turn]) -> float:
    truth: Annotation = load_rttm(str(ROOMS / f"{name}.rttm"))[name]
    hypothesis = Annotation()
    for i, s in enumerate(segments):
        hypothesis[Segment(s.start, s.end), i] = str(s.speaker)
    uem = Timeline([Segment(0, sf.info(ROOMS / f"{name}.flac").duration)])
    metric = DiarizationErrorRate(collar=0.25, skip_overlap=False)
    return float(metric(truth, hypothesis, uem=uem))


def test_histories_hold_one_campplus_embedding_per_window(
    campplus: dict[int, list[SpeakerHistory]],
) -> None:
    for history in (h for hs in campplus.values() for h in hs):
        assert history.campplus is not None
        assert history.campplus.shape == (len(history.embeddings), CAMPPLUS_SIZE)
        np.testing.assert_allclose(np.linalg.norm(history.campplus, axis=1), 1.0, atol=1e-5)


def test_ge2e_files_keep_no_campplus_embeddings() -> None:
    (history,) = histories("room_1spk", config())
    assert history.campplus is None


def test_count_and_error_with_campplus(campplus: dict[int, list[SpeakerHistory]]) -> None:
    for n, name in FIXTURES.items():
        result = diarize(campplus[n], config(file_encoder="ge2e+campplus"))
        found = len(result.centroids)
        value = der(name, result.segments)
        assert abs(found - n) <= 1, (name, found)
        assert value < 0.5, (name, value)


def test_centroids_stay_ge2e_for_enrolled_names(campplus: dict[int, list[SpeakerHistory]]) -> None:
    """Voice profiles are GE2E embeddings: the file's speakers are described in GE2E's space
    whichever encoder clustered them."""
    result = diarize(campplus[3], config(file_encoder="ge2e+campplus"), n_speakers=3)
    assert result.centroids.shape == (3, 256)
    assert np.all(result.centroids >= 0)  # GE2E's components are never negative


def test_the_same_histories_cluster_with_ge2e_when_asked(
    campplus: dict[int, list[SpeakerHistory]],
) -> None:
    with_ge2e = diarize(campplus[4], config(), n_speakers=4)
    with_campplus = diarize(campplus[4], config(file_encoder="ge2e+campplus"), n_speakers=4)
    assert with_ge2e.segments != with_campplus.segments


def test_accurate_speakers_runs_campplus_and_the_result_names_every_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``analyze --accurate-speakers`` clusters on the joined embeddings, and the result's
    provenance names each model the speaker section ran (CAM++ and the segmentation only
    where they ran), so that an archive can tell how a timeline was made."""
    import json

    from detectors.speaker.campplus import campplus_provenance
    from detectors.speaker.segmentation import segmentation_provenance
    from stream.cli import main

    monkeypatch.setenv("HERITAGE_DATA_DIR", str(tmp_path / "data"))
    path = str(ROOMS / "room_3spk.flac")
    plain, accurate = tmp_path / "plain.json", tmp_path / "accurate.json"
    assert main(["analyze", path, "--json", str(plain)]) == 0
    assert main(["analyze", path, "--accurate-speakers", "--json", str(accurate)]) == 0
    models = json.loads(plain.read_text())["provenance"]["models"]
    assert models["speaker_encoder"].startswith("ge2e_speaker_encoder.onnx sha256:")
    assert "speaker_campplus" not in models
    assert "speaker_segmentation" not in models
    models = json.loads(accurate.read_text())["provenance"]["models"]
    assert models["speaker_campplus"] == campplus_provenance()
    assert models["speaker_campplus"].startswith("campplus_sv_zh_en_16k.onnx sha256:")
    toml = tmp_path / "segmented.toml"
    toml.write_text('[[detectors]]\ntype = "speaker"\nfile_segmentation = true\n')
    segmented = tmp_path / "segmented.json"
    assert main(["analyze", path, "--config", str(toml), "--json", str(segmented)]) == 0
    models = json.loads(segmented.read_text())["provenance"]["models"]
    assert models["speaker_segmentation"] == segmentation_provenance()


def test_an_upload_can_ask_for_accurate_speakers(tmp_path: Path) -> None:
    """``POST /api/v1/process`` takes ``accurate_speakers``; the job then runs the speaker
    section as ``analyze --accurate-speakers`` does, and only then."""
    from api.jobs import default_analysis
    from api.routes.tasks import ProcessForm

    assert ProcessForm.model_validate({"accurate_speakers": "true"}).accurate_speakers
    assert not ProcessForm.model_validate({}).accurate_speakers
    path = ROOMS / "room_3spk.flac"
    for asked, expected in ((True, True), (False, False)):
        options = {"processing_type": "speaker", "task_id": f"t-{asked}"}
        document = default_analysis(path, options | {"accurate_speakers": asked}, lambda _: None)
        assert ("speaker_campplus" in document["provenance"]["models"]) is expected
        assert document["results"]["speaker_recognition"]["speakers_detected"] >= 2
