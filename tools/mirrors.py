"""Files of public repositories mirrored on this machine, read at a pinned commit.

The search tool's ``fetch`` leaves a repository as ``MIRRORS/owner+name/repo`` (a bare git
directory, or a clone with ``.git``); a manifest row names ``repo``, ``commit`` and
``path``. Shared by the tools that rebuild data sets from manifests
(``gather_real_audio.py``, ``gather_conversations.py``, ``make_room_conversations.py``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_dir(mirrors: Path, repo: str) -> Path:
    """The git directory of ``repo``'s mirror (``owner+name``, bare or with a work tree)."""
    folder = mirrors / repo.replace("/", "+", 1)
    for candidate in (folder / "repo", folder / "repo" / ".git", folder / ".git"):
        if (candidate / "HEAD").exists():
            return candidate
    return folder


def git_show(gitdir: Path, commit: str, path: str) -> bytes:
    """The bytes of ``path`` at ``commit`` (``CalledProcessError`` if it is not there)."""
    return subprocess.run(
        ["git", "--git-dir", str(gitdir), "show", f"{commit}:{path}"],
        capture_output=True,
        check=True,
    ).stdout
