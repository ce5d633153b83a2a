"""Rebuild the real-conversation diarization set from its manifest.

Each row of the manifest (``tools/real_audio/conversations.csv``) names a public
repository, a commit, the recording and where its speaker-turn reference comes from.
Fetch each repository (a bare clone or mirror per repository, named ``owner+name``
under ``--mirrors``), then run this script::

    .venv/bin/python tools/gather_conversations.py tools/real_audio/conversations.csv \\
        /work/data/diar/real --mirrors /work/.mirror

With ``--fixture`` it writes only ``tests/data/diarization/real_call.flac`` and
``.rttm`` (see :func:`write_fixture`; OUT is then unused). Otherwise it writes
``OUT/test_NNN.flac`` (16 kHz mono) and ``OUT/test_NNN.rttm`` for
``bench/eval_diarization.py --split test``, plus ``OUT/excerpts.csv`` saying which
recording and span each excerpt is.

``path`` is one file, mixed down to mono, or several time-aligned mono files joined
with ``|`` (one per speaker), averaged into one signal. ``ref_path`` is one of:

- a ``.json`` word list in the same repository (``[{"speaker", "word", "start",
  "end"}, ...]``, SpokenWOZ's layout): a speaker's consecutive words become one turn
  while the gap to the next word is at most ``WORD_GAP`` seconds;
- an ``.rttm`` file in the same repository;
- ``inline:<file>``: an RTTM kept beside the manifest (``tools/real_audio/...``),
  transcribed from code;
- ``channels``: the turns are read off each speaker's own file (``path`` with ``|``):
  20 ms frames are speech where their level exceeds ``max(10th percentile + 20 dB,
  95th percentile - 40 dB)`` of that file, pauses under 0.3 s are bridged and bursts
  under 0.15 s dropped. Only for files without cross-talk (check before adding one).

Recordings longer than ``--max-excerpt`` seconds (``MAX_EXCERPT``; 0: never) are cut
into the fewest equal pieces of at most that length (every piece is over 30 s for the
recordings listed); each cut is moved to the middle of the reference pause nearest to
it, if one lies within 10 s, and turns are clipped to their excerpt. The clips'
licences vary (see the manifest, two sources are non-commercial): the set is for
evaluation, not for redistribution.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import math
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from mirrors import git_dir, git_show

RATE = 16000
MAX_EXCERPT = 120.0
MIN_EXCERPT = 30.0
CUT_SEARCH = 10.0
WORD_GAP = 0.5
FRAME = 0.02
BRIDGE = 0.3
MIN_BURST = 0.15
HERE = Path(__file__).resolve().parent
FIXTURE = HERE.parent / "tests" / "data" / "diarization" / "real_call"
FIXTURE_CLIP = "lca_auto_repairs_40"  # Apache-2.0: may be committed
FIXTURE_S = 150.0  # several file_block_s blocks, so the block clustering is tested
FIXTURE_RATE = 8000  # the call's own rate


@dataclass(frozen=True)
class Turn:
    """One speaker's stretch of speech, in seconds from the recording's start."""

    start: float
    end: float
    speaker: str


def read_audio(data: bytes) -> tuple[np.ndarray, int]:
    """Samples (frames x channels, float64) and rate of an encoded file."""
    audio, rate = sf.read(io.BytesIO(data), dtype="float64", always_2d=True)
    return np.asarray(audio), int(rate)


def to_16k_mono(channels: list[np.ndarray], rate: int) -> np.ndarray:
    """The average of equally long mono signals, resampled to 16 kHz (float32)."""
    length = min(len(c) for c in channels)
    mono = np.mean([c[:length] for c in channels], axis=0)
    out = soxr.resample(mono, rate, RATE) if rate != RATE else mono
    return np.asarray(out, dtype=np.float32)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """The [start, end) index ranges where ``mask`` is true."""
    padded = np.concatenate([[False], mask, [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def channel_turns(signal: np.ndarray, rate: int, speaker: str) -> list[Turn]:
    """The turns of one speaker's isolated recording, by the energy rule of the docstring."""
    hop = round(FRAME * rate)
    frames = len(signal) // hop
    power = (signal[: frames * hop].reshape(frames, hop) ** 2).mean(axis=1)
    level = 10 * np.log10(power + 1e-10)
    low, high = np.percentile(level, [10, 95])
    speech = level > max(low + 20.0, high - 40.0)
    for a, b in runs(~speech):
        if a > 0 and b < frames and (b - a) * FRAME < BRIDGE:
            speech[a:b] = True
    return [
        Turn(a * FRAME, b * FRAME, speaker) for a, b in runs(speech) if (b - a) * FRAME >= MIN_BURST
    ]


