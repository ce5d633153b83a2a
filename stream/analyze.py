"""Offline analysis of whole files: the same pipeline, as fast as the CPU allows.

Produces the result document of DESIGN.md; sections fill in as detectors land.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import soundfile as sf

from config.pipeline import PipelineConfig
from config.version import VERSION
from detectors import VadConfig
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


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def audio_info(path: Path) -> dict[str, Any]:
    """The ``audio_info`` section: duration, rate, channels, bit depth, container, hash."""
    info = sf.info(str(path))
    return {
        "duration": round(info.frames / info.samplerate, 3),
        "sample_rate": info.samplerate,
        "channels": info.channels,
        "bit_depth": _BIT_DEPTHS.get(info.subtype),
        "format": info.format,
        "sha256": sha256_of(path),
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


def _analysis_config(config: PipelineConfig) -> PipelineConfig:
    """The configured detectors minus the level meter, which adds nothing to a file's result."""
    detectors = with_heritage([d for d in config.detectors if d.type != "level"] or [VadConfig()])
    return config.model_copy(update={"detectors": detectors})


def analyze_file(
    path: Path,
    config: PipelineConfig | None = None,
    progress: Progress | None = None,
    n_speakers: int | None = None,
) -> dict[str, Any]:
    """Analyse one file and return its result document; :class:`SourceError` if unreadable.

    ``n_speakers``: the number of speakers, when known (estimated otherwise).
    """
    config = speaker_analysis_config(_analysis_config(config or PipelineConfig()))
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
    result: dict[str, Any] = {
        "task_id": str(uuid.uuid4()),
        "audio_info": info,
        "results": {
            "voice_activity": voice_activity(events, info["duration"]),
            "speaker_recognition": speaker_recognition(path, runner, n_speakers),
            "heritage_classification": heritage_classification(events),
        },
        "provenance": {
            "software_version": VERSION,
            "models": {
                "vad": vad_provenance(
                    next((d for d in config.detectors if isinstance(d, VadConfig)), VadConfig())
                ),
                "speaker_encoder": encoder_provenance(),
                "heritage": heritage_provenance(config.detectors),
            },
            "parameters": {
                "analysis_sample_rate": config.analysis_sample_rate,
                "detectors": [d.model_dump() for d in config.detectors],
            },
        },
    }
    result["results"]["metadata_generation"] = metadata_for_result(path, result)
    return result
