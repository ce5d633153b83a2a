"""The live ``heritage`` detector: ``heritage.classified`` events over sliding windows.

Every ``hop_s`` it classifies the last ``window_s`` seconds of a channel, smooths the
scores (an exponential moving average) and changes the announced label only when a new
leader holds for ``switch_windows`` windows, so the label does not flicker. Windows
quieter than ``silence_dbfs`` are not classified; a long silence forgets the smoothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from detectors.base import Detector, DetectorConfig, register
from detectors.heritage.features import SAMPLE_RATE, Featurizer, WindowFeatures
from detectors.heritage.model import HeritageModel, load_model
from stream.events import HERITAGE_CATEGORIES, Event, HeritageClassified
from stream.windowing import Window


class HeritageConfig(DetectorConfig):
    """Heritage classification (folk, classical, opera, spoken word, historical speech, chant)."""

    type: Literal["heritage"] = "heritage"
    window_s: float = Field(4.0, ge=1.0, le=30.0, description="Audio classified at a time (s).")
    hop_s: float = Field(1.0, ge=0.25, le=10.0, description="Seconds between classifications.")
    model_path: Path | None = Field(
        None, description="Classifier (.skops with its .json card); the shipped model when unset."
    )
    silence_dbfs: float = Field(
        -50.0, ge=-120.0, le=0.0, description="Windows quieter than this are not classified."
    )
    smoothing: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="Weight of the newest window in the moving average of scores (1 = none).",
    )
    switch_windows: int = Field(
        2, ge=1, le=30, description="Windows a new leading category must hold to change the label."
    )
    forget_after_s: float = Field(
        5.0, ge=0.0, le=3600.0, description="Silence after which the smoothing starts afresh."
    )
    min_audio_s: float = Field(
        1.5, ge=0.5, le=30.0, description="Shortest stream classified at all (at its end)."
    )

    @model_validator(mode="after")
    def _hop_within_window(self) -> HeritageConfig:
        if self.hop_s > self.window_s:
            raise ValueError("hop_s must not exceed window_s")
        return self


def heritage_provenance(detectors: Sequence[DetectorConfig] = ()) -> str:
    """``sha256:<hex>`` of the model the heritage detector among ``detectors`` uses."""
    config = next((d for d in detectors if isinstance(d, HeritageConfig)), HeritageConfig())
    return load_model(config.model_path).provenance


@register("heritage")
class HeritageDetector(Detector):
    """Classifies one channel into heritage categories, smoothed over time."""

    name = "heritage"

    def __init__(self, config: HeritageConfig, channel: int, sample_rate: int) -> None:
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"the heritage features run at {SAMPLE_RATE} Hz, not {sample_rate}")
        self.config = config
        self.channel = channel
        self.model: HeritageModel = load_model(config.model_path)
        self._hop = round(config.hop_s * sample_rate)
        self._window = round(config.window_s * sample_rate)
        self.featurizer = Featurizer(self._window, self._hop)
        self.reset()

    def window_samples(self) -> tuple[int, int]:
        # Hop-sized blocks: the featurizer keeps the window and reuses frames across hops.
        return self._hop, self._hop

    def reset(self) -> None:
        self.featurizer.reset()
        self._origin: int | None = None  # stream sample of the featurizer's sample 0
        self._smoothed: np.ndarray | None = None
        self._label: int | None = None
        self._challenger: int | None = None
        self._held = 0
        self._silent = 0.0

    def process(self, window: Window) -> list[Event]:
        if self._origin is None:
            self._origin = window.start
        return [
            event for wf in self.featurizer.push(window.samples) if (event := self._classify(wf))
        ]

    def finish(self, t_end: float) -> list[Event]:
        del t_end
        tail = self.featurizer.flush(round(self.config.min_audio_s * SAMPLE_RATE))
        event = self._classify(tail) if tail is not None else None
        return [event] if event else []

    def _classify(self, wf: WindowFeatures) -> HeritageClassified | None:
        if wf.rms_dbfs < self.config.silence_dbfs:
            self._silent += self.config.hop_s
            if self._silent >= self.config.forget_after_s:
                self._smoothed, self._label, self._held = None, None, 0
            return None
        self._silent = 0.0
        probs = self.model.predict(wf.vector)[0]
        a = self.config.smoothing
        self._smoothed = probs if self._smoothed is None else a * probs + (1 - a) * self._smoothed
        leader = int(np.argmax(self._smoothed))
        if self._label is None or leader == self._label:
            self._label, self._held = leader, 0
        else:
            self._held = self._held + 1 if leader == self._challenger else 1
            self._challenger = leader
            if self._held >= self.config.switch_windows:
                self._label, self._held = leader, 0
        origin = self._origin or 0
        scores = {
            c: round(float(p), 4) for c, p in zip(HERITAGE_CATEGORIES, self._smoothed, strict=True)
        }
        return HeritageClassified(
            channel=self.channel,
            t_start=(origin + wf.start) / SAMPLE_RATE,
            t_end=(origin + wf.end) / SAMPLE_RATE,
            category=HERITAGE_CATEGORIES[self._label],
            confidence=round(float(self._smoothed[self._label]), 4),
            scores=scores,
        )
