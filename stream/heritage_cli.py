"""``heritage-audio train`` and ``heritage-audio evaluate``: the heritage classifier's commands."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from config.settings import Settings
from detectors.heritage.model import DEFAULT_MODEL, load_model
from stream.cli_progress import EXIT_FAILURE, progress_bar

_LAYOUT = "a folder per category (folk_music/, classical_music/, opera/, spoken_word/, historical_speech/, religious_chant/) of audio files in any format soundfile reads"  # noqa: E501


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``train`` and ``evaluate`` subcommands."""
    train = subparsers.add_parser(
        "train",
        help="train the heritage classifier on a folder per category",
        description=f"Train a heritage classifier. DATASET_DIR holds {_LAYOUT}; give several "
        "to train on all of them. Writes MODEL (skops) and its model card MODEL.json; point "
        "a heritage detector's model_path at it to use it. With --from-store instead: learn "
        "from the corrections archivists and MAXXI stored, as a new registered version.",
    )
    train.add_argument("datasets", nargs="*", type=Path, metavar="DATASET_DIR")
    train.add_argument(
        "--out",
        type=Path,
        metavar="MODEL",
        help="model file to write (.skops); required with DATASET_DIR, with --from-store a "
        "copy of the new version",
    )
    train.add_argument(
        "--from-store",
        action="store_true",
        help="retrain on the base data plus the curators' corrections in the store (API and "
        "MAXXI); registers a new model version, active only if its validation macro-F1 does "
        "not drop (see `heritage-audio models list`)",
    )
    train.add_argument(
        "--base",
        type=Path,
        metavar="NPZ",
        help="with --from-store: base training vectors (default: the shipped heritage_base.npz)",
    )
    evaluate = subparsers.add_parser(
        "evaluate",
        help="score a heritage classifier on a folder per category",
        description=f"Accuracy, macro-F1 and the confusion matrix of a model on DATASET_DIR "
        f"({_LAYOUT}), per file (mean of its windows) and per window.",
    )
    evaluate.add_argument("datasets", nargs="+", type=Path, metavar="DATASET_DIR")
    evaluate.add_argument(
        "--model",
        type=Path,
        default=DEFAULT_MODEL,
        metavar="MODEL",
        help="model file (default: the shipped model)",
    )
    evaluate.add_argument(
        "--json",
        dest="json_out",
        metavar="PATH",
        help='also write the report as JSON ("-": stdout)',
    )


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    """Train and write the model and its card; print where they went."""
    if args.from_store:
        from stream.retrain_cli import train_from_store

        return train_from_store(args, settings)
    from detectors.heritage.training import train

    if not args.datasets or args.out is None:
        print(
            "heritage-audio: error: give DATASET_DIR and --out MODEL, or --from-store",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    if args.out.suffix != ".skops":
        print("heritage-audio: error: --out must name a .skops file", file=sys.stderr)
        return EXIT_FAILURE
    try:
        card = train(args.datasets, args.out, progress_bar("features"))
    except ValueError as exc:  # ModelError is one too
        print(f"heritage-audio: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    data = card["training_data"]
    print(
        f"trained on {data['files']} files ({data['excerpts']} excerpts), classes: "
        f"{', '.join(card['classes'])}"
    )
    print(f"model: {args.out}\ncard:  {args.out.with_suffix('.json')}")
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Print accuracy, macro-F1 and the confusion matrix."""
    del settings
    from detectors.heritage.training import evaluate, format_report

    try:
        model = load_model(args.model)
        report = evaluate(args.datasets, model, progress_bar("features"))
    except ValueError as exc:  # ModelError is one too
        print(f"heritage-audio: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"model {args.model} ({model.provenance})")
    print(format_report(report))
    if args.json_out:
        text = json.dumps(report, indent=2) + "\n"
        if args.json_out == "-":
            sys.stdout.write(text)
        else:
            Path(args.json_out).write_text(text, encoding="utf-8")
    return 0
