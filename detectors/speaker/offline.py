"""File mode: re-cluster every window of a whole file, then re-segment its speech.

The live detector decides with what it has heard so far; a file allows
looking at everything at once. Here:

1. all windows' embeddings are clustered together (average-linkage
   agglomerative on cosine distance) into ``n_speakers`` clusters when the
   number of speakers is known, else into as many as :func:`estimate_count`
   votes for (the live clusterer's count and two cuts of the tree), within
   ``min_speakers`` .. ``max_speakers``. On the real-voice room-simulated dev
   conversations this counts right or within one on 26 of 30, where the live
   clusterer's count alone, used before, did on 22. Files whose windows span more
   than ``file_block_after_s`` (45 s) are clustered in blocks first
   (:func:`block_clusters`): one tree over a minute or more of one real voice splits it
   into several "speakers";
2. clusters holding less than ``min_speaker_s`` of speech join their nearest
   speaker: windows straddling two voices (overlaps, quick exchanges) and noise
   form such small clusters, and they are not people;
3. every voiced 32 ms frame goes to the speaker whose centroid is most like the
   windows covering it (each weighted by how close the frame is to the window's
   middle), pauses shorter than ``turn_pause_s`` are bridged, and runs shorter
   than ``MIN_RUN_S`` join a neighbour, which puts boundaries at frame
   precision rather than at the hop;
4. overlapped speech: where the overlap model (``detectors.speaker.overlap``)
   gives a frame a probability above ``overlap_threshold``, the runner-up
   speaker is attributed too, for runs of at least ``MIN_OVERLAP_S``. Segments
   of different speakers may therefore overlap.

With ``file_segmentation`` (opt-in), pyannote's segmentation-3.0
(``detectors.speaker.segmentation``) has heard the file in 10 s chunks, and:

- the clusters and the count are built on the windows where one local speaker
  holds at least ``segmentation_purity`` of the speech alone (:func:`window_purity`);
  the other windows, which straddle voices, follow their nearest cluster;
- the count is at least the most local speakers one chunk holds with
  ``segmentation_count_s`` of speech each (:func:`local_count`): voices heard in
  the same 10 s are different people;
- step 4 takes the model's probability of two voices at once
  (``segmentation_overlap_threshold``) instead of the overlap model's, and the
  second voice is the cluster the chunk's other local speaker was mapped to
  (:func:`local_evidence`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from detectors.speaker.clustering import (
    Labels,
    Matrix,
    centroids_of,
    global_clusters,
    relabel_by_appearance,
    unit,
)
from detectors.speaker.detector import SpeakerConfig, SpeakerHistory
from detectors.speaker.overlap import load_model
from detectors.speaker.segmentation import (
    FRAME_CENTRE,
    FRAME_STEP,
    FRAMES,
    LOCAL_SPEAKERS,
    POWERSET,
    SAMPLE_RATE,
    LocalSegmentation,
)

MIN_RUN_S = 0.5  # shorter single-speaker runs inside speech join a neighbour
MIN_REGION_S = 0.1  # shorter speech regions are dropped
MIN_OVERLAP_S = 0.3  # shorter runs of a second voice are not reported
MIN_PURE_WINDOWS = 10  # fewer windows one voice holds: cluster them all
MIN_LOCAL_S = 0.2  # a local speaker of the segmentation talking less in its chunk is ignored
MIN_BLOCK_WINDOWS = 3  # fewer windows of one block cluster do not make a centroid
ONLINE_MIN_S = 1.5  # an online speaker counts once windows this long in all were assigned to it


@dataclass(frozen=True, slots=True)
class Segment:
    """One speaker's speech from ``start`` to ``end`` (s); ``speaker`` is a cluster index."""

    start: float
    end: float
    speaker: int
    channel: int = 0


@dataclass(frozen=True)
class Diarization:
    """A file's speaker timeline, and each speaker's centroid embedding."""

    segments: list[Segment]
    centroids: Matrix  # [speakers, 256], row k for speaker k


