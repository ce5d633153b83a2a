"""``results.metadata_generation``: technical, content, cultural tags and Dublin Core of one file.

The file is read once, block by block (memory stays flat over hours of audio): each
block feeds the loudness and technical meters at its own rate and channels, and
its channel mix, resampled to 16 kHz, feeds the content analysis, unless the
caller already has the 16 kHz mono signal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
from numpy.typing import NDArray

from detectors.files import file_sha256
from detectors.metadata.content import RATE, ContentAnalyzer
from detectors.metadata.dublin_core import (
    CATEGORY_SUBJECTS,
    build_record,
    check_curator_fields,
    embedded_fields,
    iso_duration,
    mime_type,
    to_oai_dc,
)
from detectors.metadata.riff import Readable, read_chunks
from detectors.metadata.tags import cultural_tags
from detectors.metadata.technical import TechnicalMeter
from detectors.vad import VadConfig, VadDetector
from stream.events import Event, SpeechEnded
from stream.windowing import Windower

BLOCK_FRAMES = 1 << 16
BIT_DEPTHS = {
    "PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64,
    "ALAC_16": 16, "ALAC_20": 20, "ALAC_24": 24, "ALAC_32": 32,
}  # fmt: skip


def _container(info: Any) -> dict[str, Any]:
    """What ``soundfile.info`` says about the container and its samples."""
    return {
        "container": info.format,
        "container_name": info.format_info,
        "codec": info.subtype,
        "codec_name": info.subtype_info,
        "sample_rate": int(info.samplerate),
        "bit_depth": BIT_DEPTHS.get(info.subtype),
        "channels": int(info.channels),
        "frames": int(info.frames),
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


class SignalAnalyzer:
    """Measures one recording from its blocks, in a single pass.

    ``feed`` takes blocks at the file's own rate and channels (loudness, peaks, noise,
    bandwidth) and, unless the 16 kHz mono signal comes separately through
    ``feed_16k``, resamples their channel mix for the content analysis. A reader that
    already decodes the file (the pipeline's file source) can feed both and so spare
    a second decode.
    """

    def __init__(
        self, sample_rate: int, channels: int, *, own_16k: bool = True, detect_speech: bool = False
    ) -> None:
        self.technical = TechnicalMeter(sample_rate, channels)
        self.content = ContentAnalyzer()
        self.speech = _SpeechFinder() if detect_speech else None
        self._mix = np.full(channels, 1 / channels, np.float32)
        self._resampler = (
            soxr.ResampleStream(sample_rate, RATE, 1, dtype="float32", quality="MQ")
            if own_16k
            else None
        )

    def feed(self, block: NDArray[np.float32]) -> None:
        """A ``(frames, channels)`` block at the file's rate (full scale 1.0, finite)."""
        self.technical.feed(block)
        if self._resampler is not None:
            mono = block @ self._mix  # a matrix-vector product: far faster than mean(axis=1)
            self.feed_16k(self._resampler.resample_chunk(mono))

    def feed_16k(self, chunk: NDArray[np.float32]) -> None:
        """16 kHz mono samples (only if constructed with ``own_16k=False``, or internally)."""
        self.content.feed(chunk)
        if self.speech is not None:
            self.speech.feed(chunk)

    def finish(self) -> None:
        """Flush the resampler: call once after the last block."""
        if self._resampler is not None:
            self.feed_16k(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
            self._resampler = None


def _analyse(
    path: Path, samples_16k: NDArray[np.float32] | None, detect_speech: bool
) -> tuple[SignalAnalyzer, Any]:
    """Read ``path`` once into a :class:`SignalAnalyzer`; return it and the file's info."""
    info = sf.info(str(path))
    analyzer = SignalAnalyzer(
        int(info.samplerate),
        int(info.channels),
        own_16k=samples_16k is None,
        detect_speech=detect_speech,
    )
    floating = info.subtype in ("FLOAT", "DOUBLE")  # only float samples can be NaN or inf
    with sf.SoundFile(str(path)) as f:
        for raw in f.blocks(BLOCK_FRAMES, dtype="float32", always_2d=True):
            block = raw
            if floating and not np.isfinite(raw).all():
                block = np.nan_to_num(raw, nan=0.0, posinf=1.0, neginf=-1.0)
            analyzer.feed(block)
    analyzer.finish()
    if samples_16k is not None:
        for i in range(0, len(samples_16k), BLOCK_FRAMES):
            analyzer.feed_16k(np.asarray(samples_16k[i : i + BLOCK_FRAMES], dtype=np.float32))
    return analyzer, info


def _description(technical: dict[str, Any], content: dict[str, Any], tags: dict[str, Any]) -> str:
    """One generated sentence describing the recording."""
    parts = [
        f"Sound recording, {iso_duration(technical['duration'])}, "
        f"{technical['channels']} channel(s), {technical['sample_rate']} Hz"
        + (f", {technical['bit_depth']}-bit" if technical.get("bit_depth") else "")
        + f" {technical['container']}"
    ]
    if tags.get("genre"):
        subject = CATEGORY_SUBJECTS.get(tags["genre"], "none of the heritage categories")
        parts.append(f"category {subject.lower()}")
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
    check_curator_fields(curator)  # before the expensive part
    try:
        signal, info = _analyse(path, samples_16k, detect_speech and voice_activity is None)
    except (sf.LibsndfileError, RuntimeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"{path}: cannot decode as audio ({detail})") from None
    return assemble(
        path, info, signal, voice_activity=voice_activity, heritage=heritage,
        curator=curator, identifier=identifier, sha256=sha256,
    )  # fmt: skip


def assemble(
    path: Path,
    info: Any,
    signal: SignalAnalyzer,
    *,
    voice_activity: dict[str, Any] | None = None,
    heritage: dict[str, Any] | None = None,
    curator: dict[str, Any] | None = None,
    identifier: str | None = None,
    sha256: str | None = None,
    handle: Readable | None = None,
) -> dict[str, Any]:
    """The section from a fully fed :class:`SignalAnalyzer` (``info``: ``soundfile.info`` or
    an open ``SoundFile``; ``handle``: a file object open on ``path``, read for the RIFF
    chunks instead of opening the file again)."""
    curator_fields = check_curator_fields(curator)
    if signal.speech is not None and voice_activity is None:
        voice_activity = signal.speech.finish()
    chunks = read_chunks(handle if handle is not None else path)
    technical = {
        **_container(info),
        **signal.technical.result(),
        "file_size_bytes": path.stat().st_size,
        "hum": signal.content.hum(),  # on the 16 kHz signal: 3.9 Hz resolution
        "bext": chunks["bext"],
        "riff_info": chunks["info"],
    }
    if "error" in chunks:
        technical["chunk_error"] = chunks["error"]
    content = signal.content.result(
        None if voice_activity is None else voice_activity.get("segments", [])
    )
    tags = cultural_tags(technical, content, int(info.samplerate), heritage)
    generated = _generated_elements(
        technical, content, tags, sha256 or file_sha256(path), identifier
    )
    elements, sources = build_record(generated, embedded_fields(chunks), curator_fields)
    language = curator_fields["language"][0] if curator_fields.get("language") else None
    localized = frozenset(k for k, v in sources.items() if v == "curator")
    return {
        "technical": technical,
        "content": content,
        "cultural_tags": tags,
        "dublin_core": {
            "elements": elements,
            "sources": sources,
            "oai_dc": to_oai_dc(elements, language, localized),
        },
    }


def _generated_elements(
    technical: dict[str, Any],
    content: dict[str, Any],
    tags: dict[str, Any],
    digest: str,
    identifier: str | None,
) -> dict[str, list[str]]:
    """The Dublin Core elements the analysis itself can state."""
    generated = {
        "type": ["Sound"],
        "format": [
            mime_type(technical["container"], technical["codec"]),
            iso_duration(technical["duration"]),
        ],
        "identifier": [f"urn:sha256:{digest}"] + ([f"urn:uuid:{identifier}"] if identifier else []),
        "description": [_description(technical, content, tags)],
    }
    if tags.get("genre") in CATEGORY_SUBJECTS:  # "other" is no heritage subject
        generated["subject"] = [CATEGORY_SUBJECTS[tags["genre"]]]
    return generated


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
