"""Diarization of real voices in simulated rooms: counting, overlap, level, channels.

``tests/data/diarization/room_*.flac`` (tools/make_room_conversations.py
--fixtures): LibriSpeech voices of the *test* split (CC BY 4.0, listed in
tools/real_audio/voices.csv), in pyroomacoustics shoebox rooms (RT60 0.35-0.58 s,
speakers about 2-2.5 m from the microphone), babble and ventilation noise at 11-20
dB SNR, speech at -31 to -38 dBFS; 1, 2 (32 % of the speech overlapped), 3 and 4
speakers. Their ``.rttm`` is the truth from the dry utterances. No threshold was
tuned on them.
"""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf
from pyannote.core import Annotation, Segment, Timeline
from pyannote.database.util import load_rttm
from pyannote.metrics.diarization import DiarizationErrorRate
from pydantic import ValidationError

from config.pipeline import PipelineConfig
from detectors import SpeakerConfig
from detectors.base import ChannelResources
from detectors.speaker.detector import FRAME, SpeakerDetector, SpeakerHistory
from detectors.speaker.offline import diarize
from detectors.speaker.overlap import N_FEATURES, OverlapModel, features, frame_logmel, load_model
from detectors.vad import SileroFrames, VadConfig, VadDetector
from sinks.metrics import Metrics
from stream.analyze import analyze_file
from stream.events import Event, SpeakerTurn
from stream.pipeline import SourceRunner
from stream.sources import FileSource, FileSourceConfig
from stream.speaker_report import speaker_analysis_config
from stream.windowing import Window
from tests.conftest import DATA

ROOMS = DATA / "diarization"
NO_PROFILES = Path("/nonexistent/profiles.json")
FIXTURES = {1: "room_1spk", 2: "room_2spk_overlap", 3: "room_3spk", 4: "room_4spk"}


def speaker_config(**overrides: Any) -> SpeakerConfig:
    return SpeakerConfig(profiles_path=NO_PROFILES, **overrides)


def reference(name: str) -> Annotation:
    annotation: Annotation = load_rttm(str(ROOMS / f"{name}.rttm"))[name]
    return annotation


def run_pipeline(path: Path, pipeline: PipelineConfig) -> tuple[SourceRunner, list[Event]]:
    events: list[Event] = []
    runner = SourceRunner(
        FileSource(FileSourceConfig(path=path, realtime=False)), pipeline, events.extend, Metrics()
    )
    runner.run(threading.Event())
    return runner, events


def run(path: Path, config: SpeakerConfig) -> tuple[list[SpeakerHistory], list[Event]]:
    """The file's speaker histories (file mode, at the file hop) and its live events (at the
    live hop, as a dashboard sees them)."""
    runner, _ = run_pipeline(path, speaker_analysis_config(PipelineConfig(detectors=[config])))
    detectors = [d for c in runner.chains for d in c.detectors if isinstance(d, SpeakerDetector)]
    _, events = run_pipeline(path, PipelineConfig(detectors=[config]))
    return [d.history() for d in detectors], events


@pytest.fixture(scope="module")
def histories() -> dict[int, tuple[list[SpeakerHistory], list[Event]]]:
    return {n: run(ROOMS / f"{name}.flac", speaker_config()) for n, name in FIXTURES.items()}


def der(name: str, hypothesis: Annotation) -> float:
    duration = sf.info(ROOMS / f"{name}.flac").duration
    metric = DiarizationErrorRate(collar=0.25, skip_overlap=False)
    return float(metric(reference(name), hypothesis, uem=Timeline([Segment(0, duration)])))


def as_annotation(rows: list[tuple[float, float, str]]) -> Annotation:
    annotation = Annotation()
    for i, (start, end, label) in enumerate(rows):
        annotation[Segment(start, end), i] = label
    return annotation


def live_turns(events: list[Event]) -> list[tuple[float, float, str]]:
    last: dict[float, SpeakerTurn] = {}
    for e in events:
        if isinstance(e, SpeakerTurn):
            last[e.t_start] = e
    return [(e.t_start, e.t_end, e.speaker) for e in last.values() if e.t_end > e.t_start]