def diarize(
    histories: list[SpeakerHistory], config: SpeakerConfig, n_speakers: int | None = None
) -> Diarization:
    """The speaker timeline of a whole file from its detectors' histories (one per channel).

    ``n_speakers``: the number of speakers when known; else it is estimated
    (:func:`estimate_count`) within ``config.min_speakers`` .. ``config.max_speakers``.
    """
    usable = [h for h in histories if len(h.embeddings)]
    if not usable:
        return Diarization([], np.zeros((0, 256), np.float32))
    ge2e = np.concatenate([h.embeddings for h in usable])
    campplus = config.file_encoder == "ge2e+campplus" and all(
        h.campplus is not None and len(h.campplus) == len(h.embeddings) for h in usable
    )
    spaces = [joined(h, config.campplus_weight) if campplus else None for h in usable]
    embeddings = np.concatenate([s for s in spaces if s is not None]) if campplus else ge2e
    recluster = config.campplus_recluster_distance if campplus else config.recluster_distance
    hop_s = _hop_s(usable[0])
    min_windows = config.min_speaker_s / hop_s
    pure = np.ones(len(embeddings), np.bool_)
    if config.file_segmentation and config.segmentation_purity > 0:
        # Windows where one local voice holds the speech: the clusters are built on them.
        found = np.concatenate([window_purity(h) for h in usable]) >= config.segmentation_purity
        if found.sum() >= max(MIN_PURE_WINDOWS, min_windows):
            pure = found
    estimated = n_speakers is None
    segmented = config.file_segmentation and all(h.segmentation is not None for h in usable)
    labels, n_speakers = partition(
        usable,
        ge2e,
        embeddings[pure],
        pure,
        config=config,
        recluster=recluster,
        n_speakers=n_speakers,
    )
    if not pure.all():
        nearest = np.argmax(embeddings @ centroids_of(embeddings[pure], labels).T, axis=1)
        nearest[pure] = labels
        labels = relabel_by_appearance(nearest.astype(np.int64))
    while True:
        centroids = centroids_of(embeddings[pure], labels[pure])
        # The overlap model was trained on GE2E scores: it hears them whatever clusters.
        named = centroids_of(ge2e[pure], labels[pure]) if campplus else None
        segments = [
            s
            for h, space in zip(usable, spaces, strict=True)
            for s in resegment(
                h, centroids, config.turn_pause_s, 1.0, ge2e_centroids=named, space=space
            )
        ]
        # A cluster can keep its windows yet win almost no frames: not a person either.
        talk = np.zeros(len(centroids))
        for s in segments:
            talk[s.speaker] += s.end - s.start
        if len(centroids) > n_speakers and talk.min() < config.min_speaker_s:
            labels = merge_cluster(embeddings, labels, int(np.argmin(talk)))
            continue
        single = segments
        voices = (usable, spaces, centroids, named)
        segments = _with_second_voices(*voices, config=config, segments=single, local=segmented)
        # Whether two clusters are one voice is what the overlap model hears, also where the
        # segmentation gives the second voice: that one hears a split voice as one local
        # speaker, and where it finds real overlap, a quiet second person can be heard under
        # someone else for most of their speech (the two-voice room fixture).
        probe = (
            _with_second_voices(*voices, config=config, segments=single, local=False)
            if segmented
            else segments
        )
        pair = (
            one_voice_pair(probe, config.one_voice_overlap)
            if estimated and len(centroids) > config.min_speakers
            else None
        )
        if pair is None:
            break
        labels = join_clusters(labels, *pair)
        n_speakers = min(n_speakers, len(centroids) - 1)
    segments = _union_per_speaker(segments)
    order = _appearance(segments)
    segments = [Segment(s.start, s.end, order[s.speaker], s.channel) for s in segments]
    used = sorted(order, key=order.__getitem__)
    # GE2E centroids either way: enrolled voices are GE2E profiles.
    out = named if named is not None else centroids
    return Diarization(segments, out[used] if used else out[:0])


def _with_second_voices(
    usable: list[SpeakerHistory],
    spaces: list[Matrix | None],
    centroids: Matrix,
    named: Matrix | None,
    *,
    config: SpeakerConfig,
    segments: list[Segment],
    local: bool,
) -> list[Segment]:
    """The single-voice ``segments`` re-made with the second voice of overlapped speech
    (step 4): from the local segmentation if ``local`` (every history has one), else from
    the overlap model; ``segments`` themselves when neither applies."""
    if local:
        return [
            s
            for h, space in zip(usable, spaces, strict=True)
            for s in resegment(
                h,
                centroids,
                config.turn_pause_s,
                ge2e_centroids=named,
                space=space,
                segmentation=config,
            )
        ]
    if config.overlap_threshold < 1.0 and len(centroids) > 1:
        return [
            s
            for h, space in zip(usable, spaces, strict=True)
            for s in resegment(
                h,
                centroids,
                config.turn_pause_s,
                config.overlap_threshold,
                ge2e_centroids=named,
                space=space,
            )
        ]
    return segments


