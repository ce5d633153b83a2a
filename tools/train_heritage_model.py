"""Train the shipped heritage model on synthetic and real recordings, and score it honestly.

Data:

- the synthetic corpus of ``tools/make_heritage_corpus.py`` (train + val learned from; its
  test split, rendered with a soundfont, voices and pieces never learned from, scored);
- real recordings gathered by ``tools/gather_real_audio.md``'s manifest: one folder per
  category (``other/`` too) and ``manifest.csv`` naming each clip's source repository;
- real voices through an archival channel: every real ``spoken_word`` clip, degraded by
  ``heritage_synth.degrade`` (band limit, noise, clicks, hum, wow and flutter), is also
  learned as ``historical_speech``; a copy keeps its original's source, so it is never
  learned while that source is being scored.

Scores (written to the model card and printed):

1. real recordings, leave one source out: each scored by a model fitted without its source;
   confidences calibrated with a temperature cross-fitted on the other half of the sources;
2. the synthetic test split, by the shipped model.

Then the shipped model is fitted on everything but the synthetic test split, with the
temperature fitted on all held-out real answers, and the excerpt vectors it learned from
are saved (``heritage_base.npz``) for ``heritage-audio train --from-store``::

    .venv/bin/python tools/make_heritage_corpus.py /work/data/heritage-corpus
    OMP_NUM_THREADS=1 .venv/bin/python tools/train_heritage_model.py \\
        --synthetic /work/data/heritage-corpus --real /work/data/heritage_real \\
        --cache /work/data/heritage-cache
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
import zlib
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import soundfile as sf

from detectors.heritage.crossval import (
    Corpus,
    as_model,
    file_report,
    model_files,
    real_leave_one_source_out,
    real_weight,
)
from detectors.heritage.model import DEFAULT_MODEL, save_model
from detectors.heritage.retrain import BaseVectors, recipe_validation
from detectors.heritage.training import (
    Example,
    Vectorizer,
    dataset_examples,
    fit_hierarchy,
    format_report,
    make_card,
    read_mono_16k,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from heritage_synth import degrade

BASE_FEATURES = DEFAULT_MODEL.with_name("heritage_base.npz")
FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "data" / "heritage_real"
# The shipped model's version name; raise it whenever the shipped model is fitted again, so
# results (which name their model version) tell the two apart.
VERSION = "shipped-9"


def fixture_clips() -> set[str]:
    """Names of the real clips committed as test fixtures."""
    with (FIXTURES / "manifest.csv").open(encoding="utf-8", newline="") as f:
        return {row["clip_id"] for row in csv.DictReader(f)}


def archival_copies(real: list[Example], out: Path, seed: int = 7) -> list[Example]:
    """Degraded copies of the real spoken_word clips, labelled historical_speech."""
    rng = np.random.default_rng(seed)
    copies = []
    for ex in real:
        if ex.category != "spoken_word":
            continue
        target = out / "historical_speech" / f"{ex.path.stem}-archival.flac"
        severity = float(rng.uniform(0.4, 1.0))
        if not target.exists():
            audio = read_mono_16k(ex.path).astype(np.float64)
            y = degrade(
                audio, 16000, np.random.default_rng(zlib.crc32(ex.path.stem.encode())), severity
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            sf.write(target, (0.5 * y / (np.max(np.abs(y)) + 1e-9)).astype(np.float32), 16000)
        copies.append(Example(target, "historical_speech", source=ex.source))
    return copies


def show(title: str, report: dict[str, Any]) -> None:
    print(f"\n== {title}")
    print(format_report(report))
    if "calibration_gap" in report:
        print(f"calibration: |mean confidence - accuracy| = {report['calibration_gap']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=Path, required=True, help="make_heritage_corpus output")
    parser.add_argument("--real", type=Path, required=True, help="real clips + manifest.csv")
    parser.add_argument("--cache", type=Path, help="excerpt vector cache folder")
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--report", type=Path, help="also write the scores as JSON")
    parser.add_argument("--no-save", action="store_true", help="score only")
    args = parser.parse_args()
    started = time.monotonic()
    vectorizer = Vectorizer(cache=args.cache)
    base = Corpus.of(
        dataset_examples([args.synthetic / "train", args.synthetic / "val"]), vectorizer
    )
    synthetic_test = Corpus.of(dataset_examples([args.synthetic / "test"]), vectorizer)
    real_examples = dataset_examples([args.real])
    copies = archival_copies(real_examples, (args.cache or args.real.parent) / "archival")
    real = Corpus.of(real_examples + copies, vectorizer)
    print(
        f"vectors: base {len(base.y)}, real {len(real.y)} ({len(real.examples)} files), "
        f"synthetic test {len(synthetic_test.y)}; {time.monotonic() - started:.0f} s"
    )

    real_report, temperature = real_leave_one_source_out(real, base, copies)
    show("real recordings, leave one source out (cross-fitted calibration)", real_report)

    # The committed test fixtures are never learned by the shipped model.
    fixtures = fixture_clips()
    keep = np.asarray([e.path.stem not in fixtures for e in real.examples])[real.groups]
    w = real_weight(len(base.y), int(keep.sum()))
    x = np.concatenate([base.x, real.x[keep]])
    y = np.concatenate([base.y, real.y[keep]])
    weights = np.concatenate([np.ones(len(base.y)), np.full(int(keep.sum()), w)])
    synthetic = np.concatenate([np.ones(len(base.y), dtype=bool), np.zeros(int(keep.sum()), bool)])
    estimators = fit_hierarchy(x, y, weights, synthetic)
    shipped = as_model(estimators, temperature)
    synthetic_report = file_report(synthetic_test.examples, model_files(shipped, synthetic_test))
    show("synthetic test split (unseen soundfont, voices, pieces), shipped model", synthetic_report)
    scores = {
        "real_leave_one_source_out": real_report,
        "synthetic_test": synthetic_report,
        "sources": sorted({e.source for e in real.examples}),
    }
    if args.report:
        args.report.write_text(json.dumps(scores, indent=2) + "\n", encoding="utf-8")
    if args.no_save:
        return
    used = base.examples + [e for e in real.examples if e.path.stem not in fixtures]
    card: dict[str, Any] = make_card(
        VERSION,
        used,
        x,
        {"temperature": round(temperature, 4), "scores": scores, "real_weight": w},
    )
    groups = np.concatenate([base.groups, real.groups[keep] + len(base.examples)])
    np.savez_compressed(
        BASE_FEATURES,
        x=x.astype(np.float16),
        y=y,
        weights=weights.astype(np.float32),
        groups=groups.astype(np.int32),
        synthetic=synthetic,
    )
    # What `heritage-audio train --from-store` compares a retrained version with.
    card["validation"] = recipe_validation(BaseVectors.load(BASE_FEATURES))
    save_model(estimators, card, args.out)
    print(f"validation macro-F1 of the recipe (held-out fifth of the base): "
          f"{card['validation']['macro_f1']:.3f}")  # fmt: skip
    print(f"\nwrote {args.out} (temperature {temperature:.2f}) and {BASE_FEATURES}; "
          f"{time.monotonic() - started:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
