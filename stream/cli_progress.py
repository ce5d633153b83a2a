"""What the model commands (``train``, ``train --from-store``, ``evaluate``) share: the exit
code of a failed run and a progress line on a terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable

EXIT_FAILURE = 1


def progress_bar(label: str) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        if sys.stderr.isatty():
            sys.stderr.write(f"\r{label}: {done + 1}/{total} files")
            if done + 1 == total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    return show
