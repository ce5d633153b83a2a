"""Derived diarization sets from a set of conversations (``<split>_NNN.flac`` + ``.rttm``).

The room conversations of ``tools/make_room_conversations.py`` (``--interviews``) run
2-4 minutes; recordings of a minute or two, telephone audio and single voices are what
museums also hold, and each once exposed a counting fault. Three derivations, each
keeping the split (dev stays dev, test stays test) and the truth:

- ``cut``: every file cut into excerpts of ``--seconds`` (90), the last one kept if it
  holds at least ``--shortest`` (45) s; the reference cropped to each excerpt.
- ``phone``: every file through a telephone channel: 300-3400 Hz band, 8 kHz, 8-bit
  mu-law (G.711), back to the set's rate.
- ``monologue``: every file with only its most talkative speaker's speech kept (the
  others' turns, and overlaps, made silent); the reference keeps that speaker.

    .venv/bin/python tools/derive_conversations.py cut /work/data/diar/interviews \\
        /work/data/diar/intcuts
    .venv/bin/python tools/derive_conversations.py phone /work/data/diar/intcuts \\
        /work/data/diar/intphone
    .venv/bin/python tools/derive_conversations.py monologue /work/data/diar/intcuts \\
        /work/data/diar/mono
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile as sf
import soxr
from scipy.signal import butter, sosfilt

SPLITS = ("dev", "test")
PHONE_RATE = 8000
PHONE_BAND_HZ = (300.0, 3400.0)
MU = 255.0
PHONE_PEAK = 0.7  # level of the loudest sample before mu-law coding


def rttm_rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def write_rttm(path: Path, rows: list[list[str]]) -> None:
    path.write_text("".join(" ".join(row) + "\n" for row in rows))


def cut(source: Path, out: Path, seconds: float, shortest: float) -> int:
    """Excerpts of ``seconds``; returns how many were written."""
    written = 0
    for split in SPLITS:
        index = 0
        for path in sorted(source.glob(f"{split}_*.flac")):
            audio, rate = sf.read(path, dtype="float32")
            rows = rttm_rows(path.with_suffix(".rttm"))
            total = len(audio) / rate
            start = 0.0
            while total - start >= shortest:
                end = min(total, start + seconds)
                name = f"{split}_{index:03d}"
                sf.write(out / f"{name}.flac", audio[int(start * rate) : int(end * rate)], rate)
                kept = []
                for row in rows:
                    a = max(float(row[3]), start)
                    b = min(float(row[3]) + float(row[4]), end)
                    if b - a > 0.01:
                        kept.append([row[0], name, row[2], f"{a - start:.3f}",
                                     f"{b - a:.3f}", *row[5:]])  # fmt: skip
                write_rttm(out / f"{name}.rttm", kept)
                index += 1
                written += 1
                start = end
    return written


def telephone(audio: npt.NDArray[np.float32], rate: int) -> npt.NDArray[np.float32]:
    """``audio`` as a G.711 telephone line would carry it, at ``rate`` again."""
    sos = butter(4, PHONE_BAND_HZ, btype="bandpass", fs=PHONE_RATE, output="sos")
    narrow = sosfilt(sos, soxr.resample(audio, rate, PHONE_RATE))
    narrow = narrow / max(1e-9, float(np.abs(narrow).max())) * PHONE_PEAK
    coded = np.sign(narrow) * np.log1p(MU * np.abs(narrow)) / np.log1p(MU)
    coded = np.round(coded * 127) / 127
    decoded = np.sign(coded) * ((1 + MU) ** np.abs(coded) - 1) / MU
    return np.asarray(soxr.resample(decoded.astype(np.float32), PHONE_RATE, rate), np.float32)


def phone(source: Path, out: Path) -> int:
    written = 0
    for path in sorted(p for s in SPLITS for p in source.glob(f"{s}_*.flac")):
        audio, rate = sf.read(path, dtype="float32")
        sf.write(out / path.name, telephone(audio, rate), rate)
        write_rttm(out / f"{path.stem}.rttm", rttm_rows(path.with_suffix(".rttm")))
        written += 1
    return written


def monologue(source: Path, out: Path) -> int:
    written = 0
    for path in sorted(p for s in SPLITS for p in source.glob(f"{s}_*.flac")):
        audio, rate = sf.read(path, dtype="float32")
        rows = rttm_rows(path.with_suffix(".rttm"))
        talk: dict[str, float] = {}
        for row in rows:
            talk[row[7]] = talk.get(row[7], 0.0) + float(row[4])
        if not talk:
            continue
        voice = max(talk, key=lambda k: talk[k])
        kept = np.zeros(len(audio), bool)
        others = np.zeros(len(audio), bool)
        for row in rows:
            a, b = int(float(row[3]) * rate), int((float(row[3]) + float(row[4])) * rate)
            (kept if row[7] == voice else others)[a:b] = True
        mask = kept & ~others
        sf.write(out / path.name, np.where(mask if audio.ndim == 1 else mask[:, None], audio, 0),
                 rate)  # fmt: skip
        write_rttm(out / f"{path.stem}.rttm", [r for r in rows if r[7] == voice])
        written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["cut", "phone", "monologue"])
    parser.add_argument("source", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=float, default=90.0, help="cut: excerpt length")
    parser.add_argument("--shortest", type=float, default=45.0, help="cut: shortest last excerpt")
    args = parser.parse_args(argv)
    if not any(args.source.glob("*_*.flac")):
        parser.error(f"{args.source}: no <split>_NNN.flac conversations there")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.kind == "cut":
        count = cut(args.source, args.out, args.seconds, args.shortest)
    else:
        count = (phone if args.kind == "phone" else monologue)(args.source, args.out)
    print(f"{count} files written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
