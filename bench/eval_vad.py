"""Voice activity quality (frame F1) and per-frame cost of both VAD engines, and how both
hold when the same recording is quieter or reverberant.

Scores the committed fixtures (tests/data/vad_*.flac, truth from the clean speech
track; the test set) and the demo scene (the development set the defaults were chosen
on, with two variants of it: pink noise at 5 dB SNR, and loud bangs). The level sweep
writes each file attenuated by 0, 15 and 30 dB, and scaled so its speech is at -45 dBFS
RMS, as 16-bit audio, dry and through a synthetic room (RT60 0.6 s, the simulation of
tests/test_vad.py), and runs the pipeline on it with the gain normalisation on (the
default) and off (the detector before it).

Usage: python bench/eval_vad.py [--sweep-only]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
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
RATE = 16000
ATTENUATIONS_DB = (0, -15, -30)
QUIET_SPEECH_DBFS = -45.0
Audio = npt.NDArray[np.float64]
Segments = list[tuple[float, float]]


def detect(path: Path, config: VadConfig) -> Segments:
    """Speech segments the pipeline finds in ``path`` with one VAD configuration."""
    events: list[Event] = []
    source = FileSource(FileSourceConfig(path=path, realtime=False))
    SourceRunner(source, PipelineConfig(detectors=[config]), events.extend, Metrics()).run(
        threading.Event()
    )
    return [(e.t_start, e.t_end) for e in events if e.type == "speech.ended"]


def score(path: Path, engine: str) -> float:
    truth = json.loads(path.with_suffix(".json").read_text())
    found = detect(path, VadConfig(engine=engine))  # type: ignore[arg-type]
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


# -- the level sweep --------------------------------------------------------------------------


def reverberate(audio: Audio, rt60: float = 0.6, seed: int = 0) -> Audio:
    """A synthetic room: direct sound plus exponentially decaying noise (RT60 in s), as loud."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(1.2 * rt60 * RATE)) / RATE
    tail = rng.standard_normal(len(t)) * np.exp(-6.91 * t / rt60)  # -60 dB at rt60
    tail[: RATE * 3 // 1000] = 0.0  # 3 ms before the first reflection
    rir = tail / np.sqrt(np.sum(np.square(tail)))  # as much reverberant as direct energy
    rir[0] = 1.0
    wet = np.convolve(audio, rir)[: len(audio)]
    return np.asarray(wet * np.sqrt(np.mean(np.square(audio)) / np.mean(np.square(wet))))


def with_noise(audio: Audio, speech: Segments, snr_db: float = 5.0, seed: int = 1) -> Audio:
    """Pink noise added at ``snr_db`` below the speech RMS (a busy gallery)."""
    spectrum = np.fft.rfft(np.random.default_rng(seed).standard_normal(len(audio)))
    spectrum[1:] /= np.sqrt(np.fft.rfftfreq(len(audio), 1 / RATE)[1:])
    spectrum[0] = 0.0
    noise = np.fft.irfft(spectrum, len(audio))
    noise *= 10 ** ((speech_dbfs(audio, speech) - snr_db) / 20) / np.sqrt(np.mean(noise**2))
    return audio + noise


def with_bangs(audio: Audio, seed: int = 1) -> Audio:
    """A 40 ms bang peaking near -6 dBFS every 7.3 s (doors, footsteps on a wooden floor)."""
    rng = np.random.default_rng(seed)
    out = audio.copy()
    n = 640
    for start in np.arange(3.0, len(audio) / RATE - 0.1, 7.3):
        i = round(start * RATE)
        out[i : i + n] += 0.5 * rng.standard_normal(n) * np.exp(-np.arange(n) / 200)
    return out


def speech_dbfs(audio: Audio, speech: Segments) -> float:
    """RMS level of the audio inside the truth's speech segments."""
    inside = np.concatenate([audio[round(s * RATE) : round(e * RATE)] for s, e in speech])
    return float(10 * np.log10(np.mean(np.square(inside))))


def recall(truth: Segments, found: Segments, duration: float, step: float = 0.01) -> float:
    """Share of the truth's 10 ms speech frames that were found."""
    masks = []
    for segments in (truth, found):
        mask = np.zeros(round(duration / step), dtype=bool)
        for start, end in segments:
            mask[round(start / step) : round(end / step)] = True
        masks.append(mask)
    return float(np.count_nonzero(masks[0] & masks[1]) / np.count_nonzero(masks[0]))


def sweep_row(audio: Audio, truth: dict[str, Any], config: VadConfig, tmp: Path) -> list[float]:
    """F1 at each attenuation, the largest F1 change, and recall at -45 dBFS speech."""
    speech = [(float(s), float(e)) for s, e in truth["speech"]]
    duration = float(truth["duration"])

    def found(gain_db: float) -> Segments:
        path = tmp / "level.wav"
        sf.write(path, np.clip(audio * 10 ** (gain_db / 20), -1, 1), RATE, subtype="PCM_16")
        return detect(path, config)

    f1 = [frame_f1(speech, found(db), duration) for db in ATTENUATIONS_DB]
    quiet = found(QUIET_SPEECH_DBFS - speech_dbfs(audio, speech))
    return [*f1, max(f1) - min(f1), recall(speech, quiet, duration)]


def level_sweep() -> None:
    configs = {"AGC on (default)": VadConfig(), "AGC off (before)": VadConfig(normalise=False)}
    head = "".join(f"{f'{db} dB':>8}" for db in ATTENUATIONS_DB)
    print(f"\nlevel sweep, Silero VAD: frame F1 at each attenuation, max change, recall at "
          f"{QUIET_SPEECH_DBFS:g} dBFS speech RMS")  # fmt: skip
    print(f"{'file':<24}{'room':<7}{'':<18}{head}{'ΔF1':>8}{'R@-45':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for name, truth, dry in sweep_inputs():
            for room, audio in (("dry", dry), ("RT0.6", reverberate(dry))):
                for label, config in configs.items():
                    row = sweep_row(audio, truth, config, Path(tmp))
                    cells = "".join(f"{v:8.3f}" for v in row)
                    print(f"{name:<24}{room:<7}{label:<18}{cells}", flush=True)


def sweep_inputs() -> list[tuple[str, dict[str, Any], Audio]]:
    """The fixtures, the demo scene, and two harder variants of the demo scene (dev set)."""
    out = []
    for path in FILES:
        truth = json.loads(path.with_suffix(".json").read_text())
        audio, _ = sf.read(path, dtype="float64")
        out.append((path.stem, truth, audio))
    name, truth, demo = out[-1]
    speech = [(float(s), float(e)) for s, e in truth["speech"]]
    out.append((f"{name}+noise 5 dB SNR", truth, with_noise(demo, speech)))
    out.append((f"{name}+bangs", truth, with_bangs(demo)))
    return out


def cpu_model() -> str:
    """The processor's name, for the benchmark record."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep-only", action="store_true", help="only the level sweep")
    args = parser.parse_args()
    print(f"eval_vad  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}  "
          f"{cpu_model()}")  # fmt: skip
    if not args.sweep_only:
        print(f"{'file':<16}" + "".join(f"{e:>10}" for e in ENGINES) + "   (frame F1)")
        for path in FILES:
            print(f"{path.stem:<16}" + "".join(f"{score(path, e):>10.3f}" for e in ENGINES))
        for engine in ENGINES:
            cost, frame = frame_cost_ms(engine)
            print(f"{engine}: {cost:.3f} CPU-ms per {frame:.0f} ms frame")
    level_sweep()


if __name__ == "__main__":
    main()