def word_turns(words: list[dict[str, object]]) -> list[Turn]:
    """Words (speaker, start, end) merged into turns per speaker."""
    turns: list[Turn] = []
    last: dict[str, int] = {}
    for w in sorted(words, key=lambda w: float(str(w["start"]))):
        speaker, start, end = str(w["speaker"]), float(str(w["start"])), float(str(w["end"]))
        i = last.get(speaker)
        if i is not None and start - turns[i].end <= WORD_GAP:
            turns[i] = Turn(turns[i].start, max(end, turns[i].end), speaker)
        else:
            last[speaker] = len(turns)
            turns.append(Turn(start, end, speaker))
    return sorted(turns, key=lambda t: t.start)


def rttm_turns(text: str) -> list[Turn]:
    """The SPEAKER lines of an RTTM."""
    turns = []
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 8 and f[0] == "SPEAKER":
            start = float(f[3])
            turns.append(Turn(start, start + float(f[4]), f[7]))
    return sorted(turns, key=lambda t: t.start)


def cut_points(duration: float, turns: list[Turn], longest: float) -> list[float]:
    """Excerpt boundaries: equal pieces of at most ``longest`` s (0: the whole recording),
    moved into nearby pauses."""
    pieces = max(1, math.ceil(duration / longest)) if longest > 0 else 1
    bounds = [0.0]
    gaps = pauses(turns, duration)
    for k in range(1, pieces):
        nominal = duration * k / pieces
        near = [mid for mid in gaps if abs(mid - nominal) <= CUT_SEARCH]
        bounds.append(min(near, key=lambda m: abs(m - nominal)) if near else nominal)
    return [*bounds, duration]


def pauses(turns: list[Turn], duration: float) -> list[float]:
    """The middles of the stretches where no reference speaker talks."""
    mids: list[float] = []
    covered = 0.0
    for t in sorted(turns, key=lambda t: t.start):
        if t.start > covered:
            mids.append((covered + t.start) / 2)
        covered = max(covered, t.end)
    if covered < duration:
        mids.append((covered + duration) / 2)
    return mids


