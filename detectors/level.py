"""Level meter: RMS and peak in dBFS and the clipped fraction, at a fixed rate."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import Field

from detectors.base import Detector, DetectorConfig, register
from stream.events import Event, Level
from stream.windowing import Window

DBFS_FLOOR = -120.0


def dbfs(amplitude: float) -> float:
    """Amplitude (full scale 1.0) in dBFS, floored at -120."""
    if amplitude <= 0.0:
        return DBFS_FLOOR
    return max(DBFS_FLOOR, min(0.0, 20.0 * math.log10(amplitude)))


class LevelConfig(DetectorConfig):
    """Level meter."""

    type: Literal["level"] = "level"
    rate_hz: float = Field(10.0, gt=0, le=100, description="Level events per second per channel.")
    clip_threshold: float = Field(
        0.999, gt=0, le=1, description="Absolute sample value counted as clipped."
    )


@register("level")
class LevelDetector(Detector):
    """Emits a ``level`` event every 1/rate_hz seconds of audio."""

    name = "level"

    def __init__(self, config: LevelConfig, channel: int, sample_rate: int) -> None:
        self.config = config
        self.channel = channel
        self._size = max(1, round(sample_rate / config.rate_hz))

    def window_samples(self) -> tuple[int, int]:
        return self._size, self._size

    def reset(self) -> None:
        """The meter keeps no state between windows."""

    def process(self, window: Window) -> list[Event]:
        x = window.samples
        magnitude = np.abs(x)
        rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
        return [
            Level(
                channel=self.channel,
                t_start=window.t_start,
                t_end=window.t_end,
                rms_dbfs=round(dbfs(rms), 2),
                peak_dbfs=round(dbfs(float(magnitude.max())), 2),
                clipped=float(np.count_nonzero(magnitude >= self.config.clip_threshold)) / len(x),
            )
        ]
