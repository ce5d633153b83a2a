"""Diarization error rate of the speaker detector, live and on files, against a peer.

Runs every conversation of one or more data sets (``<split>_NNN.flac`` with an
``.rttm`` beside it: the synthetic ones of ``tools/make_conversations.py``, the
real-voice room-simulated ones of ``tools/make_room_conversations.py``, or real
recordings laid out the same way) through the pipeline with the speaker
detector (keeping its embeddings), and scores with ``pyannote.metrics``
(collar 0.25 s, overlapping speech scored), one table per data set:

The speaker detector is the default pipeline's (``--set KEY=VALUE`` overrides a setting).

- streaming: the final extent of every ``speaker.turn`` event, as a dashboard sees them;
- file: the whole-file re-clustering of ``analyze`` (automatic number of speakers);
- file, n given: the same with the true number of speakers.

Also the speaker-count accuracy (right, and right or off by one), the CPU cost
per audio second on one thread (live: gate, embeddings and online clustering;
file: the batched pipeline and
re-clustering, then with the voice statistics of the result section too),
and, with ``--peer-python``, pyAudioAnalysis's ``speaker_diarization`` on the same
files (run by ``bench/peer_pyaudioanalysis.py`` in its own virtualenv).

    OMP_NUM_THREADS=1 .venv/bin/python bench/eval_diarization.py build/conversations \\
        /work/data/diar/rooms --split test --peer-python /tmp/peer_venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import soundfile as sf
from pyannote.core import Annotation, Segment, Timeline
from pyannote.metrics.diarization import DiarizationErrorRate

from config.pipeline import PipelineConfig
from detectors.speaker.detector import SpeakerConfig, SpeakerDetector
from detectors.speaker.offline import diarize
from sinks.metrics import Metrics
from stream.events import Event, SpeakerTurn
from stream.pipeline import SourceRunner
from stream.signal_spool import SignalSpool
from stream.sources import FileSource, FileSourceConfig
from stream.speaker_report import speaker_analysis_config, speaker_recognition

COLLAR = 0.25
HERE = Path(__file__).resolve().parent


def read_rttm(path: Path) -> Annotation:
    annotation = Annotation(uri=path.stem)
    for line in path.read_text().splitlines():
        f = line.split()
        start, duration = float(f[3]), float(f[4])
        annotation[Segment(start, start + duration)] = f[7]
    return annotation


def turns_of(events: list[Event]) -> Annotation:
    """The final extent of each live turn (events of a turn share ``t_start``)."""
    final: dict[tuple[int | None, float], SpeakerTurn] = {}
    for e in events:
        if isinstance(e, SpeakerTurn):
            final[(e.channel, e.t_start)] = e
    annotation = Annotation()
    for e in final.values():
        if e.t_end > e.t_start:
            annotation[Segment(e.t_start, e.t_end)] = e.speaker
    return annotation


def section_annotation(section: dict[str, Any]) -> Annotation:
    annotation = Annotation()
    for s in section["segments"]:
        annotation[Segment(s["start"], s["end"])] = s["speaker"]
    return annotation


@dataclass
class Scores:
    """Accumulated pyannote components per system, and counts."""

    metrics: dict[str, DiarizationErrorRate] = field(default_factory=dict)
    count_ok: dict[str, int] = field(default_factory=dict)
    count_near: dict[str, int] = field(default_factory=dict)
    scored: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    files: int = 0
    audio_s: float = 0.0
    peer_failures: int = 0

    def add(self, system: str, ref: Annotation, hyp: Annotation, uem: Timeline) -> float:
        metric = self.metrics.setdefault(
            system, DiarizationErrorRate(collar=COLLAR, skip_overlap=False)
        )
        value = float(metric(ref, hyp, uem=uem))
        found, true = len(hyp.labels()), len(ref.labels())
        self.count_ok[system] = self.count_ok.get(system, 0) + int(found == true)
        self.count_near[system] = self.count_near.get(system, 0) + int(abs(found - true) <= 1)
        self.scored[system] = self.scored.get(system, 0) + 1
        return value

    def time(self, system: str, seconds: float) -> None:
        self.seconds[system] = self.seconds.get(system, 0.0) + seconds


def run_pipeline(path: Path, pipeline: PipelineConfig) -> tuple[SourceRunner, list[Event], float]:
    """Run ``path`` through ``pipeline``; the runner, its events and the CPU seconds taken."""
    events: list[Event] = []
    runner = SourceRunner(
        FileSource(FileSourceConfig(path=path, realtime=False)), pipeline, events.extend, Metrics()
    )
    started = time.thread_time()
    runner.run(threading.Event())
    return runner, events, time.thread_time() - started


def spool_of(path: Path) -> SignalSpool:
    """The file's 16 kHz mono signal, which the voice statistics read (as ``analyze`` spools it)."""
    audio, rate = sf.read(path, dtype="float32", always_2d=True)
    if rate != 16000:
        raise SystemExit(f"{path} is at {rate} Hz: the evaluation sets are 16 kHz")
    spool = SignalSpool(rate)
    spool.append(audio.mean(axis=1))
    return spool