def write_rttm(path: Path, uri: str, turns: list[Turn]) -> None:
    lines = [
        f"SPEAKER {uri} 1 {t.start:.3f} {t.end - t.start:.3f} <NA> <NA> {t.speaker} <NA> <NA>"
        for t in turns
        if t.end - t.start > 0.0
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def load(row: dict[str, str], gitdir: Path) -> tuple[np.ndarray, list[Turn]]:
    """The 16 kHz mono recording of a manifest row and its reference turns."""
    decoded = [read_audio(git_show(gitdir, row["commit"], p)) for p in row["path"].split("|")]
    rate = decoded[0][1]
    if any(r != rate for _, r in decoded):
        raise SystemExit(f"{row['clip_id']}: its files differ in sample rate")
    channels = [c for audio, _ in decoded for c in audio.T]
    ref = row["ref_path"]
    if ref == "channels":
        if len(decoded) < 2:
            raise SystemExit(f"{row['clip_id']}: 'channels' needs one file per speaker")
        turns = sorted(
            (t for i, c in enumerate(channels) for t in channel_turns(c, rate, f"spk{i}")),
            key=lambda t: t.start,
        )
    elif ref.startswith("inline:"):
        turns = rttm_turns((HERE.parent / ref.removeprefix("inline:")).read_text("utf-8"))
    elif ref.endswith(".json"):
        turns = word_turns(json.loads(git_show(gitdir, row["commit"], ref)))
    else:
        turns = rttm_turns(git_show(gitdir, row["commit"], ref).decode("utf-8"))
    return to_16k_mono(channels, rate), turns


def write_fixture(rows: list[dict[str, str]], mirrors: Path) -> None:
    """The committed real-call fixture: the first ``FIXTURE_S`` s of ``FIXTURE_CLIP`` (cut in
    the reference pause nearest to it), at the call's own 8 kHz, and its reference."""
    row = next(r for r in rows if r["clip_id"] == FIXTURE_CLIP)
    audio, turns = load(row, git_dir(mirrors, row["repo"]))
    end = cut_points(FIXTURE_S * 2, turns, FIXTURE_S)[1]
    clipped = [Turn(t.start, min(t.end, end), t.speaker) for t in turns if t.start < end]
    piece = soxr.resample(audio[: round(end * RATE)], RATE, FIXTURE_RATE)
    sf.write(FIXTURE.with_suffix(".flac"), piece, FIXTURE_RATE, subtype="PCM_16")
    write_rttm(FIXTURE.with_suffix(".rttm"), FIXTURE.name, clipped)
    print(f"{FIXTURE}.flac: {end:.1f} s, {len(clipped)} turns")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--mirrors", type=Path, required=True, help="folder of owner+name clones")
    parser.add_argument("--split", default="test", help="file name prefix (default: test)")
    parser.add_argument(
        "--max-excerpt",
        type=float,
        default=MAX_EXCERPT,
        help=f"longest excerpt in s (default {MAX_EXCERPT:g}; 0: whole recordings)",
    )
    parser.add_argument("--fixture", action="store_true", help="write the test fixture only")
    args = parser.parse_args()
    with args.manifest.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    if args.fixture:
        write_fixture(rows, args.mirrors)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    index: list[list[str]] = [["file", "clip_id", "start_s", "end_s", "speakers", "turns"]]
    missing: list[str] = []
    n = 0
    for row in rows:
        try:
            audio, turns = load(row, git_dir(args.mirrors, row["repo"]))
        except subprocess.CalledProcessError:
            missing.append(f"{row['repo']}@{row['commit'][:10]}: {row['clip_id']}")
            continue
        duration = len(audio) / RATE
        bounds = cut_points(duration, turns, args.max_excerpt)
        for a, b in itertools.pairwise(bounds):
            if b - a < MIN_EXCERPT:
                print(f"{row['clip_id']} {a:.1f}-{b:.1f} s: under {MIN_EXCERPT:.0f} s, skipped")
                continue
            n += 1
            stem = f"{args.split}_{n:03d}"
            clipped = [
                Turn(max(t.start, a) - a, min(t.end, b) - a, t.speaker)
                for t in turns
                if t.end > a and t.start < b
            ]
            sf.write(
                args.out / f"{stem}.flac",
                audio[round(a * RATE) : round(b * RATE)],
                RATE,
                subtype="PCM_16",
            )
            write_rttm(args.out / f"{stem}.rttm", stem, clipped)
            speakers = len({t.speaker for t in clipped})
            index.append([stem, row["clip_id"], f"{a:.2f}", f"{b:.2f}", str(speakers),
                          str(len(clipped))])  # fmt: skip
    with (args.out / "excerpts.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(index)
    print(f"{n} excerpts from {len(rows) - len(missing)} recordings written to {args.out}")
    for item in missing:
        print(f"missing: {item}")
    if missing:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
