"""Recordings' overviews (waveform peaks, coarse spectrogram), cached beside the uploads.

Computed when a job completes, so a recording's page draws at once; results
stored before then get theirs on first view. Keyed by the upload's SHA-256 and
the overview's format version.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from config.settings import Settings
from detectors.overview import VERSION, compute_overview
from sinks.store import BlobStore


def cache_path(settings: Settings, sha256: str) -> Path:
    BlobStore.check_digest(sha256)
    return settings.HERITAGE_DATA_DIR / "overviews" / f"{sha256}.v{VERSION}.json"


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=".overview-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, separators=(",", ":"))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def cached_overview(settings: Settings, audio: Path, sha256: str) -> bytes:
    """The overview of ``audio`` as JSON bytes, computed once (blocking: run in a thread)."""
    cached = cache_path(settings, sha256)
    if not cached.exists():
        _write_atomically(cached, compute_overview(audio))
    return cached.read_bytes()
