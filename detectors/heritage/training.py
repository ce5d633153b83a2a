"""Training and evaluating the heritage classifier on labelled audio.

A dataset is a directory with one sub-directory per category (``folk_music/``,
``opera/``, ..., ``other/``) holding audio files in any format soundfile reads. Each
file is mixed down, resampled to 16 kHz and cut into 3 s excerpts every ``hop_s``; the
classifier learns from excerpts, and a file's category is the mean of its excerpts'
probabilities, as in analysis.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf

from detectors.files import file_sha256
from detectors.heritage.excerpt import VECTOR_VERSION, ExcerptFeaturizer, excerpts
from detectors.heritage.features import SAMPLE_RATE
from detectors.heritage.model import (
    BRANCHES,
    MUSIC_CLASSES,
    SPEECH_CLASSES,
    HeritageModel,
    branch_columns,
    gate_label,
    save_model,
    temper,
)
from stream.events import HERITAGE_CATEGORIES
from stream.resample import Resampler

logger = logging.getLogger(__name__)

TRAIN_HOP_S = 3.0  # excerpts side by side when learning
SILENCE_DBFS = -60.0  # excerpts quieter than this are not learned from (nor classified)

Matrix = npt.NDArray[np.float64]
Labels = npt.NDArray[np.str_]


@dataclass(frozen=True)
class Example:
    """One labelled audio file (or a time range of it) of a dataset."""

    path: Path
    category: str
    source: str = ""  # where it came from: evaluation never splits a source
    start_s: float = 0.0
    end_s: float | None = None


def dataset_examples(roots: Sequence[Path]) -> list[Example]:
    """Every file under ``root/<category>/`` for each root, sorted; unknown folders refused."""
    examples: list[Example] = []
    for root in roots:
        if not root.is_dir():
            raise ValueError(f"{root}: not a directory")
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            if folder.name.startswith((".", "_")):  # tools, caches
                continue
            if folder.name not in HERITAGE_CATEGORIES:
                known = ", ".join(HERITAGE_CATEGORIES)
                raise ValueError(f"{folder}: not a heritage category (one of: {known})")
            sources = manifest_sources(root)
            examples += [
                Example(p, folder.name, source=sources.get(p.stem, str(root)))
                for p in sorted(folder.rglob("*"))
                if p.is_file() and not p.name.startswith(".")
            ]
    if not examples:
        raise ValueError(
            f"no audio under {', '.join(map(str, roots))}: expected <category>/ folders"
        )
    return examples


def manifest_sources(root: Path) -> dict[str, str]:
    """Clip name -> source (its ``repo`` column) from ``root/manifest.csv``, when there is one."""
    import csv

    try:
        with (root / "manifest.csv").open(encoding="utf-8", newline="") as f:
            return {row["clip_id"]: row["repo"] for row in csv.DictReader(f) if row.get("repo")}
    except (OSError, KeyError, csv.Error):
        return {}


def dataset_hash(examples: Sequence[Example]) -> str:
    """SHA-256 over every file's category, name and content hash: identifies the training data."""
    digest = hashlib.sha256()
    for ex in sorted(examples, key=lambda e: (e.category, e.path.name, str(e.path))):
        digest.update(f"{ex.category}/{ex.path.name}:{file_sha256(ex.path)}\n".encode())
    return f"sha256:{digest.hexdigest()}"


def read_mono_16k(path: Path) -> npt.NDArray[np.float32]:
    """A file mixed down and resampled to 16 kHz, as the file source and resampler do."""
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(axis=1, dtype=np.float32)
    return Resampler(rate, SAMPLE_RATE).process(mono, last=True)


