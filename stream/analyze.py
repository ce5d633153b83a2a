"""Offline analysis of whole files: the same pipeline, as fast as the CPU allows.

Produces the result document of DESIGN.md. The file is opened and decoded once:
each decoded block feeds, at the file's own rate and channels, the loudness and
technical meters, while its channel mix, resampled once to the 16 kHz analysis
rate, feeds the detectors, the content analysis and a spool on disk that the
voice statistics read back. The file's bytes are hashed as the decoder reads them.
Memory does not grow with the audio: only the events the document is made of
(speech segments, heritage windows), embeddings and timelines do.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from config.pipeline import PipelineConfig
from config.version import VERSION
from detectors import DetectorConfig, VadConfig
from detectors.files import HashingFile
from detectors.heritage import heritage_classification, heritage_provenance, with_heritage
from detectors.metadata.generator import SignalAnalyzer, assemble
from detectors.onnx import network_cpu_s
from detectors.speaker.detector import SpeakerConfig, speaker_models
from detectors.vad import vad_provenance
from sinks.metrics import Metrics
from stream.events import Event, HeritageClassified, SpeechEnded
from stream.pipeline import SourceRunner
from stream.signal_spool import SignalSpool
from stream.sources import FileSource, FileSourceConfig, SourceError
from stream.sources.base import Frames
from stream.speaker_report import speaker_analysis_config, speaker_recognition
from stream.windowing import Samples

_BIT_DEPTHS = {
    "PCM_S8": 8, "PCM_U8": 8, "PCM_16": 16, "PCM_24": 24, "PCM_32": 32, "FLOAT": 32, "DOUBLE": 64,
    "ALAC_16": 16, "ALAC_20": 20, "ALAC_24": 24, "ALAC_32": 32,
}  # fmt: skip
BLOCK_FRAMES = 1 << 14
"""Decoded frames per block (128 kB of 48 kHz stereo float32). Every block costs Python
work in the source, the meters, the resampler, the content analysis, the spool and the
chain, and 64k-frame blocks saved 0.1-0.3 CPU-s on 5 minutes of 48 kHz audio with the
same results, but the 5-minute scene's peak RSS then reached 280-330 MB in 7 of 25 runs
(16k frames: at most 260 in 36). Likely why: freeing a mapped 512 kB block raises glibc's
dynamic mmap threshold to that size, and mid-size buffers (the ONNX sessions') then come
from the heap."""

METER_FRAMES = 1 << 13
"""The technical meters take blocks in pieces of this many frames. Each call costs some
Python (4096-frame pieces: 3516 calls for 5 minutes of 48 kHz), but a 48 kHz stereo
piece's temporaries stay under 128 kB, glibc's initial mmap threshold, only up to 8192
frames: whole 16k-frame blocks raised the 5-minute scene's median peak RSS by 17 MB
(and once grew the heap by 70 MB a minute; see BLOCK_FRAMES for the likely reason)."""

LOOKAHEAD_S = 10.0
"""Seconds of the 16 kHz signal held back so that Silero judges 312 frames at once (its
LSTM stepping through them inside the graph: about 40 us per frame instead of 70 frame by
frame, same probabilities) before the detectors get the blocks as they came. Longer buys
nothing more: runs of 64 frames already cost 41 us each (docs/BENCHMARKS.md)."""

_DOCUMENT_EVENTS = (SpeechEnded, HeritageClassified)
"""The events a file's result document is made of (voice activity, heritage timeline)."""

Progress = Callable[[float], None]
"""Called with the fraction of the file analysed so far (0..1)."""


def audio_info(path: Path) -> dict[str, Any]:
    """The ``audio_info`` section: duration, rate, channels, bit depth, container, hash."""
    import soundfile as sf

    from detectors.files import file_sha256

    info = sf.info(str(path))
    return _audio_info(info, file_sha256(path))


def _audio_info(info: Any, sha256: str) -> dict[str, Any]:
    """``audio_info`` from a ``soundfile.info`` or an open ``SoundFile``."""
    return {
        "duration": round(info.frames / info.samplerate, 3),
        "sample_rate": int(info.samplerate),
        "channels": int(info.channels),
        "bit_depth": _BIT_DEPTHS.get(info.subtype),
        "format": info.format,
        "sha256": sha256,
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


class StageTimes:
    """CPU seconds per named stage of one analysis (this process, all threads)."""

    def __init__(self) -> None:
        self.cpu_s: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.cpu_s[stage] = self.cpu_s.get(stage, 0.0) + seconds

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.process_time()
        try:
            yield
        finally:
            self.add(name, time.process_time() - started)

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 4) for k, v in self.cpu_s.items()}


