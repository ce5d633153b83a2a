"""The base training vectors a model was trained on (``heritage_base.npz``), by file.

Read by retraining (:mod:`detectors.heritage.retrain`) and by cross-validation
(:mod:`detectors.heritage.crossval`), each of which the other uses: so here, apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from detectors.files import file_sha256
from detectors.heritage.training import Labels, Matrix

HOLDOUT_EVERY = 5  # base files with group % 5 == 0 are the validation slice
Groups = npt.NDArray[np.int64]


@dataclass(frozen=True)
class BaseVectors:
    """The base training vectors and the file (group) of each row."""

    x: Matrix
    y: Labels
    weights: npt.NDArray[np.float64]
    groups: Groups
    sha256: str
    synthetic: npt.NDArray[np.bool_]  # rows of rendered (synthetic) audio

    @classmethod
    def load(cls, path: Path) -> BaseVectors:
        """Read ``path``; a clear :class:`ValueError` when it is missing or malformed."""
        try:
            with np.load(path, allow_pickle=False) as data:
                x = np.asarray(data["x"], dtype=np.float64)
                y = np.asarray(data["y"]).astype(str)
                weights = np.asarray(data["weights"], dtype=np.float64)
                groups = np.asarray(data["groups"], dtype=np.int64)
                synthetic = (
                    np.asarray(data["synthetic"], dtype=bool)
                    if "synthetic" in data.files
                    else np.zeros(len(y), dtype=bool)
                )
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"base training vectors {path}: unreadable ({exc})") from None
        if not len(x) == len(y) == len(weights) == len(groups) == len(synthetic):
            raise ValueError(f"base training vectors {path}: arrays of different lengths")
        return cls(x, y, weights, groups, file_sha256(path), synthetic)

    @property
    def held_out(self) -> npt.NDArray[np.bool_]:
        """Rows of the validation slice (never trained on)."""
        return np.asarray(self.groups % HOLDOUT_EVERY == 0)
