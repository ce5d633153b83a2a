"""Event latency from audio to a WebSocket client, with a source paced in real time.

Runs ``heritage-audio run`` on a file paced as if live, in 20 ms blocks (what a
capture device delivers at low latency), and connects a WebSocket client. For
``speech.started`` the latency is receipt time minus the wall time of the onset
(``wall_time`` is the sample clock mapped to wall time when capture started,
so it is when that audio "happened"); for ``speech.ended``, receipt time minus
the wall time of ``t_end``; for ``speaker.turn`` and ``heritage.classified`` too,
receipt minus the wall time of ``t_end`` (the end of the audio the event is about).
Targets (DESIGN.md): p95 <= 150 ms for speech start/end; <= hop + 100 ms for
speaker and heritage events.

The end of a segment cannot be known before the pause has lasted
``min_silence_ms``: speech.ended latency is that minus ``hangover_ms`` plus
delivery. The script measures the default and a setting that tolerates longer
pauses inside a segment.

Usage: python bench/e2e_latency.py [--loops 3]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from common import free_port, wait_until_serving
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ["vad_clean.flac", "vad_noise.flac", "vad_music.flac"]
DEFAULT_REST = (
    '[[detectors]]\ntype = "level"\n'
    '[[detectors]]\ntype = "heritage"\n'
    '[[detectors]]\ntype = "speaker"\nhop_s = 1.0\nmin_evidence = 3\n'
)
PROFILES = {
    "full default pipeline": ("", DEFAULT_REST),
    "VAD alone (min_silence_ms 150)": ("", ""),
    "VAD alone, min_silence_ms 250": ("min_silence_ms = 250\n", ""),
}
TYPES = ("speech.started", "speech.ended", "speaker.turn", "heritage.classified")


def build_input(folder: Path, loops: int) -> Path:
    """The VAD fixtures back to back, ``loops`` times, after 2 s of silence."""
    parts = [np.zeros(32000, np.float32)]
    for _ in range(loops):
        for name in FIXTURES:
            audio, _ = sf.read(ROOT / "tests" / "data" / name, dtype="float32")
            parts.append(audio)
    path = folder / "input.flac"
    sf.write(path, np.concatenate(parts), 16000)
    return path


def run_once(folder: Path, audio: Path, vad_options: str, rest: str) -> dict[str, list[float]]:
    """Latencies (ms) of each event type for one run."""
    config = folder / "pipeline.toml"
    config.write_text(
        f'[[sources]]\ntype = "file"\nname = "bench"\npath = "{audio}"\nblock_size = 320\n'
        f'[[detectors]]\ntype = "vad"\n{vad_options}{rest}'
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "run", "--config", str(config),
         "--host", "127.0.0.1", "--port", str(port)],
        stderr=subprocess.DEVNULL, cwd=ROOT,
    )  # fmt: skip
    latencies: dict[str, list[float]] = {kind: [] for kind in TYPES}
    try:
        wait_until_serving(port)
        types = ",".join(TYPES)
        with connect(f"ws://127.0.0.1:{port}/ws/events?types={types}") as ws:
            for message in ws:
                received = datetime.now(UTC)
                event: dict[str, Any] = json.loads(message)
                onset = datetime.fromisoformat(event["wall_time"])
                at = onset + timedelta(seconds=event["t_end"] - event["t_start"])
                audio_time = onset if event["type"] == "speech.started" else at
                latencies[event["type"]].append((received - audio_time).total_seconds() * 1000)
    finally:
        server.wait(30)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=2, help="passes over the fixtures")
    args = parser.parse_args()
    print(f"e2e_latency  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        audio = build_input(folder, args.loops)
        print(f"input: {sf.info(str(audio)).duration:.0f} s, paced in real time, 20 ms blocks")
        for label, (options, rest) in PROFILES.items():
            result = run_once(folder, audio, options, rest)
            for kind, values in result.items():
                if not values:
                    continue
                lat = np.array(values)
                print(
                    f"{label:<34} {kind:<15} n={len(lat):<3} p50 {np.median(lat):6.1f}  "
                    f"p95 {np.quantile(lat, 0.95):6.1f}  max {lat.max():6.1f} ms"
                )


if __name__ == "__main__":
    main()
