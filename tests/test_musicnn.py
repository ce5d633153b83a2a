"""The musicnn tagger against musicnn + TensorFlow, without either installed.

``tests/data/heritage/musicnn_reference.npz`` was written by tools/export_musicnn.py
with musicnn 0.1.0, TensorFlow 2.19 and librosa 0.11 from the clips beside it: per
clip, musicnn's log-mel spectrogram (librosa, reflect padding, log in float32) and
the original TF graph's taggram and penultimate features of its patches every
61 frames (musicnn's ``input_overlap=1``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
import soundfile as sf

from detectors.files import file_sha256
from detectors.heritage.musicnn import (
    HOP,
    MUSICNN_MODEL,
    N_MELS,
    PATCH_FRAMES,
    SAMPLE_RATE,
    TAGS,
    MusicnnTagger,
    mel_filterbank,
)

DATA = Path(__file__).parent / "data" / "heritage"
CLIPS = sorted(p.stem for p in DATA.glob("*.flac"))
CARD = MUSICNN_MODEL.with_suffix(".json")
LOGMEL_ATOL = 1e-5  # log10 units, values 0 to 6; measured <= 4.8e-7 (1 ulp at 5)
MODEL_ATOL = 1e-4  # onnxruntime vs TF on the same patches; measured <= 2.1e-6
END_TO_END_ATOL = 1e-3  # from audio: our front end, then onnxruntime; measured <= 2e-6

Ref = npt.NDArray[Any]


@pytest.fixture(scope="module")
def reference() -> dict[str, Ref]:
    with np.load(DATA / "musicnn_reference.npz") as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture(scope="module")
def tagger() -> MusicnnTagger:
    return MusicnnTagger()


def load(clip: str) -> npt.NDArray[np.float32]:
    audio, rate = sf.read(DATA / f"{clip}.flac", dtype="float32")
    assert rate == SAMPLE_RATE
    return np.asarray(audio, dtype=np.float32)


def test_reference_covers_every_clip(reference: dict[str, Ref]) -> None:
    assert len(CLIPS) == 6
    assert int(reference["patch_hop"]) == 61
    for clip in CLIPS:
        assert reference[f"{clip}.taggram"].shape == (5, len(TAGS))
        assert reference[f"{clip}.penultimate"].shape == (5, 200)


def test_tags_match_card_and_model() -> None:
    assert len(TAGS) == 50
    assert MusicnnTagger.TAGS == TAGS
    assert tuple(json.loads(CARD.read_text())["tags"]) == TAGS
    meta = ort.InferenceSession(str(MUSICNN_MODEL), providers=["CPUExecutionProvider"])
    assert tuple(json.loads(meta.get_modelmeta().custom_metadata_map["tags"])) == TAGS


def test_model_sha256_matches_card() -> None:
    card = json.loads(CARD.read_text())
    assert file_sha256(MUSICNN_MODEL) == card["onnx"]["sha256"]
    assert MUSICNN_MODEL.stat().st_size == card["onnx"]["bytes"]


def test_tampered_model_is_refused(tmp_path: Path) -> None:
    model = tmp_path / MUSICNN_MODEL.name
    shutil.copy(MUSICNN_MODEL, model)
    shutil.copy(CARD, model.with_suffix(".json"))
    with model.open("ab") as f:
        f.write(b"\0")
    tagger = MusicnnTagger(model)
    with pytest.raises(ValueError, match="sha256"):
        tagger.run(np.zeros((1, PATCH_FRAMES, N_MELS), dtype=np.float32))


def test_filterbank_matches_librosa() -> None:
    expected = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=512, n_mels=N_MELS)
    np.testing.assert_allclose(mel_filterbank(), expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("clip", CLIPS)
def test_logmel_matches_musicnn(clip: str, reference: dict[str, Ref]) -> None:
    logmel = MusicnnTagger.logmel(load(clip))
    expected = reference[f"{clip}.logmel"]
    assert logmel.dtype == np.float32
    assert logmel.shape == expected.shape == (1 + len(load(clip)) // HOP, N_MELS)
    np.testing.assert_allclose(logmel, expected, rtol=0, atol=LOGMEL_ATOL)


@pytest.mark.parametrize("clip", CLIPS)
def test_onnx_matches_tensorflow(
    clip: str, reference: dict[str, Ref], tagger: MusicnnTagger
) -> None:
    patches = tagger.patches(reference[f"{clip}.logmel"], hop_frames=61)
    taggram, penultimate = tagger.run(patches)
    assert taggram.dtype == penultimate.dtype == np.float32
    np.testing.assert_allclose(taggram, reference[f"{clip}.taggram"], rtol=0, atol=MODEL_ATOL)
    expected = reference[f"{clip}.penultimate"]
    np.testing.assert_allclose(penultimate, expected, rtol=0, atol=MODEL_ATOL)


@pytest.mark.parametrize("clip", CLIPS)
def test_end_to_end_matches_tensorflow(
    clip: str, reference: dict[str, Ref], tagger: MusicnnTagger
) -> None:
    result = tagger.embed(load(clip), hop_frames=61)
    np.testing.assert_allclose(result.starts, np.arange(5) * 61 * HOP / SAMPLE_RATE)
    taggram, penultimate = reference[f"{clip}.taggram"], reference[f"{clip}.penultimate"]
    np.testing.assert_allclose(result.taggram, taggram, rtol=0, atol=END_TO_END_ATOL)
    np.testing.assert_allclose(result.penultimate, penultimate, rtol=0, atol=END_TO_END_ATOL)


def test_max_patches_samples_evenly(reference: dict[str, Ref], tagger: MusicnnTagger) -> None:
    clip = CLIPS[0]
    result = tagger.embed(load(clip), max_patches=3, hop_frames=61)
    np.testing.assert_allclose(result.starts, np.array([0, 122, 244]) * HOP / SAMPLE_RATE)
    expected = reference[f"{clip}.taggram"][[0, 2, 4]]
    np.testing.assert_allclose(result.taggram, expected, rtol=0, atol=END_TO_END_ATOL)
    # Default hop: whole patches without overlap, the 7 s clip's tail dropped as musicnn does.
    whole = tagger.embed(load(clip))
    np.testing.assert_allclose(whole.starts, [0.0, PATCH_FRAMES * HOP / SAMPLE_RATE])
    # Few patches of a long clip: only their frames are analysed, with the same result.
    sparse = tagger.embed(load(clip), max_patches=2)
    np.testing.assert_array_equal(sparse.starts, whole.starts)
    np.testing.assert_allclose(sparse.taggram, whole.taggram, rtol=0, atol=1e-6)
    np.testing.assert_allclose(sparse.penultimate, whole.penultimate, rtol=0, atol=1e-5)
    assert tagger.embed(load(clip), max_patches=1).starts.tolist() == [0.0]


def test_batches_do_not_change_results(reference: dict[str, Ref], tagger: MusicnnTagger) -> None:
    # 36 patches: more than one onnxruntime call of MAX_BATCH.
    patches = np.concatenate(
        [tagger.patches(reference[f"{c}.logmel"], hop_frames=61) for c in [*CLIPS, CLIPS[0]]]
    )
    taggram, _ = tagger.run(patches)
    expected = np.concatenate([reference[f"{c}.taggram"] for c in [*CLIPS, CLIPS[0]]])
    np.testing.assert_allclose(taggram, expected, rtol=0, atol=MODEL_ATOL)


@pytest.mark.parametrize(
    "audio",
    [
        pytest.param(load(CLIPS[0])[: SAMPLE_RATE // 2], id="music-0.5s"),
        pytest.param(np.zeros(SAMPLE_RATE // 2, dtype=np.float32), id="silence-0.5s"),
        pytest.param(np.zeros(2 * SAMPLE_RATE, dtype=np.float32), id="silence-2s"),
        pytest.param(np.full(10, 0.1, dtype=np.float32), id="ten-samples"),
    ],
)
def test_short_input_gives_one_finite_patch(
    audio: npt.NDArray[np.float32], tagger: MusicnnTagger
) -> None:
    result = tagger.embed(audio)
    assert result.starts.tolist() == [0.0]
    assert result.taggram.shape == (1, len(TAGS))
    assert result.penultimate.shape == (1, 200)
    assert np.all(np.isfinite(result.taggram))
    assert np.all(np.isfinite(result.penultimate))
    assert np.all((result.taggram >= 0) & (result.taggram <= 1))


def test_short_logmel_is_repeat_padded() -> None:
    logmel = np.arange(50 * N_MELS, dtype=np.float32).reshape(50, N_MELS)
    (patch,) = MusicnnTagger.patches(logmel)
    np.testing.assert_array_equal(patch[:50], logmel)
    np.testing.assert_array_equal(patch[150:], logmel[:37])


def test_loud_audio_stays_finite(tagger: MusicnnTagger) -> None:
    # A full-scale square wave: in musicnn's float16, 10000 * mel overflows (> 65504) to inf.
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    audio = np.sign(np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    logmel = tagger.logmel(audio)
    assert np.all(np.isfinite(logmel))
    assert float(np.max(logmel)) > np.log10(65_505) + 1
    assert np.all(np.isfinite(tagger.embed(audio).taggram))


@pytest.mark.parametrize(
    "audio",
    [np.zeros(0), np.zeros((2, 16_000)), np.array([0.0, np.nan])],
    ids=["empty", "stereo", "nan"],
)
def test_bad_audio_is_refused(audio: npt.NDArray[np.float64]) -> None:
    with pytest.raises(ValueError, match="audio"):
        MusicnnTagger.logmel(audio)


def test_bad_patches_are_refused(tagger: MusicnnTagger) -> None:
    with pytest.raises(ValueError, match="shape"):
        tagger.run(np.zeros((1, 100, N_MELS), dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        tagger.run(np.zeros((0, PATCH_FRAMES, N_MELS), dtype=np.float32))
    with pytest.raises(ValueError, match="max_patches"):
        tagger.embed(np.zeros(16_000, dtype=np.float32), max_patches=0)