@pytest.mark.parametrize("n", sorted(FIXTURES))
def test_the_speaker_count_of_real_voices_is_right_or_off_by_one(
    histories: dict[int, tuple[list[SpeakerHistory], list[Event]]], n: int
) -> None:
    # Measured: 1, 1, 2 and 4 speakers found (the target: right or off by one).
    found = len(diarize(histories[n][0], speaker_config()).centroids)
    assert abs(found - n) <= 1
    if n == 1:
        assert found == 1


def test_min_and_max_speakers_bound_the_estimate(
    histories: dict[int, tuple[list[SpeakerHistory], list[Event]]],
) -> None:
    four = histories[4][0]
    assert len(diarize(four, speaker_config(min_speakers=4)).centroids) == 4
    assert len(diarize(four, speaker_config(max_speakers=2)).centroids) == 2
    one = histories[1][0]
    assert len(diarize(one, speaker_config(min_speakers=2)).centroids) == 2
    with pytest.raises(ValidationError, match="min_speakers"):
        speaker_config(min_speakers=3, max_speakers=2)


def test_file_diarization_of_the_fixtures_stays_within_its_measured_error(
    histories: dict[int, tuple[list[SpeakerHistory], list[Event]]],
) -> None:
    # Measured DER (collar 0.25, overlap scored): 30, 38, 28 and 42 %; on the 1-speaker one
    # it is all missed and false-alarmed speech (the gate is slow to hear the first words).
    for n, name in FIXTURES.items():
        segments = diarize(histories[n][0], speaker_config()).segments
        value = der(name, as_annotation([(s.start, s.end, str(s.speaker)) for s in segments]))
        assert value < 0.5, (name, value)


def test_streaming_and_file_agree_within_a_stated_error(
    histories: dict[int, tuple[list[SpeakerHistory], list[Event]]],
) -> None:
    # The live turns scored against the file timeline as if it were the truth: measured
    # 11-61 % (the live clusterer declares voices later and counts differently: on these
    # files it finds 2, 4 and 5 voices where file mode finds 1, 2 and 4).
    for n in (2, 3, 4):
        history, events = histories[n]
        segments = diarize(history, speaker_config()).segments
        file_mode = as_annotation([(s.start, s.end, str(s.speaker)) for s in segments])
        end = max(s.end for s in segments)
        metric = DiarizationErrorRate(collar=0.25, skip_overlap=False)
        value = metric(
            file_mode, as_annotation(live_turns(events)), uem=Timeline([Segment(0, end)])
        )
        assert value < 0.65, (n, value)


def analyze_overlap_fixture(
    tmp_path: Path, detector_lines: str, *options: str
) -> tuple[list[dict[str, Any]], Annotation, Timeline, Timeline]:
    """``analyze`` of the two-voice overlap fixture with the speaker detector configured by
    ``detector_lines``: the result's segments, the RTTM as written (checked to hold the
    same segments), its overlapped stretches and the reference's."""
    from stream.cli import main

    rttm, out = tmp_path / "out.rttm", tmp_path / "out.json"
    config = tmp_path / "pipeline.toml"
    config.write_text('[[detectors]]\ntype = "speaker"\n' + detector_lines)
    argv = ["analyze", str(ROOMS / "room_2spk_overlap.flac"), "--json", str(out)]
    assert main([*argv, "--rttm", str(rttm), *options, "--config", str(config)]) == 0
    segments: list[dict[str, Any]] = json.loads(out.read_text())["results"]["speaker_recognition"][
        "segments"
    ]
    annotation = load_rttm(str(rttm))["room_2spk_overlap"]
    assert len(annotation) == len(segments)
    truth = reference("room_2spk_overlap").get_overlap()
    return segments, annotation, annotation.get_overlap(), truth


def test_overlapped_speech_reaches_the_rttm_as_overlapping_segments(tmp_path: Path) -> None:
    segments, annotation, found, truth = analyze_overlap_fixture(
        tmp_path, "overlap_threshold = 0.5\n", "--speakers", "2"
    )
    assert len(annotation.labels()) == 2
    # Measured at overlap_threshold 0.5: 0.38 s of overlapping segments, all of it where two
    # people do talk at once (of 5.0 s: the model is precise rather than thorough; at the
    # default 0.8 it marks none on this file).
    assert found.duration() > 0.2
    assert found.crop(truth).duration() > 0.6 * found.duration()
    starts = [s["start"] for s in segments]
    assert starts == sorted(starts)  # still in time order


