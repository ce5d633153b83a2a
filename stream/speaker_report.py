"""Speaker recognition of whole files: the ``speaker_recognition`` result section and RTTM.

A file is streamed through the pipeline like live audio, with the speaker
detector keeping every embedding (:func:`speaker_analysis_config`); then
:func:`speaker_recognition` re-clusters them over the whole file
(``detectors.speaker.offline``), names enrolled voices, and measures each
speaker's voice from the file's audio.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from config.pipeline import PipelineConfig
from detectors.speaker.clustering import unit
from detectors.speaker.detector import SpeakerConfig, SpeakerDetector, load_profiles
from detectors.speaker.offline import Segment, diarize
from detectors.speaker.profiles import match_names
from detectors.speaker.voice import SAMPLE_RATE, level_dbfs, voice_features
from stream.pipeline import SourceRunner
from stream.resample import Resampler
from stream.signal_spool import SignalSpool
from stream.windowing import Windower

logger = logging.getLogger(__name__)

FILE_BATCH = 16  # windows per encoder call for files, where latency does not matter
PITCH_SAMPLE_S = 10.0  # speech per speaker that pitch and rate are measured on (bounds cost)
INTERRUPTION_GAP_S = 0.2  # a turn starting this soon after another voice stops interrupts it
MIN_ENROLL_SPEECH_S = 3.0  # a profile averages at least this much speech
MIN_ENROLL_WINDOWS = 6  # about 3 s of windows at the default 0.5 s hop


def speaker_analysis_config(config: PipelineConfig) -> PipelineConfig:
    """``config`` for a file: its speaker detector (a default one if it has none) keeps every
    embedding and embeds in batches, at its file hop."""
    detectors = list(config.detectors)
    if not any(isinstance(d, SpeakerConfig) for d in detectors):
        detectors.append(SpeakerConfig())
    detectors = [_for_files(d) if isinstance(d, SpeakerConfig) else d for d in detectors]
    return config.model_copy(update={"detectors": detectors})


def _for_files(config: SpeakerConfig) -> SpeakerConfig:
    """The detector's file settings: every embedding kept, batched, at the file hop,
    evidence and new-speaker distance."""
    return config.model_copy(
        update={
            "keep_embeddings": True,
            "batch": FILE_BATCH,
            "hop_s": config.file_hop_s or config.hop_s,
            "min_evidence": config.file_min_evidence or config.min_evidence,
            "new_speaker_distance": config.file_new_speaker_distance or config.new_speaker_distance,
        }
    )


def speaker_recognition(
    signal: SignalSpool, runner: SourceRunner, n_speakers: int | None = None
) -> dict[str, Any]:
    """The ``speaker_recognition`` section of a file ``runner`` has finished analysing;
    ``signal``: its 16 kHz analysis signal, which the voice statistics read."""
    detectors = [
        d for chain in runner.chains for d in chain.detectors if isinstance(d, SpeakerDetector)
    ]
    if not detectors:
        raise ValueError("the pipeline ran no speaker detector: use speaker_analysis_config")
    config = detectors[0].config
    result = diarize([d.history() for d in detectors], config, n_speakers)
    names = match_names(result.centroids, load_profiles(config), config.enrolled_distance)
    labels = speaker_labels(len(result.centroids), names)
    segments = result.segments
    speakers: dict[str, dict[str, Any]] = {}
    for k, label in enumerate(labels):
        mine = [s for s in segments if s.speaker == k]
        speakers[label] = {
            "speaking_time": round(sum(s.end - s.start for s in mine), 2),
            "turns": sum(1 for i, s in enumerate(segments) if s.speaker == k and
                         (i == 0 or segments[i - 1].speaker != k)),
            **_voice(signal, mine),
            "name": names.get(k),
        }  # fmt: skip
    dominant = max(speakers, key=lambda n: speakers[n]["speaking_time"]) if speakers else None
    return {
        "speakers_detected": len(speakers),
        "dominant_speaker": dominant,
        "segments": [
            {"start": round(s.start, 3), "end": round(s.end, 3), "speaker": labels[s.speaker]}
            for s in segments
        ],
        "speakers": speakers,
        "interruptions": interruptions(segments),
    }


def speaker_labels(n: int, names: dict[int, str]) -> list[str]:
    """Labels of speakers 0..n-1 (in order of appearance): enrolled names, else Speaker_N."""
    labels: list[str] = []
    unknown = 0
    for k in range(n):
        if k in names:
            labels.append(names[k])
        else:
            unknown += 1
            labels.append(f"Speaker_{unknown}")
    return labels


def interruptions(segments: list[Segment]) -> int:
    """Turns that start while another speaker still talks or within 0.2 s of them stopping."""
    count = 0
    for i, s in enumerate(segments):
        others = [o for o in segments[:i] if o.speaker != s.speaker]
        previous = segments[i - 1] if i else None
        starts_turn = previous is None or previous.speaker != s.speaker
        if starts_turn and any(o.end > s.start - INTERRUPTION_GAP_S for o in others[-4:]):
            count += 1
    return count


def _voice(signal: SignalSpool, segments: list[Segment]) -> dict[str, Any]:
    """Pitch, rate and level of one speaker's segments, read from the analysis signal."""
    sum_squares, n = 0.0, 0
    sample: list[np.ndarray] = []
    sampled_s = 0.0
    # Pitch and rate on segments spread over the file, at most PITCH_SAMPLE_S in all.
    total = sum(s.end - s.start for s in segments)
    step = max(1, round(total / PITCH_SAMPLE_S)) if total > PITCH_SAMPLE_S else 1
    for i, s in enumerate(segments):
        mono = signal.read(s.start, s.end)
        sum_squares += float(np.sum(np.square(mono, dtype=np.float64)))
        n += len(mono)
        if i % step == 0 and sampled_s < PITCH_SAMPLE_S:
            sample.append(mono)
            sampled_s += s.end - s.start
    speech = np.concatenate(sample) if sample else np.zeros(0, np.float32)
    features = voice_features(speech)
    energy = level_dbfs(sum_squares, n)
    return {
        "mean_pitch_hz": features.mean_pitch_hz,
        "pitch_range_hz": list(features.pitch_range_hz) if features.pitch_range_hz else None,
        "speech_rate": features.speech_rate,
        "energy_db": round(energy, 1) if energy is not None else None,
    }


