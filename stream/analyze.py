"""Offline analysis of whole files: the same pipeline, as fast as the CPU allows.

Produces the result document of DESIGN.md; sections fill in as detectors land.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import soundfile as sf

from config.pipeline import PipelineConfig
from config.version import VERSION
from detectors import DetectorConfig, VadConfig
from detectors.files import file_sha256
from detectors.heritage import heritage_classification, heritage_provenance, with_heritage
from detectors.metadata.generator import metadata_for_result
from detectors.speaker import encoder_provenance
from detectors.vad import vad_provenance
from sinks.metrics import Metrics
from stream.events import Event, SpeechEnded
from stream.pipeline import SourceRunner
from stream.sources import FileSource, FileSourceConfig, SourceError
from stream.speaker_report import speaker_analysis_config, speaker_recognition

_BIT_DEPTHS = {
    "PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64,
    "ALAC_16": 16, "ALAC_20": 20, "ALAC_24": 24, "ALAC_32": 32,
}  # fmt: skip

Progress = Callable[[float], None]
"""Called with the fraction of the file analysed so far (0..1)."""


def audio_info(path: Path) -> dict[str, Any]:
    """The ``audio_info`` section: duration, rate, channels, bit depth, container, hash."""
    info = sf.info(str(path))
    return {
        "duration": round(info.frames / info.samplerate, 3),
        "sample_rate": info.samplerate,
        "channels": info.channels,
        "bit_depth": _BIT_DEPTHS.get(info.subtype),
        "format": info.format,
        "sha256": file_sha256(path),
    }


def voice_activity(events: list[Event], duration: float) -> dict[str, Any]:
    """The ``voice_activity`` section from the VAD's ``speech.ended`` events."""
    segments = [
        {"start": round(e.t_start, 3), "end": round(e.t_end, 3)}
        for e in events
        if isinstance(e, SpeechEnded)
    ]
    speech = sum(s["end"] - s["start"] for s in segments)
    return {
        "speech_ratio": round(speech / duration, 4) if duration > 0 else 0.0,
        "segments": segments,
    }


SECTIONS = frozenset(
    {"voice_activity", "speaker_recognition", "heritage_classification", "metadata_generation"}
)
"""The ``results`` sections a file analysis can produce (all of them by default)."""


def _analysis_config(config: PipelineConfig, sections: frozenset[str]) -> PipelineConfig:
    """The configured detectors the asked-for sections need; the level meter adds nothing."""
    detectors: list[DetectorConfig] = [d for d in config.detectors if d.type != "level"] or [
        VadConfig()
    ]
    # The heritage category also gives the metadata its genre and Dublin Core subject.
    if sections & {"heritage_classification", "metadata_generation"}:
        detectors = with_heritage(detectors)
    config = config.model_copy(update={"detectors": detectors})
    if "speaker_recognition" in sections:
        config = speaker_analysis_config(config)
    return config


def analyze_file(
    path: Path,
    config: PipelineConfig | None = None,
    progress: Progress | None = None,
    n_speakers: int | None = None,
    *,
    sections: frozenset[str] = SECTIONS,
    task_id: str | None = None,
    curator: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Analyse one file and return its result document; :class:`SourceError` if unreadable.

    ``n_speakers``: the number of speakers, when known (estimated otherwise).
    ``sections``: which ``results`` to compute (voice activity always comes).
    ``task_id``: the document's id (a new UUID by default); ``curator``: Dublin Core
    fields supplied with the recording, merged into the generated metadata.
    """
    unknown = sections - SECTIONS
    if unknown:
        raise ValueError(f"unknown result section(s): {', '.join(sorted(unknown))}")
    config = _analysis_config(config or PipelineConfig(), sections)
    source = FileSource(FileSourceConfig(name=path.name, path=path, realtime=False))
    source.open()
    info = audio_info(path)
    events: list[Event] = []
    runner = SourceRunner(source, config, events.extend, Metrics())
    thread = threading.Thread(target=runner.run, args=(threading.Event(),), daemon=True)
    thread.start()
    while not runner.done.wait(0.2):
        if progress and info["duration"]:
            progress(min(1.0, runner.t / info["duration"]))
    thread.join()
    if runner.state == "error":
        raise SourceError(runner.message)
    if progress:
        progress(1.0)
    results: dict[str, Any] = {"voice_activity": voice_activity(events, info["duration"])}
    models = {
        "vad": vad_provenance(
            next((d for d in config.detectors if isinstance(d, VadConfig)), VadConfig())
        )
    }
    if "speaker_recognition" in sections:
        results["speaker_recognition"] = speaker_recognition(path, runner, n_speakers)
        models["speaker_encoder"] = encoder_provenance()
    if sections & {"heritage_classification", "metadata_generation"}:
        results["heritage_classification"] = heritage_classification(events)
        models["heritage"] = heritage_provenance(config.detectors)
    result: dict[str, Any] = {
        "task_id": task_id or str(uuid.uuid4()),
        "audio_info": info,
        "results": results,
        "provenance": {
            "software_version": VERSION,
            "models": models,
            "parameters": {
                "analysis_sample_rate": config.analysis_sample_rate,
                "sections": sorted(sections),
                "detectors": [d.model_dump() for d in config.detectors],
            },
        },
    }
    if "metadata_generation" in sections:
        results["metadata_generation"] = metadata_for_result(path, result, curator)
    if "heritage_classification" not in sections:
        results.pop("heritage_classification", None)
    return result
