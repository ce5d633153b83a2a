"""Streaming cost of the live pipeline (resample, VAD, level, heritage, speaker) and capacity.

1. CPU-seconds per audio-second for one channel captured at 48 kHz: each stage
   alone and the whole chain, for both VAD engines (process CPU time, best of 3).
2. Channels one process analyses faster than real time: K channels of 48 kHz
   audio through one source runner, as fast as possible (real-time factor).
3. The largest K with real-time factor <= 0.7 then runs paced in real time;
   it is sustained if no block is ever handled more than one block late
   (a capture queue of 128 blocks would never fill, so no frame is dropped).

Usage: python bench/stream_cost.py [--seconds 60] [--paced-seconds 60]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from config.pipeline import PipelineConfig
from detectors import AnyDetectorConfig, HeritageConfig, LevelConfig, SpeakerConfig, VadConfig
from sinks.metrics import Metrics
from stream.pipeline import ChannelChain, SourceRunner
from stream.sources import Block, FileSource, FileSourceConfig, SourceItem
from stream.sources.file import demo_scene_path

CAPTURE_RATE = 48_000
BLOCK = 1024


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return f"{platform.node()} | {cpu} | {len(os.sched_getaffinity(0))} cores"


def capture_audio(seconds: float) -> np.ndarray:
    """The demo scene at 48 kHz, looped to ``seconds``."""
    scene, rate = sf.read(demo_scene_path(), dtype="float32")
    scene = soxr.resample(scene, rate, CAPTURE_RATE).astype(np.float32)
    reps = int(np.ceil(seconds * CAPTURE_RATE / len(scene)))
    return np.tile(scene, reps)[: int(seconds * CAPTURE_RATE)]


def cpu_per_audio_second(audio: np.ndarray, detectors: list[AnyDetectorConfig]) -> float:
    """Best-of-3 CPU seconds per audio second of one channel chain."""
    best = float("inf")
    for _ in range(3):
        chain = ChannelChain(0, CAPTURE_RATE, 16_000, detectors)
        started = time.process_time()
        for i in range(0, len(audio), BLOCK):
            chain.push(audio[i : i + BLOCK])
        best = min(best, time.process_time() - started)
    return best / (len(audio) / CAPTURE_RATE)


def stage_costs(seconds: float) -> None:
    audio = capture_audio(seconds)
    print(f"\n1. one channel, {seconds:.0f} s of 48 kHz audio, {BLOCK}-frame blocks")
    print(f"   {'stage':<38} CPU-s per audio-s")
    cases: list[tuple[str, list[AnyDetectorConfig]]] = [
        ("resample 48k->16k only", []),
        ("resample + level", [LevelConfig()]),
        ("resample + VAD (webrtc)", [VadConfig(engine="webrtc")]),
        ("resample + VAD (silero)", [VadConfig(engine="silero")]),
        ("resample + VAD (webrtc) + level", [VadConfig(engine="webrtc"), LevelConfig()]),
        ("resample + VAD (silero) + level", [VadConfig(), LevelConfig()]),
        ("resample + heritage", [HeritageConfig()]),
        ("resample + speaker (hop 1.0 s)", [SpeakerConfig(hop_s=1.0, min_evidence=3)]),
        ("resample + speaker (hop 0.5 s)", [SpeakerConfig()]),
        ("full default (VAD, level, heritage, speaker)", list(PipelineConfig().detectors)),
    ]
    for label, detectors in cases:
        print(f"   {label:<44} {cpu_per_audio_second(audio, detectors):.5f}")


def write_multichannel(path: Path, channels: int, seconds: float) -> None:
    """``channels`` channels of the demo scene, each starting at a different point."""
    audio = capture_audio(seconds + channels * 3.7)
    step = int(3.7 * CAPTURE_RATE)
    n = int(seconds * CAPTURE_RATE)
    stacked = np.stack([audio[c * step : c * step + n] for c in range(channels)], axis=1)
    sf.write(path, stacked, CAPTURE_RATE, subtype="PCM_16")


def run_source(source: FileSource, config: PipelineConfig) -> float:
    """Wall seconds for one source runner to finish."""
    started = time.perf_counter()
    SourceRunner(source, config, lambda events: None, Metrics()).run(threading.Event())
    return time.perf_counter() - started


class LatenessProbe(FileSource):
    """A paced file source that records how late each block is handed to analysis."""

    def __init__(self, config: FileSourceConfig) -> None:
        super().__init__(config)
        self.lateness: list[float] = []

    def items(self, stop: threading.Event) -> Iterator[SourceItem]:
        started = time.monotonic()
        frames = 0
        for item in super().items(stop):
            if isinstance(item, Block):
                frames += len(item.frames)
                self.lateness.append(time.monotonic() - (started + frames / self.sample_rate))
            yield item


CAPTURE_QUEUE_BLOCKS = 128  # the device source's queue between callback and pipeline


def capacity(seconds: float, paced_seconds: float) -> None:
    config = PipelineConfig()  # the default detectors: VAD, level, heritage, speaker
    print(f"\n2. K channels at 48 kHz through one process, {seconds:.0f} s, as fast as possible")
    print(f"   {'K':>3}  {'real-time factor':>16}")
    sustainable = 0
    with tempfile.TemporaryDirectory() as tmp:
        for k in (4, 8, 12, 16, 20, 24, 32, 40, 48, 64):
            path = Path(tmp) / f"k{k}.wav"
            write_multichannel(path, k, seconds)
            source = FileSource(
                FileSourceConfig(path=path, realtime=False, mixdown=False, block_size=BLOCK)
            )
            rtf = run_source(source, config) / seconds
            print(f"   {k:>3}  {rtf:>16.3f}")
            if rtf <= 0.7:
                sustainable = k
            if rtf > 1.0:
                break
    if not sustainable:
        print("   no K tried runs at real-time factor <= 0.7")
        return
    if paced_seconds > 0:  # 0: no paced run
        paced(sustainable, paced_seconds)


def paced(channels: int, paced_seconds: float) -> None:
    """``channels`` channels paced in real time: how late is each block handed over?"""
    config = PipelineConfig()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "paced.wav"
        write_multichannel(path, channels, paced_seconds)
        probe = LatenessProbe(
            FileSourceConfig(path=path, realtime=True, mixdown=False, block_size=BLOCK)
        )
        run_source(probe, config)
        late = np.array(probe.lateness)
        block_s = BLOCK / CAPTURE_RATE
        if late.max() < block_s:
            verdict = "sustained, never more than a block behind"
        elif late.max() < CAPTURE_QUEUE_BLOCKS * block_s:
            verdict = (
                f"no frame dropped (the {CAPTURE_QUEUE_BLOCKS}-block capture queue never fills),"
                " but events lag by up to the max lateness"
            )
        else:
            verdict = "NOT sustained: the capture queue would overflow"
        print(
            f"\n3. {channels} channels paced in real time for {paced_seconds:.0f} s: "
            f"block lateness p50 {1000 * np.median(late):.1f} ms, "
            f"p99 {1000 * np.quantile(late, 0.99):.1f} ms, max {1000 * late.max():.1f} ms "
            f"(one block = {1000 * block_s:.1f} ms): {verdict}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--paced-seconds", type=float, default=60.0, help="0: no paced run")
    parser.add_argument(
        "--paced-channels", type=int, help="only the paced run, with this many channels"
    )
    args = parser.parse_args()
    print(f"stream_cost  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {machine()}")
    print(f"python {platform.python_version()}, numpy {np.__version__}")
    if args.paced_channels:
        paced(args.paced_channels, args.paced_seconds)
        return
    stage_costs(args.seconds)
    capacity(args.seconds, args.paced_seconds)


if __name__ == "__main__":
    main()
