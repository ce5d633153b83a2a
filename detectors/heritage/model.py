"""The heritage classifier: a three-part hierarchy of scikit-learn models, skops files, cards.

The hierarchy follows how an archivist listens:

1. ``gate``: speech, music or neither (ambience, animals, machines);
2. ``speech``: spoken_word against historical_speech, from recording-channel evidence
   only (bandwidth, noise floor, clicks, hum), never from the voice;
3. ``music``: folk, classical, opera, chant, or ``other`` (pop, rock, electronic, jazz),
   from musicnn's tags and embedding.

The probability of a category is the product along its path, so a conversation cannot
be opera unless the gate hears music; ``other`` collects the gate's "neither" and the
music branch's "other". A temperature fitted on held-out data calibrates the result.

A model is two files side by side: ``NAME.skops`` (a dict of the three estimators, saved
with skops, never pickle) and ``NAME.json`` (the model card: version, classes, vector
version, training data, scores, temperature). Loading refuses any type outside
:data:`TRUSTED_TYPES` and any vector version other than this code's.

Every branch is a standard scaler and a logistic regression, so ``save_model`` also
writes their parameters as plain arrays, ``NAME.linear.npz``, whose hash the card
records. A model with that file is evaluated with numpy alone: importing scikit-learn
(through skops) costs about 0.9 CPU-s and 40 MB, more than the classifier ever costs a
file analysis. The skops file stays the model of record (retraining, ``models`` and the
fallback when the arrays are missing or do not match the card).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.files import file_sha256
from detectors.heritage.excerpt import VECTOR_VERSION, channel_columns, music_columns
from stream.events import HERITAGE_CATEGORIES

DEFAULT_MODEL = Path(str(resources.files("detectors") / "models" / "heritage_classifier.skops"))

GATE_CLASSES = ("speech", "music", "neither")
SPEECH_CLASSES = ("spoken_word", "historical_speech")
MUSIC_CLASSES = ("folk_music", "classical_music", "opera", "religious_chant", "other")
BRANCHES = ("gate", "speech", "music")


def gate_label(category: str) -> str:
    """The gate's class of a category: pop music is music to the gate, other to the branch."""
    if category in SPEECH_CLASSES:
        return "speech"
    if category in MUSIC_CLASSES and category != "other":
        return "music"
    return "neither"


# Every type a model written by ``train`` contains beyond skops' own defaults. Anything
# else in a file is refused before it is loaded.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.dummy.DummyClassifier",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
)

Probabilities = npt.NDArray[np.float64]


class ModelError(ValueError):
    """A model file that cannot be used: missing, untrusted, or for other features."""


def branch_columns(branch: str, width: int) -> list[int]:
    """The vector columns a branch reads."""
    if branch == "speech":
        return channel_columns()
    if branch == "music":
        return music_columns()
    return list(range(width))


@dataclass(frozen=True)
class HeritageModel:
    """A loaded hierarchy with its card; ``predict`` maps onto ``HERITAGE_CATEGORIES``."""

    estimators: dict[str, Any]
    card: dict[str, Any]
    path: Path
    sha256: str
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def provenance(self) -> str:
        """``sha256:<hex>`` of the model file, for a result's ``provenance.models``."""
        return f"sha256:{self.sha256}"

    @property
    def version(self) -> str:
        """The model's version name from its card (``shipped-4`` for the shipped model)."""
        return str(self.card.get("version", self.path.stem))

    @property
    def temperature(self) -> float:
        """Calibration temperature: probabilities are raised to ``1 / T`` and renormalised."""
        return float(self.card.get("temperature", 1.0))

    def predict(self, vectors: npt.ArrayLike, calibrated: bool = True) -> Probabilities:
        """Probabilities (rows sum to 1) per category, columns in ``HERITAGE_CATEGORIES`` order."""
        x = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        x = np.nan_to_num(x, nan=0.0, posinf=1e6, neginf=-1e6)
        with self._lock:  # one model shared by every channel's detector
            parts = {
                name: self._branch(name, x[:, branch_columns(name, x.shape[1])])
                for name in BRANCHES
            }
        out = np.zeros((len(x), len(HERITAGE_CATEGORIES)))
        gate = parts["gate"]
        for branch, classes in (("speech", SPEECH_CLASSES), ("music", MUSIC_CLASSES)):
            for category in classes:
                column = HERITAGE_CATEGORIES.index(category)
                out[:, column] += gate[branch][:, 0] * parts[branch][category][:, 0]
        out[:, HERITAGE_CATEGORIES.index("other")] += gate["neither"][:, 0]
        if calibrated:
            out = temper(out, self.temperature)
        return np.asarray(out / out.sum(axis=1, keepdims=True), dtype=np.float64)

    def _branch(self, name: str, x: npt.NDArray[np.float64]) -> dict[str, Probabilities]:
        estimator = self.estimators[name]
        p = np.asarray(estimator.predict_proba(x), dtype=np.float64)
        classes = [str(c) for c in estimator.classes_]
        wanted = {"gate": GATE_CLASSES, "speech": SPEECH_CLASSES, "music": MUSIC_CLASSES}[name]
        # A class the branch never saw in training gets probability zero.
        return {
            c: p[:, [classes.index(c)]] if c in classes else np.zeros((len(x), 1)) for c in wanted
        }


@dataclass(frozen=True)
class LinearBranch:
    """A fitted scaler + logistic regression as arrays; ``predict_proba`` as scikit-learn's."""

    classes_: npt.NDArray[np.str_]
    mean: npt.NDArray[np.float64]
    scale: npt.NDArray[np.float64]
    coef: npt.NDArray[np.float64]  # (1, features) for two classes, else (classes, features)
    intercept: npt.NDArray[np.float64]

    def predict_proba(self, x: npt.NDArray[np.float64]) -> Probabilities:
        """Class probabilities, columns in ``classes_`` order."""
        z = ((x - self.mean) / self.scale) @ self.coef.T + self.intercept
        if self.coef.shape[0] == 1:  # binary: the logistic of one decision value
            p = 1.0 / (1.0 + np.exp(-z[:, 0]))
            return np.stack([1.0 - p, p], axis=1)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