def test_overlap_detection_lowers_the_error_where_voices_overlap(
    histories: dict[int, tuple[list[SpeakerHistory], list[Event]]],
) -> None:
    history = histories[3][0]
    rows = {}
    for threshold in (1.0, 0.8):
        segments = diarize(history, speaker_config(overlap_threshold=threshold)).segments
        rows[threshold] = as_annotation([(s.start, s.end, str(s.speaker)) for s in segments])
    found = rows[0.8].get_overlap()
    # Measured: DER 33.8 % without, 28.2 % with; 1.6 s found overlapped, 1.54 s of it truly.
    assert der("room_3spk", rows[0.8]) < der("room_3spk", rows[1.0]) - 0.03
    assert found.crop(reference("room_3spk").get_overlap()).duration() > 0.6 * found.duration()
    assert not rows[1.0].get_overlap()


def _level_variant(tmp_path: Path, name: str, gain_db: float) -> Path:
    audio, rate = sf.read(ROOMS / f"{name}.flac", dtype="float64")
    path = tmp_path / f"{name}_{-gain_db:.0f}dB.flac"
    sf.write(path, audio * 10 ** (gain_db / 20), rate, subtype="PCM_24")
    return path


def test_the_same_file_15_and_30_db_quieter_gives_the_same_segments(tmp_path: Path) -> None:
    name = "room_3spk"
    timelines = []
    for gain in (0.0, -15.0, -30.0):
        history, _ = run(_level_variant(tmp_path, name, gain), speaker_config())
        segments = diarize(history, speaker_config()).segments
        timelines.append(as_annotation([(s.start, s.end, str(s.speaker)) for s in segments]))
    end = max(s.end for s, _ in timelines[0].itertracks())
    for other in timelines[1:]:
        metric = DiarizationErrorRate(collar=0.25, skip_overlap=False)
        # Measured: below 1 % between levels.
        assert metric(timelines[0], other, uem=Timeline([Segment(0, end)])) < 0.05


def test_a_six_channel_file_is_diarized(tmp_path: Path) -> None:
    audio, rate = sf.read(ROOMS / "room_2spk_overlap.flac", dtype="float32")
    six = tmp_path / "six.wav"
    gains = np.array([1.0, 0.8, 0.6, 0.5, 0.4, 0.3], dtype=np.float32)
    sf.write(six, audio[:, None] * gains[None, :], rate)
    document = analyze_file(six, PipelineConfig(detectors=[speaker_config()]))
    section = document["results"]["speaker_recognition"]
    assert document["audio_info"]["channels"] == 6
    assert 1 <= section["speakers_detected"] <= 3
    duration = len(audio) / rate
    assert all(0 <= s["start"] < s["end"] <= duration + 0.05 for s in section["segments"])


def test_a_real_two_person_call_of_two_and_a_half_minutes_is_two_people() -> None:
    """``real_call.flac``: the first 152 s of a role-played support call (8 kHz telephone
    audio; aws-samples/amazon-transcribe-live-call-analytics, Apache-2.0; written by
    ``tools/gather_conversations.py --fixture``), its reference read off each speaker's
    own recording. One tree over its windows counted 4 people (DER 19.7 %); clustered in
    blocks it is 2 (DER 2.3 %). The call was among the dev sets the block settings were
    chosen on: a regression guard, not a quality figure."""
    name = "real_call"
    document = analyze_file(
        ROOMS / f"{name}.flac",
        PipelineConfig(detectors=[speaker_config()]),
        sections=frozenset({"voice_activity", "speaker_recognition"}),
    )
    section = document["results"]["speaker_recognition"]
    assert section["speakers_detected"] == 2
    rows = [(s["start"], s["end"], str(s["speaker"])) for s in section["segments"]]
    assert der(name, as_annotation(rows)) < 0.08


