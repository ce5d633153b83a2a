"""The speaker encoder against resemblyzer + torch, without either installed.

The float export must equal torch; the shipped int8 derivative
(tools/quantize_speaker_encoder.py) must stay within a cosine of it.

``tests/data/speaker/reference.npz`` was written by tools/export_speaker_encoder.py
with resemblyzer 0.1.4, torch 2.13.0 and librosa 0.8.1 from the clips beside it
(tools/make_speaker_fixtures.py): per clip, the length after resemblyzer's
``preprocess_wav``, its mel spectrogram of that audio, and its ``embed_utterance``
utterance and partial embeddings.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from detectors.speaker import SpeakerEncoder, encoder_provenance
from detectors.speaker import frontend as fe
from detectors.speaker.encoder import EMBEDDING_SIZE, ENCODER_MODEL, FLOAT_ENCODER_MODEL

DATA = Path(__file__).parent / "data" / "speaker"
CLIPS = sorted(p.stem for p in DATA.glob("*.flac"))
MEL_ATOL = 1e-5  # mel power (peaks 1 to 6 here); measured <= 5e-7
MEL_RTOL = 1e-5
EMBEDDING_ATOL = 1e-5  # per component of a unit vector; measured <= 5e-7
COSINE_MIN = 0.999999  # measured: 1 - cosine < 1e-9
INT8_PARTIAL_COSINE = 0.98  # per partial, the int8 model against torch; measured >= 0.9957
INT8_MEAN_COSINE = 0.995  # measured 0.9986 (tools/quantize_speaker_encoder.py)

Ref = npt.NDArray[Any]


def voice(clip: str) -> str:
    """The speaker of a clip: its name without the trailing ``_a``/``_b``."""
    return clip.rsplit("_", 1)[0]


@pytest.fixture(scope="module")
def reference() -> dict[str, Ref]:
    with np.load(DATA / "reference.npz") as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture(scope="module")
def encoder() -> SpeakerEncoder:
    """The float export, which must equal torch."""
    return SpeakerEncoder(FLOAT_ENCODER_MODEL)


@pytest.fixture(scope="module")
def shipped() -> SpeakerEncoder:
    """The default: the float export with its upper LSTM layers in int8."""
    return SpeakerEncoder()


def load(clip: str) -> npt.NDArray[np.float32]:
    audio, rate = sf.read(DATA / f"{clip}.flac", dtype="float32")
    assert rate == fe.SAMPLE_RATE
    return np.asarray(audio, dtype=np.float32)


def test_fixtures_cover_three_voices_twice() -> None:
    voices = {voice(c) for c in CLIPS}
    assert len(voices) >= 3
    assert all(sum(voice(c) == v for c in CLIPS) >= 2 for v in voices)


@pytest.mark.parametrize("clip", CLIPS)
def test_mel_matches_resemblyzer(clip: str, reference: dict[str, Ref]) -> None:
    audio = fe.preprocess(load(clip))
    # Same volume normalisation and the same VAD decisions: the same samples are kept.
    assert len(audio) == int(reference[f"{clip}.n_samples"])
    mel = fe.mel_spectrogram(audio)
    expected = reference[f"{clip}.mel"]
    assert mel.shape == expected.shape
    assert mel.dtype == np.float32
    np.testing.assert_allclose(mel, expected, rtol=MEL_RTOL, atol=MEL_ATOL)


@pytest.mark.parametrize("clip", CLIPS)
def test_partial_embeddings_match_torch(
    clip: str, reference: dict[str, Ref], encoder: SpeakerEncoder
) -> None:
    partials = encoder.embed_partials(fe.partial_mels(fe.preprocess(load(clip))))
    expected = reference[f"{clip}.partials"]
    assert partials.shape == expected.shape
    np.testing.assert_allclose(partials, expected, rtol=0, atol=EMBEDDING_ATOL)


@pytest.mark.parametrize("clip", CLIPS)
def test_utterance_embedding_matches_torch(
    clip: str, reference: dict[str, Ref], encoder: SpeakerEncoder
) -> None:
    embedding = encoder.embed_utterance(load(clip))
    expected = reference[f"{clip}.embedding"]
    assert embedding.shape == (EMBEDDING_SIZE,)
    assert embedding.dtype == np.float32
    assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-6)
    assert float(embedding @ expected) > COSINE_MIN
    np.testing.assert_allclose(embedding, expected, rtol=0, atol=EMBEDDING_ATOL)


def test_shipped_int8_encoder_stays_close_to_torch(
    reference: dict[str, Ref], shipped: SpeakerEncoder
) -> None:
    assert shipped.model_path == ENCODER_MODEL != FLOAT_ENCODER_MODEL
    cosines = []
    for clip in CLIPS:
        partials = shipped.embed_partials(fe.partial_mels(fe.preprocess(load(clip))))
        cosines.extend(np.sum(partials * reference[f"{clip}.partials"], axis=1))
        utterance = shipped.embed_utterance(load(clip))
        assert float(utterance @ reference[f"{clip}.embedding"]) > INT8_MEAN_COSINE
    assert min(cosines) > INT8_PARTIAL_COSINE
    assert float(np.mean(cosines)) > INT8_MEAN_COSINE
    assert max(cosines) < COSINE_MIN  # it is the quantised model, not a copy of the float one


@pytest.mark.parametrize("which", ["float", "int8"])
def test_same_voice_closer_than_different_voices(
    which: str, encoder: SpeakerEncoder, shipped: SpeakerEncoder
) -> None:
    model = encoder if which == "float" else shipped
    embeddings = {clip: model.embed_utterance(load(clip)) for clip in CLIPS}
    same: list[float] = []
    different: list[float] = []
    for a, b in itertools.combinations(CLIPS, 2):
        cosine = float(embeddings[a] @ embeddings[b])
        (same if voice(a) == voice(b) else different).append(cosine)
    # Measured: same voice 0.84-0.91, different voices 0.61 at most.
    assert min(same) > max(different) + 0.1


@pytest.mark.parametrize("which", ["float", "int8"])
def test_batched_equals_one_by_one(
    which: str, encoder: SpeakerEncoder, shipped: SpeakerEncoder
) -> None:
    # int8: a quantised layer's input gets one scale per call, over the batch, so an
    # embedding moves slightly with its neighbours (measured: cosine >= 0.995).
    model = encoder if which == "float" else shipped
    mels = np.concatenate([fe.partial_mels(fe.preprocess(load(clip))) for clip in CLIPS])
    assert len(mels) > 8
    batched = model.embed_partials(mels)
    single = np.concatenate([model.embed_partials(m[np.newaxis]) for m in mels])
    if which == "float":
        np.testing.assert_allclose(batched, single, rtol=0, atol=1e-6)
    else:
        assert float(np.min(np.sum(batched * single, axis=1))) > 0.99


def test_partial_slicing_follows_resemblyzer(
    reference: dict[str, Ref],
) -> None:
    # Partials start every 77 frames; the last must have 75 % of its 1.6 s inside the audio.
    for n_samples, count in zip(
        reference["slicing.n_samples"], reference["slicing.count"], strict=True
    ):
        assert fe.partial_starts(int(n_samples)) == [77 * i for i in range(int(count))]
    assert fe.partial_starts(fe.PARTIAL_SAMPLES) == [0]
    assert fe.partial_starts(3 * fe.SAMPLE_RATE) == [0, 77, 154]
    with pytest.raises(ValueError, match="rate"):
        fe.partial_starts(fe.SAMPLE_RATE, rate=0.5)


def test_silence_is_refused(encoder: SpeakerEncoder) -> None:
    silence = np.zeros(3 * fe.SAMPLE_RATE, dtype=np.float32)
    with pytest.raises(ValueError, match="silent"):
        encoder.embed_utterance(silence)
    with pytest.raises(ValueError, match="silent"):
        encoder.embed_utterance(silence, preprocessed=True)


def test_noise_without_voice_is_refused(encoder: SpeakerEncoder) -> None:
    # Faint hiss is raised to -30 dBFS, then the VAD finds no voice: nothing is left.
    noise = np.random.default_rng(0).normal(0, 1e-4, 3 * fe.SAMPLE_RATE).astype(np.float32)
    with pytest.raises(ValueError, match="too short"):
        encoder.embed_utterance(noise)


def test_clip_shorter_than_a_partial(encoder: SpeakerEncoder) -> None:
    audio = fe.preprocess(load(CLIPS[0]))
    shortest = int(np.ceil(fe.MIN_COVERAGE * fe.PARTIAL_SAMPLES))  # 1.2 s
    with pytest.raises(ValueError, match=r"too short .* 1\.200 s"):
        encoder.embed_utterance(audio[: shortest - 1], preprocessed=True)
    # From 1.2 s on, one zero-padded partial is embedded, as resemblyzer does.
    embedding = encoder.embed_utterance(audio[:shortest], preprocessed=True)
    assert embedding.shape == (EMBEDDING_SIZE,)
    assert np.all(np.isfinite(embedding))


@pytest.mark.parametrize(
    ("mels", "match"),
    [
        (np.zeros((2, 100, 40), np.float32), "shape"),
        (np.zeros((160, 40), np.float32), "shape"),
        (np.zeros((0, 160, 40), np.float32), "no partials"),
        (np.full((1, 160, 40), np.nan, np.float32), "NaN"),
    ],
)
def test_bad_partials_are_refused(
    encoder: SpeakerEncoder, mels: npt.NDArray[np.float32], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        encoder.embed_partials(mels)


def test_bad_audio_is_refused(encoder: SpeakerEncoder) -> None:
    with pytest.raises(ValueError, match="mono"):
        encoder.embed_utterance(np.zeros((2, fe.SAMPLE_RATE), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        encoder.embed_utterance(np.full(fe.SAMPLE_RATE, np.inf, np.float32))


def test_provenance_names_the_shipped_model() -> None:
    name, digest = encoder_provenance().split(" sha256:")
    assert name == ENCODER_MODEL.name == "ge2e_speaker_encoder_int8.onnx"
    assert len(digest) == 64
    assert int(digest, 16) >= 0
