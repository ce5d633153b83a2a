"""The detector interface and its registry.

A detector turns windows of one channel into events. It holds per-channel
state, so the pipeline builds one instance per channel from its config model.
Each detector module declares its config (``type: Literal[...]``) and registers
its class; the pipeline config's ``detectors`` list is a discriminated union of
those models.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict

from stream.events import Event
from stream.windowing import Samples, Window


class DetectorConfig(BaseModel):
    """Base of every detector's config: strict, so a misspelt key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str


T = TypeVar("T")


@runtime_checkable
class WorksAhead(Protocol):
    """A shared resource that can do its work on a channel's samples before any window."""

    stage: str  # the detector whose CPU time this work counts as

    def preview(self, start: int, samples: Samples) -> None: ...


class ChannelResources:
    """What the detectors of one channel may share, built by the first that asks.

    For example one Silero pass over the channel's frames that both the VAD and the
    speaker detector's gate read (``detectors.vad.shared_silero_frames``).
    """

    def __init__(self) -> None:
        self._items: dict[Hashable, Any] = {}
        self.cpu_s: dict[str, float] = {}
        """This thread's CPU seconds in :meth:`preview`, by the stage it counts as."""

    def get(self, key: Hashable, make: Callable[[], T]) -> T:
        """The resource under ``key``, made by ``make`` the first time."""
        if key not in self._items:
            self._items[key] = make()
        item: T = self._items[key]
        return item

    def preview(self, start: int, samples: Samples) -> None:
        """The channel's next samples (from analysis sample ``start``), before the detectors
        see them: resources that batch their work (:class:`WorksAhead`) do it now."""
        for item in self._items.values():
            if isinstance(item, WorksAhead):
                cpu = time.thread_time()
                item.preview(start, samples)
                spent = time.thread_time() - cpu
                self.cpu_s[item.stage] = self.cpu_s.get(item.stage, 0.0) + spent


class Detector(ABC):
    """Turns windows of one channel into events."""

    name: ClassVar[str]

    def attach(self, resources: ChannelResources) -> None:
        """Share work with the channel's other detectors (``resources`` is per channel).

        Called once, after every detector of the channel is built and before any window;
        detectors that share nothing ignore it.
        """
        del resources

    @abstractmethod
    def window_samples(self) -> tuple[int, int]:
        """The (window, hop) this detector needs, in samples at the analysis rate."""

    @abstractmethod
    def process(self, window: Window) -> list[Event]:
        """Analyse one window; return the events it completes."""

    def finish(self, t_end: float) -> list[Event]:
        """The stream ended (or broke) at ``t_end`` seconds: close open state, emit final events."""
        del t_end
        return []

    @abstractmethod
    def reset(self) -> None:
        """Forget all state, as for a new stream."""


DetectorFactory = Callable[[Any, int, int], Detector]
"""Builds a detector from (config, channel, sample_rate)."""

_REGISTRY: dict[str, DetectorFactory] = {}


def register(type_name: str) -> Callable[[DetectorFactory], DetectorFactory]:
    """Class decorator: make a detector buildable from configs whose ``type`` is ``type_name``."""

    def decorate(factory: DetectorFactory) -> DetectorFactory:
        if type_name in _REGISTRY:
            raise ValueError(f"detector type {type_name!r} registered twice")
        _REGISTRY[type_name] = factory
        return factory

    return decorate


def build_detector(config: DetectorConfig, channel: int, sample_rate: int) -> Detector:
    """Instantiate the registered detector for ``config`` on one channel."""
    try:
        factory = _REGISTRY[config.type]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ValueError(f"unknown detector type {config.type!r} (known: {known})") from None
    return factory(config, channel, sample_rate)