@dataclass
class Vectorizer:
    """Excerpt vectors of audio, cached per file content when ``cache`` names a folder.

    ``featurizer`` is the shipped :class:`ExcerptFeaturizer` unless given; another one (for
    a comparison) needs a cache folder of its own, as the cache key does not name it."""

    hop_s: float = TRAIN_HOP_S
    cache: Path | None = None
    featurizer: ExcerptFeaturizer | None = field(default=None, repr=False)

    def audio(self, audio: npt.NDArray[np.float32]) -> Matrix:
        """Vectors of the audible excerpts of mono 16 kHz audio."""
        if self.featurizer is None:
            self.featurizer = ExcerptFeaturizer()
        rows = []
        for start, end in excerpts(audio, self.hop_s):
            excerpt = self.featurizer(audio[start:end])
            if excerpt.rms_dbfs >= SILENCE_DBFS:
                rows.append(excerpt.vector)
        width = len(self.featurizer.names)
        return np.asarray(rows, dtype=np.float64).reshape(-1, width)

    def example(self, ex: Example) -> Matrix:
        """Vectors of one example (its time range), from the cache when there."""
        key = f"{file_sha256(ex.path)}-{ex.start_s:g}-{ex.end_s}-{self.hop_s:g}-{VECTOR_VERSION}"
        name = f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.npy"
        cached = self.cache / name if self.cache is not None else None
        if cached is not None and cached.exists():
            return np.asarray(np.load(cached), dtype=np.float64)
        audio = read_mono_16k(ex.path)
        first = round(ex.start_s * SAMPLE_RATE)
        last = None if ex.end_s is None else round(ex.end_s * SAMPLE_RATE)
        x = self.audio(audio[first:last])
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.save(cached, x.astype(np.float32))
        return x


def extract(
    examples: Sequence[Example],
    vectorizer: Vectorizer | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Matrix, Labels, npt.NDArray[np.int64], list[Example]]:
    """Vectors of every readable example: (X, labels, example index per row, examples used)."""
    vectorizer = vectorizer or Vectorizer()
    rows: list[Matrix] = []
    labels: list[str] = []
    groups: list[int] = []
    used: list[Example] = []
    for i, ex in enumerate(examples):
        if progress:
            progress(i, len(examples))
        try:
            x = vectorizer.example(ex)
        except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
            logger.warning("skipping %s: %s", ex.path, exc)
            continue
        if not len(x):
            logger.warning("skipping %s: no audible excerpt", ex.path)
            continue
        rows.append(x)
        labels += [ex.category] * len(x)
        groups += [len(used)] * len(x)
        used.append(ex)
    if not rows:
        raise ValueError("no usable audio in the dataset")
    return np.concatenate(rows), np.asarray(labels), np.asarray(groups, dtype=np.int64), used


def _branch_estimator(c: float) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("logistic", LogisticRegression(C=c, class_weight="balanced", max_iter=3000)),
        ]
    )


BRANCH_C = {"gate": 0.05, "speech": 0.5, "music": 0.02}
"""Inverse regularisation per branch, chosen by leave-one-source-out on the real dev set."""


SYNTHETIC_WEIGHT = {"gate": 0.2, "speech": 1.0, "music": 1.0}
"""Weight of a synthetic excerpt per branch. The gate learns "music or not" mostly from real
recordings: rendered music with added room noise taught it that rain is music."""


def fit_hierarchy(
    x: Matrix,
    y: Labels,
    weights: npt.NDArray[np.float64] | None = None,
    synthetic: npt.NDArray[np.bool_] | None = None,
) -> dict[str, Any]:
    """The three branches fitted on excerpt vectors ``x`` with categories ``y``; ``synthetic``
    marks rows of rendered audio, weighted per branch by :data:`SYNTHETIC_WEIGHT`."""
    base = np.ones(len(y)) if weights is None else weights
    made = np.zeros(len(y), dtype=bool) if synthetic is None else synthetic
    targets = {
        "gate": (np.ones(len(y), dtype=bool), np.asarray([gate_label(c) for c in y])),
        "speech": (np.isin(y, SPEECH_CLASSES), y),
        "music": (np.isin(y, MUSIC_CLASSES), y),
    }
    if len(set(targets["gate"][1].tolist())) < 2:
        raise ValueError("need audio of at least two kinds: speech, music or other sound")
    estimators: dict[str, Any] = {}
    for name in BRANCHES:
        rows, labels = targets[name]
        columns = branch_columns(name, x.shape[1])
        if len(set(labels[rows].tolist())) < 2:
            # A branch that heard one class (or none) always answers it: a museum's own
            # model may know only a few categories.
            estimators[name] = _constant(labels[rows], name, len(columns))
            continue
        w = np.where(made, base * SYNTHETIC_WEIGHT[name], base)
        estimator = _branch_estimator(BRANCH_C[name])
        estimator.fit(x[rows][:, columns], labels[rows], logistic__sample_weight=w[rows])
        estimators[name] = estimator
    return estimators


