"""Clustering speaker embeddings: online (live, one window at a time) and global (whole files).

Embeddings are unit vectors with non-negative components (see ``encoder``), so
the cosine distance ``1 - a @ b`` of two of them lies in [0, 1].
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]
Labels = npt.NDArray[np.int64]

CONFIDENCE_SLOPE = 0.05  # cosine distance over which confidence goes from 0.73 to 0.27


def unit(vector: npt.ArrayLike) -> Vector:
    """``vector`` scaled to unit length (float32)."""
    v = np.asarray(vector, dtype=np.float64)
    norm = float(np.linalg.norm(v))
    if norm == 0.0:
        raise ValueError("cannot normalise a zero vector")
    result: Vector = (v / norm).astype(np.float32)
    return result


def confidence(distance: float, threshold: float) -> float:
    """How surely a window at cosine ``distance`` from its speaker belongs there: 0.5 at
    ``threshold``, towards 1 for closer windows (a logistic over ``CONFIDENCE_SLOPE``)."""
    return 1.0 / (1.0 + math.exp((distance - threshold) / CONFIDENCE_SLOPE))


@dataclass(frozen=True, slots=True)
class Assignment:
    """The speaker cluster of one window; ``new`` when this window declared it."""

    cluster: int
    distance: float
    confidence: float
    new: bool = False


class OnlineClusterer:
    """Assigns embeddings to speaker centroids as they arrive, with bounded state.

    A window closer than ``new_speaker_distance`` to its nearest centroid joins
    it and moves the centroid by ``max(update_rate, 1/n)`` (a running mean that
    turns into an exponential one). Farther windows are evidence of a new
    speaker, declared once ``min_evidence`` consecutive such windows agree with
    each other, while fewer than ``max_speakers`` exist; until then (and for
    ever once the maximum is reached) they go to the nearest centroid.
    """

    def __init__(
        self,
        *,
        new_speaker_distance: float,
        update_rate: float,
        max_speakers: int,
        min_evidence: int,
    ) -> None:
        self.threshold = new_speaker_distance
        self.update_rate = update_rate
        self.max_speakers = max_speakers
        self.min_evidence = min_evidence
        self.reset()

    def reset(self) -> None:
        """Forget every speaker."""
        self.centroids: list[Vector] = []
        self.counts: list[int] = []
        self._pending: deque[Vector] = deque(maxlen=self.min_evidence)

    @property
    def pending(self) -> int:
        """Consecutive windows so far that may belong to a speaker not yet declared."""
        return len(self._pending)

    def assign(self, embedding: Vector) -> Assignment | None:
        """The cluster of ``embedding``; None while no speaker has been declared yet."""
        if self.centroids:
            distances = 1.0 - np.stack(self.centroids) @ embedding
            best = int(np.argmin(distances))
            distance = float(distances[best])
            if distance <= self.threshold:
                self._pending.clear()
                self._update(best, embedding)
                return Assignment(best, distance, confidence(distance, self.threshold))
        self._pending.append(embedding)
        if self._evidence_agrees() and len(self.centroids) < self.max_speakers:
            centroid = unit(np.mean(self._pending, axis=0))
            self.centroids.append(centroid)
            self.counts.append(len(self._pending))
            self._pending.clear()
            distance = float(1.0 - centroid @ embedding)
            return Assignment(
                len(self.centroids) - 1, distance, confidence(distance, self.threshold), new=True
            )
        if not self.centroids:
            return None
        return Assignment(best, distance, confidence(distance, self.threshold))

    def _evidence_agrees(self) -> bool:
        if len(self._pending) < self.min_evidence:
            return False
        mean = unit(np.mean(self._pending, axis=0))
        return bool(np.all(1.0 - np.stack(self._pending) @ mean <= self.threshold))

    def _update(self, cluster: int, embedding: Vector) -> None:
        self.counts[cluster] += 1
        rate = max(self.update_rate, 1.0 / self.counts[cluster])
        self.centroids[cluster] = unit((1.0 - rate) * self.centroids[cluster] + rate * embedding)


def reduce_points(embeddings: Matrix, max_points: int) -> tuple[Matrix, Labels]:
    """At most ``max_points`` embeddings standing for ``embeddings``: means of consecutive
    groups, so agglomerative clustering stays within memory on hours of audio.

    Returns the reduced embeddings and, per input row, the index of its group.
    """
    n = len(embeddings)
    group = math.ceil(n / max_points) if n > max_points else 1
    owner = np.arange(n) // group
    reduced = np.stack(
        [unit(embeddings[owner == g].mean(axis=0)) for g in range(int(owner[-1]) + 1)]
    )
    return reduced, owner.astype(np.int64)


def global_clusters(
    embeddings: Matrix,
    *,
    distance_threshold: float,
    n_speakers: int | None = None,
    max_points: int = 2000,
) -> Labels:
    """Cluster a whole file's window embeddings [n, 256]: average-linkage agglomerative
    clustering on cosine distance, cut at ``distance_threshold`` or at ``n_speakers``.

    Labels are 0..k-1 in order of first appearance.
    """
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n == 1 or n_speakers == 1:
        return np.zeros(n, dtype=np.int64)
    points, owner = reduce_points(embeddings, max_points)
    if len(points) == 1:
        return np.zeros(n, dtype=np.int64)
    heights, pairs = average_linkage(points)
    # Merge while the linkage distance is below the threshold (scikit-learn's rule), or,
    # given the count, up to the lowest height that leaves no more than that many clusters
    # (SciPy's fcluster "maxclust": merges tied with the last one needed join too).
    if n_speakers is None:
        cut = float(np.nextafter(distance_threshold, -np.inf))
    else:
        needed = len(points) - min(n_speakers, len(points))
        cut = float(heights[needed - 1]) if needed > 0 else -np.inf
    labels = _flat_clusters(len(points), pairs[heights <= cut])[owner]
    return relabel_by_appearance(labels)


def average_linkage(points: Matrix) -> tuple[npt.NDArray[np.float64], Labels]:
    """The average-linkage (UPGMA) tree of ``points`` over cosine distance, as its merges in
    order of height: ``(heights [n-1], pairs [n-1, 2])``, each pair two points, one from
    each of the clusters merged.

    The nearest-neighbour-chain algorithm (Murtagh 1983; what SciPy's ``linkage`` runs for
    average linkage) over a full distance matrix: at most 3n nearest-neighbour searches,
    each one NumPy pass over a row. It gives SciPy's tree (tests/test_speaker_clustering.py
    checks the flat clusters against ``scipy.cluster.hierarchy``) without importing SciPy,
    which cost file analysis about 0.45 CPU-s of start-up (``scipy.spatial`` and its
    array-API layer) for a few milliseconds of clustering.
    """
    n = len(points)
    x = np.asarray(points, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1)
    x = x / np.where(norms > 0, norms, 1.0)[:, None]
    distance = np.clip(1.0 - x @ x.T, 0.0, 2.0)
    np.fill_diagonal(distance, np.inf)
    size = np.ones(n)
    heights = np.empty(max(n - 1, 0))
    pairs = np.empty((max(n - 1, 0), 2), dtype=np.int64)
    chain: list[int] = []
    alive = list(range(n))  # candidates for a new chain's start, pruned lazily
    for merge in range(n - 1):
        if not chain:
            while size[alive[-1]] == 0:
                alive.pop()
            chain.append(alive[-1])
        while True:
            a = chain[-1]
            row = distance[a]
            b = int(np.argmin(row))
            if len(chain) > 1 and row[chain[-2]] <= row[b]:
                b = chain[-2]  # reciprocal nearest neighbours: merge them
                break
            chain.append(b)
        chain.pop()
        chain.pop()
        heights[merge], pairs[merge] = distance[a, b], (a, b)
        # Lance-Williams for average linkage; the merged cluster lives on in row b.
        joined = (size[a] * distance[a] + size[b] * distance[b]) / (size[a] + size[b])
        distance[b], distance[:, b] = joined, joined
        distance[a], distance[:, a] = np.inf, np.inf
        distance[b, b] = np.inf
        size[b] += size[a]
        size[a] = 0
    order = np.argsort(heights, kind="stable")
    return heights[order], pairs[order]


def _flat_clusters(n: int, pairs: Labels) -> Labels:
    """Cluster index of each of ``n`` points once the merges ``pairs`` are made."""
    parent = list(range(n))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs.tolist():
        parent[root(a)] = root(b)
    return np.array([root(i) for i in range(n)], dtype=np.int64)


def relabel_by_appearance(labels: Labels) -> Labels:
    """Renumber ``labels`` 0, 1, ... in order of first appearance."""
    order: dict[int, int] = {}
    for label in labels.tolist():
        order.setdefault(label, len(order))
    return np.array([order[label] for label in labels.tolist()], dtype=np.int64)


def centroids_of(embeddings: Matrix, labels: Labels) -> Matrix:
    """The unit mean embedding of each label 0..max(labels)."""
    if len(labels) == 0:
        return np.zeros((0, embeddings.shape[1] if embeddings.ndim == 2 else 0), np.float32)
    return np.stack([unit(embeddings[labels == k].mean(axis=0)) for k in range(labels.max() + 1)])
