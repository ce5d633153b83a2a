"""Honest scores for the heritage classifier: leave one source out, cross-fitted calibration.

Real recordings come from a handful of sources (repositories, archives). A model scored
on a source it also learned from is flattered by the source's microphone, room and
mastering, so every real recording is scored by a model fitted without its source. The
calibration temperature is cross-fitted the same way: fitted on half of the sources'
held-out answers, scored on the other half.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.heritage.base_vectors import BaseVectors
from detectors.heritage.model import HeritageModel, temper
from detectors.heritage.training import (
    Example,
    Labels,
    Matrix,
    Vectorizer,
    extract,
    file_probabilities,
    fit_hierarchy,
    fit_temperature,
    scores,
)
from stream.events import HERITAGE_CATEGORIES

Fit = Callable[[Matrix, Labels, npt.NDArray[np.float64], npt.NDArray[np.bool_]], dict[str, Any]]


@dataclass(frozen=True)
class Corpus:
    """Excerpt vectors with their labels, the example of each row, and the examples."""

    x: Matrix
    y: Labels
    groups: npt.NDArray[np.int64]
    examples: list[Example]

    @classmethod
    def of(
        cls,
        examples: Sequence[Example],
        vectorizer: Vectorizer,
        progress: Callable[[int, int], None] | None = None,
    ) -> Corpus:
        """Vectors of ``examples`` (unreadable or silent ones left out)."""
        x, y, groups, used = extract(examples, vectorizer, progress)
        return cls(x, y, groups, used)

    @property
    def sources(self) -> npt.NDArray[np.str_]:
        """The source of each row."""
        names = np.asarray([e.source for e in self.examples])
        return names[self.groups]

    @classmethod
    def saved_synthetic(cls, path: Path) -> Corpus:
        """The synthetic rows of a saved training-vector file (``heritage_base.npz``, written
        by ``tools/train_heritage_model.py``): the rendered corpus's train and validation
        vectors, so real recordings can be scored without rendering the corpus again. Its
        examples are placeholders (one per file), never read."""
        saved = BaseVectors.load(path)
        rows = saved.synthetic
        if not rows.any():
            raise ValueError(f"{path}: no synthetic rows")
        files, groups = np.unique(saved.groups[rows], return_inverse=True)
        examples = [
            Example(path, str(saved.y[rows][groups == i][0]), source="synthetic")
            for i in range(len(files))
        ]
        return cls(saved.x[rows], saved.y[rows], groups.astype(np.int64), examples)

    def truth(self) -> list[str]:
        """The category of each example."""
        return [e.category for e in self.examples]


def real_weight(base_rows: int, real_rows: int, cap: float = 4.0) -> float:
    """Weight of a real excerpt against a synthetic one: real recordings count as much as the
    whole synthetic corpus, within ``cap``."""
    return float(np.clip(base_rows / max(real_rows, 1), 1.0, cap))


def stack(
    base: Corpus | None, real: Corpus, rows: npt.NDArray[np.bool_]
) -> tuple[Matrix, Labels, npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Training matrix of the base corpus plus the chosen real rows: vectors, labels, sample
    weights, and which rows are from the base (synthetic) corpus."""
    n = int(rows.sum())
    if base is None:
        return real.x[rows], real.y[rows], np.ones(n), np.zeros(n, dtype=bool)
    w = real_weight(len(base.y), n)
    x = np.concatenate([base.x, real.x[rows]])
    y = np.concatenate([base.y, real.y[rows]])
    weights = np.concatenate([np.ones(len(base.y)), np.full(n, w)])
    synthetic = np.concatenate([np.ones(len(base.y), dtype=bool), np.zeros(n, dtype=bool)])
    return x, y, weights, synthetic


def leave_one_source_out(real: Corpus, base: Corpus | None, fit: Fit = fit_hierarchy) -> Matrix:
    """Uncalibrated excerpt probabilities of every real row from a model fitted without its
    source (on the base corpus and the other sources)."""
    probs = np.zeros((len(real.y), len(HERITAGE_CATEGORIES)))
    sources = real.sources
    for source in np.unique(sources):
        held = sources == source
        x, y, w, synthetic = stack(base, real, ~held)
        model = as_model(fit(x, y, w, synthetic))
        probs[held] = model.predict(real.x[held], calibrated=False)
    return probs


def as_model(estimators: dict[str, Any], temperature: float = 1.0) -> HeritageModel:
    """An in-memory model of fitted branches (no file)."""
    return HeritageModel(estimators, {"temperature": temperature}, Path("<memory>"), "")


def mean_of_excerpts(probs: Matrix) -> Matrix:
    """A file's probabilities: the mean of its excerpts' (what results report)."""
    return np.asarray(probs.mean(axis=0), dtype=np.float64)


def cross_fitted(
    real: Corpus, probs: Matrix, aggregate: Callable[[Matrix], Matrix] = mean_of_excerpts
) -> tuple[Matrix, float]:
    """File probabilities (``aggregate`` of the excerpts') calibrated by temperatures fitted
    on the other half of the sources, and the temperature fitted on all of them (the one to
    ship)."""
    names = sorted({e.source for e in real.examples})
    half = {s: i % 2 for i, s in enumerate(names)}
    side = np.asarray([half[e.source] for e in real.examples])
    truth = real.truth()
    files = np.zeros((len(real.examples), len(HERITAGE_CATEGORIES)))
    for part in (0, 1):
        fit_files = np.flatnonzero(side != part)
        use_files = np.flatnonzero(side == part)
        if not len(use_files):
            continue
        rows = np.isin(real.groups, fit_files)
        t = (
            fit_temperature(probs[rows], real.groups[rows], [truth[i] for i in fit_files])
            if len(fit_files)
            else 1.0
        )
        for i in use_files:
            files[i] = aggregate(temper(probs[real.groups == i], t))
    overall = fit_temperature(probs, real.groups, truth)
    return files, overall


def file_report(examples: Sequence[Example], files: Matrix) -> dict[str, Any]:
    """Scores of file-level probabilities, plus the errors and calibration by source."""
    predicted = [HERITAGE_CATEGORIES[int(i)] for i in files.argmax(axis=1)]
    truth = [e.category for e in examples]
    report = scores(truth, predicted, files.max(axis=1).tolist())
    report["calibration_gap"] = round(abs(report["mean_confidence"] - report["accuracy"]), 4)
    report["errors"] = [
        {"file": e.path.name, "source": e.source, "true": e.category, "predicted": p,
         "confidence": round(float(c), 3)}
        for e, p, c in zip(examples, predicted, files.max(axis=1), strict=True)
        if p != e.category
    ]  # fmt: skip
    return report


def model_files(model: HeritageModel, corpus: Corpus) -> Matrix:
    """File-level calibrated probabilities of ``model`` on ``corpus``."""
    return file_probabilities(model.predict(corpus.x), corpus.groups)


def real_leave_one_source_out(
    real: Corpus, base: Corpus | None, derived: Sequence[Example] = ()
) -> tuple[dict[str, Any], float]:
    """The report on real recordings, each scored by a model fitted without its source and
    calibrated by a temperature fitted on the other half of the sources; and the temperature
    fitted on every source (the one to ship). ``derived`` examples (e.g. archival copies of
    real voices) are learned from like their source but never scored."""
    files, temperature = cross_fitted(real, leave_one_source_out(real, base))
    made = set(derived)
    scored = [i for i, e in enumerate(real.examples) if e not in made]
    return file_report([real.examples[i] for i in scored], files[scored]), temperature
