"""What every audio source yields: blocks of frames and changes of its status.

A source runs in its pipeline's thread; ``items()`` blocks until audio is
available and ends when the source does (a file) or when ``stop`` is set.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from stream.events import SourceState

Frames = npt.NDArray[np.float32]
"""Audio frames, shape (frames, channels), float32 in [-1, 1]."""


class SourceError(Exception):
    """A source cannot be used; the message is one line an operator can act on."""


@dataclass(frozen=True, slots=True)
class Block:
    """Consecutive frames from the source, all channels."""

    frames: Frames


@dataclass(frozen=True, slots=True)
class StatusChange:
    """The source's health changed; ``gap_s`` is audio time missed (on recovery)."""

    state: SourceState
    message: str = ""
    gap_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Idle:
    """Nothing to deliver yet, but the source is alive (e.g. waiting to reopen a device)."""


SourceItem = Block | StatusChange | Idle


class Source(ABC):
    """An audio input: a device, a file, the demo scene."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.overflows = 0
        self.dropped_blocks = 0

    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """Input sample rate in Hz (valid after :meth:`open`)."""

    @property
    @abstractmethod
    def channels(self) -> int:
        """Channels delivered per frame, each analysed on its own (valid after :meth:`open`)."""

    @property
    def is_finite(self) -> bool:
        """True when :meth:`items` ends by itself (a file that does not loop)."""
        return False

    @abstractmethod
    def open(self) -> None:
        """Check the source can be used, raising :class:`SourceError` with the reason if not."""

    @abstractmethod
    def items(self, stop: threading.Event) -> Iterator[SourceItem]:
        """Yield blocks and status changes until the source ends or ``stop`` is set."""
