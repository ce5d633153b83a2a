"""Should the heritage classifier read YAMNet (AudioSet) beside or instead of musicnn (MTT)?

YAMNet (:mod:`detectors.heritage.yamnet`) was trained on AudioSet's 521 classes of real
recordings, among them Speech, Narration, Folk music, Classical music, Opera, Chant,
Choir and the sounds of weather, animals and machines; musicnn's MTT tagger on
MagnaTagATune's 50 music tags. This scores, leaving one source out on the real
development set with the shipped recipe, the gate and the music branch reading each
representation and both. YAMNet's columns (its 521 class scores and its 1024-d
embedding, each the mean over the excerpt's 0.96 s patches every 0.48 s) are computed
for the very excerpts the shipped vectorizer keeps::

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
from detectors.heritage.crossval import Corpus, real_leave_one_source_out
from detectors.heritage.excerpt import Excerpt, channel_columns, music_columns
from detectors.heritage.features import FEATURE_NAMES, excerpt_level_dbfs
from detectors.heritage.training import Vectorizer, dataset_examples
from detectors.heritage.yamnet import EMBEDDING_SIZE, N_CLASSES, Yamnet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from train_heritage_model import archival_copies

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_musicnn import with_columns
from heritage_variants import branches_read, recipe

YAMNET_WIDTH = N_CLASSES + EMBEDDING_SIZE


class YamnetFeaturizer:
    """An excerpt's mean YAMNet class scores and embedding, for :class:`Vectorizer`."""

    names = tuple(f"yam{i}" for i in range(YAMNET_WIDTH))

    def __init__(self) -> None:
        self.yamnet = Yamnet()

    def __call__(self, samples: npt.NDArray[np.float32]) -> Excerpt:
        out = self.yamnet.embed(samples)
        vector = np.concatenate([out.scores.mean(axis=0), out.embeddings.mean(axis=0)])
        return Excerpt(excerpt_level_dbfs(samples), vector.astype(np.float64))


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
    yam = Vectorizer(cache=args.cache / "yamnet", featurizer=YamnetFeaturizer())  # type: ignore[arg-type]
    vectorizer = Vectorizer(cache=args.cache)
    examples = dataset_examples([args.real])
    copies = archival_copies(examples, args.cache / "archival")
    real = with_columns(Corpus.of(examples + copies, vectorizer), yam)
    base_examples = dataset_examples([args.synthetic / "train", args.synthetic / "val"])
    base = with_columns(Corpus.of(base_examples, vectorizer), yam)
    print(f"vectors: {time.process_time() - started:.0f} CPU-s", flush=True)
    width = real.x.shape[1]
    shipped = width - YAMNET_WIDTH  # hand-made features, MTT tags and embedding
    hand = list(range(len(FEATURE_NAMES)))
    scores = list(range(shipped, shipped + N_CLASSES))
    embedding = list(range(shipped + N_CLASSES, width))
    mtt, pulse = music_columns(), music_columns()[:4]
    rows: dict[str, tuple[list[int], list[int]]] = {
        "shipped (MTT)": (list(range(shipped)), mtt),
        "MTT + YAMNet scores": (list(range(shipped)) + scores, mtt + scores),
        "MTT + YAMNet scores + embedding": (list(range(width)), mtt + scores + embedding),
        "MTT + YAMNet embedding": (list(range(shipped)) + embedding, mtt + embedding),
        "MTT + YAMNet embedding, gate + YAMNet scores": (list(range(width)), mtt + embedding),
        "MTT + YAMNet embedding, gate without MTT": (hand + embedding, mtt + embedding),
        "YAMNet scores": (hand + scores, pulse + scores),
        "YAMNet scores + embedding": (hand + scores + embedding, pulse + scores + embedding),
        "YAMNet embedding": (hand + embedding, pulse + embedding),
        "YAMNet scores, gate hand + YAMNet + MTT": (list(range(shipped)) + scores, pulse + scores),
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
        f1 = {c: v["f1"] for c, v in report["per_class"].items()}
        calibration = report["calibration_gap"]
        print(f"| {name} | {report['macro_f1_heritage']:.3f} | {f1['folk_music']:.3f} "
              f"| {f1['classical_music']:.3f} | {f1['opera']:.3f} | {f1['spoken_word']:.3f} "
              f"| {f1['historical_speech']:.3f} | {f1['religious_chant']:.3f} | {f1['other']:.3f} "
              f"| {report['non_heritage_false_accept']:.1%} "
              f"| {calibration:.3f} |", flush=True)  # fmt: skip
    print(f"CPU {time.process_time() - started:.0f} s")


if __name__ == "__main__":
    main()
