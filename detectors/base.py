"""The detector interface and its registry.

A detector turns windows of one channel into events. It holds per-channel
state, so the pipeline builds one instance per channel from its config model.
Each detector module declares its config (``type: Literal[...]``) and registers
its class; the pipeline config's ``detectors`` list is a discriminated union of
those models.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from stream.events import Event
from stream.windowing import Window


class DetectorConfig(BaseModel):
    """Base of every detector's config: strict, so a misspelt key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str


class Detector(ABC):
    """Turns windows of one channel into events."""

    name: ClassVar[str]

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