def test_a_minute_and_a_half_of_a_real_call_is_two_people(tmp_path: Path) -> None:
    """The first 80 s of ``real_call.flac`` (above). One tree over its windows, cut where
    the room conversations of 30 s were calibrated, counted 3 people; in blocks of
    ``file_block_s`` it is 2. Recordings of a minute or two are where one tree over-counted
    real voices most (docs/BENCHMARKS.md). A regression guard, as above."""
    audio, rate = sf.read(ROOMS / "real_call.flac", dtype="float32")
    seconds = 80.0
    path = tmp_path / "call80.flac"
    sf.write(path, audio[: int(seconds * rate)], rate)
    document = analyze_file(
        path,
        PipelineConfig(detectors=[speaker_config()]),
        sections=frozenset({"voice_activity", "speaker_recognition"}),
    )
    section = document["results"]["speaker_recognition"]
    assert section["speakers_detected"] == 2
    truth = reference("real_call").crop(Segment(0, seconds))
    found = as_annotation([(s["start"], s["end"], str(s["speaker"])) for s in section["segments"]])
    metric = DiarizationErrorRate(collar=0.25, skip_overlap=False)
    assert metric(truth, found, uem=Timeline([Segment(0, seconds)])) < 0.10
    one_tree = speaker_config(file_block_after_s=400.0)
    before = analyze_file(
        path,
        PipelineConfig(detectors=[one_tree]),
        sections=frozenset({"voice_activity", "speaker_recognition"}),
    )
    assert before["results"]["speaker_recognition"]["speakers_detected"] > 2


def test_one_real_voice_split_in_two_by_the_clustering_is_one_speaker(tmp_path: Path) -> None:
    """``real_call.flac`` with the agent's turns silenced: the caller alone, 152 s of one
    real telephone voice. Clustered in blocks, the voice splits into two clusters, and
    the overlap model, hearing both halves alike on every frame, gave the second "speaker"
    as a second voice on most of the speech: a monologue became two people talking at
    once. Two speakers heard together for more than ``one_voice_overlap`` of the quieter
    one's speech are now one (chosen on the LibriSpeech-derived dev sets; this call was a
    dev recording of the block settings: a regression guard)."""
    audio, rate = sf.read(ROOMS / "real_call.flac", dtype="float32")
    for segment, _, label in reference("real_call").itertracks(yield_label=True):
        if label != "spk1":
            audio[int(segment.start * rate) : int(segment.end * rate)] = 0.0
    path = tmp_path / "caller.flac"
    sf.write(path, audio, rate)

    def speakers(config: SpeakerConfig) -> dict[str, Any]:
        document = analyze_file(
            path,
            PipelineConfig(detectors=[config]),
            sections=frozenset({"voice_activity", "speaker_recognition"}),
        )
        section: dict[str, Any] = document["results"]["speaker_recognition"]
        return section

    section = speakers(speaker_config())
    assert section["speakers_detected"] == 1
    truth = reference("real_call").subset(["spk1"])
    found = as_annotation([(s["start"], s["end"], "one") for s in section["segments"]])
    assert der("real_call", found) > 0.3  # against both people: the agent is silent here
    metric = DiarizationErrorRate(collar=0.25, skip_overlap=False)
    assert metric(truth, found, uem=Timeline([Segment(0, len(audio) / rate)])) < 0.15
    before = speakers(speaker_config(one_voice_overlap=1.0))
    assert before["speakers_detected"] == 2
    ends = sorted((s["start"], s["end"]) for s in before["segments"])
    assert any(b[0] < a[1] for a, b in itertools.pairwise(ends))  # the split talked at once
    # A count the user gives is kept: two speakers asked for are two.
    asked = analyze_file(
        path,
        PipelineConfig(detectors=[speaker_config()]),
        sections=frozenset({"voice_activity", "speaker_recognition"}),
        n_speakers=2,
    )
    assert asked["results"]["speaker_recognition"]["speakers_detected"] == 2
    assert asked["provenance"]["parameters"]["n_speakers"] == 2  # the result says it was given


