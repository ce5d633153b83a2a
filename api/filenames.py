"""Text from clients made safe: upload file names to store and show, exports to serialise.

A name from a client may hold anything: path parts (``../../x``, ``C:\\x``), control
characters (NUL, newlines), bidirectional overrides that make ``gpj.exe`` read as
``exe.jpg``, zero-width characters, or megabytes of text. The stored name is its last
path part in NFC with every control, format (bidi, zero-width) and unassigned
character removed, trimmed of dots and spaces, and capped at ``MAX_CHARS`` keeping the
extension. The original goes into the task's metadata with ``escaped`` (printable
ASCII, backslash escapes), so nothing is lost and nothing is interpreted.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

MAX_CHARS = 200
MAX_ORIGINAL_CHARS = 1000
FALLBACK = "upload"
_DROPPED_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def normalise(raw: str) -> str:
    """A safe display and storage name for the client's ``raw`` file name."""
    last = raw.replace("\\", "/").rsplit("/", 1)[-1]
    text = unicodedata.normalize("NFC", last)
    kept = "".join(
        " " if unicodedata.category(c) == "Zs" else c
        for c in text
        if unicodedata.category(c) not in _DROPPED_CATEGORIES
    )
    name = " ".join(kept.split()).strip(". ")
    if len(name) > MAX_CHARS:
        stem, dot, extension = name.rpartition(".")
        if dot and 0 < len(extension) <= 16:
            name = stem[: MAX_CHARS - len(extension) - 1].rstrip(". ") + "." + extension
        else:
            name = name[:MAX_CHARS].rstrip(". ")
    return name or FALLBACK


def escaped(raw: str) -> str:
    """``raw`` as printable ASCII with Python's backslash escapes (a backslash itself
    doubled), capped, for the task's metadata."""
    return raw[:MAX_ORIGINAL_CHARS].encode("unicode_escape").decode("ascii")


_XML_ILLEGAL = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(value: Any) -> Any:
    """``value`` with every string (keys too) stripped of what XML 1.0 cannot hold (NUL,
    other control characters, lone surrogates), each replaced by U+FFFD: an export of
    any stored text serialises, whatever a client once sent."""
    if isinstance(value, str):
        return _XML_ILLEGAL.sub("\ufffd", value)
    if isinstance(value, dict):
        return {xml_safe(k): xml_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [xml_safe(v) for v in value]
    return value
