"""Retraining on curators' corrections: a new model version, activated only if no worse.

The base is the excerpt vectors the shipped model learned from (``heritage_base.npz``:
``x``, ``y``, ``weights``, ``groups`` = file of each row). Every version is scored the
same way, so versions compare:

- the base files with ``group % 5 == 0`` are never learned from by a retrained model and
  are scored by it;
- the corrections are scored by cross-validation grouped by task (up to 5 folds): each by
  a model fitted without its task's corrections.

The model registered is fitted on the rest of the base plus every correction (corrections
weighted :data:`CORRECTION_WEIGHT` times a base excerpt), its temperature fitted on the
held-out base files. It becomes active only if its validation macro-F1 is not lower than
the active version's; otherwise it is kept, refused, with the reason.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.files import file_sha256
from detectors.heritage.base_vectors import HOLDOUT_EVERY, BaseVectors, Groups
from detectors.heritage.crossval import as_model
from detectors.heritage.model import (
    DEFAULT_MODEL,
    HeritageModel,
    ModelError,
    load_model,
    save_model,
    temper,
)
from detectors.heritage.registry import ModelRegistry
from detectors.heritage.training import (
    Example,
    Labels,
    Matrix,
    Vectorizer,
    extract,
    file_probabilities,
    fit_hierarchy,
    fit_temperature,
    make_card,
    scores,
)
from stream.events import HERITAGE_CATEGORIES

logger = logging.getLogger(__name__)

BASE_VECTORS = DEFAULT_MODEL.with_name("heritage_base.npz")
CORRECTION_WEIGHT = 5.0
CV_FOLDS = 5
METRIC = "macro_f1_all"  # over every class present in truth or answers, "other" included


@dataclass(frozen=True)
class Validation:
    """File-level answers on the validation slice: held-out base files, then corrections."""

    truth: list[str]
    files: Matrix  # calibrated probabilities per file, HERITAGE_CATEGORIES columns

    def report(self) -> dict[str, Any]:
        """Scores, with ``macro_f1`` the figure versions are compared on."""
        predicted = [HERITAGE_CATEGORIES[int(i)] for i in self.files.argmax(axis=1)]
        report = scores(self.truth, predicted, self.files.max(axis=1).tolist())
        return {"macro_f1": report[METRIC], "metric": METRIC, **report}


@dataclass(frozen=True)
class Outcome:
    """What ``train --from-store`` did: the version, whether it is active, and why."""

    name: str
    activated: bool
    reason: str
    macro_f1: float
    parent: str
    parent_macro_f1: float | None
    card: dict[str, Any]


def _truth_per_file(y: Labels, groups: Groups) -> list[str]:
    return [str(y[groups == g][0]) for g in np.unique(groups)]


def _stack(
    base: BaseVectors, rows: npt.NDArray[np.bool_], x: Matrix, y: Labels, weight: float
) -> tuple[Matrix, Labels, npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    return (
        np.concatenate([base.x[rows], x]),
        np.concatenate([base.y[rows], y]),
        np.concatenate([base.weights[rows], np.full(len(y), weight)]),
        np.concatenate([base.synthetic[rows], np.zeros(len(y), dtype=bool)]),
    )


def recipe_validation(base: BaseVectors) -> dict[str, Any]:
    """The validation of the recipe with no corrections (for the shipped model's card): fitted
    without the held-out base files, calibrated and scored on them, as :func:`fit_version`."""
    held = base.held_out
    estimators = fit_hierarchy(*_stack(base, ~held, base.x[:0], base.y[:0], 1.0))
    probs = as_model(estimators).predict(base.x[held], calibrated=False)
    truth = _truth_per_file(base.y[held], base.groups[held])
    temperature = fit_temperature(probs, base.groups[held], truth)
    files = file_probabilities(temper(probs, temperature), base.groups[held])
    report = Validation(truth, files).report()
    report["held_out_base_files"] = len(truth)
    report["slice"] = f"base files with group % {HOLDOUT_EVERY} == 0 (never trained on)"
    return report


def _fold_of_task(tasks: Sequence[str]) -> dict[str, int]:
    """Tasks dealt to folds in a fixed order, so a version's folds do not depend on luck."""
    names = sorted(set(tasks))
    folds = min(CV_FOLDS, len(names))
    return {name: i % folds for i, name in enumerate(names)}


def cross_validated(
    base: BaseVectors,
    x: Matrix,
    y: Labels,
    groups: Groups,
    tasks: Sequence[str],
    *,
    weight: float,
) -> Matrix:
    """Uncalibrated excerpt probabilities of each correction row from a model fitted on the
    training base and the other folds' corrections (zeros when fewer than two tasks)."""
    probs = np.zeros((len(y), len(HERITAGE_CATEGORIES)))
    fold_of = _fold_of_task(tasks)
    if len(set(fold_of.values())) < 2:
        return probs
    row_fold = np.asarray([fold_of[tasks[g]] for g in groups])
    train = ~base.held_out
    for fold in sorted(set(fold_of.values())):
        held = row_fold == fold
        model = as_model(fit_hierarchy(*_stack(base, train, x[~held], y[~held], weight)))
        probs[held] = model.predict(x[held], calibrated=False)
    return probs


def model_validation(
    model: HeritageModel, base: BaseVectors, x: Matrix, y: Labels, groups: Groups
) -> Validation:
    """A fixed model's answers on the validation slice (for a version with no recorded score)."""
    held = base.held_out
    files = [file_probabilities(model.predict(base.x[held]), base.groups[held])]
    truth = _truth_per_file(base.y[held], base.groups[held])
    if len(y):
        files.append(file_probabilities(model.predict(x), groups))
        truth += _truth_per_file(y, groups)
    return Validation(truth, np.concatenate(files))


def recorded_macro_f1(card: dict[str, Any]) -> float | None:
    """The validation macro-F1 a card records, if any."""
    value = card.get("validation", {}).get("macro_f1") if isinstance(card, dict) else None
    return float(value) if isinstance(value, int | float) else None


def data_hash(base: BaseVectors, examples: Sequence[Example]) -> str:
    """SHA-256 over the base vectors and every correction (audio, range, category)."""
    digest = hashlib.sha256(f"base:{base.sha256}\n".encode())
    for ex in sorted(examples, key=lambda e: (e.source, e.start_s, e.end_s or -1.0)):
        digest.update(
            f"{ex.source}:{file_sha256(ex.path)}:{ex.start_s:g}-{ex.end_s}:{ex.category}\n".encode()
        )
    return f"sha256:{digest.hexdigest()}"


def _card_extra(
    base: BaseVectors,
    used: Sequence[Example],
    excerpts: int,
    *,
    weight: float,
    temperature: float,
    validation: dict[str, Any],
) -> dict[str, Any]:
    """What a retrained version's card records beyond :func:`make_card`'s fields."""
    held = base.held_out
    return {
        "temperature": temperature,
        "corrections": len(used),
        "correction_weight": weight,
        "validation": validation,
        "scores": {"validation": validation},
        "training_data": {
            "hash": data_hash(base, used),
            "base_vectors": {
                "sha256": f"sha256:{base.sha256}",
                "rows": int((~held).sum()),
                "held_out_rows": int(held.sum()),
            },
            "files": len(used),
            "excerpts": excerpts,
            "files_per_class": {
                c: n for c in HERITAGE_CATEGORIES if (n := sum(e.category == c for e in used))
            },
        },
    }


@dataclass(frozen=True)
class Trained:
    """A fitted version before registration: estimators, card and validation scores."""

    estimators: dict[str, Any]
    card: dict[str, Any]
    validation: dict[str, Any]


def fit_version(
    name: str,
    base: BaseVectors,
    corrections: Sequence[Example],
    vectorizer: Vectorizer,
    *,
    weight: float = CORRECTION_WEIGHT,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Trained, Matrix, Labels, Groups]:
    """Fit a version on the training base plus ``corrections`` and score it on the
    validation slice; also returns the corrections' vectors, labels and groups."""
    x, y, groups, used = extract(corrections, vectorizer, progress)
    tasks = [e.source for e in used]
    cv = cross_validated(base, x, y, groups, tasks, weight=weight)
    estimators = fit_hierarchy(*_stack(base, ~base.held_out, x, y, weight))
    held = base.held_out
    held_probs = as_model(estimators).predict(base.x[held], calibrated=False)
    held_truth = _truth_per_file(base.y[held], base.groups[held])
    temperature = fit_temperature(held_probs, base.groups[held], held_truth)
    calibrated = as_model(estimators, temperature)
    files = [calibrated.predict(base.x[held])]
    rows: list[Groups] = [base.groups[held]]
    truth = list(held_truth)
    if len(set(_fold_of_task(tasks).values())) >= 2:
        files.append(temper(cv, temperature))
        rows.append(groups + int(base.groups.max()) + 1)
        truth += _truth_per_file(y, groups)
    probs = np.concatenate(files)
    all_groups = np.concatenate(rows)
    validation = Validation(truth, file_probabilities(probs, all_groups)).report()
    validation["held_out_base_files"] = len(held_truth)
    validation["cross_validated_corrections"] = len(truth) - len(held_truth)
    validation["slice"] = (
        f"base files with group % {HOLDOUT_EVERY} == 0 (never trained on), plus the "
        f"corrections by {min(CV_FOLDS, len(set(tasks)))}-fold cross-validation by task"
    )
    extra = _card_extra(
        base, used, len(y), weight=weight, temperature=temperature, validation=validation
    )
    card = make_card(name, used, np.concatenate([base.x[~held], x]), extra)
    return Trained(estimators, card, validation), x, y, groups


def _parent_score(
    registry: ModelRegistry, base: BaseVectors, x: Matrix, y: Labels, groups: Groups
) -> tuple[float | None, str]:
    """The active version's validation macro-F1: recorded on its card, else computed on the
    same slice; ``None`` (with why) when it cannot be scored."""
    active = registry.active
    card = next((v.card for v in registry.versions() if v.name == active), {})
    recorded = recorded_macro_f1(card)
    if recorded is not None:
        return recorded, "recorded on its card"
    try:
        model = load_model(registry.path_of(active))
    except ModelError as exc:
        return None, str(exc)
    return float(model_validation(model, base, x, y, groups).report()["macro_f1"]), (
        "computed now on the same slice"
    )


def retrain(
    corrections: Sequence[Example],
    registry: ModelRegistry,
    base_path: Path | None = None,
    vectorizer: Vectorizer | None = None,
    *,
    weight: float = CORRECTION_WEIGHT,
    progress: Callable[[int, int], None] | None = None,
) -> Outcome:
    """Fit a version on the base (``base_path``, by default :data:`BASE_VECTORS`) plus
    ``corrections``, register it, and activate it if its validation macro-F1 is not lower
    than the active version's."""
    if not corrections:
        raise ValueError("no corrections to learn from")
    base = BaseVectors.load(base_path or BASE_VECTORS)
    parent = registry.active
    name = registry.next_name()
    trained, x, y, groups = fit_version(
        name, base, corrections, vectorizer or Vectorizer(), weight=weight, progress=progress
    )
    new = float(trained.validation["macro_f1"])
    if not trained.validation["cross_validated_corrections"]:  # the same slice for both
        x, y, groups = x[:0], y[:0], groups[:0]
    old, how = _parent_score(registry, base, x, y, groups)
    if old is None:
        activate = True
        reason = f"validation macro-F1 {new:.3f}; {parent} could not be scored ({how})"
    elif new >= old:
        activate = True
        reason = f"validation macro-F1 {new:.3f} >= {old:.3f} of {parent} ({how})"
    else:
        activate = False
        reason = f"validation macro-F1 {new:.3f} is lower than {old:.3f} of {parent} ({how})"
    card = {**trained.card, "parent": parent, "parent_validation_macro_f1": old}
    with tempfile.TemporaryDirectory(prefix="heritage-retrain-") as tmp:
        staged = Path(tmp) / f"{name}.skops"
        card = save_model(trained.estimators, card, staged)
        registered = registry.register(staged, activate, reason)
    logger.info("heritage model %s registered (%s): %s", registered,
                "active" if activate else "refused", reason)  # fmt: skip
    return Outcome(registered, activate, reason, new, parent, old, card)


__all__ = ["BASE_VECTORS", "BaseVectors", "Outcome", "retrain"]