class _Scan:
    """What one decode of the file feeds besides the detectors (see the module docstring)."""

    def __init__(self, metadata: bool, spool: bool, times: StageTimes) -> None:
        self._want_metadata = metadata
        self.signal: SignalAnalyzer | None = None
        self.spool = SignalSpool(16_000) if spool else None
        self.handle: HashingFile | None = None
        self._times = times
        self._floating = False

    def open(self, path: Path) -> HashingFile:
        """The decoder's file: hashes what it reads."""
        self.handle = HashingFile(path)
        return self.handle

    def start(self, source: FileSource) -> None:
        """The file is open: size the meters to its rate and channels."""
        f = source.soundfile
        self._floating = f.subtype in ("FLOAT", "DOUBLE")  # only these can hold NaN or inf
        if self._want_metadata:
            self.signal = SignalAnalyzer(f.samplerate, f.channels, own_16k=False)

    def on_block(self, block: Frames) -> None:
        """A decoded block at the file's rate: loudness, peaks, DC, noise, bandwidth."""
        if self.signal is None:
            return
        started = time.thread_time()
        if self._floating and not np.isfinite(block).all():
            block = np.nan_to_num(block, nan=0.0, posinf=1.0, neginf=-1.0)
        for start in range(0, len(block), METER_FRAMES):
            self.signal.feed(block[start : start + METER_FRAMES])
        self._times.add("metadata_technical", time.thread_time() - started)

    def on_analysis(self, channel: int, samples: Samples) -> None:
        """The 16 kHz analysis signal: content analysis and the spool."""
        if channel != 0:
            return
        started = time.thread_time()
        if self.signal is not None:
            self.signal.feed_16k(samples)
        self._times.add("metadata_content", time.thread_time() - started)
        if self.spool is not None:
            started = time.thread_time()
            self.spool.append(samples)
            self._times.add("spool", time.thread_time() - started)

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()
        if self.handle is not None:
            self.handle.close()


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
    The document's ``provenance.timings`` holds the CPU seconds of each stage.
    """
    unknown = sections - SECTIONS
    if unknown:
        raise ValueError(f"unknown result section(s): {', '.join(sorted(unknown))}")
    if curator:
        from detectors.metadata.dublin_core import check_curator_fields

        check_curator_fields(curator)  # a typo fails before the expensive part
    wall = time.monotonic()
    cpu = time.process_time()
    times = StageTimes()
    config = _analysis_config(config or PipelineConfig(), sections)
    scan = _Scan(
        metadata="metadata_generation" in sections,
        spool="speaker_recognition" in sections,
        times=times,
    )
    try:
        return _analyze(
            path, config=config, scan=scan, times=times, progress=progress, n_speakers=n_speakers,
            sections=sections, task_id=task_id, curator=curator, wall=wall, cpu=cpu,
        )  # fmt: skip
    finally:
        scan.close()


def _analyze(
    path: Path,
    *,
    config: PipelineConfig,
    scan: _Scan,
    times: StageTimes,
    progress: Progress | None,
    n_speakers: int | None,
    sections: frozenset[str],
    task_id: str | None,
    curator: dict[str, Any] | None,
    wall: float,
    cpu: float,
) -> dict[str, Any]:
    source = FileSource(
        FileSourceConfig(name=path.name, path=path, realtime=False, block_size=BLOCK_FRAMES),
        opener=scan.open,
        tap=scan.on_block,
    )
    source.open()
    scan.start(source)
    sf_info = source.soundfile
    duration = sf_info.frames / sf_info.samplerate if sf_info.samplerate else 0.0
    events: list[Event] = []

    def keep(batch: list[Event]) -> None:
        # Only what the document is made of: a speaker turn is re-emitted every hop while
        # it lasts, and heartbeats every few seconds, a growing list no section reads.
        events.extend(e for e in batch if isinstance(e, _DOCUMENT_EVENTS))

    runner = SourceRunner(
        source, config, keep, Metrics(), tap=_with_progress(scan, progress, duration),
        lookahead_s=LOOKAHEAD_S, window_timing=False,
    )  # fmt: skip
    networks = network_cpu_s()
    with times.stage("load_models"):
        runner.prepare()
    with times.stage("pipeline"):
        runner.run(threading.Event())
    if runner.state == "error":
        raise SourceError(runner.message)
    if progress:
        progress(1.0)
    _split_pipeline_time(times, runner)
    if scan.handle is None:
        raise RuntimeError("the file source did not open the file through the scan")
    with times.stage("hash"):
        info = _audio_info(sf_info, scan.handle.sha256())
    results: dict[str, Any] = {"voice_activity": voice_activity(events, info["duration"])}
    models = {
        "vad": vad_provenance(
            next((d for d in config.detectors if isinstance(d, VadConfig)), VadConfig())
        )
    }
    if "speaker_recognition" in sections and scan.spool is not None:
        with times.stage("speaker_file_mode"):
            results["speaker_recognition"] = speaker_recognition(scan.spool, runner, n_speakers)
            # The file configuration (_analysis_config) holds its speaker detector.
            speaker = next(d for d in config.detectors if isinstance(d, SpeakerConfig))
            models.update(speaker_models(speaker))
    if sections & {"heritage_classification", "metadata_generation"}:
        results["heritage_classification"] = heritage_classification(events)
        models["heritage"] = heritage_provenance(config.detectors)
    task_id = task_id or str(uuid.uuid4())
    if scan.signal is not None:
        with times.stage("metadata_assemble"):
            scan.signal.finish()
            results["metadata_generation"] = assemble(
                path, sf_info, scan.signal,
                voice_activity=results["voice_activity"],
                heritage=results.get("heritage_classification"),
                curator=curator, identifier=task_id, sha256=info["sha256"], handle=scan.handle,
            )  # fmt: skip
    if "heritage_classification" not in sections:
        results.pop("heritage_classification", None)
    return {
        "task_id": task_id,
        "audio_info": info,
        "results": results,
        "provenance": {
            "software_version": VERSION,
            "models": models,
            "parameters": {
                "analysis_sample_rate": config.analysis_sample_rate,
                "sections": sorted(sections),
                "n_speakers": n_speakers,  # the count given; null: estimated
                "detectors": [d.model_dump(mode="json") for d in config.detectors],
            },
            "timings": {
                "cpu_s": times.rounded(),
                # Of those, the networks' own runs (this thread's; by model file).
                "network_cpu_s": {
                    model: round(seconds - networks.get(model, 0.0), 4)
                    for model, seconds in sorted(network_cpu_s().items())
                    if seconds > networks.get(model, 0.0)
                },
                "total_cpu_s": round(time.process_time() - cpu, 4),
                "wall_s": round(time.monotonic() - wall, 4),
            },
        },
    }


def _with_progress(
    scan: _Scan, progress: Progress | None, duration: float
) -> Callable[[int, Samples], None]:
    """The analysis tap, reporting progress at most every 1 % of the file."""
    if progress is None or duration <= 0:
        return scan.on_analysis
    done = [0.0, 0.0]  # analysis samples seen, fraction last reported

    def tap(channel: int, samples: Samples) -> None:
        scan.on_analysis(channel, samples)
        if channel == 0:
            done[0] += len(samples)
            fraction = min(1.0, done[0] / 16_000 / duration)
            if fraction - done[1] >= 0.01:
                done[1] = fraction
                progress(fraction)

    return tap


def _split_pipeline_time(times: StageTimes, runner: SourceRunner) -> None:
    """Split the pipeline's CPU into each detector's and the decode and resampling's."""
    pipeline = times.cpu_s.pop("pipeline", 0.0)
    rest = pipeline
    for name, seconds in runner.cpu_seconds().items():
        times.add(name, seconds)
        rest -= seconds
    for tap in ("metadata_technical", "metadata_content", "spool"):
        rest -= times.cpu_s.get(tap, 0.0)
    times.add("decode_resample", max(0.0, rest))
