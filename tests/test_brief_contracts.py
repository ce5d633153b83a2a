"""The product brief's contracts: integer priorities, a 0-1 health score, and its Python
entry points as thin facades over the real code (each compared with what it wraps)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from api.jobs import PRIORITIES
from config.settings import Settings, get_maxxi_integration_config
from detectors.heritage import HeritageClassifier
from detectors.heritage.model import DEFAULT_MODEL, ModelError
from stream.analyze import analyze_file
from stream.system import SpeakerRecognition
from tests.conftest import DATA
from tests.service import Client, api, settings_for

pytestmark = pytest.mark.timeout(300)
CONVERSATION = DATA / "diarization" / "conversation_2spk.flac"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    with api(settings_for("sqlite", tmp_path_factory.mktemp("brief"))) as c:
        yield c


def _wav(seed: int) -> bytes:
    buffer = io.BytesIO()
    noise = np.random.default_rng(seed).normal(0, 0.1, 8000).astype(np.float32)
    sf.write(buffer, noise, 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("given", "level"),
    [("1", PRIORITIES["urgent"]), ("2", PRIORITIES["high"]), ("3", PRIORITIES["normal"]),
     ("4", PRIORITIES["low"]), ("high", PRIORITIES["high"])],
)  # fmt: skip
def test_priority_takes_the_briefs_integers_beside_the_names(
    client: Client, given: str, level: int
) -> None:
    # As `curl -F audio_file=@x.wav -F priority=1` sends it.
    response = client.http.post(
        "/api/v1/process",
        headers=client.auth("operator"),
        files={"audio_file": ("x.wav", _wav(int(level) + len(given)), "audio/wav")},
        data={"priority": given},
    )
    assert response.status_code == 202, response.text
    assert client.status(response.json()["task_id"])["priority"] == level


@pytest.mark.parametrize("given", ["0", "5", "-1", "1.5", "asap"])
def test_priorities_outside_the_brief_are_refused(client: Client, given: str) -> None:
    response = client.upload(DATA / "vad_silence.flac", priority=given)
    assert response.status_code == 422
    assert "priority" in response.json()["detail"]


def test_health_score_is_a_number_from_0_to_1_with_its_reasons(client: Client) -> None:
    health = client.http.get("/health").json()
    assert isinstance(health["health_score"], float)
    assert 0 <= health["health_score"] <= 1
    lost = sum(p["points"] for p in health["health_details"])
    assert health["health_score"] == pytest.approx(max(0, 100 - lost) / 100, abs=0.005)
    for penalty in health["health_details"]:
        assert penalty["reason"]
        assert penalty["points"] > 0


def test_heritage_classifier_load_model_and_classify_audio() -> None:
    path = DATA / "heritage" / "folk_music.flac"
    classifier = HeritageClassifier().load_model(DEFAULT_MODEL)
    assert classifier.config.model_path == DEFAULT_MODEL
    assert classifier.classify_audio(path) == HeritageClassifier().classify_file(path)
    with pytest.raises(ModelError):
        HeritageClassifier().load_model(DATA / "nowhere.skops")


def test_speaker_recognition_identifies_the_two_speakers_of_a_conversation() -> None:
    recognition = SpeakerRecognition(n_speakers=2)
    trained = recognition.train_speaker_clustering(CONVERSATION)
    assert recognition.last is trained
    assert trained["speakers_detected"] == 2
    assert {s["speaker"] for s in trained["segments"]} == {"Speaker_1", "Speaker_2"}
    expected = analyze_file(CONVERSATION, recognition.config, n_speakers=2)
    assert (
        recognition.identify_speakers(CONVERSATION) == (expected["results"]["speaker_recognition"])
    )
    with pytest.raises(ValueError, match="n_speakers"):
        SpeakerRecognition(n_speakers=0)


def test_get_maxxi_integration_config_reads_the_settings(tmp_path: Path) -> None:
    settings = Settings(
        MAXXI_OUTPUT_FORMAT="xml", MAXXI_OUTPUT_DIR=tmp_path, MAXXI_CALLBACK_URL="http://m/cb"
    )
    config = get_maxxi_integration_config(settings)
    assert config == {
        "compatibility_mode": True, "output_format": "xml", "metadata_schema": "dublin_core",
        "output_dir": str(tmp_path), "callback_url": "http://m/cb", "callback_signed": False,
    }  # fmt: skip
    from config import settings as module

    assert module.get_maxxi_integration_config is get_maxxi_integration_config
