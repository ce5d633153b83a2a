"""CPU cost of ``results.metadata_generation`` per audio-second, by file format.

Renders the bundled demo scene (speech, music and noise, 60 s) to the formats
archives hold, then times ``generate_metadata`` on one core: the whole call (decode,
R 128 loudness and true peak at the file's own rate and channels, technical
measures, resampling to 16 kHz, content descriptors, file hash, Dublin Core) and
the same call given the file hash and the 16 kHz signal, as a pipeline that has
both can call it (``analyze_file`` passes the hash; the stream layer does not
expose its 16 kHz signal yet).

    OMP_NUM_THREADS=1 .venv/bin/python bench/metadata_cost.py
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pyebur128
import soundfile as sf
import soxr

from detectors.metadata import generate_metadata
from stream.sources.file import demo_scene_path

FORMATS = [  # (label, rate, channels, container, subtype)
    ("16 kHz mono 16-bit WAV", 16_000, 1, "WAV", "PCM_16"),
    ("44.1 kHz mono 16-bit WAV", 44_100, 1, "WAV", "PCM_16"),
    ("44.1 kHz stereo 16-bit WAV", 44_100, 2, "WAV", "PCM_16"),
    ("44.1 kHz stereo 16-bit FLAC", 44_100, 2, "FLAC", "PCM_16"),
    ("48 kHz stereo 24-bit WAV (BWF)", 48_000, 2, "WAV", "PCM_24"),
    ("96 kHz stereo 24-bit WAV", 96_000, 2, "WAV", "PCM_24"),
]
REPEATS = 3


def render(scene: np.ndarray, path: Path, spec: tuple[str, int, int, str, str]) -> None:  # type: ignore[type-arg]
    _, rate, channels, fmt, subtype = spec
    x = soxr.resample(scene, 16_000, rate).astype(np.float32)
    if channels == 2:
        # A plausible stereo image: the right channel delayed 0.3 ms and a little quieter.
        delay = round(0.0003 * rate)
        x = np.stack([x, 0.8 * np.concatenate([np.zeros(delay, np.float32), x[:-delay]])], axis=1)
    sf.write(str(path), x, rate, format=fmt, subtype=subtype)


def cpu_per_audio_second(path: Path, duration: float, **kwargs: object) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.process_time()
        generate_metadata(path, **kwargs)  # type: ignore[arg-type]
        best = min(best, time.process_time() - start)
    return best / duration


def loudness_cost(path: Path, duration: float) -> float:
    """CPU-s per audio-s of libebur128's integrated loudness and LRA alone, as used here."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    best = float("inf")
    for _ in range(REPEATS):
        start = time.process_time()
        modes = pyebur128.MeasurementMode
        state = pyebur128.R128State(data.shape[1], rate, modes.MODE_I | modes.MODE_LRA)
        for i in range(0, len(data), 1 << 16):
            block = np.ascontiguousarray(data[i : i + (1 << 16)])
            state.add_frames(block.ravel(), len(block))
        best = min(best, time.process_time() - start)
    return best / duration


def main() -> None:
    scene, rate = sf.read(str(demo_scene_path()), dtype="float32")
    duration = len(scene) / rate
    machine = platform.processor() or platform.machine()
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"metadata_generation cost, {time.strftime('%Y-%m-%d')}, {machine}, "
          f"OMP_NUM_THREADS={threads}, best of {REPEATS}, {duration:.0f} s demo scene")  # fmt: skip
    print(
        "| file | CPU-s per audio-s | given hash and 16 kHz signal | of which R 128 (libebur128) |"
    )
    print("| --- | --- | --- | --- |")
    generate_metadata(demo_scene_path())  # warm up imports and filter design
    with tempfile.TemporaryDirectory() as tmp:
        for spec in FORMATS:
            path = Path(tmp) / f"scene.{spec[3].lower()}"
            render(scene, path, spec)
            full = cpu_per_audio_second(path, duration)
            given = cpu_per_audio_second(path, duration, samples_16k=scene, sha256="0" * 64)
            print(f"| {spec[0]} | {full:.4f} | {given:.4f} | {loudness_cost(path, duration):.4f} |")


if __name__ == "__main__":
    main()
