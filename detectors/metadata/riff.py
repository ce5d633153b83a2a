"""Embedded archive metadata of WAV files: the BWF ``bext`` chunk and the RIFF ``INFO`` list.

Read with ``wavinfo``. Its text decoding is set to Latin-1 (a superset of the ASCII
that EBU Tech 3285 prescribes), so an accented description from a European archive
never stops the analysis. A malformed chunk is reported, not raised.
"""

from __future__ import annotations

import io
import logging
import struct
from pathlib import Path
from typing import Any, BinaryIO

from wavinfo import WavInfoReader

logger = logging.getLogger(__name__)

RIFF_MAGIC = (b"RIFF", b"RF64", b"BW64")
Readable = BinaryIO | io.RawIOBase
"""A file open for reading (a plain one, or one that hashes what it reads)."""


def _is_riff(f: Readable) -> bool:
    f.seek(0)
    head = f.read(12)
    f.seek(0)
    return len(head) == 12 and head[:4] in RIFF_MAGIC and head[8:12] == b"WAVE"


def read_chunks(source: Path | Readable) -> dict[str, Any]:
    """``{"bext": {...} | None, "info": {...} | None}``, plus ``"error"`` if parsing failed.

    ``source``: the file, or a handle already open on it (left open, position moved).
    """
    if isinstance(source, Path):
        try:
            with source.open("rb") as f:
                return read_chunks(f)
        except OSError as exc:
            return {"bext": None, "info": None, "error": f"unreadable RIFF chunks: {exc}"}
    empty: dict[str, Any] = {"bext": None, "info": None}
    name = getattr(source, "name", None) or getattr(getattr(source, "path", None), "name", "")
    try:
        if not _is_riff(source):
            return empty
        reader = WavInfoReader(source, info_encoding="latin_1", bext_encoding="latin_1")
    except (OSError, ValueError, struct.error, AssertionError, StopIteration, KeyError) as exc:
        logger.warning("%s: unreadable RIFF metadata chunks (%s)", name, exc)
        return {**empty, "error": f"unreadable RIFF chunks: {type(exc).__name__}: {exc}"}
    bext = None
    if reader.bext is not None:
        raw = reader.bext.to_dict()
        umid = raw.pop("umid", None)
        bext = {k: (v.strip() if isinstance(v, str) else v) for k, v in raw.items()}
        bext["umid"] = umid.hex() if isinstance(umid, bytes) and any(umid) else None
    info = None
    if reader.info is not None:
        info = {k: v.strip() for k, v in reader.info.to_dict().items() if v and v.strip()}
    return {"bext": bext, "info": info}
