"""Train the shipped heritage model on the generated corpus and record its scores in its card.

1. fit on ``train``, score on ``val`` (the only split choices are made on);
2. fit the shipped model on ``train`` + ``val``;
3. score it once on ``test`` (unseen pieces, voices and soundfont) for the card.

Equivalent to ``heritage-audio train CORPUS/train CORPUS/val --out MODEL`` followed by
``heritage-audio evaluate CORPUS/test --model MODEL``, with features extracted once::

    .venv/bin/python tools/make_heritage_corpus.py /tmp/heritage-corpus
    OMP_NUM_THREADS=1 .venv/bin/python tools/train_heritage_model.py /tmp/heritage-corpus
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from detectors.heritage.model import DEFAULT_MODEL, card_path, load_model
from detectors.heritage.training import (
    build_estimator,
    dataset_examples,
    dataset_hash,
    extract,
    train,
)
from stream.events import HERITAGE_CATEGORIES


def scores(estimator: Any, x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> dict[str, Any]:
    """Per-file (mean of windows) and per-window accuracy and macro-F1."""
    from sklearn.metrics import accuracy_score, f1_score

    probs = estimator.predict_proba(x)
    classes = list(estimator.classes_)
    files = np.unique(groups)
    true = [y[groups == g][0] for g in files]
    pred = [classes[int(probs[groups == g].mean(axis=0).argmax())] for g in files]
    window_pred = [classes[i] for i in probs.argmax(axis=1)]
    return {
        "files": {
            "n": len(files),
            "accuracy": round(float(accuracy_score(true, pred)), 4),
            "macro_f1": round(float(f1_score(true, pred, average="macro")), 4),
        },
        "windows": {
            "n": len(y),
            "accuracy": round(float(accuracy_score(y, window_pred)), 4),
            "macro_f1": round(float(f1_score(y, window_pred, average="macro")), 4),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()
    started = time.monotonic()
    train_x, train_y, train_g, _ = extract(dataset_examples([args.corpus / "train"]))
    val_x, val_y, val_g, _ = extract(dataset_examples([args.corpus / "val"]))
    print(f"features: {len(train_x)} + {len(val_x)} windows, {time.monotonic() - started:.0f} s")
    model = build_estimator(train_g).fit(train_x, train_y)
    val = scores(model, val_x, val_y, val_g)
    print("val (model fitted on train):", json.dumps(val))
    card = train([args.corpus / "train", args.corpus / "val"], args.out)
    shipped = load_model(args.out)
    while not (args.corpus / "manifest.json").exists():  # the generator writes it last
        print("waiting for the corpus generator to finish the test split", flush=True)
        time.sleep(30)
    from detectors.heritage.training import evaluate

    test = evaluate([args.corpus / "test"], shipped)
    card["scores"] = {
        "val_fitted_on_train": val,
        "test": {k: test[k] for k in ("files", "windows", "labels", "confusion_matrix")},
        "test_data_hash": dataset_hash(dataset_examples([args.corpus / "test"])),
        "note": "test split: pieces, TTS/singer voices and soundfont (MuseScore_General) "
        "unseen in training",
    }
    card["training_data"]["generator"] = "tools/make_heritage_corpus.py (seed 20261124)"
    card_path(args.out).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print("test (shipped model):", json.dumps(card["scores"]["test"]["files"]))
    print(f"classes {HERITAGE_CATEGORIES}; wrote {args.out} in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
