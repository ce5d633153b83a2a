"""Heritage classification: features, the shipped model, training, live detection, bad input.

Fixtures (tests/data/heritage/<category>.flac) are 7 s clips from the corpus's test
split, made by ``tools/make_heritage_corpus.py --fixtures``: pieces, voices and
soundfont the shipped model never saw.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import skops.io
import soundfile as sf
import soxr

from config.pipeline import PipelineConfig
from detectors.heritage import (
    FEATURE_NAMES,
    Featurizer,
    HeritageClassifier,
    HeritageConfig,
    ModelError,
    heritage_classification,
    load_model,
)
from detectors.heritage.model import DEFAULT_MODEL, card_path
from stream.cli import main
from stream.events import HERITAGE_CATEGORIES, HeritageClassified
from tests.conftest import DATA, run_file

FIXTURES = DATA / "heritage"


def fixture(category: str) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(FIXTURES / f"{category}.flac", dtype="float32")
    return audio, rate


def heritage_events(path: Path, block_size: int = 1024) -> list[HeritageClassified]:
    config = PipelineConfig(detectors=[HeritageConfig()])
    return [e for e in run_file(path, config, block_size) if isinstance(e, HeritageClassified)]


def test_features_are_deterministic_and_do_not_depend_on_chunking() -> None:
    audio, _ = fixture("opera")
    whole = Featurizer(64000, 16000).push(audio)
    again = Featurizer(64000, 16000).push(audio)
    chunked = []
    featurizer = Featurizer(64000, 16000)
    for start in range(0, len(audio), 777):
        chunked += featurizer.push(audio[start : start + 777])
    assert len(whole) == 4  # 7 s: windows ending at 4, 5, 6 and 7 s
    assert [w.start for w in chunked] == [0, 16000, 32000, 48000]
    for a, b, c in zip(whole, again, chunked, strict=True):
        assert a.vector.shape == (len(FEATURE_NAMES),)
        assert np.all(np.isfinite(a.vector))
        assert np.array_equal(a.vector, b.vector)
        assert np.array_equal(a.vector, c.vector)


def test_live_events_are_the_same_whatever_the_capture_block_size() -> None:
    path = FIXTURES / "folk_music.flac"
    small, large = heritage_events(path, 256), heritage_events(path, 8192)
    assert len(small) == 4

    def facts(events: list[HeritageClassified]) -> list[tuple[object, ...]]:
        return [(e.t_start, e.t_end, e.category, e.confidence, e.scores) for e in events]

    assert facts(small) == facts(large)


@pytest.mark.parametrize("category", HERITAGE_CATEGORIES)
def test_shipped_model_classifies_each_unseen_fixture(category: str) -> None:
    section = HeritageClassifier().classify_file(FIXTURES / f"{category}.flac")
    assert section["predicted_category"] == category
    assert set(section["scores"]) == set(HERITAGE_CATEGORIES)
    assert sum(section["scores"].values()) == pytest.approx(1.0, abs=1e-3)
    assert section["confidence"] == max(section["scores"].values())


def test_pipeline_and_library_entry_point_agree() -> None:
    path = FIXTURES / "religious_chant.flac"
    from_pipeline = heritage_classification(heritage_events(path))
    assert from_pipeline == HeritageClassifier().classify_file(path)
    assert from_pipeline["timeline"][0]["start"] == 0.0
    assert from_pipeline["timeline"][-1]["end"] == 7.0


def test_label_is_steady_within_a_recording_and_silence_is_not_classified() -> None:
    folk, rate = fixture("folk_music")
    speech, _ = fixture("spoken_word")
    gap = np.zeros(10 * rate, dtype=np.float32)
    section = HeritageClassifier().classify(np.concatenate([folk, gap, speech]), rate)
    timeline = section["timeline"]
    assert timeline[0]["category"] == "folk_music"
    assert timeline[-1]["category"] == "spoken_word"
    assert len(timeline) == 2  # no flicker within either recording
    # Windows lying wholly in the silence (ending at 11 ... 17 s) were not classified.
    assert timeline[0]["end"] == 10.0
    assert timeline[1]["start"] == 14.0


def test_train_on_a_tiny_dataset_gives_a_loadable_model_that_evaluate_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dataset = tmp_path / "dataset"
    rng = np.random.default_rng(0)
    for category in ("folk_music", "spoken_word", "religious_chant"):
        audio, rate = fixture(category)
        (dataset / category).mkdir(parents=True)
        for i, (start, gain) in enumerate([(0.0, 1.0), (1.5, 0.3), (2.5, 2.0)]):
            piece = audio[int(start * rate) : int((start + 4.5) * rate)] * gain
            piece = piece + 1e-3 * rng.standard_normal(len(piece)).astype(np.float32)
            stereo = np.stack([piece, 0.8 * piece], axis=1)
            sf.write(dataset / category / f"clip{i}.wav", soxr.resample(stereo, rate, 22050), 22050)
    # An unreadable file is skipped with a warning, not fatal.
    (dataset / "folk_music" / "notes.wav").write_bytes((DATA / "not_audio.wav").read_bytes())
    model_path = tmp_path / "museum.skops"
    assert main(["train", str(dataset), "--out", str(model_path)]) == 0
    model = load_model(model_path)
    card = json.loads(card_path(model_path).read_text())
    assert sorted(card["classes"]) == ["folk_music", "religious_chant", "spoken_word"]
    assert card["training_data"]["files"] == 9
    assert card["training_data"]["hash"].startswith("sha256:")
    assert card["model_sha256"] == model.sha256
    capsys.readouterr()
    assert main(["evaluate", str(dataset), "--model", str(model_path)]) == 0
    out = capsys.readouterr().out
    assert "macro-F1=" in out
    assert "accuracy=" in out
    assert "confusion matrix" in out
    # A museum model that knows three categories still gives scores for all six.
    config = HeritageConfig(model_path=model_path)
    scores = HeritageClassifier(config).classify_file(FIXTURES / "spoken_word.flac")["scores"]
    assert set(scores) == set(HERITAGE_CATEGORIES)
    assert scores["opera"] == 0.0


def test_train_refuses_a_folder_that_is_not_a_category(tmp_path: Path) -> None:
    (tmp_path / "jazz").mkdir()
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "m.skops")]) == 1


def test_a_model_file_holding_an_untrusted_type_is_refused_before_loading(tmp_path: Path) -> None:
    path = tmp_path / "evil.skops"
    skops.io.dump({"classes_": ["opera"], "hook": os.system}, path)
    card = json.loads(card_path(DEFAULT_MODEL).read_text())
    card_path(path).write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"untrusted types.*system"):
        load_model(path)


def test_a_model_trained_on_other_features_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.skops"
    path.write_bytes(DEFAULT_MODEL.read_bytes())
    card = json.loads(card_path(DEFAULT_MODEL).read_text())
    card_path(path).write_text(json.dumps({**card, "feature_version": "heritage-features/0"}))
    with pytest.raises(ModelError, match="retrain"):
        load_model(path)


def test_a_tenth_of_a_second_and_silence_give_no_category(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    sf.write(tmp_path / "short.wav", 0.1 * rng.standard_normal(1600), 16000)
    sf.write(tmp_path / "silence.flac", np.zeros(5 * 16000), 16000)
    for name in ("short.wav", "silence.flac"):
        section = HeritageClassifier().classify_file(tmp_path / name)
        assert section["predicted_category"] is None
        assert section["timeline"] == []
        assert section["scores"] == dict.fromkeys(HERITAGE_CATEGORIES, 0.0)


def test_stereo_with_a_dead_channel_and_96_khz_are_classified(tmp_path: Path) -> None:
    audio, rate = fixture("historical_speech")
    dead = np.stack([audio, np.zeros_like(audio)], axis=1)
    sf.write(tmp_path / "dead.wav", dead, rate)
    sf.write(tmp_path / "hi.flac", soxr.resample(audio, rate, 96000), 96000, subtype="PCM_24")
    for name in ("dead.wav", "hi.flac"):
        section = HeritageClassifier().classify_file(tmp_path / name)
        assert section["predicted_category"] == "historical_speech"


def test_a_short_recording_is_classified_at_its_end() -> None:
    audio, rate = fixture("opera")
    section = HeritageClassifier().classify(audio[: int(2.5 * rate)], rate)
    assert section["predicted_category"] is not None
    assert section["timeline"][0]["end"] == 2.0  # the whole hops the stream delivered


def test_hop_longer_than_window_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="hop_s"):
        HeritageConfig(window_s=2.0, hop_s=3.0)


def test_file_analysis_result_has_the_heritage_section_and_model_hash() -> None:
    from stream.analyze import analyze_file

    result = analyze_file(FIXTURES / "opera.flac")
    section = result["results"]["heritage_classification"]
    assert section["predicted_category"] == "opera"
    assert set(section) == {"predicted_category", "confidence", "scores", "timeline"}
    for segment in section["timeline"]:
        assert set(segment) == {"start", "end", "category", "confidence"}
    assert result["provenance"]["models"]["heritage"] == load_model().provenance
    card = json.loads(card_path(DEFAULT_MODEL).read_text())
    assert result["provenance"]["models"]["heritage"] == f"sha256:{card['model_sha256']}"
