"""Whole-process CPU of comprehensive file analysis against pyAudioAnalysis's diarization.

Issue 14 asks that ``heritage-audio analyze`` (every section) use less CPU than the peer's
``speaker_diarization`` on the diarization benchmark. Both run as users run them, one
thread, each process's user + system CPU counted whole (start-up, imports, decoding):
one process per file, and one process for all files (``analyze FILE... --out-dir``; the
peer's script with every file, paying its imports once). The rounds interleave the two.
DER on the same files: ``bench/eval_diarization.py DIR --split test --peer-python PY``.

    python3 -m venv /tmp/peer_venv && /tmp/peer_venv/bin/pip install pyAudioAnalysis \\
        hmmlearn eyed3 pydub matplotlib plotly imbalanced-learn tqdm soundfile
    .venv/bin/python bench/peer_cost.py '/work/data/diar/synth/test_*.flac' \\
        --peer-python /tmp/peer_venv/bin/python --rounds 2
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import soundfile as sf

HERE = Path(__file__).resolve().parent
CLI = [sys.executable, "-m", "stream.cli"]
ENV = os.environ | {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def child_cpu(command: list[str]) -> float:
    """User + system CPU seconds of ``command`` run to completion (it must succeed)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, capture_output=True, env=ENV, cwd=HERE.parent)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def speakers(path: Path) -> int:
    """Speakers of the file's RTTM truth (the peer is given the count)."""
    lines = path.with_suffix(".rttm").read_text(encoding="utf-8").splitlines()
    return len({line.split()[7] for line in lines if line.startswith("SPEAKER")})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", help="glob of the audio files (each with an .rttm beside it)")
    parser.add_argument("--peer-python", required=True, help="python of the peer's virtualenv")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    files = [Path(p) for p in sorted(glob.glob(args.files))]
    if not files:
        raise SystemExit(f"no files match {args.files}")
    audio_s = sum(sf.info(p).duration for p in files)
    peer = [args.peer_python, str(HERE / "peer_pyaudioanalysis.py")]
    totals: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            runs = {
                "ours, a process per file": [
                    [*CLI, "analyze", str(p), "--json", f"{tmp}/{p.stem}.json"] for p in files
                ],
                "peer, a process per file": [[*peer, str(p), str(speakers(p))] for p in files],
                "ours, one process": [
                    [*CLI, "analyze", *map(str, files), "--out-dir", f"{tmp}/batch{r}"]
                ],
                "peer, one process": [[*peer, *(str(x) for p in files for x in (p, speakers(p)))]],
            }
            order = list(runs) if r % 2 == 0 else list(reversed(runs))
            for name in order:
                totals.setdefault(name, []).append(sum(map(child_cpu, runs[name])))
    print(f"{len(files)} files, {audio_s:.1f} s of audio, {args.rounds} rounds, one thread")
    for name, values in totals.items():
        mean = sum(values) / len(values)
        rounds = " / ".join(f"{v:.2f}" for v in values)
        print(f"{name:26s} {rounds:>16s} CPU-s  mean {mean:6.2f}  {mean / audio_s:.4f} per audio-s")
    for how in ("a process per file", "one process"):
        ours, theirs = totals[f"ours, {how}"], totals[f"peer, {how}"]
        print(f"ours / peer, {how}: {sum(ours) / sum(theirs):.2f}")


if __name__ == "__main__":
    main()
