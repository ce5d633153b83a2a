"""Enrolled voices: the profile store, ``heritage-audio speakers``, and naming in analysis.

``enroll_ked.flac`` holds other sentences of one of the two voices of
``conversation_2spk.flac`` (festival ked), in another room with other noise;
``espeak_m3_*.flac`` a voice that is not in the conversation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from config.pipeline import PipelineConfig
from detectors import SpeakerConfig
from detectors.speaker.encoder import (
    EMBEDDING_SIZE,
    ENCODER_MODEL,
    FLOAT_ENCODER_MODEL,
    encoder_provenance,
)
from detectors.speaker.profiles import ProfileStore, VoiceProfile, check_name, match_names
from stream.analyze import analyze_file
from stream.events import SpeakerTurn
from stream.speaker_report import enrollment_embedding
from tests.conftest import DATA, run_file

CONVERSATION = DATA / "diarization" / "conversation_2spk.flac"
KED = DATA / "diarization" / "enroll_ked.flac"
OTHER = [DATA / "speaker" / "espeak_m3_a.flac", DATA / "speaker" / "espeak_m3_b.flac"]


def _truth_voices() -> list[str]:
    return [line.split()[7] for line in CONVERSATION.with_suffix(".rttm").read_text().splitlines()]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ProfileStore:
    """Profiles of ked (in the conversation) and of an espeak voice (not in it)."""
    store = ProfileStore(tmp_path_factory.mktemp("profiles") / "profiles.json")
    for name, files in (("Guide Ked", [KED]), ("Guide Other", OTHER)):
        embedding, seconds = enrollment_embedding(files)
        store.save(VoiceProfile(name, embedding, seconds, tuple(f.name for f in files)))
    return store


def test_file_analysis_names_the_enrolled_voice_and_no_other(store: ProfileStore) -> None:
    config = PipelineConfig(detectors=[SpeakerConfig(profiles_path=store.path)])
    section = analyze_file(CONVERSATION, config)["results"]["speaker_recognition"]
    labels = [s["speaker"] for s in section["segments"]]
    expected = ["Guide Ked" if v == "ked" else "Speaker_1" for v in _truth_voices()]
    assert labels == expected
    assert section["speakers"]["Guide Ked"]["name"] == "Guide Ked"
    assert section["speakers"]["Speaker_1"]["name"] is None
    assert "Guide Other" not in section["speakers"]


def test_live_analysis_names_the_enrolled_voice_and_no_other(store: ProfileStore) -> None:
    events = run_file(
        CONVERSATION, PipelineConfig(detectors=[SpeakerConfig(profiles_path=store.path)])
    )
    speakers = {e.speaker for e in events if isinstance(e, SpeakerTurn)}
    assert speakers == {"Guide Ked", "Speaker_1"}


def test_without_profiles_nobody_is_named(tmp_path: Path) -> None:
    config = PipelineConfig(detectors=[SpeakerConfig(profiles_path=tmp_path / "none.json")])
    result = analyze_file(CONVERSATION, config)
    assert set(result["results"]["speaker_recognition"]["speakers"]) == {"Speaker_1", "Speaker_2"}
    # The provenance records the profiles path: it must still be JSON (analyze --json).
    recorded = json.loads(json.dumps(result))["provenance"]["parameters"]["detectors"]
    assert str(tmp_path / "none.json") in [d.get("profiles_path") for d in recorded]


def test_the_store_round_trips_and_removes(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path / "speakers" / "profiles.json")
    assert store.load() == {}
    vector = np.abs(np.random.default_rng(1).normal(size=EMBEDDING_SIZE)).astype(np.float32)
    vector /= np.linalg.norm(vector)
    store.save(VoiceProfile("Anna", vector, 12.5, ("anna.wav",)))
    store.save(VoiceProfile("Bruno", vector[::-1].copy(), 30.0))
    loaded = store.load()
    assert sorted(loaded) == store.names() == ["Anna", "Bruno"]
    np.testing.assert_allclose(loaded["Anna"].embedding, vector, atol=1e-6)
    assert (loaded["Anna"].seconds, loaded["Anna"].sources) == (12.5, ("anna.wav",))
    assert store.remove("Anna") is True
    assert store.remove("Anna") is False
    assert store.names() == ["Bruno"]
    # Written by rename: no temporary file is left behind.
    assert [p.name for p in store.path.parent.iterdir()] == ["profiles.json"]


def test_a_foreign_or_broken_store_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "profiles.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="unreadable"):
        ProfileStore(path).load()
    path.write_text(json.dumps({"format": "something else", "version": 1}))
    with pytest.raises(ValueError, match="not a version 1"):
        ProfileStore(path).load()
    # Profiles of another encoder cannot be compared: skipped, with a warning.
    path.write_text(json.dumps({"format": "heritage-audio voice profiles", "version": 1,
                                "encoder": "other.onnx sha256:00", "profiles": {}}))  # fmt: skip
    assert ProfileStore(path).load() == {}


def test_profiles_enrolled_with_the_float_encoder_serve_the_int8_one(tmp_path: Path) -> None:
    # Stores written before the int8 encoder shipped name the float export: the same
    # network, its embeddings within cosine 0.98, so the voices stay enrolled.
    voice = np.zeros(EMBEDDING_SIZE, np.float32)
    voice[3] = 1.0
    store = ProfileStore(tmp_path / "profiles.json")
    store.save(VoiceProfile("Ada", voice, 12.0))
    document = json.loads(store.path.read_text())
    assert document["encoder"] == encoder_provenance(ENCODER_MODEL)
    document["encoder"] = encoder_provenance(FLOAT_ENCODER_MODEL)
    store.path.write_text(json.dumps(document))
    assert list(ProfileStore(store.path).load()) == ["Ada"]


@pytest.mark.parametrize("name", ["", "   ", "x" * 65, "Speaker_3", "tab\tname"])
def test_unusable_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="name"):
        check_name(name)


def test_each_name_goes_to_at_most_one_speaker() -> None:
    a = np.zeros(EMBEDDING_SIZE, np.float32)
    a[0] = 1.0
    b = np.zeros(EMBEDDING_SIZE, np.float32)
    b[1] = 1.0
    profiles = {"A": VoiceProfile("A", a, 10.0)}
    centroids = np.stack([a, a * 0.9 + b * 0.1, b])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    assert match_names(centroids, profiles, 0.25) == {0: "A"}
    assert match_names(centroids[2:], profiles, 0.25) == {}


def test_too_little_speech_cannot_be_enrolled() -> None:
    with pytest.raises(ValueError, match="speech"):
        enrollment_embedding([DATA / "vad_silence.flac"])


def _cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HERITAGE_DATA_DIR": str(data_dir)}
    env.pop("HERITAGE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", "speakers", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip


def test_the_speakers_command_enrolls_lists_and_removes(tmp_path: Path) -> None:
    enrolled = _cli("enroll", "Guide Rossi", *map(str, OTHER), data_dir=tmp_path)
    assert enrolled.returncode == 0, enrolled.stderr
    assert "Guide Rossi" in enrolled.stdout
    assert (tmp_path / "speakers" / "profiles.json").exists()
    listed = _cli("list", data_dir=tmp_path)
    assert listed.stdout.startswith("Guide Rossi\t")
    assert "espeak_m3_a.flac, espeak_m3_b.flac" in listed.stdout
    missing = _cli("remove", "Nobody", data_dir=tmp_path)
    assert missing.returncode == 1
    assert "no enrolled voice named 'Nobody'" in missing.stderr
    assert _cli("remove", "Guide Rossi", data_dir=tmp_path).returncode == 0
    assert "no enrolled voices" in _cli("list", data_dir=tmp_path).stdout


def test_enrolling_an_unreadable_file_fails_with_one_line(tmp_path: Path) -> None:
    proc = _cli("enroll", "X", str(DATA / "corrupt.wav"), data_dir=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1
    assert "not readable audio" in proc.stderr