def test_a_live_turn_never_reaches_back_over_a_pause(tmp_path: Path) -> None:
    """0.6 s of a real voice, 4 s of silence, then 5.5 s more of it. The first stretch is
    too short for a window of its own, so no window names its speaker before the voice
    comes back; the turn opened then used to start at that first stretch and span the
    silence (one turn from 0.16 to 10.1 s: 4 s of false alarm). Now the stretch is a turn
    of its own, given the speaker the next window names."""
    audio, rate = sf.read(ROOMS / "room_1spk.flac", dtype="float32")
    speech = audio[int(1.9 * rate) : int(7.4 * rate)]
    silence = np.zeros(4 * rate, np.float32)
    path = tmp_path / "pause.flac"
    sf.write(path, np.concatenate([speech[: int(0.6 * rate)], silence, speech, silence]), rate)
    _, events = run_pipeline(path, PipelineConfig(detectors=[speaker_config()]))
    turns = live_turns(events)
    assert turns, "the voice was not heard"
    assert not [t for t in turns if t[0] < 4.0 and t[1] > 1.0], turns  # nothing in the pause
    assert any(t[0] < 0.6 and t[1] <= 0.7 for t in turns)  # the first stretch, its own turn
    assert {label for *_, label in turns} == {"Speaker_1"}
    assert max(t[1] for t in turns) > 9.5  # the voice after the pause, to its end


def test_short_stretches_waiting_for_a_speaker_stay_bounded(tmp_path: Path) -> None:
    """Sixty bursts of 0.3 s of a real voice, a second apart: none is long enough for a
    window, so none is ever named, and the stretches kept waiting for a speaker stay
    bounded (a channel that hears only such bursts for hours must not grow)."""
    from detectors.speaker.detector import ORPHANS_KEPT

    audio, rate = sf.read(ROOMS / "room_1spk.flac", dtype="float32")
    burst = audio[int(4.0 * rate) : int(4.3 * rate)]
    gap = np.zeros(rate, np.float32)
    path = tmp_path / "bursts.flac"
    sf.write(path, np.concatenate([np.concatenate([burst, gap]) for _ in range(60)]), rate)
    runner, events = run_pipeline(path, PipelineConfig(detectors=[speaker_config()]))
    detector = next(d for c in runner.chains for d in c.detectors if isinstance(d, SpeakerDetector))
    assert not live_turns(events)
    assert 0 < len(detector._orphans) <= ORPHANS_KEPT


def test_min_speakers_above_max_speakers_is_a_clear_command_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stream.cli import main

    out = tmp_path / "out.json"
    path = str(ROOMS / "room_1spk.flac")
    code = main(["analyze", path, "--json", str(out), "--min-speakers", "3", "--max-speakers", "2"])
    assert code != 0
    assert "min_speakers" in capsys.readouterr().err
    assert not out.exists()
    assert main(["analyze", path, "--json", str(out), "--min-speakers", "2"]) == 0
    assert json.loads(out.read_text())["results"]["speaker_recognition"]["speakers_detected"] == 2


def test_the_overlap_model_loads_and_refuses_a_wrong_file(tmp_path: Path) -> None:
    model = load_model()
    assert model.weights.shape == (N_FEATURES,)
    rng = np.random.default_rng(0)
    logmel = frame_logmel(rng.normal(0, 0.1, (50, 512)).astype(np.float32))
    p = model.probability(features(logmel, None))
    assert p.shape == (50,)
    assert np.all((p >= 0) & (p <= 1))
    assert features(frame_logmel(np.zeros((0, 512), np.float32)), None).shape == (0, N_FEATURES)
    wrong = tmp_path / "wrong.npz"
    OverlapModel(np.zeros(7, np.float32), 0.0).save(wrong)
    with pytest.raises(ValueError, match="expected 203"):
        load_model(wrong)


@pytest.mark.parametrize("speakers", [0, 2, 3])
def test_the_lean_overlap_probability_equals_the_feature_matrix_one(speakers: int) -> None:
    """Files use frame_probability (no [n, 203] matrix): it must give what the model was
    trained to give on features()."""
    model = load_model()
    rng = np.random.default_rng(speakers)
    logmel = frame_logmel(rng.normal(0, 0.1, (300, 512)).astype(np.float32))
    scores = rng.uniform(-1, 1, (300, speakers)).astype(np.float32) if speakers else None
    expected = model.probability(features(logmel, scores))
    assert model.frame_probability(logmel, scores) == pytest.approx(expected, abs=2e-5)
    assert model.frame_probability(logmel[:0], None).shape == (0,)


