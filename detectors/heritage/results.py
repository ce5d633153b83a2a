"""``results.heritage_classification`` of a file from the detector's events."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from detectors.base import DetectorConfig
from detectors.heritage.detector import HeritageConfig, for_files
from stream.events import HERITAGE_CATEGORIES, Event, HeritageClassified


def with_heritage(detectors: Sequence[DetectorConfig]) -> list[DetectorConfig]:
    """The detectors of a file analysis: the configured ones, plus heritage if absent, every
    heritage detector set to report each excerpt at its file hop (``file_hop_s``)."""
    if not any(isinstance(d, HeritageConfig) for d in detectors):
        detectors = [*detectors, HeritageConfig()]
    return [for_files(d) if isinstance(d, HeritageConfig) else d for d in detectors]


def heritage_classification(events: Iterable[Event]) -> dict[str, Any]:
    """Whole-file category (the windows' scores averaged over the audio each stands for), its
    scores, and a timeline.

    Windows of several channels that cover the same span are averaged first. The
    timeline gives each window the stretch since the previous one ended and merges
    neighbours of the same category. With no classifiable audio (too short, silent)
    the category is ``other`` with confidence 0 and every score zero.
    """
    spans: dict[tuple[float, float], list[np.ndarray]] = defaultdict(list)
    labels: dict[tuple[float, float], set[str]] = defaultdict(set)
    model_version = None
    for e in events:
        if isinstance(e, HeritageClassified):
            model_version = e.model_version
            row = dict.fromkeys(HERITAGE_CATEGORIES, 0.0) | {str(k): v for k, v in e.scores.items()}
            spans[(e.t_start, e.t_end)].append(np.array([row[c] for c in HERITAGE_CATEGORIES]))
            labels[(e.t_start, e.t_end)].add(e.category)
    if not spans:
        return {
            "predicted_category": "other",
            "confidence": 0.0,
            "scores": dict.fromkeys(HERITAGE_CATEGORIES, 0.0),
            "timeline": [],
            "model_version": None,
            "note": "no classifiable audio: too short or silent",
        }
    ordered = sorted(spans.items(), key=lambda item: item[0][1])
    per_window = np.stack([np.mean(scores, axis=0) for _, scores in ordered])
    # Each classification stands for the audio since the previous one (a file analysis skips
    # excerpts in steady stretches): weighted by it, a long steady stretch counts for its
    # length, not for how often it was looked at.
    spans_s = np.array([max(end - start, 1e-3) for (start, end), _ in ordered])
    mean = (per_window * spans_s[:, None]).sum(axis=0) / spans_s.sum()
    best = int(np.argmax(mean))
    timeline: list[dict[str, Any]] = []
    previous_end = ordered[0][0][0]
    confidences: list[float] = []
    for ((start, end), _), scores in zip(ordered, per_window, strict=True):
        # The detector's steadied label when the channels agree, else the averaged leader.
        agreed = labels[(start, end)]
        label = (
            next(iter(agreed)) if len(agreed) == 1 else HERITAGE_CATEGORIES[int(np.argmax(scores))]
        )
        confidence = float(scores[HERITAGE_CATEGORIES.index(label)])
        gap = start > previous_end  # unclassified (silent) audio in between: leave a hole
        if timeline and timeline[-1]["category"] == label and not gap:
            timeline[-1]["end"] = round(end, 3)
            confidences.append(confidence)
        else:
            if timeline:
                timeline[-1]["confidence"] = round(float(np.mean(confidences)), 4)
            segment_start = max(start, previous_end)
            timeline.append(
                {"start": round(segment_start, 3), "end": round(end, 3), "category": label}
            )
            confidences = [confidence]
        previous_end = end
    timeline[-1]["confidence"] = round(float(np.mean(confidences)), 4)
    return {
        "predicted_category": HERITAGE_CATEGORIES[best],
        "confidence": round(float(mean[best]), 4),
        "scores": {c: round(float(p), 4) for c, p in zip(HERITAGE_CATEGORIES, mean, strict=True)},
        "timeline": timeline,
        "model_version": model_version,
    }
