"""What the heritage classifier sees of a 3 s excerpt: musicnn, YAMNet, channel evidence.

One vector per excerpt of mono 16 kHz audio:

- musicnn (MTT_musicnn, trained on real music): its 50 tag probabilities (classical,
  opera, choral, folk-like instruments, vocal / no vocals, techno, rock, ...) and its
  200-dimensional penultimate embedding; one 3 s patch per excerpt;
- YAMNet (trained on AudioSet's real recordings of speech, music of many traditions,
  animals, weather and machines): its 1024-dimensional embedding, the mean over the
  excerpt's 0.96 s patches every 0.48 s (five for 3 s). Its 521 class scores are a
  linear map of the embedding and read worse than it (``bench/compare_yamnet.py``);
- the hand-made window features of :mod:`detectors.heritage.features`: bandwidth, noise
  floor, clicks, hum (the recording channel and its era), pulse, vibrato and syllabic
  modulation (speech against singing).

Excerpts are analysed whole, so a vector depends only on the excerpt's samples.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from detectors.heritage.features import FEATURE_NAMES, SAMPLE_RATE, excerpt_vector

EXCERPT_S = 3.0
"""Seconds of audio per classified excerpt: musicnn's patch (187 frames of 16 ms)."""

VECTOR_VERSION = "heritage-excerpt/4"
"""Bumped whenever the vector changes meaning; a model trained on another version is refused."""

N_TAGS = 50
N_EMBEDDING = 200
N_YAMNET = 1024

# The recording channel, never the voice: what tells an archival speech from a modern one.
CHANNEL_FEATURES: tuple[str, ...] = (
    "rolloff85_mean",
    "rolloff99_p90",
    "flatness_mean",
    "flatness_std",
    "contrast4",
    "contrast5",
    "mel_shape6",
    "mel_shape7",
    "noise_floor_db",
    "noise_floor_high_db",
    "click_ratio",
    "click_strength",
    "hum_db",
    "dynamic_range_db",
)

Vector = npt.NDArray[np.float64]


def vector_names(tags: tuple[str, ...]) -> tuple[str, ...]:
    """Names of the vector's columns: hand features, ``tag:<name>``, ``emb<i>``, ``yam<i>``."""
    return (
        *FEATURE_NAMES,
        *(f"tag:{t}" for t in tags),
        *(f"emb{i}" for i in range(N_EMBEDDING)),
        *(f"yam{i}" for i in range(N_YAMNET)),
    )


def channel_columns() -> list[int]:
    """Column indices of :data:`CHANNEL_FEATURES` in the vector."""
    return [FEATURE_NAMES.index(name) for name in CHANNEL_FEATURES]


def music_columns() -> list[int]:
    """Columns the music branch reads: musicnn's tags and embedding, YAMNet's embedding,
    pulse and vibrato."""
    hand = ("pulse_clarity", "percussive_ratio", "vibrato_extent_cents", "vibrato_strength")
    start = len(FEATURE_NAMES)
    learnt = range(start, start + N_TAGS + N_EMBEDDING + N_YAMNET)
    return [FEATURE_NAMES.index(n) for n in hand] + list(learnt)


@dataclass(frozen=True)
class Excerpt:
    """One analysed excerpt: its level (dBFS) and its vector (``vector_names``)."""

    rms_dbfs: float
    vector: Vector


class ExcerptFeaturizer:
    """Turns excerpts of mono 16 kHz audio into classifier vectors (about 45 ms CPU each)."""

    def __init__(self) -> None:
        from detectors.heritage.musicnn import MusicnnTagger
        from detectors.heritage.yamnet import Yamnet

        self.tagger = MusicnnTagger()
        self.yamnet = Yamnet()

    @property
    def names(self) -> tuple[str, ...]:
        """Column names of the vectors this featurizer makes."""
        return vector_names(tuple(self.tagger.TAGS))

    def __call__(self, samples: npt.ArrayLike) -> Excerpt:
        """The vector of one excerpt (any length; short ones are padded)."""
        x = np.asarray(samples, dtype=np.float32).ravel()
        hand = excerpt_vector(x)
        logmel = self.tagger.logmel(x)
        taggram, penultimate = self.tagger.run(self.tagger.patches(logmel)[:1])
        sounds = self.yamnet.embed(x).embeddings.mean(axis=0, dtype=np.float64)
        vector = np.concatenate(
            [hand.vector, taggram[0].astype(np.float64), penultimate[0].astype(np.float64), sounds]
        )
        return Excerpt(hand.rms_dbfs, vector)


def excerpts(audio: npt.NDArray[np.float32], hop_s: float) -> list[tuple[int, int]]:
    """(start, end) samples of the excerpts of ``audio`` every ``hop_s`` seconds.

    The last excerpt may be shorter than :data:`EXCERPT_S`; audio shorter than one excerpt
    gives one short excerpt (or none when empty).
    """
    size = round(EXCERPT_S * SAMPLE_RATE)
    hop = round(hop_s * SAMPLE_RATE)
    if not len(audio):
        return []
    spans = [(s, s + size) for s in range(0, max(1, len(audio) - size + 1), hop)]
    if spans[-1][1] > len(audio):
        spans[-1] = (spans[-1][0], len(audio))
    return spans
