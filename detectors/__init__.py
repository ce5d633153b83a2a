"""Detectors: windows in, events out. Importing this package registers every detector."""

from typing import Annotated

from pydantic import Field

from detectors.base import Detector, DetectorConfig, build_detector
from detectors.heritage.detector import HeritageConfig
from detectors.level import LevelConfig
from detectors.speaker.detector import SpeakerConfig
from detectors.vad import VadConfig

AnyDetectorConfig = Annotated[
    VadConfig | LevelConfig | SpeakerConfig | HeritageConfig, Field(discriminator="type")
]
"""A detector entry of the pipeline config, chosen by its ``type``."""

__all__ = [
    "AnyDetectorConfig",
    "Detector",
    "DetectorConfig",
    "HeritageConfig",
    "LevelConfig",
    "SpeakerConfig",
    "VadConfig",
    "build_detector",
]
