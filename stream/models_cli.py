"""``heritage-audio models list | activate NAME | rollback``: the heritage model's versions.

A running API or daemon whose heritage detector has no ``model_path`` picks up the
version activated here on its next classification, without a restart.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from config.settings import Settings
from detectors.heritage.model import ModelError
from detectors.heritage.registry import ModelRegistry, ModelVersion, registry_dir

EXIT_FAILURE = 1


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``models`` subcommand and its actions."""
    models = subparsers.add_parser(
        "models",
        help="list, activate or roll back versions of the heritage classifier",
        description="Versions of the heritage classifier under $HERITAGE_DATA_DIR/models/"
        "heritage: 'shipped' (inside the package) and those `train --from-store` made. "
        "Running services pick up an activated version without a restart.",
    )
    actions = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    actions.add_parser(
        "list",
        help="name, status (active/inactive/refused), created, validation macro-F1, "
        "corrections, reason",
    )
    activate = actions.add_parser("activate", help="make a version the active one")
    activate.add_argument("name", metavar="NAME", help="a version from `models list`")
    actions.add_parser("rollback", help="return to the version active before the current one")


def _f1(card: dict[str, Any]) -> str:
    value = card.get("validation", {}).get("macro_f1")
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _row(v: ModelVersion) -> list[str]:
    corrections = v.card.get("corrections")
    return [
        v.name,
        v.status,
        str(v.card.get("created", "-")),
        _f1(v.card),
        str(corrections) if isinstance(corrections, int) else "-",
        v.reason,
    ]


def _list(registry: ModelRegistry, _: argparse.Namespace) -> None:
    header = ["NAME", "STATUS", "CREATED", "VAL-F1", "CORRECTIONS", "REASON"]
    rows = [header, *(_row(v) for v in registry.versions())]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])


def _activate(registry: ModelRegistry, args: argparse.Namespace) -> None:
    previous = registry.active
    registry.activate(args.name)
    print(f"active heritage model: {args.name} (was {previous})")


def _rollback(registry: ModelRegistry, _: argparse.Namespace) -> None:
    previous = registry.active
    print(f"active heritage model: {registry.rollback()} (rolled back from {previous})")


ACTIONS: dict[str, Callable[[ModelRegistry, argparse.Namespace], None]] = {
    "list": _list,
    "activate": _activate,
    "rollback": _rollback,
}


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    """Run a ``models`` action; a one-line reason and exit 1 when it cannot be done."""
    registry = ModelRegistry(registry_dir(settings.HERITAGE_DATA_DIR))
    try:
        ACTIONS[args.models_command](registry, args)
    except ModelError as exc:
        print(f"heritage-audio: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return 0
