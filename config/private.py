"""Private file modes for what the processes keep on disk: directories 0700, files 0600.

Events in a spool, sequence counters and the signing key are for this service's own
user; a process that creates them runs with a umask that keeps group and others out
(whatever umask it was started with, it only gets stricter), and what an earlier
version left with wider modes is tightened at start-up.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

logger = logging.getLogger(__name__)

PRIVATE_UMASK = 0o077


def restrict_umask() -> int:
    """Add group and other bits to the process umask; returns the umask now in force."""
    current = os.umask(PRIVATE_UMASK)
    os.umask(current | PRIVATE_UMASK)
    return current | PRIVATE_UMASK


def make_private(path: Path) -> int:
    """Directories 0700 and files 0600 at and under ``path`` (symbolic links are left
    alone, and not followed); how many modes were changed. A missing path is nothing."""
    changed = 0
    for entry in _walk(path):
        try:
            mode = entry.lstat().st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode) or not stat.S_IMODE(mode) & 0o077:
            continue
        entry.chmod(stat.S_IMODE(mode) & 0o700)
        changed += 1
    if changed:
        logger.warning("%s: group and other access removed from %d file(s)", path, changed)
    return changed


def _walk(path: Path) -> list[Path]:
    if not path.exists() or path.is_symlink():
        return []
    if not path.is_dir():
        return [path]
    found = [path]
    for root, dirs, files in os.walk(path):
        found += [Path(root, name) for name in dirs + files]
    return found
