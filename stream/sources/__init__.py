"""Audio sources, chosen by the ``type`` of their config entry."""

from typing import Annotated

from pydantic import Field

from stream.sources.base import Block, Idle, Source, SourceError, SourceItem, StatusChange
from stream.sources.device import SoundDeviceSource, SoundDeviceSourceConfig
from stream.sources.file import DemoSourceConfig, FileSource, FileSourceConfig

AnySourceConfig = Annotated[
    SoundDeviceSourceConfig | FileSourceConfig | DemoSourceConfig, Field(discriminator="type")
]


def build_source(config: AnySourceConfig) -> Source:
    """The source a config entry describes (not yet opened)."""
    if isinstance(config, SoundDeviceSourceConfig):
        return SoundDeviceSource(config)
    if isinstance(config, FileSourceConfig):
        return FileSource(config)
    return FileSource.demo(config)


__all__ = [
    "AnySourceConfig",
    "Block",
    "DemoSourceConfig",
    "FileSource",
    "FileSourceConfig",
    "Idle",
    "SoundDeviceSource",
    "SoundDeviceSourceConfig",
    "Source",
    "SourceError",
    "SourceItem",
    "StatusChange",
    "build_source",
]
