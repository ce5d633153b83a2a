"""Rebuild the real-recording development set from its manifest.

Each row of the manifest (``tools/real_audio/heritage_dev.csv``) names a public
repository, a commit, a file, an offset and a duration, the category and the licence.
Fetch each repository (a bare clone or mirror per repository, named ``owner+name``
under ``--mirrors``), then run this script: it reads every file at its commit with
``git show``, decodes it (libsndfile, else ffmpeg for MP3/AAC), mixes it down,
resamples it to 16 kHz and writes ``OUT/<category>/<clip_id>.flac`` and a copy of the
manifest. Rows whose repository or commit is missing are listed and skipped::

    .venv/bin/python tools/gather_real_audio.py tools/real_audio/heritage_dev.csv \\
        /work/data/heritage_real --mirrors /work/.mirror

The clips' licences vary (see the manifest): the set is for development and
evaluation, not for redistribution; only the fixtures of ``make_real_fixtures.py``
are committed.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from mirrors import git_dir, git_show

RATE = 16000


def decode(data: bytes) -> np.ndarray:
    """Mono float32 samples at 16 kHz of an encoded audio file."""
    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        return np.asarray(soxr.resample(mono, rate, RATE) if rate != RATE else mono)
    except sf.LibsndfileError:
        # A file, not a pipe: MP4/AAC files (some named .mp3) keep their index at the end.
        with tempfile.NamedTemporaryFile() as encoded:
            encoded.write(data)
            encoded.flush()
            out = subprocess.run(
                ["ffmpeg", "-v", "error", "-i", encoded.name, "-ac", "1", "-ar", str(RATE),
                 "-f", "f32le", "-"],
                capture_output=True,
                check=True,
            )  # fmt: skip
        return np.frombuffer(out.stdout, dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--mirrors", type=Path, required=True, help="folder of owner+name clones")
    args = parser.parse_args()
    with args.manifest.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    missing: list[str] = []
    short: list[str] = []
    for row in rows:
        try:
            data = git_show(git_dir(args.mirrors, row["repo"]), row["commit"], row["path"])
        except subprocess.CalledProcessError:
            missing.append(f"{row['repo']}@{row['commit'][:10]}:{row['path']}")
            continue
        audio = decode(data)
        start = round(float(row["offset_s"]) * RATE)
        clip = audio[start : start + round(float(row["duration_s"]) * RATE)]
        if len(clip) < RATE:
            short.append(f"{row['clip_id']}: {len(clip) / RATE:.2f} s decoded")
            continue
        target = args.out / row["label"] / f"{row['clip_id']}.flac"
        target.parent.mkdir(parents=True, exist_ok=True)
        sf.write(target, clip, RATE, subtype="PCM_16")
    shutil.copyfile(args.manifest, args.out / "manifest.csv")
    print(f"{len(rows) - len(missing) - len(short)} clips written to {args.out}")
    for item in missing:
        print(f"missing: {item}")
    for item in short:
        print(f"too short, not written: {item}")
    if missing or short:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