def _constant(labels: Labels, branch: str, width: int) -> Any:
    from sklearn.dummy import DummyClassifier

    default = {"speech": SPEECH_CLASSES[0], "music": "other", "gate": "neither"}[branch]
    label = str(labels[0]) if len(labels) else default
    return DummyClassifier(strategy="most_frequent").fit(np.zeros((1, width)), [label])


def file_probabilities(probs: Matrix, groups: npt.NDArray[np.int64]) -> Matrix:
    """Mean excerpt probabilities per example (rows in example order)."""
    return np.stack([probs[groups == g].mean(axis=0) for g in np.unique(groups)])


def fit_temperature(probs: Matrix, groups: npt.NDArray[np.int64], truth: Sequence[str]) -> float:
    """The temperature minimising the log loss of file-level answers on held-out data."""
    index = np.asarray([HERITAGE_CATEGORIES.index(c) for c in truth])
    best, best_loss = 1.0, np.inf
    for t in np.geomspace(0.25, 4.0, 41):
        files = file_probabilities(temper(probs, float(t)), groups)
        loss = -np.mean(np.log(np.clip(files[np.arange(len(index)), index], 1e-9, 1.0)))
        if loss < best_loss:
            best, best_loss = float(t), float(loss)
    return best


def representation_files() -> dict[str, str]:
    """The pretrained networks an excerpt vector comes from, by file name: their sha256."""
    from detectors.heritage.musicnn import MUSICNN_MODEL
    from detectors.heritage.yamnet import YAMNET_MODEL

    return {path.name: file_sha256(path) for path in (MUSICNN_MODEL, YAMNET_MODEL)}


def make_card(
    name: str, used: Sequence[Example], x: Matrix, extra: dict[str, Any]
) -> dict[str, Any]:
    """A model card: what was learned from, with which code."""
    present = [c for c in HERITAGE_CATEGORIES if any(e.category == c for e in used)]
    return {
        "name": name,
        "version": name,
        "classes": list(HERITAGE_CATEGORIES),
        "vector_version": VECTOR_VERSION,
        "excerpt_s": 3.0,
        "training_data": {
            "hash": dataset_hash(used),
            "files": len(used),
            "excerpts": len(x),
            "files_per_class": {c: sum(e.category == c for e in used) for c in present},
        },
        "estimator": "hierarchy of StandardScaler + LogisticRegression: gate (speech/music/"
        "neither), speech (channel features), music (musicnn tags + embedding, YAMNet embedding)",
        "representations": representation_files(),
        "branch_c": BRANCH_C,
        "synthetic_weight": SYNTHETIC_WEIGHT,
        "scikit_learn": version("scikit-learn"),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        **extra,
    }


def train(
    roots: Sequence[Path],
    out: Path,
    progress: Callable[[int, int], None] | None = None,
    cache: Path | None = None,
) -> dict[str, Any]:
    """Train on the datasets under ``roots`` and write the model and its card to ``out``."""
    examples = dataset_examples(roots)
    x, y, _, used = extract(examples, Vectorizer(cache=cache), progress)
    estimators = fit_hierarchy(x, y)
    return save_model(estimators, make_card(out.stem, used, x, {"scores": {}}), out)