def one_voice_pair(segments: list[Segment], most: float) -> tuple[int, int] | None:
    """Two speakers heard at once for more than ``most`` of the quieter one's speech, as
    (the one kept, the one joining it), the pair heard together most; else None.

    People interrupt, back-channel and talk over each other for moments; they do not
    speak together for most of the time one of them speaks. One voice split into two
    clusters does: its halves score alike on every frame, so the overlap model hears
    both "speakers" at once nearly throughout (median 0.92 of the quieter half on the
    single-voice dev recordings, against at most 0.21 for any two real people of the dev
    sets; docs/BENCHMARKS.md)."""
    if most >= 1.0:
        return None
    spans: dict[int, list[tuple[float, float]]] = {}
    for s in _union_per_speaker(segments):
        spans.setdefault(s.speaker, []).append((s.start, s.end))
    talk = {k: sum(b - a for a, b in v) for k, v in spans.items()}
    best: tuple[float, int, int] | None = None
    for a, b in itertools.combinations(sorted(spans), 2):
        quieter = min(talk[a], talk[b])
        if quieter <= 0:
            continue
        share = _together(spans[a], spans[b]) / quieter
        if share > most and (best is None or share > best[0]):
            keep, join = (a, b) if talk[a] >= talk[b] else (b, a)
            best = (share, keep, join)
    return None if best is None else (best[1], best[2])


