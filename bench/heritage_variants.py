"""Variants of the heritage recipe, scored like the shipped one on the real development set.

Each row is a model fitted with one change to the shipped recipe (``detectors/heritage/
training.py``), every clip scored leaving its source out, calibrated by temperatures
cross-fitted over the two halves of the sources, as ``bench/eval_heritage.py`` does:
the branches' inverse regularisation and synthetic weights, more hand-made columns for
the music branch, and other ways of turning a file's excerpt scores into one answer::

    OMP_NUM_THREADS=1 .venv/bin/python bench/heritage_variants.py \\
        --real /work/data/heritage_real --cache /work/data/heritage-cache
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt

import detectors.heritage.model as heritage_model
import detectors.heritage.training as heritage_training
from detectors.heritage.crossval import (
    Corpus,
    cross_fitted,
    file_report,
    leave_one_source_out,
    mean_of_excerpts,
)
from detectors.heritage.excerpt import music_columns
from detectors.heritage.features import FEATURE_NAMES
from detectors.heritage.model import DEFAULT_MODEL
from detectors.heritage.training import Vectorizer, dataset_examples

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from train_heritage_model import archival_copies

Matrix = npt.NDArray[np.float64]
PITCH = ("voiced_ratio", "voicing_mean", "f0_std_st", "f0_step_cents", "vibrato_rate_hz",
         "syllabic_modulation", "voicing_changes_per_s")  # fmt: skip


@contextmanager
def branches_read(music: list[int] | None = None, gate: list[int] | None = None) -> Iterator[None]:
    """The music branch and the gate read these columns instead of the shipped ones (None:
    the shipped ones), in training and prediction alike, for the block."""
    shipped = heritage_model.branch_columns

    def chosen(branch: str, width: int) -> list[int]:
        wanted = {"music": music, "gate": gate}.get(branch)
        return wanted if wanted is not None else shipped(branch, width)

    heritage_model.branch_columns = chosen  # type: ignore[assignment]
    heritage_training.branch_columns = chosen  # type: ignore[assignment]
    try:
        yield
    finally:
        heritage_model.branch_columns = shipped
        heritage_training.branch_columns = shipped


@contextmanager
def recipe(table: dict[str, float], changes: dict[str, float]) -> Iterator[None]:
    """A per-branch table of the recipe (``BRANCH_C``, ``SYNTHETIC_WEIGHT``) changed."""
    before = dict(table)
    table.update(changes)
    try:
        yield
    finally:
        table.clear()
        table.update(before)


def _geometric(p: Matrix) -> Matrix:
    g = np.exp(np.log(np.clip(p, 1e-6, 1.0)).mean(axis=0))
    return np.asarray(g / g.sum(), dtype=np.float64)


def _vote(p: Matrix) -> Matrix:
    votes = np.bincount(p.argmax(axis=1), minlength=p.shape[1]) + 1e-3 * p.mean(axis=0)
    return np.asarray(votes / votes.sum(), dtype=np.float64)


def _median(p: Matrix) -> Matrix:
    m = np.median(p, axis=0)
    return np.asarray(m / m.sum(), dtype=np.float64)


AGGREGATES: dict[str, Callable[[Matrix], Matrix]] = {
    "geometric mean": _geometric,
    "vote": _vote,
    "median": _median,
}
"""Other file scores than the shipped mean of the excerpts' (``crossval.mean_of_excerpts``)."""


def report(
    real: Corpus, copies: list[Any], probs: Matrix, aggregate: Callable[[Matrix], Matrix]
) -> dict[str, Any]:
    """Scores of the real clips (copies learnt from, never scored), calibrated as the
    shipped evaluation calibrates them."""
    files, _ = cross_fitted(real, probs, aggregate)
    made = set(copies)
    scored = [i for i, e in enumerate(real.examples) if e not in made]
    return file_report([real.examples[i] for i in scored], files[scored])


def row(
    name: str,
    r: dict[str, Any],
    classes: tuple[str, ...] = ("folk_music", "religious_chant", "historical_speech"),
    calibration: bool = True,
) -> str:
    """A markdown row: macro-F1, the F1 of ``classes``, false accepts (and calibration gap)."""
    f1 = [f"{r['per_class'][c]['f1']:.3f}" for c in classes]
    cells = [name, f"{r['macro_f1_heritage']:.3f}", *f1, f"{r['non_heritage_false_accept']:.1%}"]
    if calibration:
        cells.append(f"{r['calibration_gap']:.3f}")
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, required=True, help="real development set")
    parser.add_argument("--cache", type=Path, help="excerpt vector cache folder")
    args = parser.parse_args()
    started = time.process_time()
    base = Corpus.saved_synthetic(DEFAULT_MODEL.with_name("heritage_base.npz"))
    examples = dataset_examples([args.real])
    copies = archival_copies(examples, (args.cache or args.real.parent) / "archival")
    real = Corpus.of(examples + copies, Vectorizer(cache=args.cache))
    hand = [FEATURE_NAMES.index(n) for n in PITCH]
    every = [i for i in range(len(FEATURE_NAMES)) if i not in music_columns()]
    c, w = heritage_training.BRANCH_C, heritage_training.SYNTHETIC_WEIGHT
    variants: dict[str, Any] = {
        "gate C 0.02": recipe(c, {"gate": 0.02}),
        "gate C 0.1": recipe(c, {"gate": 0.1}),
        "music C 0.01": recipe(c, {"music": 0.01}),
        "music C 0.05": recipe(c, {"music": 0.05}),
        "synthetic weight, gate 0.5": recipe(w, {"gate": 0.5}),
        "synthetic weight, music 0.5": recipe(w, {"music": 0.5}),
        "music branch + pitch and voicing": branches_read(music_columns() + hand),
        "music branch + every hand-made feature": branches_read(music_columns() + every),
    }
    print(f"{len(examples)} real clips; file score = mean of excerpt scores unless named")
    print("| variant | macro-F1 (six) | folk | chant | historical | false accept | calib. gap |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    shipped = leave_one_source_out(real, base)
    print(row("shipped recipe", report(real, copies, shipped, mean_of_excerpts)), flush=True)
    for name, change in variants.items():
        with change:
            probs = leave_one_source_out(real, base)
        print(row(name, report(real, copies, probs, mean_of_excerpts)), flush=True)
    for name, aggregate in AGGREGATES.items():
        print(row(f"file score: {name}", report(real, copies, shipped, aggregate)), flush=True)
    print(f"CPU {time.process_time() - started:.0f} s")


if __name__ == "__main__":
    main()
