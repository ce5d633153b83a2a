"""Should the heritage classifier read YAMNet (AudioSet) beside or instead of musicnn (MTT)?

YAMNet (:mod:`detectors.heritage.yamnet`) was trained on AudioSet's 521 classes of real
recordings, among them Speech, Narration, Folk music, Classical music, Opera, Chant,
Choir and the sounds of weather, animals and machines; musicnn's MTT tagger on
MagnaTagATune's 50 music tags. This scores, leaving one source out on the real
development set with the shipped recipe, the gate and the music branch reading each
representation and both. YAMNet's columns (its 1024-d embedding, in the shipped vector
since ``heritage-excerpt/4``, and its 521 class scores, computed here for the very
excerpts the shipped vectorizer keeps) are each the mean over the excerpt's 0.96 s
patches every 0.48 s::

    OMP_NUM_THREADS=1 .venv/bin/python bench/compare_yamnet.py --real /work/data/heritage_real \\
        --synthetic /work/data/heritage-corpus --cache /work/data/heritage-cache
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt

import detectors.heritage.training as heritage_training
from detectors.heritage.crossval import real_leave_one_source_out
from detectors.heritage.excerpt import N_YAMNET, Excerpt, channel_columns, music_columns
from detectors.heritage.features import FEATURE_NAMES, excerpt_level_dbfs
from detectors.heritage.training import Vectorizer
from detectors.heritage.yamnet import N_CLASSES, Yamnet
from stream.events import HERITAGE_CATEGORIES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_musicnn import corpora_with
from heritage_variants import branches_read, recipe, row


class YamnetScores:
    """An excerpt's mean YAMNet class scores, for :class:`Vectorizer` (the shipped vector
    already holds YAMNet's mean embedding, ``excerpt.N_YAMNET`` columns before these)."""

    names = tuple(f"yam_score{i}" for i in range(N_CLASSES))

    def __init__(self) -> None:
        self.yamnet = Yamnet()

    def __call__(self, samples: npt.NDArray[np.float32]) -> Excerpt:
        scores = self.yamnet.embed(samples).scores.mean(axis=0, dtype=np.float64)
        return Excerpt(excerpt_level_dbfs(samples), scores)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, required=True, help="real development set")
    parser.add_argument("--synthetic", type=Path, required=True, help="rendered corpus")
    parser.add_argument("--cache", type=Path, required=True, help="excerpt vector cache")
    parser.add_argument("--only", nargs="*", help="run only the rows with these names")
    parser.add_argument("--gate-c", type=float, help="the gate's inverse regularisation")
    parser.add_argument("--music-c", type=float, help="the music branch's inverse regularisation")
    parser.add_argument("--synthetic-gate", type=float, help="a synthetic row's weight, gate")
    parser.add_argument("--synthetic-music", type=float, help="the same, music branch")
    args = parser.parse_args()
    changes = {
        "c": {k: v for k, v in (("gate", args.gate_c), ("music", args.music_c)) if v is not None},
        "w": {
            k: v
            for k, v in (("gate", args.synthetic_gate), ("music", args.synthetic_music))
            if v is not None
        },
    }
    started = time.process_time()
    # A cache folder of its own: the vector cache's key does not name the featurizer.
    yam = Vectorizer(cache=args.cache / "yamnet-scores", featurizer=YamnetScores())  # type: ignore[arg-type]
    real, base, copies = corpora_with(yam, args.real, args.synthetic, args.cache)
    print(f"vectors: {time.process_time() - started:.0f} CPU-s", flush=True)
    width = real.x.shape[1]
    shipped = width - N_CLASSES  # the shipped vector: hand-made, MTT, YAMNet embedding
    embedding = list(range(shipped - N_YAMNET, shipped))
    hand = list(range(len(FEATURE_NAMES)))
    mtt_all = list(range(shipped - N_YAMNET))  # hand-made features, MTT tags and embedding
    scores = list(range(shipped, width))
    mtt = [c for c in music_columns() if c not in embedding]  # pulse, vibrato, MTT
    pulse = mtt[:4]
    rows: dict[str, tuple[list[int], list[int]]] = {
        "MTT (shipped-5)": (mtt_all, mtt),
        "MTT + YAMNet scores": (mtt_all + scores, mtt + scores),
        "MTT + YAMNet scores + embedding": (list(range(width)), mtt + scores + embedding),
        "MTT + YAMNet embedding (shipped-6, -7)": (list(range(shipped)), mtt + embedding),
        "MTT + YAMNet embedding, gate + YAMNet scores": (list(range(width)), mtt + embedding),
        "MTT + YAMNet embedding, gate without MTT": (hand + embedding, mtt + embedding),
        "YAMNet scores": (hand + scores, pulse + scores),
        "YAMNet scores + embedding": (hand + scores + embedding, pulse + scores + embedding),
        "YAMNet embedding": (hand + embedding, pulse + embedding),
        "YAMNet scores, gate hand + YAMNet + MTT": (mtt_all + scores, pulse + scores),
    }
    print(f"recipe: C {heritage_training.BRANCH_C | changes['c']}, synthetic weight "
          f"{heritage_training.SYNTHETIC_WEIGHT | changes['w']}")  # fmt: skip
    print(f"{len(real.examples) - len(copies)} real clips, {len(base.examples)} synthetic files;"
          f" the speech branch reads the channel columns {len(channel_columns())}")  # fmt: skip
    print("| gate, music branch | macro-F1 (six) | folk | classical | opera | spoken | historical "
          "| chant | other | false accept | calib. gap |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, (gate, music) in rows.items():
        if args.only and name not in args.only:
            continue
        with (
            branches_read(music=music, gate=gate),
            recipe(heritage_training.BRANCH_C, changes["c"]),
            recipe(heritage_training.SYNTHETIC_WEIGHT, changes["w"]),
        ):
            report, _ = real_leave_one_source_out(real, base, copies)
        print(row(name, report, HERITAGE_CATEGORIES), flush=True)
    print(f"CPU {time.process_time() - started:.0f} s")


if __name__ == "__main__":
    main()
