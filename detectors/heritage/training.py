"""Training and evaluating the heritage classifier on folders of labelled audio.

A dataset is a directory with one sub-directory per category (``folk_music/``,
``opera/``, ...) holding audio files in any format soundfile reads, at any rate and
channel count. Each file is mixed down, resampled to 16 kHz and cut into the same
windows the live detector sees; the classifier learns from windows, a file's category
is the mean of its windows' probabilities.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf

from detectors.files import file_sha256
from detectors.heritage.features import FEATURE_NAMES, FEATURE_VERSION, SAMPLE_RATE, Featurizer
from detectors.heritage.model import HeritageModel, save_model
from stream.events import HERITAGE_CATEGORIES
from stream.resample import Resampler

logger = logging.getLogger(__name__)

WINDOW_S = 4.0
HOP_S = 1.0
MIN_S = 1.5  # shortest audio classified at all
SILENCE_DBFS = -50.0  # windows quieter than this are not classified

Matrix = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Example:
    """One labelled audio file of a dataset."""

    path: Path
    category: str


def dataset_examples(roots: Sequence[Path]) -> list[Example]:
    """Every file under ``root/<category>/`` for each root, sorted; unknown folders refused."""
    examples: list[Example] = []
    for root in roots:
        if not root.is_dir():
            raise ValueError(f"{root}: not a directory")
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if folder.name not in HERITAGE_CATEGORIES:
                known = ", ".join(HERITAGE_CATEGORIES)
                raise ValueError(f"{folder}: not a heritage category (one of: {known})")
            examples += [
                Example(p, folder.name)
                for p in sorted(folder.rglob("*"))
                if p.is_file() and not p.name.startswith(".")
            ]
    if not examples:
        raise ValueError(
            f"no audio under {', '.join(map(str, roots))}: expected <category>/ folders"
        )
    return examples


def dataset_hash(examples: Sequence[Example]) -> str:
    """SHA-256 over every file's category, name and content hash: identifies the training data."""
    digest = hashlib.sha256()
    for ex in sorted(examples, key=lambda e: (e.category, e.path.name, str(e.path))):
        digest.update(f"{ex.category}/{ex.path.name}:{file_sha256(ex.path)}\n".encode())
    return f"sha256:{digest.hexdigest()}"


def audio_windows(
    samples: npt.ArrayLike,
    window_s: float = WINDOW_S,
    hop_s: float = HOP_S,
    silence_dbfs: float = SILENCE_DBFS,
) -> Matrix:
    """Feature vectors of the non-silent windows of mono 16 kHz audio, as the detector sees them."""
    x = np.asarray(samples, dtype=np.float32)
    hop = round(hop_s * SAMPLE_RATE)
    featurizer = Featurizer(round(window_s * SAMPLE_RATE), hop)
    found = []
    for i in range(0, len(x), hop):  # the detector receives hop-sized blocks
        found += featurizer.push(x[i : i + hop])
    tail = featurizer.flush(round(MIN_S * SAMPLE_RATE))
    if tail is not None:
        found.append(tail)
    rows = [w.vector for w in found if w.rms_dbfs >= silence_dbfs]
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(FEATURE_NAMES))


def read_mono_16k(path: Path) -> npt.NDArray[np.float32]:
    """A file mixed down and resampled to 16 kHz, as the file source and resampler do."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1, dtype=np.float32)
    return Resampler(rate, SAMPLE_RATE).process(mono, last=True)


def file_windows(path: Path) -> Matrix:
    """Window feature vectors of one audio file (empty if it is too short or silent)."""
    return audio_windows(read_mono_16k(path))


def extract(
    examples: Sequence[Example], progress: Callable[[int, int], None] | None = None
) -> tuple[Matrix, npt.NDArray[np.str_], npt.NDArray[np.int64], list[Example]]:
    """Features of every readable example: (X, labels, file index per row, examples used)."""
    rows: list[Matrix] = []
    labels: list[str] = []
    groups: list[int] = []
    used: list[Example] = []
    for i, ex in enumerate(examples):
        if progress:
            progress(i, len(examples))
        try:
            x = file_windows(ex.path)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            logger.warning("skipping %s: %s", ex.path, exc)
            continue
        if not len(x):
            logger.warning("skipping %s: no audible window of %.1f s or more", ex.path, MIN_S)
            continue
        rows.append(x)
        labels += [ex.category] * len(x)
        groups += [len(used)] * len(x)
        used.append(ex)
    if not rows:
        raise ValueError("no usable audio in the dataset")
    return np.concatenate(rows), np.asarray(labels), np.asarray(groups, dtype=np.int64), used


def build_estimator(groups: npt.NDArray[np.int64], seed: int = 0) -> Any:
    """A small neural network on standardised features, calibrated (sigmoid) on folds that
    never split a file.

    Chosen over gradient-boosted trees, which scored the same on the validation split:
    scikit-learn's trees predict through OpenMP, whose thread start-up made one window
    cost over 40 ms of CPU unless ``OMP_NUM_THREADS=1``; the network needs ~1 ms anyway.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import PredefinedSplit
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    n_folds = int(min(3, len(np.unique(groups))))
    network = MLPClassifier(
        hidden_layer_sizes=(64,),
        alpha=1e-2,
        max_iter=500,
        early_stopping=len(groups) >= 200,
        random_state=seed,
    )
    base = Pipeline([("scale", StandardScaler()), ("network", network)])
    folds = PredefinedSplit((groups * 7919) % n_folds) if n_folds >= 2 else 2
    return CalibratedClassifierCV(base, method="sigmoid", cv=folds, ensemble=False)