def scores(
    truth: Sequence[str], predicted: Sequence[str], confidence: Sequence[float]
) -> dict[str, Any]:
    """Per-class precision/recall/F1, macro-F1 over the classes present, the confusion matrix,
    how often non-heritage sound got a heritage class at confidence >= 0.5, and calibration."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    labels = [c for c in HERITAGE_CATEGORIES if c in set(truth) | set(predicted)]
    heritage = [c for c in labels if c != "other" and c in set(truth)]
    p, r, f, n = precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    t, pr, conf = np.asarray(truth), np.asarray(predicted), np.asarray(confidence)
    others = t == "other"
    accepted = others & (pr != "other") & (conf >= 0.5)
    per_class = {
        c: {
            "precision": round(float(p[i]), 3),
            "recall": round(float(r[i]), 3),
            "f1": round(float(f[i]), 3),
            "n": int(n[i]),
        }
        for i, c in enumerate(labels)
    }
    return {
        "n": len(t),
        "accuracy": round(float(np.mean(t == pr)), 4),
        "macro_f1_heritage": round(float(np.mean([per_class[c]["f1"] for c in heritage])), 4)
        if heritage
        else 0.0,
        "macro_f1_all": round(float(np.mean([per_class[c]["f1"] for c in labels])), 4),
        "per_class": per_class,
        "labels": labels,
        "confusion_matrix": confusion_matrix(t, pr, labels=labels).tolist(),
        "non_heritage_false_accept": round(float(accepted.sum() / others.sum()), 4)
        if others.any()
        else None,
        "mean_confidence": round(float(conf.mean()), 4),
    }


def evaluate(
    roots: Sequence[Path],
    model: HeritageModel,
    progress: Callable[[int, int], None] | None = None,
    cache: Path | None = None,
) -> dict[str, Any]:
    """Per-file scores (mean of excerpts) of ``model`` on the datasets under ``roots``."""
    examples = dataset_examples(roots)
    x, _, groups, used = extract(examples, Vectorizer(cache=cache), progress)
    files = file_probabilities(model.predict(x), groups)
    predicted = [HERITAGE_CATEGORIES[int(i)] for i in files.argmax(axis=1)]
    report = scores([e.category for e in used], predicted, files.max(axis=1).tolist())
    report["errors"] = [
        {"file": str(ex.path), "true": ex.category, "predicted": p}
        for ex, p in zip(used, predicted, strict=True)
        if p != ex.category
    ]
    return report


def format_report(report: dict[str, Any]) -> str:
    """A plain-text report: the scores, then the confusion matrix (rows true, columns predicted)."""
    labels: list[str] = report["labels"]
    lines = [
        f"files n={report['n']}  accuracy={report['accuracy']:.3f}  "
        f"macro-F1 (heritage classes)={report['macro_f1_heritage']:.3f}  "
        f"macro-F1 (all)={report['macro_f1_all']:.3f}  "
        f"mean confidence={report['mean_confidence']:.3f}",
    ]
    if report.get("non_heritage_false_accept") is not None:
        lines.append(
            "non-heritage sound given a heritage class at confidence >= 0.5: "
            f"{report['non_heritage_false_accept']:.1%}"
        )
    lines.append("")
    lines.append(f"{'':<18}{'precision':>10}{'recall':>10}{'F1':>10}{'n':>6}")
    for c in labels:
        s = report["per_class"][c]
        lines.append(
            f"{c:<18}{s['precision']:>10.3f}{s['recall']:>10.3f}{s['f1']:>10.3f}{s['n']:>6}"
        )
    short = [c[:10] for c in labels]
    lines.append("")
    lines.append("confusion matrix (files; rows = true, columns = predicted)")
    lines.append(" " * 18 + " ".join(f"{s:>10}" for s in short))
    for label, row in zip(labels, report["confusion_matrix"], strict=True):
        lines.append(f"{label:<18}" + " ".join(f"{v:>10d}" for v in row))
    return "\n".join(lines)
