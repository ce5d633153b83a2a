"""Versions of the heritage classifier: retrained models, which one is active, rollback.

The registry lives in ``HERITAGE_DATA_DIR/models/heritage``::

    registry.json            {"active": "v2", "history": ["v1"], "versions": {...}}
    v1/heritage.skops, v1/heritage.json
    v2/...

``shipped`` is the model inside the package and needs no entry. A detector whose
``model_path`` is unset uses the active version and notices an activation on its next
classification: no restart. Every change is written to a temporary file and renamed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detectors.heritage.excerpt import VECTOR_VERSION
from detectors.heritage.model import DEFAULT_MODEL, ModelError, linear_path, load_model

logger = logging.getLogger(__name__)

SHIPPED = "shipped"
REGISTRY_FILE = "registry.json"


def configured_data_dir() -> Path:
    """HERITAGE_DATA_DIR from the settings (reading them costs milliseconds: ask once)."""
    from config.settings import load_settings  # the data directory is a deployment setting

    return Path(load_settings().HERITAGE_DATA_DIR)


def registry_dir(data_dir: Path | None = None) -> Path:
    """The registry folder of ``data_dir`` (by default HERITAGE_DATA_DIR from the settings)."""
    return Path(data_dir or configured_data_dir()) / "models" / "heritage"


@dataclass(frozen=True)
class ModelVersion:
    """One version: its name, state (active / inactive / refused), why, and its card."""

    name: str
    status: str
    reason: str
    path: Path
    card: dict[str, Any]


class ModelRegistry:
    """The versions of the heritage model under ``root`` and which one is active."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads((self.root / REGISTRY_FILE).read_text("utf-8"))
        except FileNotFoundError:
            return {"active": SHIPPED, "history": [], "versions": {}}
        except (OSError, ValueError) as exc:
            raise ModelError(f"model registry {self.root}: unreadable ({exc})") from None
        return state

    def _write(self, state: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{REGISTRY_FILE}.tmp"
        tmp.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.root / REGISTRY_FILE)

    def path_of(self, name: str) -> Path:
        """The model file of version ``name``."""
        if name == SHIPPED:
            return DEFAULT_MODEL
        return self.root / name / "heritage.skops"

    @property
    def active(self) -> str:
        """Name of the active version (``shipped`` until one is activated)."""
        return str(self._state().get("active", SHIPPED))

    def active_path(self) -> Path:
        """The model file of the active version."""
        return self.path_of(self.active)

    def versions(self) -> list[ModelVersion]:
        """Every version, the shipped one first."""
        state = self._state()
        rows = [(SHIPPED, {"status": "inactive", "reason": "inside the package"})]
        rows += list(state.get("versions", {}).items())
        out = []
        for name, info in rows:
            status = "active" if name == state.get("active", SHIPPED) else info["status"]
            card_file = self.path_of(name).with_suffix(".json")
            try:
                card = json.loads(card_file.read_text("utf-8"))
            except (OSError, ValueError):
                card = {}
            reason = str(info.get("reason", ""))
            stale = _stale(card) if card else ""  # fitted before an upgrade changed the vectors
            if stale:
                status, reason = "stale", stale
            out.append(ModelVersion(name, status, reason, card_file, card))
        return out

    def next_name(self) -> str:
        """The name the next registered version gets (``v1``, ``v2``, ...)."""
        taken = [int(n[1:]) for n in self._state().get("versions", {}) if n[1:].isdigit()]
        return f"v{max(taken, default=0) + 1}"

    def register(self, staged: Path, activate: bool, reason: str) -> str:
        """Move a trained model (``staged``.skops and .json) in as a new version."""
        name = self.next_name()
        folder = self.root / name
        folder.mkdir(parents=True)
        shutil.move(str(staged), folder / "heritage.skops")
        shutil.move(str(staged.with_suffix(".json")), folder / "heritage.json")
        if linear_path(staged).exists():
            shutil.move(str(linear_path(staged)), linear_path(folder / "heritage.skops"))
        state = self._state()
        state.setdefault("versions", {})[name] = {
            "status": "inactive" if activate else "refused",
            "reason": reason,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        self._write(state)
        if activate:
            self.activate(name)
        return name

    def activate(self, name: str) -> None:
        """Make ``name`` the active version; the one it replaces can be rolled back to."""
        state = self._state()
        if name != SHIPPED and name not in state.get("versions", {}):
            known = ", ".join([SHIPPED, *state.get("versions", {})])
            raise ModelError(f"no heritage model version {name!r} (known: {known})")
        load_model(self.path_of(name))  # refuse a version that does not load
        current = state.get("active", SHIPPED)
        if current != name:
            state.setdefault("history", []).append(current)
        state["active"] = name
        self._write(state)

    def rollback(self) -> str:
        """Return to the version active before the current one; returns its name."""
        state = self._state()
        history: list[str] = state.get("history", [])
        if not history:
            raise ModelError("nothing to roll back to: no version was active before this one")
        previous = history.pop()
        load_model(self.path_of(previous))
        state["active"] = previous
        self._write(state)
        return previous


_RESOLVED: dict[str, tuple[float, Path]] = {}
_RESOLVE_LOCK = threading.Lock()


def resolve_model_path(model_path: Path | None, data_dir: Path | None = None) -> Path:
    """The model file to use: ``model_path`` if given, else the registry's active version."""
    if model_path is not None:
        return Path(model_path)
    root = registry_dir(data_dir)
    state_file = root / REGISTRY_FILE
    try:
        mtime = state_file.stat().st_mtime
    except OSError:
        return DEFAULT_MODEL
    with _RESOLVE_LOCK:
        cached = _RESOLVED.get(str(root))
        if cached is None or cached[0] != mtime:
            cached = (mtime, _usable(ModelRegistry(root).active_path()))
            _RESOLVED[str(root)] = cached
        return cached[1]


def _usable(active: Path) -> Path:
    """``active``, or the shipped model when ``active`` was fitted on vectors this version no
    longer computes (an upgrade changed them): said once in the log, and results then name
    the shipped version, until the museum's model is retrained with ``train --from-store``."""
    try:
        stale = _stale(json.loads(active.with_suffix(".json").read_text("utf-8")))
    except (OSError, ValueError):
        return active  # loading it says what is wrong
    if not stale:
        return active
    logger.warning("the active heritage model %s is %s; the shipped model is used", active, stale)
    return DEFAULT_MODEL


def _stale(card: dict[str, Any]) -> str:
    """Why a model with this card cannot read this version's excerpt vectors ("" if it can)."""
    made_for = card.get("vector_version")
    if made_for == VECTOR_VERSION:
        return ""
    return f"fitted on vectors {made_for!r}, not {VECTOR_VERSION!r}: retrain it (--from-store)"
