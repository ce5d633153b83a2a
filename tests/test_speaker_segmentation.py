"""The segmentation-3.0 model (ONNX) against torch, without torch installed, and its use.

``tests/data/diarization/segmentation_reference.npz`` was written by
tools/export_segmentation.py with torch 2.13.0: per room fixture, torch's powerset
log-probabilities [589, 7] of its first 10 s (zero-padded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from detectors.speaker.segmentation import (
    CHUNK,
    FRAMES,
    POWERSET,
    SEGMENTATION_MODEL,
    ChunkedSegmentation,
    Segmenter,
    powerset_to_local,
)

DATA = Path(__file__).parent / "data" / "diarization"
ROOMS = ["room_1spk", "room_2spk_overlap", "room_3spk", "room_4spk"]
MAX_DIFF = 1e-3  # |onnxruntime - torch| on a log-probability; measured <= 5e-5

Ref = npt.NDArray[Any]


@pytest.fixture(scope="module")
def reference() -> dict[str, Ref]:
    with np.load(DATA / "segmentation_reference.npz") as npz:
        return {key: npz[key] for key in npz.files}


@pytest.fixture(scope="module")
def segmenter() -> Segmenter:
    return Segmenter()


def load(name: str) -> npt.NDArray[np.float32]:
    audio, rate = sf.read(DATA / f"{name}.flac", dtype="float32")
    assert rate == 16000
    return np.asarray(audio, dtype=np.float32)


def first_chunk(audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    chunk = np.zeros(CHUNK, np.float32)
    chunk[: min(CHUNK, len(audio))] = audio[:CHUNK]
    return chunk


@pytest.mark.parametrize("name", ROOMS)
def test_log_probs_equal_torch(name: str, reference: dict[str, Ref], segmenter: Segmenter) -> None:
    got = segmenter.log_probs(first_chunk(load(name))[None], normalise=False)[0]
    expected = reference[name]
    assert got.shape == expected.shape == (FRAMES, len(POWERSET))
    np.testing.assert_allclose(got, expected, atol=MAX_DIFF, rtol=0)
    assert np.array_equal(powerset_to_local(got), powerset_to_local(expected))


def test_level_does_not_matter(segmenter: Segmenter) -> None:
    """Chunks are brought to one level first: 30 dB quieter gives the same decisions (the
    network alone changed 3 % of them, its normalisation has an epsilon)."""
    chunk = first_chunk(load("room_2spk_overlap"))
    quieter = np.stack([chunk, chunk * np.float32(10 ** (-30 / 20))])
    loud, quiet = segmenter.log_probs(quieter)
    assert np.mean(np.argmax(loud, 1) == np.argmax(quiet, 1)) > 0.999
    raw_loud, raw_quiet = segmenter.log_probs(quieter, normalise=False)
    assert np.mean(np.argmax(raw_loud, 1) == np.argmax(raw_quiet, 1)) < 0.99


def test_chunks_cover_the_file_however_it_is_pushed(segmenter: Segmenter) -> None:
    audio = load("room_3spk")
    whole = ChunkedSegmentation(5.0, segmenter)
    whole.push(audio)
    pieces = ChunkedSegmentation(5.0, segmenter)
    for lo in range(0, len(audio), 8192):
        pieces.push(audio[lo : lo + 8192])
    a, b = whole.result(), pieces.result()
    assert np.array_equal(a.chunk_offsets, b.chunk_offsets)
    np.testing.assert_allclose(a.probs.astype(np.float32), b.probs.astype(np.float32), atol=2e-3)
    last = int(a.chunk_offsets[-1]) * 270 + CHUNK
    assert last >= len(audio)  # the padded tail chunk reaches the end
    assert a.frames == (len(audio) - 495) // 270 + 1
    assert whole.result() is a  # finished once, then kept


def test_short_and_silent_input(segmenter: Segmenter) -> None:
    short = ChunkedSegmentation(5.0, segmenter)
    short.push(np.zeros(8000, np.float32))
    result = short.result()
    assert len(result.chunk_offsets) == 1
    assert not result.activity.any()
    empty = ChunkedSegmentation(5.0, segmenter).result()
    assert len(empty.chunk_offsets) == 0
    assert empty.frames == 0
    with pytest.raises(RuntimeError, match="finished"):
        short.push(np.zeros(10, np.float32))


def test_bad_input_is_refused(segmenter: Segmenter) -> None:
    with pytest.raises(ValueError, match="shape"):
        segmenter.log_probs(np.zeros((1, 1000), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        segmenter.log_probs(np.full((1, CHUNK), np.nan, np.float32))
    with pytest.raises(ValueError, match="classes"):
        powerset_to_local(np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="step"):
        ChunkedSegmentation(0.0, segmenter)


def test_model_file_is_the_export() -> None:
    assert SEGMENTATION_MODEL.stat().st_size > 5_000_000


# -- in the file diarization ----------------------------------------------------------------

SEGMENTED = {
    "file_segmentation": True,
    "segmentation_step_s": 2.5,
    "segmentation_overlap_threshold": 0.4,
    "segmentation_count_s": 1.0,
    "segmentation_purity": 0.6,
}


def test_segmentation_puts_overlapped_speech_in_the_rttm(tmp_path: Path) -> None:
    """The two-voice fixture (32 % of its speech overlapped): with the segmentation, file
    analysis finds both voices without being told how many, and its RTTM overlaps where they
    do. Measured: 2 speakers, 3.46 s of overlapping segments, 3.40 s of it truly overlapped
    (of 5.0 s); DER 9.8 % (37.8 % without, one speaker found)."""
    from tests.test_speaker_rooms import analyze_overlap_fixture

    lines = "".join(f"{k} = {str(v).lower()}\n" for k, v in SEGMENTED.items())
    _, annotation, found, truth = analyze_overlap_fixture(tmp_path, lines)
    assert len(annotation.labels()) == 2
    assert found.duration() > 2.0
    assert found.crop(truth).duration() > 0.9 * found.duration()


def test_segmentation_lowers_the_error_on_the_room_fixtures() -> None:
    """Measured DER (collar 0.25, overlap scored) without / with: 2 voices 37.8 / 9.8 %,
    3 voices 28.2 / 12.6 %, 4 voices 41.7 / 20.8 %; the count within one on all."""
    from pyannote.core import Annotation, Segment, Timeline
    from pyannote.database.util import load_rttm
    from pyannote.metrics.diarization import DiarizationErrorRate

    from detectors.speaker.offline import diarize
    from tests.test_speaker_rooms import run, speaker_config

    for name, voices, ceiling in (("room_2spk_overlap", 2, 0.2), ("room_3spk", 3, 0.25)):
        config = speaker_config(**SEGMENTED)
        histories, _ = run(DATA / f"{name}.flac", config)
        assert histories[0].segmentation is not None
        result = diarize(histories, config)
        assert abs(len(result.centroids) - voices) <= 1
        hypothesis = Annotation()
        for i, s in enumerate(result.segments):
            hypothesis[Segment(s.start, s.end), i] = str(s.speaker)
        truth = load_rttm(str(DATA / f"{name}.rttm"))[name]
        uem = Timeline([Segment(0, sf.info(DATA / f"{name}.flac").duration)])
        metric = DiarizationErrorRate(collar=0.25, skip_overlap=False)
        assert float(metric(truth, hypothesis, uem=uem)) < ceiling, name
        assert hypothesis.get_overlap().duration() > 1.0


def test_segmentation_takes_silence_a_short_file_and_six_channels(tmp_path: Path) -> None:
    """Bad input with the option on: no speech gives no speaker and no error, half a second
    gives a clear answer, and each of six channels is segmented on its own."""
    from config.pipeline import PipelineConfig
    from stream.analyze import analyze_file
    from tests.test_speaker_rooms import speaker_config

    pipeline = PipelineConfig(detectors=[speaker_config(**SEGMENTED)])
    root = Path(__file__).parent / "data"
    silent = analyze_file(root / "vad_silence.flac", pipeline)["results"]["speaker_recognition"]
    assert silent["speakers_detected"] == 0
    assert silent["segments"] == []
    audio, rate = sf.read(DATA / "room_2spk_overlap.flac", dtype="float32")
    short = tmp_path / "short.wav"
    sf.write(short, audio[rate * 3 : rate * 3 + rate // 2], rate)
    section = analyze_file(short, pipeline)["results"]["speaker_recognition"]
    assert section["speakers_detected"] <= 1
    six = tmp_path / "six.wav"
    gains = np.array([1.0, 0.8, 0.6, 0.5, 0.4, 0.3], dtype=np.float32)
    sf.write(six, audio[:, None] * gains[None, :], rate)
    document = analyze_file(six, pipeline)
    section = document["results"]["speaker_recognition"]
    assert document["audio_info"]["channels"] == 6
    assert 1 <= section["speakers_detected"] <= 3
    duration = len(audio) / rate
    assert all(0 <= s["start"] < s["end"] <= duration + 0.05 for s in section["segments"])
