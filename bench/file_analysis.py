"""File analysis as a user runs it: whole-process CPU (start-up included), peak RSS,
start-up times and batch throughput.

Run: ``cd bench && OMP_NUM_THREADS=1 python file_analysis.py [--minutes 5] [--rss-minutes 20]``.
Scenes are the bundled demo scene (speech, music, room tone) looped, written as 48 kHz
stereo 24-bit WAV into a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "stream" / "data" / "demo.flac"
CLI = [sys.executable, "-m", "stream.cli"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def scene(path: Path, minutes: float, rate: int = 48_000, stereo: bool = True) -> Path:
    """The demo scene looped to ``minutes``, written block by block (memory stays small)."""
    audio, source_rate = sf.read(DEMO, dtype="float32")
    loop = soxr.resample(audio, source_rate, rate) if rate != source_rate else audio
    channels = 2 if stereo else 1
    with sf.SoundFile(path, "w", rate, channels, "PCM_24") as f:
        for _ in range(round(minutes)):
            f.write(np.stack([loop, 0.8 * loop], axis=1) if stereo else loop)
    return path


def measured(*args: str) -> tuple[float, float, float, subprocess.CompletedProcess[str]]:
    """(CPU s of the child, its peak RSS in MB, wall s, the process) of one CLI run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, env=ENV, check=False)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {proc.stderr}")
    return cpu, after.ru_maxrss / 1024, wall, proc


def batch(work: Path, count: int, minutes: float) -> None:
    """Wall time of ``count`` files of ``minutes`` analysed with ``--jobs 1`` and ``--jobs 2``."""
    files = [scene(work / f"batch{i}.wav", minutes, rate=16_000, stereo=False)
             for i in range(count)]  # fmt: skip
    walls = {}
    for jobs in (1, 2):
        out = work / f"out{jobs}"
        *_, wall, _ = measured("analyze", *map(str, files), "--jobs", str(jobs),
                               "--out-dir", str(out))  # fmt: skip
        walls[jobs] = wall
        # CPU of the analyses themselves, from each document (workers' own clocks).
        spent = sum(
            json.loads(p.read_text())["provenance"]["timings"]["total_cpu_s"]
            for p in out.glob("*.json")
        )
        print(f"batch of {count} {minutes:g}-min files, --jobs {jobs}: "
              f"{wall:.1f} s wall, {spent:.1f} CPU-s in analyses")  # fmt: skip
    print(f"--jobs 2 throughput: {walls[1] / walls[2]:.2f}x one job "
          f"(load {os.getloadavg()[0]:.2f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--rss-minutes", type=float, default=0.0, help="0: skip")
    parser.add_argument("--batch", type=int, default=4, help="files in the --jobs run (0: skip)")
    parser.add_argument("--batch-minutes", type=float, default=3.0, help="length of each")
    args = parser.parse_args()
    print(f"{date.today()} {platform.node()} {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.2f}")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _, _, wall, _ = measured("--help")
        print(f"--help: {wall:.2f} s wall")
        one = work / "one_second.wav"
        sf.write(one, sf.read(DEMO, dtype="float32")[0][:16_000], 16_000)
        cpu, _, wall, _ = measured("analyze", str(one), "--json", str(work / "o.json"))
        print(f"analyze of a 1 s file: {wall:.2f} s wall, {cpu:.2f} CPU-s")

        path = scene(work / "scene.wav", args.minutes)
        seconds = args.minutes * 60
        cpu, rss, wall, proc = measured("analyze", str(path), "--profile", "--json", "/dev/null")
        speed = seconds / cpu
        print(f"comprehensive, {args.minutes:g} min 48 kHz stereo: {cpu:.2f} CPU-s "
              f"({speed:.0f}x real time, start-up included), wall {wall:.1f} s")  # fmt: skip
        print(proc.stderr.rstrip())

        if args.batch:
            batch(work, args.batch, args.batch_minutes)

        if args.rss_minutes:
            long = scene(work / "long.wav", args.rss_minutes)
            cpu, rss, wall, _ = measured("analyze", str(long), "--json", "/dev/null")
            print(f"{args.rss_minutes:g} min 48 kHz stereo: peak RSS {rss:.0f} MB, {cpu:.1f} CPU-s "
                  f"({args.rss_minutes * 60 / cpu:.0f}x), wall {wall:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
