"""Voice activity quality (frame F1) and per-frame cost of both VAD engines.

Scores the committed fixtures (tests/data/vad_*.flac, truth from the clean speech
track) and the demo scene (the development set the defaults were chosen on).

Usage: python bench/eval_vad.py
"""

from __future__ import annotations

import json
import platform
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import soundfile as sf

from config.pipeline import PipelineConfig
from detectors.scoring import frame_f1
from detectors.vad import VadConfig, VadDetector
from sinks.metrics import Metrics
from stream.events import Event
from stream.pipeline import SourceRunner
from stream.sources import FileSource, FileSourceConfig
from stream.sources.file import demo_scene_path
from stream.windowing import Windower

ROOT = Path(__file__).resolve().parent.parent
FILES = [
    ROOT / "tests/data/vad_clean.flac",
    ROOT / "tests/data/vad_noise.flac",
    ROOT / "tests/data/vad_music.flac",
    demo_scene_path(),
]
ENGINES = ("silero", "webrtc")


def score(path: Path, engine: str) -> float:
    truth = json.loads(path.with_suffix(".json").read_text())
    events: list[Event] = []
    config = PipelineConfig(detectors=[VadConfig(engine=engine)])  # type: ignore[arg-type]
    source = FileSource(FileSourceConfig(path=path, realtime=False))
    SourceRunner(source, config, events.extend, Metrics()).run(threading.Event())
    found = [(e.t_start, e.t_end) for e in events if e.type == "speech.ended"]
    return frame_f1([tuple(s) for s in truth["speech"]], found, truth["duration"])


def frame_cost_ms(engine: str) -> tuple[float, float]:
    """Best-of-3 CPU milliseconds per frame, and the frame length in ms."""
    audio, rate = sf.read(demo_scene_path(), dtype="float32")
    detector = VadDetector(VadConfig(engine=engine), 0, rate)  # type: ignore[arg-type]
    window, hop = detector.window_samples()
    best = float("inf")
    for _ in range(3):
        detector.reset()
        windows = Windower(window, hop, channel=0, sample_rate=rate).push(audio)
        started = time.process_time()
        for w in windows:
            detector.process(w)
        best = min(best, (time.process_time() - started) / len(windows))
    return 1000 * best, 1000 * window / rate


def main() -> None:
    print(f"eval_vad  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}")
    print(f"{'file':<16}" + "".join(f"{e:>10}" for e in ENGINES) + "   (frame F1)")
    for path in FILES:
        print(f"{path.stem:<16}" + "".join(f"{score(path, e):>10.3f}" for e in ENGINES))
    for engine in ENGINES:
        cost, frame = frame_cost_ms(engine)
        print(f"{engine}: {cost:.3f} CPU-ms per {frame:.0f} ms frame")


if __name__ == "__main__":
    main()