def _together(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Seconds two sorted, disjoint interval lists share."""
    i = j = 0
    total = 0.0
    while i < len(a) and j < len(b):
        total += max(0.0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return total


def join_clusters(labels: Labels, keep: int, join: int) -> Labels:
    """``labels`` with every window of ``join`` given to ``keep``, renumbered 0..k-2 in
    order of appearance."""
    return relabel_by_appearance(np.where(labels == join, keep, labels))


def partition(
    usable: list[SpeakerHistory],
    ge2e: Matrix,
    embeddings: Matrix,
    pure: npt.NDArray[np.bool_],
    *,
    config: SpeakerConfig,
    recluster: float,
    n_speakers: int | None,
) -> tuple[Labels, int]:
    """The speaker of every window in ``pure`` (``embeddings`` are theirs, in the clustering's
    space) and the number of speakers, estimated when ``n_speakers`` is None.

    Files whose windows span longer than ``config.file_block_after_s`` are clustered block
    by block first (:func:`block_clusters`, in the clustering's space, blocks cut at
    ``recluster``; the cuts of one whole tree were calibrated on room conversations of under
    45 s, and over 90 s of two real voices they counted 3 to 6 people). Shorter files take
    the count from GE2E's vote and the partition from ``embeddings``."""
    hop_s = _hop_s(usable[0])
    least = config.min_speaker_s / hop_s * pure.mean()
    starts = np.concatenate([h.window_start for h in usable])[pure]
    long = len(starts) > 1 and config.file_block_s > 0
    long = long and float(np.ptp(starts)) > config.file_block_after_s
    estimated = n_speakers is None
    # The blocks' own clustering, done once for the count and the partition.
    stages = block_centroids(embeddings, starts, config, least, recluster) if long else None
    if n_speakers is None:
        if stages is not None:
            found = len(np.unique(block_clusters(embeddings, starts, config, least, None,
                                                 blocks=stages, distance=recluster)))  # fmt: skip
            n_speakers = max(config.min_speakers, min(config.max_speakers, found))
        else:
            online = np.concatenate([h.online for h in usable])
            # The count is GE2E's vote either way: its cuts were calibrated there, and on the
            # room dev set it was within one more often than cuts of the joined embeddings.
            n_speakers = estimate_count(ge2e[pure], online[pure], config, least, hop_s)
        if config.file_segmentation and config.segmentation_count_s > 0:
            # Voices heard at once in one chunk are different people: a floor on the count.
            floor = max(local_count(h.segmentation, config.segmentation_count_s) for h in usable)
            n_speakers = max(n_speakers, min(floor, config.max_speakers))
    if stages is not None:
        labels = block_clusters(embeddings, starts, config, least, n_speakers, blocks=stages,
                                distance=recluster)  # fmt: skip
        if estimated:
            labels = merge_alternating(labels, starts, hop_s, config.file_switch_rate,
                                       config.min_speakers)  # fmt: skip
            n_speakers = int(labels.max()) + 1 if len(labels) else n_speakers
        return labels, n_speakers
    return cluster_windows(embeddings, recluster, least, n_speakers), n_speakers


def switch_rates(labels: Labels, starts: npt.NDArray[np.float64], hop_s: float) -> Matrix:
    """For each pair of speakers, how often one window of one is followed by one of the
    other (consecutive windows, ``hop_s`` apart, of one channel), per window of the one
    with fewer windows."""
    n = int(labels.max()) + 1 if len(labels) else 0
    steps = np.diff(starts)
    consecutive = (steps > 0) & (steps <= 1.01 * hop_s)
    changes = np.zeros((n, n))
    np.add.at(changes, (labels[:-1][consecutive], labels[1:][consecutive]), 1)
    np.fill_diagonal(changes, 0)  # a speaker followed by itself is no change
    sizes = np.bincount(labels, minlength=n)
    return ((changes + changes.T) / np.maximum(1, np.minimum.outer(sizes, sizes))).astype(
        np.float32
    )


def merge_alternating(
    labels: Labels,
    starts: npt.NDArray[np.float64],
    hop_s: float,
    max_rate: float,
    min_speakers: int = 1,
) -> Labels:
    """``labels`` with the two speakers whose windows alternate most merged, again and
    again while that rate is over ``max_rate`` (and more than ``min_speakers`` are left).

    Two people take turns of seconds: their windows change hands at a turn, a few times
    a dozen windows. One far-field voice that GE2E splits in two (louder and softer,
    nearer the wall) changes "speaker" every window or two. On the dev sets of real voices
    (docs/BENCHMARKS.md) true pairs alternated at 0.15-0.5 and split single voices at 0.44-
    0.92 (rate: changes between the two per window of the less heard). Real telephone
    calls of quick exchanges alternate as fast, which is why it is off by default."""
    while True:
        n = int(labels.max()) + 1 if len(labels) else 0
        if n <= max(1, min_speakers):
            return labels
        rates = switch_rates(labels, starts, hop_s)
        a, b = np.unravel_index(int(np.argmax(rates)), rates.shape)
        if rates[a, b] <= max_rate:
            return labels
        merged = np.where(labels == max(a, b), min(a, b), labels)
        labels = relabel_by_appearance(np.unique(merged, return_inverse=True)[1].astype(np.int64))


def joined(history: SpeakerHistory, campplus_weight: float) -> Matrix:
    """Each window's GE2E and CAM++ embeddings side by side, weighted so that the cosine
    similarity of two joined embeddings is ``1 - campplus_weight`` times their GE2E one plus
    ``campplus_weight`` times their CAM++ one (then normalised to unit length again)."""
    if history.campplus is None:
        raise ValueError("the history holds no CAM++ embeddings (file_encoder ge2e+campplus)")
    both = np.concatenate(
        [
            history.embeddings * np.sqrt(1.0 - campplus_weight),
            history.campplus * np.sqrt(campplus_weight),
        ],
        axis=1,
    )
    result: Matrix = (both / np.linalg.norm(both, axis=1, keepdims=True)).astype(np.float32)
    return result


def estimate_count(
    embeddings: Matrix,
    online: Labels,
    config: SpeakerConfig,
    min_windows: float,
    hop_s: float = 0.5,
) -> int:
    """How many people speak: the median vote of three counters, brought within
    ``config.min_speakers`` .. ``config.max_speakers``:

    - the live clusterer's count (:func:`online_count`; ``hop_s`` between its windows);
    - the clusters of an average-linkage tree cut at ``config.recluster_distance``,
    - and cut at the tighter ``config.count_distance``, each keeping the clusters with at
      least ``min_windows`` windows (the others, windows straddling two voices or noise,
      join their nearest).

    Each alone fails somewhere: the live count and the loose cut undercount distant,
    reverberant voices, the tight cut overcounts distinct clean ones. The vote counted
    right or within one on 26 of 30 real-voice room-simulated dev conversations and on 12
    of 12 synthetic ones (docs/BENCHMARKS.md)."""
    votes = [online_count(online, hop_s)]
    for distance in (config.recluster_distance, config.count_distance):
        labels = cluster_windows(embeddings, distance, min_windows, None)
        votes.append(int(labels.max()) + 1 if len(labels) else 1)
    found = sorted(votes)[1]
    return max(config.min_speakers, min(config.max_speakers, found))


def block_centroids(
    embeddings: Matrix,
    starts: npt.NDArray[np.float64],
    config: SpeakerConfig,
    min_windows: float,
    distance: float | None = None,
) -> tuple[Matrix, npt.NDArray[np.float64]]:
    """The first stage of :func:`block_clusters`: the file cut into ``config.file_block_s``
    blocks, each block's windows clustered as a short file's are (cut at ``distance``,
    by default ``recluster_distance``), and every block cluster of at least
    ``MIN_BLOCK_WINDOWS`` windows as one centroid with its number of windows as weight."""
    distance = config.recluster_distance if distance is None else distance
    span = float(np.ptp(starts)) if len(starts) else 0.0
    count = max(1, math.ceil(span / config.file_block_s))
    edges = starts.min() + np.arange(1, count) * span / count if len(starts) else np.zeros(0)
    block_of = np.searchsorted(edges, starts, side="right")
    centroids: list[npt.NDArray[np.float32]] = []
    weights: list[int] = []
    for block in range(count):
        members = np.flatnonzero(block_of == block)
        if len(members) < 2:
            continue
        local = cluster_windows(embeddings[members], distance, min_windows, None)
        for k in np.unique(local):
            windows = members[local == k]
            if len(windows) >= MIN_BLOCK_WINDOWS:
                centroids.append(unit(embeddings[windows].mean(axis=0)))
                weights.append(len(windows))
    points = np.stack(centroids).astype(np.float32) if centroids else np.zeros((0, 1), np.float32)
    return points, np.asarray(weights, dtype=np.float64)


def block_clusters(
    embeddings: Matrix,
    starts: npt.NDArray[np.float64],
    config: SpeakerConfig,
    min_windows: float,
    n_speakers: int | None,
    *,
    blocks: tuple[Matrix, npt.NDArray[np.float64]] | None = None,
    distance: float | None = None,
) -> Labels:
    """Speaker of every window of a long file, clustered in two stages.

    Over minutes, one voice's windows drift (loudness, position, manner) into sub-clusters
    as far apart as two voices' windows in a short file: one average-linkage tree over the
    whole file, cut where short files are cut, counted a two-person interview of 2.5
    minutes as 4 to 9 people. So each block of the file is clustered on its own
    (:func:`block_centroids`, or ``blocks`` if it was already run), and the block
    centroids, which average out what single windows vary by, are clustered across the
    file (average linkage, cut at ``config.file_block_distance``, or at ``n_speakers``).
    Speakers with fewer than ``min_windows`` windows in all join their nearest; every
    window then goes to its most similar speaker. ``distance``: where blocks are cut (by
    default ``recluster_distance``; the joined GE2E + CAM++ space has its own)."""
    distance = config.recluster_distance if distance is None else distance
    points, weight = (
        blocks
        if blocks is not None
        else block_centroids(embeddings, starts, config, min_windows, distance)
    )
    if len(points) < max(2, n_speakers or 0):
        return cluster_windows(embeddings, distance, min_windows, n_speakers)
    speaker = global_clusters(points, distance_threshold=config.file_block_distance,
                              n_speakers=n_speakers)  # fmt: skip
    while True:
        talk = np.bincount(speaker, weights=weight)
        if len(talk) <= max(1, n_speakers or 1) or talk.min() >= min_windows:
            break
        small = int(np.argmin(talk))
        others = [k for k in range(len(talk)) if k != small]
        means = _weighted_means(points, weight, speaker, others)
        speaker[speaker == small] = np.array(others)[
            np.argmax(points[speaker == small] @ means.T, axis=1)
        ]
        speaker = np.unique(speaker, return_inverse=True)[1]
    means = _weighted_means(points, weight, speaker, range(int(speaker.max()) + 1))
    return relabel_by_appearance(np.argmax(embeddings @ means.T, axis=1).astype(np.int64))


def _weighted_means(
    points: Matrix, weight: npt.NDArray[np.float64], labels: Labels, ids: Iterable[int]
) -> Matrix:
    """Unit weighted mean of the points of each cluster in ``ids``."""
    return np.stack([unit((points[labels == k] * weight[labels == k, None]).sum(0)) for k in ids])


def online_count(online: Labels, hop_s: float = 0.5) -> int:
    """How many speakers the live clusterer found, counting those it assigned windows
    ``ONLINE_MIN_S`` long in all, at ``hop_s`` between windows (one declared at the very end
    is not yet a speaker)."""
    assigned = online[online >= 0]
    if len(assigned) == 0:
        return 1
    least = max(1, round(ONLINE_MIN_S / hop_s))
    return max(1, int(np.count_nonzero(np.bincount(assigned) >= least)))


def _hop_s(history: SpeakerHistory) -> float:
    if len(history.window_end) > 1:
        steps = np.diff(history.window_end)
        return float(np.min(steps[steps > 0])) if np.any(steps > 0) else 0.5
    return 0.5


def cluster_windows(
    embeddings: Matrix, distance: float, min_windows: float, n_speakers: int | None
) -> Labels:
    """Speaker of every window: clusters cut at ``distance``, those with fewer than
    ``min_windows`` windows joining their nearest neighbour; with ``n_speakers`` given,
    the smallest then join theirs until that many are left, or if there are too few,
    the clustering is cut at ``n_speakers`` instead."""
    labels = global_clusters(embeddings, distance_threshold=distance)
    labels = absorb_small_clusters(embeddings, labels, min_windows)
    if n_speakers is None or int(labels.max()) + 1 == n_speakers:
        return labels
    if int(labels.max()) + 1 > n_speakers:
        return absorb_small_clusters(embeddings, labels, math.inf, keep=n_speakers)
    return global_clusters(embeddings, distance_threshold=distance, n_speakers=n_speakers)


def absorb_small_clusters(
    embeddings: Matrix, labels: Labels, min_windows: float, keep: int = 1
) -> Labels:
    """Move the windows of clusters with fewer than ``min_windows`` windows to the nearest
    other cluster, smallest first, while more than ``keep`` clusters are left."""
    labels = labels.copy()
    while True:
        ids, counts = np.unique(labels, return_counts=True)
        if len(ids) <= keep or counts.min() >= min_windows:
            break
        labels = merge_cluster(embeddings, labels, int(ids[np.argmin(counts)]))
    return labels


def merge_cluster(embeddings: Matrix, labels: Labels, cluster: int) -> Labels:
    """``labels`` with each window of ``cluster`` moved to the nearest other cluster,
    renumbered 0..k-2 in order of appearance."""
    others = [int(k) for k in np.unique(labels) if k != cluster]
    centroids = centroids_of_ids(embeddings, labels, others)
    moved = labels.copy()
    mine = np.flatnonzero(labels == cluster)
    moved[mine] = np.array(others)[np.argmax(embeddings[mine] @ centroids.T, axis=1)]
    return relabel_by_appearance(moved)


def centroids_of_ids(embeddings: Matrix, labels: Labels, ids: list[int]) -> Matrix:
    """Unit mean embedding of the windows of each cluster in ``ids``."""
    return np.stack([unit(embeddings[labels == k].mean(axis=0)) for k in ids])


def resegment(
    history: SpeakerHistory,
    centroids: Matrix,
    pause_s: float,
    overlap_threshold: float = 1.0,
    *,
    ge2e_centroids: Matrix | None = None,
    space: Matrix | None = None,
    segmentation: SpeakerConfig | None = None,
) -> list[Segment]:
    """Frame-level speaker turns of one channel (see the module docstring, step 3); with
    ``overlap_threshold`` below 1, also the second voice of overlapped speech (step 4).

    With ``space`` (the windows' embeddings in another space than GE2E's, as from
    :func:`joined`) and ``ge2e_centroids``, ``centroids`` are in that space: frames are
    scored there, and the overlap model hears the GE2E scores it was trained on.

    With ``segmentation`` (the detector's settings, ``file_segmentation`` on), the second
    voice comes from the history's local segmentation instead (:func:`local_evidence`)."""
    scores = frame_scores(history, centroids, space)
    if scores is None:
        return []
    voiced = history.frame_voiced
    second_scores: npt.NDArray[np.floating[Any]] = scores
    overlapped: npt.NDArray[np.bool_] | None
    evidence = local_evidence(history, scores) if segmentation is not None else None
    if segmentation is not None and evidence is not None:
        overlap, activity = evidence
        overlapped = (overlap >= segmentation.segmentation_overlap_threshold) & (len(centroids) > 1)
        second_scores = activity + 1e-3 * scores  # ties (no activity) go to the runner-up
    else:
        heard = scores if ge2e_centroids is None else frame_scores(history, ge2e_centroids)
        overlapped = _overlapped(history, heard, overlap_threshold) if heard is not None else None
    labels: Labels = np.argmax(scores, axis=1)
    frames, frame_s = history.frame_start, history.frame_s
    segments: list[Segment] = []
    for lo, hi in _runs(_bridge(voiced, round(pause_s / frame_s))):
        if (hi - lo) * frame_s < MIN_REGION_S:
            continue
        region = _smooth(labels[lo:hi], max(1, round(MIN_RUN_S / frame_s)))
        for a, b in _runs_of_labels(region):
            start, end = float(frames[lo + a]), float(frames[lo + b - 1] + frame_s)
            segments.append(Segment(start, end, int(region[a]), history.channel))
        if overlapped is not None:
            second = _second_voice(second_scores[lo:hi], region, overlapped[lo:hi])
            for a, b in _runs_of_labels(second):
                if second[a] >= 0 and (b - a) * frame_s >= MIN_OVERLAP_S:
                    start, end = float(frames[lo + a]), float(frames[lo + b - 1] + frame_s)
                    segments.append(Segment(start, end, int(second[a]), history.channel))
    return segments


def window_purity(history: SpeakerHistory) -> npt.NDArray[np.float64]:
    """Per embedded window, the largest share of its speech that one local speaker of the
    segmentation holds alone (1: one voice throughout; 0 without a segmentation or where no
    chunk covers the window whole)."""
    local = history.segmentation
    purity = np.zeros(len(history.window_start))
    if local is None or len(local.probs) == 0:
        return purity
    step = FRAME_STEP / SAMPLE_RATE
    centre = FRAME_CENTRE / SAMPLE_RATE
    chunk_start = local.chunk_offsets * step
    for w, (start, end) in enumerate(zip(history.window_start, history.window_end, strict=True)):
        inside = np.flatnonzero((chunk_start <= start) & (chunk_start + FRAMES * step >= end))
        for c in inside:
            lo = max(0, int(np.ceil((start - chunk_start[c] - centre) / step)))
            hi = min(FRAMES, int(np.floor((end - chunk_start[c] - centre) / step)) + 1)
            probs = local.probs[c, lo:hi].astype(np.float64)
            speech = float((1.0 - probs[:, 0]).sum())
            if speech > 0:
                share = float(probs[:, 1 : 1 + LOCAL_SPEAKERS].sum(axis=0).max()) / speech
                purity[w] = max(purity[w], share)
    return purity


def local_count(local: LocalSegmentation | None, min_s: float) -> int:
    """The most local speakers any one chunk of ``local`` holds with at least ``min_s`` of
    speech each (0 without a segmentation)."""
    if local is None or len(local.activity) == 0:
        return 0
    talk_s = local.activity.sum(axis=1) * FRAME_STEP / SAMPLE_RATE  # [chunks, 3]
    return int((talk_s >= min_s).sum(axis=1).max())


def local_evidence(
    history: SpeakerHistory, scores: Matrix
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None:
    """What the local segmentation (``history.segmentation``) says about each gate frame:
    the probability of two voices at once, and each cluster's activity [frames, speakers]
    (None without a segmentation).

    In every 10 s chunk, each local speaker's profile is the mean of ``scores`` (the
    frames' :func:`frame_scores`) weighted by the probability that it talks alone; the
    chunk's local speakers take distinct clusters, the best-matching assignment
    (Hungarian), extra ones their best, and lend those clusters their activity. Chunks are
    averaged with a Hamming window, as pyannote aggregates them."""
    from scipy.optimize import linear_sum_assignment

    local = history.segmentation
    if local is None or local.frames == 0 or len(local.probs) == 0 or len(scores) == 0:
        return None
    n_frames, n_speakers = local.frames, scores.shape[1]
    gate = np.searchsorted(history.frame_start, local.frame_times(), side="right") - 1
    gate = np.clip(gate, 0, len(scores) - 1)
    activity = np.zeros((n_frames, n_speakers))
    overlap, cover = np.zeros(n_frames), np.zeros(n_frames)
    hamming = np.hamming(FRAMES) + 1e-3
    min_frames = MIN_LOCAL_S * SAMPLE_RATE / FRAME_STEP
    for chunk, offset in enumerate(local.chunk_offsets):
        n = min(FRAMES, n_frames - int(offset))
        if n <= 0:
            continue
        probs = local.probs[chunk, :n].astype(np.float64)
        talks = probs @ POWERSET.astype(np.float64)  # [n, 3]
        alone = probs[:, 1 : 1 + LOCAL_SPEAKERS]
        weight, index = hamming[:n], gate[offset : offset + n]
        span = slice(int(offset), int(offset) + n)
        cover[span] += weight
        overlap[span] += weight * probs[:, 1 + LOCAL_SPEAKERS :].sum(axis=1)
        present = [j for j in range(LOCAL_SPEAKERS) if talks[:, j].sum() >= min_frames]
        if not present:
            continue
        profiles = np.stack(
            [
                (alone[:, j] if alone[:, j].sum() >= min_frames else talks[:, j])
                @ scores[index]
                / max(
                    1e-9,
                    float((alone[:, j] if alone[:, j].sum() >= min_frames else talks[:, j]).sum()),
                )
                for j in present
            ]
        )
        rows, cols = linear_sum_assignment(-profiles)
        mapped = np.argmax(profiles, axis=1)
        mapped[rows] = cols
        for j, k in zip(present, mapped, strict=True):
            activity[span, k] += weight * talks[:, j]
    covered = cover > 0
    activity[covered] /= cover[covered, None]
    overlap[covered] /= cover[covered]
    # Onto the gate's 32 ms frames: the mean of the output frames whose centre falls in each.
    n_gate = len(scores)
    hits = np.bincount(gate, minlength=n_gate).astype(np.float64)
    found = np.maximum(hits, 1.0)
    on_gate = np.bincount(gate, weights=overlap, minlength=n_gate) / found
    per_speaker = np.stack(
        [
            np.bincount(gate, weights=activity[:, k], minlength=n_gate) / found
            for k in range(n_speakers)
        ],
        axis=1,
    )
    return on_gate, per_speaker


def _overlapped(
    history: SpeakerHistory, scores: Matrix, threshold: float
) -> npt.NDArray[np.bool_] | None:
    """Per frame, whether the overlap model hears two voices (None: not asked, one speaker,
    or no spectra kept)."""
    logmel = history.frame_logmel
    if threshold >= 1.0 or scores.shape[1] < 2 or logmel is None or len(logmel) != len(scores):
        return None
    model = load_model()
    flags: npt.NDArray[np.bool_] = model.frame_probability(logmel, scores) > threshold
    return flags


def _second_voice(
    scores: npt.NDArray[np.floating[Any]], primary: Labels, overlapped: npt.NDArray[np.bool_]
) -> Labels:
    """Per frame, the speaker heard besides ``primary`` where ``overlapped`` (else -1): the
    next most alike speaker."""
    rows = np.arange(len(scores))
    others = scores.copy()
    others[rows, primary] = -np.inf
    second: Labels = np.where(overlapped, np.argmax(others, axis=1), -1)
    return second


def frame_scores(
    history: SpeakerHistory, centroids: Matrix, embeddings: Matrix | None = None
) -> Matrix | None:
    """How like each speaker every gate frame sounds: the mean cosine similarity of the
    windows covering it to each centroid, each window weighted by the frame's closeness to
    its middle; frames no window covers take the scores of the nearest covered one.
    None if no window covers any frame. ``embeddings``: the windows' embeddings in the
    centroids' space if not the history's GE2E ones."""
    frames = history.frame_start
    if len(frames) == 0 or len(centroids) == 0:
        return None
    centre = frames + history.frame_s / 2
    scores = np.zeros((len(frames), len(centroids)))
    weight = np.zeros(len(frames))
    windows = history.embeddings if embeddings is None else embeddings
    similarity = windows @ centroids.T  # [windows, speakers]
    for start, end, sim in zip(history.window_start, history.window_end, similarity, strict=True):
        lo, hi = np.searchsorted(centre, [start, end])
        half = (end - start) / 2
        w = 1.0 - np.abs(centre[lo:hi] - (start + half)) / (half + history.frame_s)
        scores[lo:hi] += w[:, None] * sim[None, :]
        weight[lo:hi] += w
    is_covered = weight > 0
    covered = np.flatnonzero(is_covered)
    if len(covered) == 0:
        return None
    # In place, and the uncovered frames only: whole-file temporaries of [frames, speakers]
    # float64 were the largest memory of the file mode's end (7 MB each for an hour).
    np.divide(scores, weight[:, None], out=scores, where=is_covered[:, None])
    position = np.flatnonzero(~is_covered)
    at = np.searchsorted(covered, position)
    after = covered[np.clip(at, 0, len(covered) - 1)]
    before = covered[np.clip(at - 1, 0, len(covered) - 1)]
    nearest = np.where(np.abs(before - position) < np.abs(after - position), before, after)
    scores[position] = scores[nearest]
    result: Matrix = scores.astype(np.float32)
    return result


def frame_speakers(history: SpeakerHistory, centroids: Matrix) -> Labels | None:
    """The speaker of every gate frame: the one of highest :func:`frame_scores`."""
    scores = frame_scores(history, centroids)
    if scores is None:
        return None
    labels: Labels = np.argmax(scores, axis=1)
    return labels


def _bridge(voiced: npt.NDArray[np.bool_], max_gap: int) -> npt.NDArray[np.bool_]:
    """``voiced`` with unvoiced runs of at most ``max_gap`` frames between voice filled in."""
    out = voiced.copy()
    for lo, hi in _runs(~voiced):
        if lo > 0 and hi < len(voiced) and hi - lo <= max_gap:
            out[lo:hi] = True
    return out


def _runs(mask: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[lo, hi) index ranges where ``mask`` is true."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True))


def _runs_of_labels(labels: Labels) -> list[tuple[int, int]]:
    cuts = np.flatnonzero(np.diff(labels)) + 1
    bounds = np.concatenate([[0], cuts, [len(labels)]])
    return [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]


def _smooth(labels: Labels, min_run: int) -> Labels:
    """Merge runs shorter than ``min_run`` into their longer neighbour, shortest first."""
    labels = labels.copy()
    while True:
        runs = _runs_of_labels(labels)
        if len(runs) <= 1:
            return labels
        lengths = [b - a for a, b in runs]
        i = int(np.argmin(lengths))
        if lengths[i] >= min_run:
            return labels
        left = lengths[i - 1] if i > 0 else -1
        right = lengths[i + 1] if i + 1 < len(runs) else -1
        a, b = runs[i]
        labels[a:b] = labels[runs[i - 1][0]] if left >= right else labels[runs[i + 1][0]]


def _union_per_speaker(segments: list[Segment]) -> list[Segment]:
    """Each speaker's segments merged where they overlap or touch (the same voice heard on
    several channels of one file is one turn), sorted by start."""
    merged: list[Segment] = []
    for s in sorted(segments, key=lambda s: (s.speaker, s.start)):
        last = merged[-1] if merged else None
        if last is not None and last.speaker == s.speaker and s.start <= last.end:
            merged[-1] = Segment(last.start, max(last.end, s.end), s.speaker, last.channel)
        else:
            merged.append(s)
    return sorted(merged, key=lambda s: (s.start, s.end))


def _appearance(segments: list[Segment]) -> dict[int, int]:
    """Old speaker index -> new index in order of first appearance (speakers with speech only)."""
    order: dict[int, int] = {}
    for s in segments:
        order.setdefault(s.speaker, len(order))
    return order
