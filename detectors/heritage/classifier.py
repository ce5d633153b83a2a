"""``HeritageClassifier``: the Python entry point for library users."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.heritage.detector import HeritageConfig, HeritageDetector, for_files
from detectors.heritage.features import SAMPLE_RATE
from detectors.heritage.model import load_model
from detectors.heritage.results import heritage_classification
from detectors.heritage.training import read_mono_16k
from stream.events import Event
from stream.resample import Resampler
from stream.windowing import Window


class HeritageClassifier:
    """Classifies audio with the same detector, windows and smoothing as the live pipeline.

    >>> classifier = HeritageClassifier().load_model("models/heritage.skops")  # doctest: +SKIP
    >>> classifier.classify_audio("ballad.flac")["category"]  # doctest: +SKIP
    'folk_music'
    """

    def __init__(self, config: HeritageConfig | None = None) -> None:
        config = config or HeritageConfig()
        # As a file analysis does: every excerpt reported, at the file hop.
        self.config = for_files(config)

    def load_model(self, path: str | Path) -> HeritageClassifier:
        """Use the model saved at ``path`` (a skops file beside its card, as ``heritage-audio
        train`` writes it); it is loaded now, so a bad file fails here (``ModelError``).
        The brief's name; returns ``self`` for chaining."""
        model_path = Path(path)
        load_model(model_path)
        self.config = self.config.model_copy(update={"model_path": model_path})
        return self

    def classify_audio(self, path: str | Path) -> dict[str, Any]:
        """The brief's name for :meth:`classify_file`."""
        return self.classify_file(path)

    def classify_file(self, path: str | Path) -> dict[str, Any]:
        """The ``heritage_classification`` section for an audio file (mixed down to mono)."""
        return self._run(read_mono_16k(Path(path)))

    def classify(self, samples: npt.ArrayLike, sample_rate: int) -> dict[str, Any]:
        """The section for audio in memory: (samples,) or (samples, channels) floats."""
        x = np.asarray(samples, dtype=np.float32)
        mono = x.mean(axis=1, dtype=np.float32) if x.ndim == 2 else x
        return self._run(Resampler(sample_rate, SAMPLE_RATE).process(mono, last=True))

    def _run(self, audio: npt.NDArray[np.float32]) -> dict[str, Any]:
        detector = HeritageDetector(self.config, 0, SAMPLE_RATE)
        hop = detector.window_samples()[1]
        events: list[Event] = []
        for start in range(0, len(audio), hop):
            events += detector.process(Window(0, start, audio[start : start + hop], SAMPLE_RATE))
        events += detector.finish(len(audio) / SAMPLE_RATE)
        return heritage_classification(events)
