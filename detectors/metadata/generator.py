"""``results.metadata_generation``: technical, content, cultural tags and Dublin Core of one file.

The file is read once, block by block (memory stays flat over hours of audio): each
block feeds the loudness and technical meters at its own rate and channels, and
its channel mix, resampled to 16 kHz, feeds the content analysis, unless the
caller already has the 16 kHz mono signal.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
from numpy.typing import NDArray

from detectors.metadata.content import RATE, ContentAnalyzer, speech_mask_from_segments
from detectors.metadata.dublin_core import (
    CATEGORY_SUBJECTS,
    build_record,
    check_curator_fields,
    embedded_fields,
    iso_duration,
    mime_type,
    to_oai_dc,
)
from detectors.metadata.riff import read_chunks
from detectors.metadata.tags import cultural_tags
from detectors.metadata.technical import TechnicalMeter
from detectors.vad import VadConfig, VadDetector
from stream.events import Event, SpeechEnded
from stream.windowing import Windower

logger = logging.getLogger(__name__)

BLOCK_FRAMES = 1 << 16
BIT_DEPTHS = {
    "PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64,
    "ALAC_16": 16, "ALAC_20": 20, "ALAC_24": 24, "ALAC_32": 32,
}  # fmt: skip


def _container(info: Any) -> dict[str, Any]:
    return {
        "container": info.format,
        "container_name": info.format_info,
        "codec": info.subtype,
        "codec_name": info.subtype_info,
        "sample_rate": int(info.samplerate),
        "bit_depth": BIT_DEPTHS.get(info.subtype),
        "channels": int(info.channels),
        "frames": int(info.frames),
        "file_size_bytes": None,
    }


class _SpeechFinder:
    """The shipped VAD over the 16 kHz signal, for callers without a ``voice_activity``."""

    def __init__(self) -> None:
        self._vad = VadDetector(VadConfig(), channel=0, sample_rate=RATE)
        window, hop = self._vad.window_samples()
        self._windower = Windower(window, hop, channel=0, sample_rate=RATE)
        self.segments: list[dict[str, float]] = []

    def feed(self, chunk: NDArray[np.float32]) -> None:
        for window in self._windower.push(chunk):
            self._collect(self._vad.process(window))

    def finish(self) -> dict[str, Any]:
        self._collect(self._vad.finish(self._windower.position / RATE))
        return {"segments": self.segments}

    def _collect(self, events: list[Event]) -> None:
        self.segments += [
            {"start": e.t_start, "end": e.t_end} for e in events if isinstance(e, SpeechEnded)
        ]


def _analyse(
    path: Path, samples_16k: NDArray[np.float32] | None, speech: _SpeechFinder | None = None
) -> tuple[dict[str, Any], ContentAnalyzer, Any]:
    """Read ``path`` once; return the technical measures, the fed content analyzer, sf info."""
    info = sf.info(str(path))
    meter = TechnicalMeter(int(info.samplerate), int(info.channels))
    analyzer = ContentAnalyzer()

    def feed_16k(chunk: NDArray[np.float32]) -> None:
        analyzer.feed(chunk)
        if speech is not None:
            speech.feed(chunk)

    resampler = (
        None
        if samples_16k is not None
        else soxr.ResampleStream(info.samplerate, RATE, 1, dtype="float32", quality="MQ")
    )
    mix = np.full(info.channels, 1 / info.channels, np.float32)
    floating = info.subtype in ("FLOAT", "DOUBLE")  # only float samples can be NaN or inf
    with sf.SoundFile(str(path)) as f:
        for raw in f.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
            block = raw
            if floating and not np.isfinite(raw).all():
                block = np.nan_to_num(raw, nan=0.0, posinf=1.0, neginf=-1.0)
            meter.feed(block)
            if resampler is not None:
                mono = block @ mix  # a matrix-vector product: far faster than mean(axis=1)
                feed_16k(resampler.resample_chunk(mono))
    if resampler is not None:
        feed_16k(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    elif samples_16k is not None:
        for i in range(0, len(samples_16k), BLOCK_FRAMES):
            feed_16k(np.asarray(samples_16k[i : i + BLOCK_FRAMES], dtype=np.float32))
    technical = {**_container(info), **meter.result()}
    technical["file_size_bytes"] = path.stat().st_size
    return technical, analyzer, info


def _description(technical: dict[str, Any], content: dict[str, Any],
                 tags: dict[str, Any]) -> str:  # fmt: skip
    """One generated sentence describing the recording."""
    parts = [
        f"Sound recording, {iso_duration(technical['duration'])}, "
        f"{technical['channels']} channel(s), {technical['sample_rate']} Hz"
        + (f", {technical['bit_depth']}-bit" if technical.get("bit_depth") else "")
        + f" {technical['container']}"
    ]
    if tags.get("genre"):
        parts.append(f"category {CATEGORY_SUBJECTS.get(tags['genre'], tags['genre']).lower()}")
    era = tags.get("recording_era")
    if era:
        parts.append(f"sounds like {era['era'].replace('_', ' ')} ({era['years']})")
    if content.get("key"):
        parts.append(f"key {content['key']['label']}")
    if content.get("tempo_bpm"):
        parts.append(f"tempo about {content['tempo_bpm']['bpm']:.0f} BPM")
    ratios = content.get("ratios") or {}
    if ratios.get("speech") is not None:
        parts.append(f"{ratios['speech']:.0%} speech")
    return "; ".join(parts) + " (generated by analysis)."


def generate_metadata(
    path: Path,
    *,
    samples_16k: NDArray[np.float32] | None = None,
    voice_activity: dict[str, Any] | None = None,
    heritage: dict[str, Any] | None = None,
    curator: dict[str, Any] | None = None,
    identifier: str | None = None,
    sha256: str | None = None,
    detect_speech: bool = False,
) -> dict[str, Any]:
    """The ``metadata_generation`` section for the audio file at ``path``.

    ``samples_16k``: the 16 kHz mono analysis signal if the caller has it (saves a
    resampling); ``voice_activity``: the result's ``voice_activity`` section (speech
    ratio); ``heritage``: its ``heritage_classification`` (genre, subject);
    ``curator``: Dublin Core elements supplied with the upload (they win over
    generated ones; an unknown element name is a ``ValueError``); ``identifier``:
    e.g. the task id; ``sha256``: the file's hash if already known; ``detect_speech``:
    run the shipped VAD for the speech ratio when no ``voice_activity`` is given.
    A file that cannot be decoded is a ``ValueError`` with a one-line reason.
    """
    curator_fields = check_curator_fields(curator)
    speech = _SpeechFinder() if detect_speech and voice_activity is None else None
    try:
        technical, analyzer, info = _analyse(path, samples_16k, speech)
    except (sf.LibsndfileError, RuntimeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: cannot decode as audio ({detail})") from None
    if speech is not None:
        voice_activity = speech.finish()
    chunks = read_chunks(path)
    technical["bext"], technical["riff_info"] = chunks["bext"], chunks["info"]
    if "error" in chunks:
        technical["chunk_error"] = chunks["error"]
    technical["hum"] = analyzer.hum()  # measured on the 16 kHz signal: 3.9 Hz resolution
    content = analyzer.result(_speech_mask(voice_activity, analyzer))
    tags = cultural_tags(technical, content, int(info.samplerate), heritage)
    digest = sha256 or _sha256(path)
    generated: dict[str, list[str]] = {
        "type": ["Sound"],
        "format": [
            mime_type(technical["container"], technical["codec"]),
            iso_duration(technical["duration"]),
        ],
        "identifier": [f"urn:sha256:{digest}"] + ([f"urn:uuid:{identifier}"] if identifier else []),
        "description": [_description(technical, content, tags)],
    }
    if tags.get("genre"):
        generated["subject"] = [CATEGORY_SUBJECTS.get(tags["genre"], tags["genre"])]
    elements, sources = build_record(generated, embedded_fields(chunks), curator_fields)
    language = curator_fields["language"][0] if curator_fields.get("language") else None
    return {
        "technical": technical,
        "content": content,
        "cultural_tags": tags,
        "dublin_core": {
            "elements": elements,
            "sources": sources,
            "oai_dc": to_oai_dc(
                elements, language, frozenset(k for k, v in sources.items() if v == "curator")
            ),
        },
    }


def _speech_mask(
    voice_activity: dict[str, Any] | None, analyzer: ContentAnalyzer
) -> NDArray[np.bool_] | None:
    if voice_activity is None:
        return None
    n_frames = max(0, (analyzer.samples - 1) // 512 + 1)
    return speech_mask_from_segments(voice_activity.get("segments", []), n_frames)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class MetadataGenerator:
    """The product brief's entry point for library users and existing MAXXI scripts.

    Runs the shipped VAD for the speech ratio. The genre (heritage category) needs the
    full analysis: ``stream.analyze.analyze_file`` fills every section, this one included.
    """

    def __init__(self, curator: dict[str, Any] | None = None) -> None:
        self.curator = curator

    def generate_comprehensive_metadata(self, path: str | Path) -> dict[str, Any]:
        """Technical, content, cultural-tag and Dublin Core metadata of one audio file."""
        return generate_metadata(Path(path), curator=self.curator, detect_speech=True)


def metadata_for_result(
    path: Path, result: dict[str, Any], curator: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The section for a result document the pipeline has filled in (VAD, heritage, hash)."""
    sections = result.get("results", {})
    return generate_metadata(
        path,
        voice_activity=sections.get("voice_activity"),
        heritage=sections.get("heritage_classification"),
        curator=curator,
        identifier=result.get("task_id"),
        sha256=result.get("audio_info", {}).get("sha256"),
    )
