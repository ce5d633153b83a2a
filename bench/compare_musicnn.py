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
import hashlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt

from detectors.heritage.crossval import Corpus, real_leave_one_source_out
from detectors.heritage.excerpt import excerpts, music_columns
from detectors.heritage.features import N_FFT, SAMPLE_RATE
from detectors.heritage.musicnn import MusicnnTagger
from detectors.heritage.training import (
    SILENCE_DBFS,
    TRAIN_HOP_S,
    Example,
    Vectorizer,
    dataset_examples,
    read_mono_16k,
)
from detectors.onnx import onnx_session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from train_heritage_model import archival_copies

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heritage_variants import branches_read

MSD_WIDTH = 50 + 200  # taggram + penultimate


class MsdVectors:
    """MSD_musicnn's taggram and penultimate features of an example's kept excerpts."""

    def __init__(self, model: Path, cache: Path) -> None:
        self.session = onnx_session(model)
        self.cache = cache
        cache.mkdir(parents=True, exist_ok=True)

    def __call__(self, ex: Example) -> npt.NDArray[np.float32]:
        key = f"{ex.path}-{ex.path.stat().st_size}-{ex.start_s:g}-{ex.end_s}-{TRAIN_HOP_S:g}"
        cached = self.cache / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.npy"
        if cached.exists():
            return np.asarray(np.load(cached), dtype=np.float32)
        audio = read_mono_16k(ex.path)
        last = None if ex.end_s is None else round(ex.end_s * SAMPLE_RATE)
        audio = audio[round(ex.start_s * SAMPLE_RATE) : last]
        rows = []
        for start, end in excerpts(audio, TRAIN_HOP_S):
            if _level_dbfs(audio[start:end]) < SILENCE_DBFS:
                continue  # the shipped vectorizer leaves it out too
            patch = MusicnnTagger.patches(MusicnnTagger.logmel(audio[start:end]))[:1]
            taggram, penultimate = self.session.run(["taggram", "penultimate"], {"logmel": patch})
            rows.append(np.concatenate([taggram[0], penultimate[0]]))
        out = np.asarray(rows, dtype=np.float32).reshape(-1, MSD_WIDTH)
        np.save(cached, out)
        return out


def _level_dbfs(x: npt.NDArray[np.float32]) -> float:
    """The excerpt level as ``excerpt_vector`` computes it (zero-padded to four frames)."""
    padded = np.pad(x.astype(np.float64), (0, max(0, N_FFT * 4 - len(x))))
    rms = float(np.sqrt(np.mean(padded**2)))
    return 20 * float(np.log10(rms)) if rms > 1e-6 else -120.0


def with_msd(corpus: Corpus, msd: MsdVectors) -> Corpus:
    """The corpus with MSD's 250 columns appended to every row."""
    extra = [msd(e) for e in corpus.examples]
    counts = np.bincount(corpus.groups, minlength=len(corpus.examples))
    for ex, rows, n in zip(corpus.examples, extra, counts, strict=True):
        if len(rows) != n:
            raise SystemExit(f"{ex.path}: {len(rows)} MSD rows for {n} excerpts")
    x = np.concatenate([corpus.x, np.concatenate(extra).astype(np.float64)], axis=1)
    return Corpus(x, corpus.y, corpus.groups, corpus.examples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--msd", type=Path, required=True, help="MSD_musicnn ONNX file")
    parser.add_argument("--real", type=Path, required=True, help="real development set")
    parser.add_argument("--synthetic", type=Path, required=True, help="rendered corpus")
    parser.add_argument("--cache", type=Path, required=True, help="excerpt vector cache")
    args = parser.parse_args()
    started = time.process_time()
    msd = MsdVectors(args.msd, args.cache / "msd")
    vectorizer = Vectorizer(cache=args.cache)
    examples = dataset_examples([args.real])
    copies = archival_copies(examples, args.cache / "archival")
    real = with_msd(Corpus.of(examples + copies, vectorizer), msd)
    base_examples = dataset_examples([args.synthetic / "train", args.synthetic / "val"])
    base = with_msd(Corpus.of(base_examples, vectorizer), msd)
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
            f1 = {c: v["f1"] for c, v in report["per_class"].items()}
            print(f"| {gate_name} | {music_name} | {report['macro_f1_heritage']:.3f} "
                  f"| {f1['folk_music']:.3f} | {f1['classical_music']:.3f} | {f1['opera']:.3f} "
                  f"| {f1['religious_chant']:.3f} | {f1['other']:.3f} "
                  f"| {report['non_heritage_false_accept']:.1%} |", flush=True)  # fmt: skip
    print(f"CPU {time.process_time() - started:.0f} s")


if __name__ == "__main__":
    main()
