"""``heritage-audio train --from-store``: retrain on the corrections curators stored.

Reads every heritage correction (archivists' route and MAXXI's) from the store, finds
each task's audio among the stored uploads and recordings, and hands them to
:func:`detectors.heritage.retrain.retrain`, which registers a new model version.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from pathlib import Path

from config.errors import ConfigError
from config.settings import Settings
from detectors.heritage.registry import ModelRegistry, registry_dir
from detectors.heritage.training import Example, Vectorizer
from sinks.store import BlobStore, Database, SchemaBehind
from sinks.store.corrections import StoredCorrection, latest_per_range, stored_corrections
from stream.cli_progress import EXIT_FAILURE, progress_bar


async def read_corrections(settings: Settings) -> list[StoredCorrection]:
    """Every correction in the store (the newest per task and range), on a current schema."""
    db = Database(settings, pooled=False)
    try:
        await db.check_schema()
        return latest_per_range(await stored_corrections(db))
    except SchemaBehind as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"database {db.engine.url.render_as_string()}: {exc}") from None
    finally:
        await db.close()


def examples_of(
    corrections: list[StoredCorrection], blobs: BlobStore
) -> tuple[list[Example], list[StoredCorrection]]:
    """Training examples of the corrections whose audio is stored, and those whose is not."""
    examples: list[Example] = []
    missing: list[StoredCorrection] = []
    for c in corrections:
        path = blobs.path(c.content_sha256)
        if not path.is_file():
            missing.append(c)
            continue
        examples.append(Example(path, c.category, f"task:{c.task_id}", c.start or 0.0, c.end))
    return examples, missing


def train_from_store(args: argparse.Namespace, settings: Settings) -> int:
    """Retrain, register the version, print what happened (exit 0 even if it was refused)."""
    from detectors.heritage.retrain import retrain

    if args.datasets:
        print("heritage-audio: error: --from-store takes no DATASET_DIR", file=sys.stderr)
        return EXIT_FAILURE
    if args.out is not None and args.out.suffix != ".skops":
        print("heritage-audio: error: --out must name a .skops file", file=sys.stderr)
        return EXIT_FAILURE
    corrections = asyncio.run(read_corrections(settings))
    examples, missing = examples_of(corrections, BlobStore(settings.HERITAGE_DATA_DIR / "uploads"))
    for c in missing:
        print(f"skipped correction {c.id} of task {c.task_id}: its audio is no longer stored")
    if not examples:
        print("heritage-audio: error: no corrections with stored audio to learn from",
              file=sys.stderr)  # fmt: skip
        return EXIT_FAILURE
    registry = ModelRegistry(registry_dir(settings.HERITAGE_DATA_DIR))
    vectorizer = Vectorizer(cache=settings.HERITAGE_DATA_DIR / "cache" / "heritage-vectors")
    try:
        outcome = retrain(examples, registry, args.base, vectorizer, progress=progress_bar("audio"))
    except ValueError as exc:  # ModelError is one too
        print(f"heritage-audio: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    validation = outcome.card["validation"]
    tasks = len({e.source for e in examples})
    print(
        f"learned from {outcome.card['corrections']} corrections of {tasks} tasks "
        f"plus {outcome.card['training_data']['base_vectors']['rows']} base excerpts"
    )
    print(
        f"validation macro-F1 {outcome.macro_f1:.3f} ({validation['held_out_base_files']} "
        f"held-out base files, {validation['cross_validated_corrections']} corrections "
        "cross-validated)"
    )
    state = "active" if outcome.activated else "refused, kept inactive"
    print(f"{outcome.name}: {state}: {outcome.reason}")
    if args.out is not None:
        source = registry.path_of(outcome.name)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, args.out)
        shutil.copyfile(source.with_suffix(".json"), Path(args.out).with_suffix(".json"))
        print(f"copied to {args.out}")
    return 0
