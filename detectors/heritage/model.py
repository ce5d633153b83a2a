"""The heritage classifier: calibrated scikit-learn model, skops files and their model card.

A model is two files side by side: ``NAME.skops`` (the estimator, saved with skops,
never pickle) and ``NAME.json`` (the model card: classes, feature version, training
data hash, scores). Loading refuses any file that contains a type outside
:data:`TRUSTED_TYPES`, so a model from an untrusted path cannot run code, and refuses
a model whose feature version or feature count differs from this code's.
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
from detectors.heritage.features import FEATURE_NAMES, FEATURE_VERSION
from stream.events import HERITAGE_CATEGORIES

DEFAULT_MODEL = Path(str(resources.files("detectors") / "models" / "heritage_classifier.skops"))

# Every type a model written by ``train`` contains beyond skops' own defaults. Anything
# else in a file is refused before it is loaded.
TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.calibration.CalibratedClassifierCV",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.model_selection._split.PredefinedSplit",
    "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._label.LabelBinarizer",
)

Probabilities = npt.NDArray[np.float64]


class ModelError(ValueError):
    """A model file that cannot be used: missing, untrusted, or for other features."""


@dataclass(frozen=True)
class HeritageModel:
    """A loaded classifier with its card; ``predict`` maps onto ``HERITAGE_CATEGORIES``."""

    estimator: Any
    card: dict[str, Any]
    path: Path
    sha256: str
    _columns: tuple[int, ...] = field(default=(), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def provenance(self) -> str:
        """``sha256:<hex>`` of the model file, for a result's ``provenance.models``."""
        return f"sha256:{self.sha256}"

    def predict(self, vectors: npt.ArrayLike) -> Probabilities:
        """Probabilities (rows sum to 1) per category, columns in ``HERITAGE_CATEGORIES`` order."""
        x = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        x = np.nan_to_num(x, nan=0.0, posinf=1e6, neginf=-1e6)
        with self._lock:  # one estimator shared by every channel's detector
            p = np.asarray(self.estimator.predict_proba(x), dtype=np.float64)
        out = np.zeros((len(x), len(HERITAGE_CATEGORIES)))
        out[:, list(self._columns)] = p
        total = out.sum(axis=1, keepdims=True)
        fallback = np.full_like(out, 1 / out.shape[1])
        return np.asarray(np.divide(out, total, out=fallback, where=total > 0), dtype=np.float64)


def card_path(model_path: Path) -> Path:
    """The model card beside a ``.skops`` file."""
    return model_path.with_suffix(".json")


def save_model(estimator: Any, card: dict[str, Any], path: Path) -> dict[str, Any]:
    """Write ``path`` (skops) and its card, which records the file's hash; returns the card."""
    path.parent.mkdir(parents=True, exist_ok=True)
    import skops.io  # heavy (about 1 s): only when a model is saved or loaded

    skops.io.dump(estimator, path, compression=8)
    unknown = sorted(set(skops.io.get_untrusted_types(file=path)) - set(TRUSTED_TYPES))
    if unknown:
        path.unlink()
        raise ModelError(f"estimator holds types the loader would refuse: {unknown}")
    card = {**card, "model_file": path.name, "model_sha256": file_sha256(path)}
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
            _CACHE.clear()  # one model in use at a time; a retrained file replaces it
            _CACHE[key] = _load(path)
        return _CACHE[key]


def _load(path: Path) -> HeritageModel:
    try:
        card: dict[str, Any] = json.loads(card_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"heritage model {path}: no readable model card beside it ({exc})"
        ) from None
    if card.get("feature_version") != FEATURE_VERSION:
        raise ModelError(
            f"heritage model {path} was trained on features {card.get('feature_version')!r}; "
            f"this version computes {FEATURE_VERSION!r}: retrain it with `heritage-audio train`"
        )
    try:
        import skops.io

        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as exc:  # skops raises many types for a corrupt archive
        raise ModelError(f"heritage model {path}: not a skops file ({exc})") from None
    unknown = sorted(set(untrusted) - set(TRUSTED_TYPES))
    if unknown:
        raise ModelError(f"heritage model {path} holds untrusted types, refused: {unknown}")
    estimator = skops.io.load(path, trusted=list(untrusted))
    classes = [str(c) for c in getattr(estimator, "classes_", [])]
    if not classes or any(c not in HERITAGE_CATEGORIES for c in classes):
        raise ModelError(f"heritage model {path}: classes {classes} are not heritage categories")
    if getattr(estimator, "n_features_in_", len(FEATURE_NAMES)) != len(FEATURE_NAMES):
        raise ModelError(f"heritage model {path}: expects {estimator.n_features_in_} features")
    columns = tuple(HERITAGE_CATEGORIES.index(c) for c in classes)
    return HeritageModel(estimator, card, path, file_sha256(path), columns)