def train(
    roots: Sequence[Path],
    out: Path,
    progress: Callable[[int, int], None] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Train on the datasets under ``roots`` and write the model and its card to ``out``."""
    examples = dataset_examples(roots)
    x, y, groups, used = extract(examples, progress)
    present = sorted(set(y.tolist()), key=HERITAGE_CATEGORIES.index)
    if len(present) < 2:
        raise ValueError(f"need at least two categories with audio, found {present}")
    estimator = build_estimator(groups, seed)
    estimator.fit(x, y)
    card: dict[str, Any] = {
        "name": out.stem,
        "classes": [str(c) for c in estimator.classes_],
        "feature_version": FEATURE_VERSION,
        "feature_names": list(FEATURE_NAMES),
        "window_s": WINDOW_S,
        "hop_s": HOP_S,
        "training_data": {
            "hash": dataset_hash(used),
            "files": len(used),
            "windows": len(x),
            "files_per_class": {c: sum(e.category == c for e in used) for c in present},
            "roots": [str(r) for r in roots],
        },
        "estimator": "CalibratedClassifierCV(StandardScaler + MLPClassifier(64), sigmoid)",
        "scikit_learn": version("scikit-learn"),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "scores": {},
    }
    return save_model(estimator, card, out)


def evaluate(
    roots: Sequence[Path],
    model: HeritageModel,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Accuracy, macro-F1 and confusion matrix per file (mean of windows) and per window."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    examples = dataset_examples(roots)
    x, y, groups, used = extract(examples, progress)
    probs = model.predict(x)
    labels = list(HERITAGE_CATEGORIES)
    window_pred = np.asarray([labels[i] for i in probs.argmax(axis=1)])
    file_true = np.asarray([ex.category for ex in used])
    file_pred = np.asarray(
        [labels[int(probs[groups == g].mean(axis=0).argmax())] for g in range(len(used))]
    )
    present = [c for c in labels if c in set(file_true) | set(file_pred)]

    def scores(true: npt.NDArray[np.str_], pred: npt.NDArray[np.str_]) -> dict[str, Any]:
        return {
            "n": len(true),
            "accuracy": round(float(accuracy_score(true, pred)), 4),
            "macro_f1": round(float(f1_score(true, pred, labels=present, average="macro")), 4),
        }

    return {
        "labels": present,
        "files": scores(file_true, file_pred),
        "windows": scores(y, window_pred),
        "confusion_matrix": confusion_matrix(file_true, file_pred, labels=present).tolist(),
        "errors": [
            {"file": str(ex.path), "true": ex.category, "predicted": str(p)}
            for ex, p in zip(used, file_pred, strict=True)
            if p != ex.category
        ],
    }


def format_report(report: dict[str, Any]) -> str:
    """A plain-text report: the scores, then the confusion matrix (rows true, columns predicted)."""
    labels: list[str] = report["labels"]
    lines = []
    for level in ("files", "windows"):
        s = report[level]
        lines.append(
            f"{level:<8} n={s['n']:<6} accuracy={s['accuracy']:.3f}  macro-F1={s['macro_f1']:.3f}"
        )
    short = [c[:10] for c in labels]
    lines.append("")
    lines.append("confusion matrix (files; rows = true, columns = predicted)")
    lines.append(" " * 18 + " ".join(f"{s:>10}" for s in short))
    for label, row in zip(labels, report["confusion_matrix"], strict=True):
        lines.append(f"{label:<18}" + " ".join(f"{v:>10d}" for v in row))
    return "\n".join(lines)