def linear_path(model_path: Path) -> Path:
    """The arrays of a model's linear branches beside its ``.skops`` file."""
    return model_path.with_suffix(".linear.npz")


def linear_arrays(estimators: dict[str, Any]) -> dict[str, npt.NDArray[Any]] | None:
    """Each branch's scaler and regression as arrays, or None if a branch is another kind."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name in BRANCHES:
        steps = getattr(estimators.get(name), "named_steps", {})
        scale, logistic = steps.get("scale"), steps.get("logistic")
        if len(steps) != 2 or scale is None or logistic is None:
            return None
        if type(scale).__name__ != "StandardScaler" or type(logistic).__name__ != (
            "LogisticRegression"
        ):
            return None
        width = len(scale.mean_)
        arrays[f"{name}/classes"] = np.asarray([str(c) for c in logistic.classes_])
        arrays[f"{name}/mean"] = np.asarray(scale.mean_, dtype=np.float64)
        arrays[f"{name}/scale"] = (
            np.asarray(scale.scale_, dtype=np.float64)
            if scale.scale_ is not None
            else np.ones(width)
        )
        arrays[f"{name}/coef"] = np.asarray(logistic.coef_, dtype=np.float64)
        arrays[f"{name}/intercept"] = np.asarray(logistic.intercept_, dtype=np.float64)
    return arrays


def _linear_branches(path: Path, card: dict[str, Any]) -> dict[str, Any] | None:
    """The branches from ``NAME.linear.npz`` if it is there and the card vouches for it."""
    arrays_file = linear_path(path)
    expected = card.get("linear_sha256")
    if not expected or not arrays_file.is_file() or file_sha256(arrays_file) != expected:
        return None
    with np.load(arrays_file, allow_pickle=False) as z:
        return {
            name: LinearBranch(
                classes_=z[f"{name}/classes"],
                mean=z[f"{name}/mean"],
                scale=z[f"{name}/scale"],
                coef=z[f"{name}/coef"],
                intercept=z[f"{name}/intercept"],
            )
            for name in BRANCHES
        }


def temper(p: Probabilities, temperature: float) -> Probabilities:
    """Probabilities raised to ``1 / temperature`` and renormalised (rows)."""
    logp = np.log(np.clip(p, 1e-12, 1.0)) / max(temperature, 1e-3)
    logp -= logp.max(axis=1, keepdims=True)
    e = np.exp(logp)
    return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float64)


def card_path(model_path: Path) -> Path:
    """The model card beside a ``.skops`` file."""
    return model_path.with_suffix(".json")


def save_model(estimators: dict[str, Any], card: dict[str, Any], path: Path) -> dict[str, Any]:
    """Write ``path`` (skops) and its card, which records the file's hash; returns the card."""
    path.parent.mkdir(parents=True, exist_ok=True)
    import skops.io  # heavy (about 1 s): only when a model is saved or loaded

    skops.io.dump(estimators, path, compression=8)
    unknown = sorted(set(skops.io.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
    if unknown:
        path.unlink()
        raise ModelError(f"estimator holds types the loader would refuse: {unknown}")
    card = {**card, "model_file": path.name, "model_sha256": file_sha256(path)}
    card.pop("linear_sha256", None)
    arrays = linear_arrays(estimators)
    if arrays is not None:
        with linear_path(path).open("wb") as f:
            np.savez_compressed(f, allow_pickle=False, **arrays)
        card["linear_sha256"] = file_sha256(linear_path(path))
    else:
        linear_path(path).unlink(missing_ok=True)
    card_path(path).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card


_CACHE: dict[tuple[str, float], HeritageModel] = {}
_CACHE_LOCK = threading.Lock()


def load_model(path: Path | None = None) -> HeritageModel:
    """Load a model and its card, refusing untrusted types; cached per file and mtime."""
    path = Path(path or DEFAULT_MODEL)
    try:
        key = (str(path.resolve()), path.stat().st_mtime)
    except OSError as exc:
        raise ModelError(f"heritage model {path}: {exc.strerror}") from None
    with _CACHE_LOCK:
        if key not in _CACHE:
            if len(_CACHE) >= 4:  # a few versions at most (retraining, rollback)
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = _load(path)
        return _CACHE[key]


def _load(path: Path) -> HeritageModel:
    try:
        card: dict[str, Any] = json.loads(card_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"heritage model {path}: no readable model card beside it ({exc})"
        ) from None
    if card.get("vector_version") != VECTOR_VERSION:
        raise ModelError(
            f"heritage model {path} was trained on vectors {card.get('vector_version')!r}; "
            f"this version computes {VECTOR_VERSION!r}: retrain it with `heritage-audio train`"
        )
    linear = _linear_branches(path, card)
    if linear is not None:
        return HeritageModel(linear, card, path, file_sha256(path))
    try:
        import skops.io

        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as exc:  # skops raises many types for a corrupt archive
        raise ModelError(f"heritage model {path}: not a skops file ({exc})") from None
    unknown = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unknown:
        raise ModelError(f"heritage model {path} holds untrusted types, refused: {unknown}")
    estimators = skops.io.load(path, trusted=list(untrusted))
    if not isinstance(estimators, dict) or set(estimators) != set(BRANCHES):
        raise ModelError(f"heritage model {path}: expected the branches {', '.join(BRANCHES)}")
    return HeritageModel(estimators, card, path, file_sha256(path))
