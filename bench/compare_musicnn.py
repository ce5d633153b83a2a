"""Which musicnn representation should the heritage classifier read? MTT, MSD or both.

musicnn 0.1.0 ships two taggers of the same architecture: MTT_musicnn (MagnaTagATune's
50 tags: classical, opera, choir, strings, sitar, ... but no "folk") and MSD_musicnn (the
Million Song Dataset's Last.fm tags: folk, country, acoustic, oldies, ... but no
classical, opera or choir). The shipped model reads MTT only. This scores, leaving one
source out on the real development set with the shipped recipe, the music branch reading
MTT's tags and embedding, MSD's, or both; and the gate reading every column, or every
column but MSD's. MSD's vectors are computed here for the very excerpts the shipped
vectorizer keeps.

MSD's ONNX file is not shipped; export it once with the same tool as MTT's (in its
throwaway virtualenv, see its docstring), then run::

    TF_USE_LEGACY_KERAS=1 /tmp/musicnn-venv/bin/python tools/export_musicnn.py \\
        --model MSD_musicnn --onnx /work/data/musicnn_msd.onnx --wheel WHEEL
    OMP_NUM_THREADS=1 .venv/bin/python bench/compare_musicnn.py \\
        --msd /work/data/musicnn_msd.onnx --real /work/data/heritage_real \\
        --synthetic /work/data/heritage-corpus --cache /work/data/heritage-cache

(``export_musicnn.py`` run in a scratch checkout: it also rewrites the committed MTT
parity references.)
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

from detectors.heritage.crossval import Corpus, real_leave_one_source_out
from detectors.heritage.excerpt import Excerpt, music_columns
from detectors.heritage.features import excerpt_level_dbfs
from detectors.heritage.musicnn import MusicnnTagger
from detectors.heritage.training import Example, Vectorizer, dataset_examples
from detectors.onnx import onnx_session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from train_heritage_model import archival_copies

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heritage_variants import branches_read, row

MSD_WIDTH = 50 + 200  # taggram + penultimate


class MsdFeaturizer:
    """An excerpt's MSD_musicnn taggram and penultimate features, for :class:`Vectorizer`
    (which keeps the excerpts, levels and silence rule of the shipped vectors)."""

    names = tuple(f"msd{i}" for i in range(MSD_WIDTH))

    def __init__(self, model: Path) -> None:
        self.session = onnx_session(model)

    def __call__(self, samples: npt.NDArray[np.float32]) -> Excerpt:
        patch = MusicnnTagger.patches(MusicnnTagger.logmel(samples))[:1]
        taggram, penultimate = self.session.run(["taggram", "penultimate"], {"logmel": patch})
        vector = np.concatenate([taggram[0], penultimate[0]]).astype(np.float64)
        return Excerpt(excerpt_level_dbfs(samples), vector)


def with_columns(corpus: Corpus, more: Vectorizer) -> Corpus:
    """The corpus with ``more``'s columns (another representation) appended to every row."""
    extra = [more.example(e) for e in corpus.examples]
    x = np.concatenate([corpus.x, np.concatenate(extra)], axis=1)
    return Corpus(x, corpus.y, corpus.groups, corpus.examples)


def corpora_with(
    more: Vectorizer, real_root: Path, synthetic_root: Path, cache: Path
) -> tuple[Corpus, Corpus, list[Example]]:
    """The real set (with the archival copies of its voices) and the synthetic base, every
    row the shipped vector with ``more``'s columns appended; and the copies."""
    vectorizer = Vectorizer(cache=cache)
    examples = dataset_examples([real_root])
    copies = archival_copies(examples, cache / "archival")
    real = with_columns(Corpus.of(examples + copies, vectorizer), more)
    base_examples = dataset_examples([synthetic_root / "train", synthetic_root / "val"])
    base = with_columns(Corpus.of(base_examples, vectorizer), more)
    return real, base, copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--msd", type=Path, required=True, help="MSD_musicnn ONNX file")
    parser.add_argument("--real", type=Path, required=True, help="real development set")
    parser.add_argument("--synthetic", type=Path, required=True, help="rendered corpus")
    parser.add_argument("--cache", type=Path, required=True, help="excerpt vector cache")
    args = parser.parse_args()
    started = time.process_time()
    # A cache folder of its own: the vector cache's key does not name the featurizer.
    msd = Vectorizer(cache=args.cache / "msd", featurizer=MsdFeaturizer(args.msd))
    real, base, copies = corpora_with(msd, args.real, args.synthetic, args.cache)
    width = real.x.shape[1]
    mtt, hand = music_columns(), music_columns()[:4]
    msd_columns = list(range(width - MSD_WIDTH, width))
    music = {"MTT": mtt, "MSD": hand + msd_columns, "MTT + MSD": mtt + msd_columns}
    gate = {"every column": list(range(width)), "all but MSD": list(range(width - MSD_WIDTH))}
    print(f"{len(real.examples) - len(copies)} real clips, {len(base.examples)} synthetic files")
    print("| gate reads | music branch reads | macro-F1 (six) | folk | classical | opera "
          "| chant | other | false accept |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for gate_name, gate_columns in gate.items():
        for music_name, music_columns_ in music.items():
            with branches_read(music=music_columns_, gate=gate_columns):
                report, _ = real_leave_one_source_out(real, base, copies)
            classes = ("folk_music", "classical_music", "opera", "religious_chant", "other")
            line = row(f"{gate_name} | {music_name}", report, classes, calibration=False)
            print(line, flush=True)
    print(f"CPU {time.process_time() - started:.0f} s")


if __name__ == "__main__":
    main()
