"""The CAM++ encoder (numpy fbank + ONNX) against torch and torchaudio, without either installed.

``tests/data/speaker/campplus_reference.npz`` was written by tools/export_campplus.py
with torch 2.13.0 from the clips beside it: per clip, torch's CAM++ embedding of the
whole clip and of its first 1.6 s, from torchaudio's Kaldi fbank (and that fbank).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from detectors.speaker.campplus import CAMPPLUS_MODEL, CAMPPLUS_SIZE, CamppEncoder
from detectors.speaker.fbank import log_fbank, n_frames, normalised_fbank
from detectors.speaker.frontend import normalize_volume

DATA = Path(__file__).parent / "data" / "speaker"
CLIPS = sorted(p.stem for p in DATA.glob("*.flac"))
WINDOW = 25_600
FBANK_ATOL = 2e-3  # log mel energy; measured <= 3e-4 (float32 rounding of weak bins)
COSINE_MIN = 0.99999  # measured 1 - cosine < 1e-7

Ref = npt.NDArray[Any]


@pytest.fixture(scope="module")
def reference() -> dict[str, Ref]:
    with np.load(DATA / "campplus_reference.npz") as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture(scope="module")
def encoder() -> CamppEncoder:
    return CamppEncoder()


def load(clip: str) -> npt.NDArray[np.float32]:
    audio, rate = sf.read(DATA / f"{clip}.flac", dtype="float32")
    assert rate == 16000
    return np.asarray(audio, dtype=np.float32)


def unit(v: Ref) -> Ref:
    return np.asarray(v / np.linalg.norm(v))


def test_reference_covers_every_clip(reference: dict[str, Ref]) -> None:
    assert len(CLIPS) >= 6
    for clip in CLIPS:
        assert f"{clip}.embedding" in reference
        assert f"{clip}.window" in reference


@pytest.mark.parametrize("clip", CLIPS)
def test_fbank_equals_kaldi(clip: str, reference: dict[str, Ref]) -> None:
    got = normalised_fbank(load(clip)[:WINDOW])
    expected = reference[f"{clip}.window_fbank"]
    assert got.shape == expected.shape == (n_frames(WINDOW), 80)
    np.testing.assert_allclose(got, expected, atol=FBANK_ATOL, rtol=0)


@pytest.mark.parametrize("clip", CLIPS)
def test_embeddings_equal_torch(
    clip: str, reference: dict[str, Ref], encoder: CamppEncoder
) -> None:
    audio = load(clip)
    window, whole = encoder.embed_windows([audio[:WINDOW], audio])
    assert window.shape == (CAMPPLUS_SIZE,)
    assert float(window @ unit(reference[f"{clip}.window"])) >= COSINE_MIN
    assert float(whole @ unit(reference[f"{clip}.embedding"])) >= COSINE_MIN


def test_same_voice_closer_than_other_voices(encoder: CamppEncoder) -> None:
    """The encoder tells the fixture's voices apart: each clip's nearest other clip is the
    same voice's second clip."""
    embeddings = encoder.embed_windows([load(c) for c in CLIPS])
    similarity = embeddings @ embeddings.T
    np.fill_diagonal(similarity, -np.inf)
    voices = [c.rsplit("_", 1)[0] for c in CLIPS]
    for i, j in enumerate(np.argmax(similarity, axis=1)):
        assert voices[i] == voices[j], (CLIPS[i], CLIPS[j])


def test_level_matters_little_after_volume_normalisation(encoder: CamppEncoder) -> None:
    """The fbank's log floor makes weak windows differ a little (cosine 0.977 at -30 dB);
    the detector raises every quieter window to -30 dBFS first, as for GE2E."""
    audio = load(CLIPS[0])[:WINDOW]
    quiet = audio * np.float32(10 ** (-30 / 20))
    raw = encoder.embed_windows([audio, quiet])
    assert float(raw[0] @ raw[1]) < 0.99
    softer = audio * np.float32(10 ** (-45 / 20))
    loud, soft = encoder.embed_windows([normalize_volume(quiet), normalize_volume(softer)])
    assert float(loud @ soft) > 0.9999


def test_batching_does_not_change_embeddings(encoder: CamppEncoder) -> None:
    audio = load(CLIPS[1])
    windows = [audio[i : i + WINDOW] for i in range(0, len(audio) - WINDOW, 4_000)]
    together = encoder.embed_windows(windows)
    alone = np.concatenate([encoder.embed_windows([w]) for w in windows])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_bad_input_is_refused(encoder: CamppEncoder) -> None:
    with pytest.raises(ValueError, match="at least"):
        encoder.embed_windows([np.zeros(800, np.float32)])
    with pytest.raises(ValueError, match="shape"):
        encoder.embed_features(np.zeros((2, 100, 40), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        encoder.embed_features(np.full((1, 100, 80), np.nan, np.float32))
    with pytest.raises(ValueError, match="mono"):
        log_fbank(np.zeros((400, 2)))
    assert encoder.embed_windows([]).shape == (0, CAMPPLUS_SIZE)
    assert log_fbank(np.zeros(399)).shape == (0, 80)


def test_model_file_is_the_export() -> None:
    assert CAMPPLUS_MODEL.stat().st_size > 20_000_000