def run_ours(path: Path, config: SpeakerConfig, n_speakers: int) -> dict[str, Any]:
    """Live: the detector as configured (events as they come). File: as ``analyze`` runs it
    (batched, keeping embeddings), then the diarization alone, then with voice statistics."""
    _, events, live_s = run_pipeline(path, PipelineConfig(detectors=[config]))
    files = speaker_analysis_config(PipelineConfig(detectors=[config]))
    runner, _, pipeline_s = run_pipeline(path, files)
    detectors = [d for c in runner.chains for d in c.detectors if isinstance(d, SpeakerDetector)]
    started = time.thread_time()
    diarize([d.history() for d in detectors], config)
    diarize_s = time.thread_time() - started
    with spool_of(path) as signal:
        started = time.thread_time()
        auto = speaker_recognition(signal, runner)
        section_s = time.thread_time() - started
        oracle = speaker_recognition(signal, runner, n_speakers)
    return {
        "events": events, "auto": auto, "oracle": oracle, "live_s": live_s,
        "diarize_s": pipeline_s + diarize_s, "file_s": pipeline_s + section_s,
    }  # fmt: skip


def run_peer(python: str, path: Path, n_speakers: int) -> tuple[Annotation, float]:
    out = subprocess.run(
        [python, str(HERE / "peer_pyaudioanalysis.py"), str(path), str(n_speakers)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    annotation = Annotation()
    for start, end, label in result["segments"]:
        annotation[Segment(start, end)] = f"spk{label}"
    return annotation, float(result["cpu_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "data", type=Path, nargs="+", help="folders of <split>_NNN.flac with .rttm truth"
    )
    parser.add_argument("--split", choices=["dev", "test"], default="dev")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a speaker detector setting (tuning on dev)")  # fmt: skip
    parser.add_argument("--peer-python", help="python of a venv with pyAudioAnalysis")
    parser.add_argument("--peer-auto", action="store_true", help="peer estimates the count")
    parser.add_argument("--limit", type=int, default=0, help="first N files only")
    args = parser.parse_args()
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = json.loads(value)
    # What a user gets: the default pipeline's speaker detector (live hop 1.0 s; files at
    # their own hop), with the overrides on top.
    base = next(d for d in PipelineConfig().detectors if isinstance(d, SpeakerConfig))
    settings = {**base.model_dump(), "profiles_path": "/nonexistent/profiles.json", **overrides}
    config = SpeakerConfig.model_validate(settings)
    for data in args.data:
        report(evaluate(data, config, args), data, args)


def evaluate(data: Path, config: SpeakerConfig, args: argparse.Namespace) -> Scores:
    """Every conversation of the split in ``data``, scored; one line per file."""
    files = sorted(data.glob(f"{args.split}_*.flac"))
    if args.limit:
        files = files[: args.limit]
    scores = Scores()
    for path in files:
        ref = read_rttm(path.with_suffix(".rttm"))
        duration = sf.info(path).duration
        uem = Timeline([Segment(0, duration)])
        n = len(ref.labels())
        ours = run_ours(path, config, n)
        scores.files += 1
        scores.audio_s += duration
        row = {
            "stream": scores.add("stream", ref, turns_of(ours["events"]), uem),
            "file": scores.add("file", ref, section_annotation(ours["auto"]), uem),
            "file_n": scores.add("file_n", ref, section_annotation(ours["oracle"]), uem),
        }
        scores.time("live", ours["live_s"])
        scores.time("diarize", ours["diarize_s"])
        scores.time("file", ours["file_s"])
        if args.peer_python:
            try:
                hyp, cpu = run_peer(args.peer_python, path, 0 if args.peer_auto else n)
            except subprocess.CalledProcessError as exc:  # it crashes now and then
                scores.peer_failures += 1
                print(f"{path.name}: pyAudioAnalysis failed: {exc.stderr.strip()[-200:]}")
            else:
                row["peer"] = scores.add("peer", ref, hyp, uem)
                scores.time("peer", cpu)
        found = ours["auto"]["speakers_detected"]
        cells = "  ".join(f"{k} {v:6.1%}" for k, v in row.items())
        print(f"{path.name}: {n} speakers, found {found}; {cells}", flush=True)
    return scores


def report(scores: Scores, data: Path, args: argparse.Namespace) -> None:
    print()
    print(f"eval_diarization  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}")
    print(f"{data} split {args.split}: {scores.files} files, "
          f"{scores.audio_s / 60:.1f} min of audio")  # fmt: skip
    if not scores.files:
        return
    print(f"{'system':<28} {'DER':>7} {'miss':>6} {'FA':>6} {'conf':>6} {'count ok':>9} {'±1':>6}")
    names = {
        "stream": "ours, streaming (live)",
        "file": "ours, file (count estimated)",
        "file_n": "ours, file (count given)",
        "peer": "pyAudioAnalysis (count given)"
        if not args.peer_auto
        else "pyAudioAnalysis (estimated)",
    }
    for system, metric in scores.metrics.items():
        total = metric["total"]
        print(
            f"{names[system]:<28} {abs(metric):7.1%} {metric['missed detection'] / total:6.1%} "
            f"{metric['false alarm'] / total:6.1%} {metric['confusion'] / total:6.1%} "
            f"{scores.count_ok[system]:>4}/{scores.scored[system]}"
            f" {scores.count_near[system]:>3}/{scores.scored[system]}"
        )
    what = {
        "live": "ours, live detector (gate, embeddings, online clustering)",
        "diarize": "ours, file diarization (batched embeddings, re-clustering)",
        "file": "ours, file speaker section (diarization + voice statistics)",
        "peer": "pyAudioAnalysis speaker_diarization",
    }
    if scores.peer_failures:
        print(f"pyAudioAnalysis crashed on {scores.peer_failures} files (left out of its scores)")
    for system, seconds in scores.seconds.items():
        print(
            f"{seconds / scores.audio_s:.4f} CPU-s per audio-s, "
            f"{seconds / scores.scored.get(system, scores.files):5.2f} s per file: {what[system]}"
        )


if __name__ == "__main__":
    sys.path.insert(0, str(HERE.parent))
    main()