def rttm_lines(uri: str, section: dict[str, Any]) -> list[str]:
    """RTTM lines (``SPEAKER <uri> 1 <start> <dur> <NA> <NA> <speaker> <NA> <NA>``) of a
    ``speaker_recognition`` section; whitespace in names becomes ``_``."""
    uri = _token(uri) or "audio"
    return [
        f"SPEAKER {uri} 1 {seg['start']:.3f} {seg['end'] - seg['start']:.3f} <NA> <NA> "
        f"{_token(seg['speaker'])} <NA> <NA>\n"
        for seg in section.get("segments", [])
    ]


def _token(text: str) -> str:
    """``text`` as one RTTM field: whitespace runs become ``_``."""
    return re.sub(r"\s+", "_", text.strip())


def write_rttm(out: Path, analysed: Iterable[tuple[Path, dict[str, Any]]]) -> None:
    """Write the speaker timelines of (file, result document) pairs to ``out`` as RTTM."""
    lines: list[str] = []
    for path, document in analysed:
        section = document.get("results", {}).get("speaker_recognition", {})
        lines += rttm_lines(path.stem, section)
    out.write_text("".join(lines), encoding="utf-8")


def enrollment_embedding(
    paths: Iterable[Path], config: SpeakerConfig | None = None
) -> tuple[np.ndarray, float]:
    """A voice profile's embedding from recordings of one speaker, made the way the detector
    embeds live audio (same gate, windows and encoder): the unit mean of every window's
    embedding. Returns it with the seconds of voiced audio; ``ValueError`` if too little."""
    config = config or SpeakerConfig()
    # A profile is made once: embed as densely as the default hop, whatever the live one.
    config = config.model_copy(
        update={
            "keep_embeddings": True,
            "batch": FILE_BATCH,
            "hop_s": min(config.hop_s, SpeakerConfig().hop_s),
        }
    )
    detector = SpeakerDetector(config, 0, SAMPLE_RATE, profiles={})
    embeddings: list[np.ndarray] = []
    voiced_s = 0.0
    for path in paths:
        detector.reset()
        windower = Windower(*detector.window_samples(), channel=0, sample_rate=SAMPLE_RATE)
        for window in windower.push(_mono_16k(path)):
            detector.process(window)
        detector.finish(0.0)
        history = detector.history()
        embeddings.extend(history.embeddings)
        voiced_s += float(history.frame_voiced.sum()) * history.frame_s
    if len(embeddings) < MIN_ENROLL_WINDOWS:
        raise ValueError(
            f"only {voiced_s:.1f} s of speech found: enroll at least "
            f"{MIN_ENROLL_SPEECH_S:.0f} s of this voice"
        )
    return unit(np.mean(embeddings, axis=0)), voiced_s


def _mono_16k(path: Path) -> np.ndarray:
    """A whole file mixed to mono at 16 kHz; ``ValueError`` if it is not readable audio."""
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise ValueError(f"{path}: not readable audio ({exc})") from None
    mono = np.nan_to_num(audio.mean(axis=1))
    resampler = Resampler(rate, SAMPLE_RATE)
    return np.concatenate([resampler.process(mono), resampler.process(mono[:0], last=True)])