def test_the_vad_and_the_speaker_gate_share_one_silero_pass() -> None:
    """Silero runs once per frame for both, and each decides exactly as it does alone."""
    audio, rate = sf.read(ROOMS / "room_2spk_overlap.flac", dtype="float32")
    audio = audio[: 20 * rate]
    vad_config, speaker_config = VadConfig(), SpeakerConfig(hop_s=1.0)

    def decisions(shared: bool) -> tuple[list[bool], list[bool], int]:
        vad = VadDetector(vad_config, 0, rate)
        speaker = SpeakerDetector(speaker_config, 0, rate)
        if shared:
            resources = ChannelResources()
            vad.attach(resources)
            speaker.attach(resources)
        runs = 0
        original = SileroFrames.probability

        def counted(self: SileroFrames, samples: npt.NDArray[np.float32]) -> float:
            nonlocal runs
            runs += 1
            return original(self, samples)

        SileroFrames.probability = counted  # type: ignore[method-assign]
        try:
            frame, hop = FRAME, speaker.hop
            vad_voiced = [
                vad.is_voiced(Window(0, s, audio[s : s + frame], rate))
                for s in range(0, len(audio) - frame + 1, frame)
            ]
            gate = [
                bool(v)
                for s in range(0, len(audio) - hop + 1, hop)
                for v in speaker._gate.frames(s, audio[s : s + hop])
            ]
        finally:
            SileroFrames.probability = original  # type: ignore[method-assign]
        return vad_voiced, gate, runs

    vad_alone, gate_alone, runs_alone = decisions(shared=False)
    vad_shared, gate_shared, runs_shared = decisions(shared=True)
    assert vad_shared == vad_alone
    assert gate_shared == gate_alone
    frames = len(audio) // FRAME
    assert runs_shared <= frames < runs_alone
    # Different thresholds, so the decisions differ somewhere, from one judgement per frame.
    assert vad_alone[: len(gate_alone)] != gate_alone


@pytest.mark.parametrize("n", [1, 4095, 4097, 20_000])
def test_band_statistics_in_pieces_are_numpys_to_the_bit(n: int) -> None:
    """The overlap model normalises an hour of frames without an [n, 40] float64 copy; the
    mean and spread it uses must still be exactly numpy's."""
    from detectors.speaker.overlap import _column_mean_std

    logmel = (np.random.default_rng(n).normal(-20, 7, (n, 40))).astype(np.float32)
    mean, std = _column_mean_std(logmel, piece=4096)
    assert np.array_equal(mean, logmel.mean(axis=0, dtype=np.float64))
    assert np.array_equal(std, logmel.std(axis=0, dtype=np.float64))


def test_files_embed_at_their_own_hop_and_evidence_whatever_the_live_ones() -> None:
    live = speaker_config(hop_s=0.5, min_evidence=3)
    pipeline = speaker_analysis_config(PipelineConfig(detectors=[live]))
    (files,) = [d for d in pipeline.detectors if isinstance(d, SpeakerConfig)]
    assert (files.hop_s, files.min_evidence, files.keep_embeddings, files.batch) == (
        1.0, 4, True, 16,
    )  # fmt: skip
    unset = speaker_config(hop_s=0.5, min_evidence=3, file_hop_s=None, file_min_evidence=None)
    pipeline = speaker_analysis_config(PipelineConfig(detectors=[unset]))
    (same,) = [d for d in pipeline.detectors if isinstance(d, SpeakerConfig)]
    assert (same.hop_s, same.min_evidence) == (0.5, 3)
    (history,), _ = run(ROOMS / "room_3spk.flac", live)
    steps = np.diff(history.window_end)
    assert steps[steps > 0].min() == pytest.approx(1.0, abs=0.02)  # whole 32 ms frames


def test_a_file_hop_longer_than_the_window_is_refused() -> None:
    with pytest.raises(ValidationError, match="file_hop_s"):
        speaker_config(window_s=1.6, file_hop_s=2.0)
