"""The live ``heritage`` detector: ``heritage.classified`` events over a channel.

Every ``hop_s`` it classifies the last 3 s excerpt of the channel (one musicnn patch plus
channel evidence: about 40 ms of CPU), smooths the scores (an exponential moving average)
and changes the label only when a new leader holds for ``switch_windows`` excerpts.
Live (``emit = "changes"``) an event goes out only when the label changes, when its
confidence crosses ``confident`` either way, or every ``repeat_s`` as a reminder; file
analysis (``emit = "every"``) reports every classification for the result's timeline and,
with ``file_skip_steady``, classifies the excerpt between two others only where the
stretch changes (half the network's cost over a steady hour).
Excerpts quieter than ``silence_dbfs`` are not classified; a long silence forgets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field

from detectors.base import Detector, DetectorConfig, register
from detectors.heritage.excerpt import EXCERPT_S, ExcerptFeaturizer
from detectors.heritage.features import SAMPLE_RATE
from detectors.heritage.model import HeritageModel, load_model
from detectors.heritage.registry import configured_data_dir, resolve_model_path
from stream.events import HERITAGE_CATEGORIES, Event, HeritageClassified
from stream.windowing import Window


class HeritageConfig(DetectorConfig):
    """Heritage classification (folk, classical, opera, spoken word, historical speech, chant,
    or other)."""

    type: Literal["heritage"] = "heritage"
    hop_s: float = Field(
        8.0,
        ge=1.0,
        le=120.0,
        description="Seconds between classifications; each classifies the last 3 s (8 s: "
        "about 0.007 CPU-s per audio-s with musicnn and YAMNet, bench/eval_heritage.py).",
    )
    file_hop_s: float = Field(
        12.0,
        ge=1.0,
        le=120.0,
        description="File analysis: seconds between classified excerpts (cost against detail).",
    )
    file_skip_steady: bool = Field(
        True,
        description="File analysis: classify every other excerpt first, and the one between "
        "only where the stretch changes: its neighbours lead with different categories, one "
        "leads with another than the steadied label, or one was silent. Steady stretches cost "
        "half; the whole-file scores weight each classification by the audio it stands for.",
    )
    model_path: Path | None = Field(
        None,
        description="Classifier (.skops with its .json card); unset: the active version of "
        "`heritage-audio models`, else the shipped model.",
    )
    silence_dbfs: float = Field(
        -60.0, ge=-120.0, le=0.0, description="Excerpts quieter than this are not classified."
    )
    smoothing: float = Field(
        0.6,
        gt=0.0,
        le=1.0,
        description="Weight of the newest excerpt in the moving average of scores (1 = none).",
    )
    switch_windows: int = Field(
        2, ge=1, le=30, description="Excerpts a new leading category must hold to change the label."
    )
    forget_after_s: float = Field(
        5.0, ge=0.0, le=3600.0, description="Silence after which the smoothing starts afresh."
    )
    min_audio_s: float = Field(
        1.0, ge=0.2, le=30.0, description="Shortest unclassified tail classified at a stream's end."
    )
    emit: Literal["changes", "every"] = Field(
        "changes",
        description='"changes": an event when the label or its confidence band changes; '
        '"every": one per classification (file analysis).',
    )
    confident: float = Field(
        0.6, gt=0.0, lt=1.0, description="Confidence whose crossing (either way) is announced."
    )
    repeat_s: float = Field(
        60.0, ge=0.0, le=3600.0, description="Re-announce an unchanged label this often (0: never)."
    )


def for_files(config: HeritageConfig) -> HeritageConfig:
    """``config`` as a file analysis runs it: every excerpt reported, at the file hop."""
    return config.model_copy(update={"emit": "every", "hop_s": config.file_hop_s})


def heritage_model(config: HeritageConfig, data_dir: Path | None = None) -> HeritageModel:
    """The model a heritage detector with ``config`` uses now (the active version may change);
    ``data_dir``: where the version registry is (HERITAGE_DATA_DIR by default)."""
    return load_model(resolve_model_path(config.model_path, data_dir))


def heritage_provenance(detectors: Sequence[DetectorConfig] = ()) -> str:
    """``sha256:<hex>`` of the model the heritage detector among ``detectors`` uses (its
    version name is in the heritage section and in every event)."""
    config = next((d for d in detectors if isinstance(d, HeritageConfig)), HeritageConfig())
    return heritage_model(config).provenance


@register("heritage")
class HeritageDetector(Detector):
    """Classifies one channel into heritage categories, smoothed over time."""

    name = "heritage"

    def __init__(self, config: HeritageConfig, channel: int, sample_rate: int) -> None:
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"the heritage features run at {SAMPLE_RATE} Hz, not {sample_rate}")
        self.config = config
        self.channel = channel
        # The data directory is read from the settings once; the registry's state file is
        # looked at (one stat) before every excerpt, so an activated version is picked up.
        self._data_dir = None if config.model_path else configured_data_dir()
        self.model: HeritageModel = heritage_model(config, self._data_dir)
        self.featurizer = ExcerptFeaturizer()
        self._hop = round(config.hop_s * sample_rate)
        self._size = round(EXCERPT_S * sample_rate)
        self.reset()

    def window_samples(self) -> tuple[int, int]:
        # Half-second blocks: the detector keeps the last excerpt itself, and a stream's
        # end loses less than a block.
        block = SAMPLE_RATE // 2
        return block, block

    def reset(self) -> None:
        self._buffer = np.zeros(0, dtype=np.float32)
        self._position = 0  # stream samples received
        self._next = self._size  # stream sample at which the next excerpt ends
        self._last_end = 0  # end of the last classified (or skipped) excerpt
        self._smoothed: npt.NDArray[np.float64] | None = None
        self._label: int | None = None
        self._challenger: int | None = None
        self._held = 0
        self._silent = 0.0
        self._announced: tuple[int, bool] | None = None
        self._announced_at = 0.0
        # File mode, steady stretches: the excerpt held back (its audio and end) and the raw
        # scores of the last one classified (None: silent, or nothing classified yet).
        self._deferred: tuple[npt.NDArray[np.float32], int] | None = None
        self._previous: npt.NDArray[np.float64] | None = None
        self._skipping = self.config.emit == "every" and self.config.file_skip_steady

    def process(self, window: Window) -> list[Event]:
        if self._position == 0 and window.start:
            self._position = self._next = window.start
            self._next += self._size
            self._last_end = window.start
        samples = np.asarray(window.samples, dtype=np.float32).ravel()
        events: list[Event] = []
        while len(samples):
            take = min(len(samples), self._next - self._position)
            self._buffer = np.concatenate([self._buffer, samples[:take]])[-self._size :]
            self._position += take
            samples = samples[take:]
            if self._position == self._next:
                events += self._excerpt(self._buffer, self._position)
                self._next += self._hop
        return events

    def finish(self, t_end: float) -> list[Event]:
        """Classify an unclassified tail at the stream's end (short streams, the last hop)."""
        del t_end
        events = self._release_deferred()
        tail = self._position - self._last_end
        if tail < round(self.config.min_audio_s * SAMPLE_RATE) or not len(self._buffer):
            return events
        audio = self._buffer[-min(tail, self._size) :]
        event = self._apply(self._score(audio), self._position, final=True)
        return events + ([event] if event else [])

    def _excerpt(self, audio: npt.NDArray[np.float32], end: int) -> list[Event]:
        """An excerpt is due: classify it, or (steady file stretches) hold it back."""
        if not self._skipping:
            event = self._apply(self._score(audio), end)
            return [event] if event else []
        if self._deferred is None and self._previous is not None:
            self._deferred = (audio.copy(), end)  # decided when the next one is known
            return []
        probs = self._score(audio)
        events: list[Event] = []
        if self._deferred is not None:
            if probs is None or self._changed(self._previous, probs):
                events += self._release_deferred()
            else:
                self._deferred = None  # steady: the next classification stands for it too
        event = self._apply(probs, end)
        self._previous = probs
        return events + ([event] if event else [])

    def _release_deferred(self) -> list[Event]:
        """Classify the held-back excerpt (the neighbours differ, or the stream ends)."""
        if self._deferred is None:
            return []
        audio, end = self._deferred
        self._deferred = None
        event = self._apply(self._score(audio), end)
        return [event] if event else []

    def _changed(
        self, before: npt.NDArray[np.float64] | None, after: npt.NDArray[np.float64]
    ) -> bool:
        """Whether the excerpt between two classified ones may tell something new."""
        if before is None or int(np.argmax(before)) != int(np.argmax(after)):
            return True
        return self._label is None or int(np.argmax(after)) != self._label

    def _score(self, audio: npt.NDArray[np.float32]) -> npt.NDArray[np.float64] | None:
        """The model's scores of one excerpt; None if it is quieter than ``silence_dbfs``."""
        excerpt = self.featurizer(audio)
        if excerpt.rms_dbfs < self.config.silence_dbfs:
            return None
        self.model = heritage_model(self.config, self._data_dir)  # a newly activated version
        probs: npt.NDArray[np.float64] = self.model.predict(excerpt.vector)[0]
        return probs

    def _apply(
        self, probs: npt.NDArray[np.float64] | None, end: int, final: bool = False
    ) -> HeritageClassified | None:
        """Smooth ``probs`` of the excerpt ending at ``end`` into the label; its event, if due."""
        start, self._last_end = self._last_end, end
        if probs is None:
            self._silent += (end - start) / SAMPLE_RATE
            if self._silent >= self.config.forget_after_s:
                self._smoothed, self._label, self._held, self._announced = None, None, 0, None
            return None
        self._silent = 0.0
        a = self.config.smoothing
        self._smoothed = probs if self._smoothed is None else a * probs + (1 - a) * self._smoothed
        self._update_label(int(np.argmax(self._smoothed)))
        label = self._label if self._label is not None else int(np.argmax(self._smoothed))
        confidence = float(self._smoothed[label])
        if not (final or self._announce(label, confidence, end / SAMPLE_RATE)):
            return None
        scores = {
            c: round(float(p), 4) for c, p in zip(HERITAGE_CATEGORIES, self._smoothed, strict=True)
        }
        return HeritageClassified(
            channel=self.channel,
            t_start=start / SAMPLE_RATE,
            t_end=end / SAMPLE_RATE,
            category=HERITAGE_CATEGORIES[label],
            confidence=round(confidence, 4),
            scores=scores,
            model_version=self.model.version,
        )

    def _update_label(self, leader: int) -> None:
        if self._label is None or leader == self._label:
            self._label, self._held = leader, 0
            return
        self._held = self._held + 1 if leader == self._challenger else 1
        self._challenger = leader
        if self._held >= self.config.switch_windows:
            self._label, self._held = leader, 0

    def _announce(self, label: int, confidence: float, now: float) -> bool:
        """Whether this classification is news: always in ``every`` mode."""
        state = (label, confidence >= self.config.confident)
        repeat = self.config.repeat_s
        due = repeat > 0 and now - self._announced_at >= repeat
        if self.config.emit == "every" or state != self._announced or due:
            self._announced, self._announced_at = state, now
            return True
        return False
