"""Clustering and turn statistics on constructed embeddings and timelines (no audio)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from detectors.speaker.clustering import (
    OnlineClusterer,
    average_linkage,
    global_clusters,
    relabel_by_appearance,
    unit,
)
from detectors.speaker.detector import SpeakerConfig, SpeakerHistory
from detectors.speaker.offline import (
    Segment,
    absorb_small_clusters,
    block_clusters,
    cluster_windows,
    diarize,
    join_clusters,
    merge_alternating,
    one_voice_pair,
    online_count,
    partition,
    switch_rates,
)
from stream.speaker_report import interruptions, rttm_lines, speaker_labels

DIM = 256


def voices(n: int, seed: int = 0) -> npt.NDArray[np.float32]:
    """``n`` unit vectors with non-negative components, far apart (like distinct voices)."""
    rng = np.random.default_rng(seed)
    base = np.zeros((n, DIM), np.float32)
    for i in range(n):
        base[i, i * 20 : i * 20 + 20] = 1.0
    return np.stack([unit(v + 0.01 * np.abs(rng.normal(size=DIM))) for v in base])


def near(voice: npt.NDArray[np.float32], rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """A window of ``voice``: the voice plus a little noise (cosine distance about 0.03)."""
    return unit(voice + 0.02 * np.abs(rng.normal(size=DIM)).astype(np.float32))


def clusterer(**overrides: float) -> OnlineClusterer:
    settings = {"new_speaker_distance": 0.22, "update_rate": 0.05, "max_speakers": 3,
                "min_evidence": 4} | overrides  # fmt: skip
    return OnlineClusterer(**settings)  # type: ignore[arg-type]


def test_a_new_speaker_needs_min_evidence_agreeing_windows() -> None:
    rng = np.random.default_rng(1)
    a, b = voices(2)
    online = clusterer()
    first = [online.assign(near(a, rng)) for _ in range(4)]
    assert first[:3] == [None, None, None]  # nobody declared until the evidence is in
    assert first[3] is not None
    assert first[3].new
    assert first[3].cluster == 0
    for _ in range(3):
        pending = online.assign(near(b, rng))
        assert pending is not None
        assert (pending.cluster, pending.new) == (0, False)
        assert pending.confidence < 0.5  # unlike speaker 0, and says so
    declared = online.assign(near(b, rng))
    assert declared is not None
    assert (declared.cluster, declared.new) == (1, True)
    again = online.assign(near(a, rng))
    assert again is not None
    assert (again.cluster, again.new) == (0, False)
    assert again.confidence > 0.9


def test_windows_that_disagree_declare_nobody() -> None:
    rng = np.random.default_rng(2)
    a, b, c = voices(3)
    online = clusterer()
    for _ in range(4):
        online.assign(near(a, rng))
    # Alternating unknown voices: never four consecutive windows that agree (b and c are
    # nearly orthogonal, so each lies about 0.29 from their mean, beyond 0.22).
    for i in range(12):
        online.assign(near(b if i % 2 else c, rng))
    assert len(online.centroids) == 1


def test_the_speaker_count_and_state_stay_bounded() -> None:
    rng = np.random.default_rng(3)
    online = clusterer(max_speakers=2)
    for voice in voices(4):
        for _ in range(6):
            online.assign(near(voice, rng))
    assert len(online.centroids) == 2
    assert online.pending <= 4


def test_whole_file_clustering_finds_the_voices_or_the_given_count() -> None:
    rng = np.random.default_rng(4)
    a, b, c = voices(3)
    windows = np.stack([near(v, rng) for v in [a] * 10 + [b] * 8 + [c] * 12])
    labels = global_clusters(windows, distance_threshold=0.3)
    assert labels.tolist() == [0] * 10 + [1] * 8 + [2] * 12
    two = global_clusters(windows, distance_threshold=0.3, n_speakers=2)
    assert len(set(two.tolist())) == 2
    assert len(set(two[:10].tolist())) == 1


def test_a_cluster_of_a_few_windows_joins_its_nearest_speaker() -> None:
    rng = np.random.default_rng(5)
    a, b = voices(2)
    mixed = unit(a + 0.6 * b)  # windows straddling two voices
    windows = np.stack([near(v, rng) for v in [a] * 10 + [mixed] * 2 + [b] * 10])
    labels = global_clusters(windows, distance_threshold=0.1)
    assert len(set(labels.tolist())) == 3
    absorbed = absorb_small_clusters(windows, labels, min_windows=5)
    assert absorbed.tolist() == [0] * 12 + [1] * 10


def interview(seconds: int = 300) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """A window a second of two voices taking turns of 3 to 11 s, each window its voice
    plus noise: within one voice 0.34 apart on average (cosine), between them 0.50, about
    as GE2E's windows of two real voices in a room (0.29 and 0.50, docs/BENCHMARKS.md)."""
    rng = np.random.default_rng(1)
    a = unit(rng.normal(size=DIM))
    b = unit(0.75 * a + 0.66 * unit(rng.normal(size=DIM)))
    who: list[int] = []
    while len(who) < seconds:
        who += [len(who) and 1 - who[-1]] * int(rng.integers(3, 12))
    speaker = np.array(who[:seconds], dtype=np.int64)
    noise = 0.045 * rng.normal(size=(seconds, DIM))
    windows = np.stack([unit(v) for v in np.where(speaker[:, None] == 0, a, b) + noise])
    return windows.astype(np.float32), speaker


def test_a_long_file_is_clustered_in_blocks_and_keeps_two_voices_two() -> None:
    windows, speaker = interview()
    # One tree over five minutes of windows, cut where short files are cut, finds more
    # people than there are: chance groups of one voice's windows survive as clusters.
    assert int(cluster_windows(windows, 0.3, 5, None).max()) + 1 > 2
    starts = np.arange(len(windows), dtype=np.float64)
    for given in (None, 2):
        labels = block_clusters(windows, starts, SpeakerConfig(), 5, given)
        assert int(labels.max()) + 1 == 2
        assert np.mean(labels == labels[0] ^ (speaker != speaker[0])) == 1.0


def test_diarize_clusters_in_blocks_only_past_file_block_after_s() -> None:
    windows, _ = interview()
    frames = np.arange(0, len(windows) + 0.6, 0.032)
    history = SpeakerHistory(
        channel=0, frame_s=0.032, frame_start=frames, frame_voiced=np.ones(len(frames), bool),
        window_start=np.arange(len(windows), dtype=np.float64),
        window_end=np.arange(len(windows), dtype=np.float64) + 1.6,
        # The live clusterer splits such voices too (it counted 2-8 on real interviews).
        embeddings=windows, online=cluster_windows(windows, 0.3, 5, None),
    )  # fmt: skip

    def count(config: SpeakerConfig) -> int:
        pure = np.ones(len(windows), bool)
        labels, n = partition([history], windows, windows, pure, config=config,
                              recluster=config.recluster_distance, n_speakers=None)  # fmt: skip
        assert int(labels.max()) + 1 == n
        return n

    assert count(SpeakerConfig()) == 2
    assert count(SpeakerConfig(file_block_after_s=400.0)) > 2  # one tree, as before
    assert count(SpeakerConfig(file_block_s=0.0)) > 2
    assert {s.speaker for s in diarize([history], SpeakerConfig()).segments} == {0, 1}


def test_blocks_are_clustered_in_the_space_the_file_is_clustered_in() -> None:
    """With the joined GE2E + CAM++ embeddings (``file_encoder``), a long file's blocks, its
    count and its partition come from the joined space and its own cut (``recluster``):
    here GE2E hears one voice and the joined space two, as CAM++ told apart the far-field
    voices GE2E confused (docs/BENCHMARKS.md)."""
    two, speaker = interview()
    rng = np.random.default_rng(2)
    one = np.stack([unit(v) for v in two[0] + 0.02 * rng.normal(size=two.shape)]).astype(np.float32)
    starts = np.arange(len(two), dtype=np.float64)
    history = SpeakerHistory(
        channel=0, frame_s=0.032, frame_start=starts, frame_voiced=np.ones(len(two), bool),
        window_start=starts, window_end=starts + 1.6, embeddings=one,
        online=np.zeros(len(two), np.int64),
    )  # fmt: skip
    pure = np.ones(len(two), bool)
    config = SpeakerConfig()

    def found(space: npt.NDArray[np.float32]) -> tuple[npt.NDArray[np.int64], int]:
        return partition([history], one, space, pure, config=config, recluster=0.35,
                         n_speakers=None)  # fmt: skip

    assert found(one)[1] == 1
    labels, n = found(two)
    assert n == 2
    assert np.mean(labels == labels[0] ^ (speaker != speaker[0])) > 0.95


def test_speakers_that_change_hands_every_window_or_two_are_one_voice() -> None:
    starts = np.arange(60, dtype=np.float64)
    turns = np.repeat([0, 1] * 6, 5).astype(np.int64)  # two people, turns of 5 s
    rng = np.random.default_rng(3)
    flicker = np.concatenate([turns, 2 + rng.integers(0, 2, 60)])  # a third voice, split
    starts = np.concatenate([starts, 60 + starts])
    rates = switch_rates(flicker, starts, 1.0)
    assert rates[0, 1] == pytest.approx(11 / 30)  # 11 changes of hands, 30 windows each
    assert rates[2, 3] > 0.6
    merged = merge_alternating(flicker, starts, 1.0, 0.6)
    assert merged.tolist() == turns.tolist() + [2] * 60
    assert merge_alternating(flicker, starts, 1.0, 0.6, min_speakers=4).tolist() == flicker.tolist()
    # Windows are consecutive only within a channel and one hop apart: the second
    # channel's first window does not follow the first channel's last one.
    two_channels = np.concatenate([starts[:60], starts[:60]])
    assert switch_rates(np.repeat([0, 1], 60), two_channels, 1.0)[0, 1] == 0.0


def test_two_speakers_heard_together_most_of_the_time_are_one_voice() -> None:
    # Speaker 0 and 1: real people, 1 s of 20 s overlapped. Speakers 2 and 3: the two
    # halves of one voice, the second voice of overlapped speech on 9 of 10 s.
    segments = [
        Segment(0.0, 10.0, 0), Segment(9.0, 20.0, 1),
        Segment(30.0, 40.0, 2), Segment(30.5, 39.5, 3),
    ]  # fmt: skip
    assert one_voice_pair(segments, 0.5) == (2, 3)  # the more heard one is kept
    assert one_voice_pair(segments[:2], 0.5) is None  # 1 s of 10: people talking over
    assert one_voice_pair(segments, 1.0) is None  # 1: never
    # One voice heard on two channels counts once: 2 of speaker 1's 4 s are shared (twice
    # that if each channel's piece counted).
    pieces = [Segment(0.0, 4.0, 0), Segment(0.0, 4.0, 0, 1), Segment(2.0, 6.0, 1)]
    assert one_voice_pair(pieces, 0.6) is None
    assert one_voice_pair(pieces, 0.4) == (0, 1)  # equal talk: the first is kept
    assert join_clusters(np.array([0, 1, 2, 1, 0]), 0, 1).tolist() == [0, 0, 1, 0, 0]


def test_the_live_count_ignores_speakers_with_almost_no_windows() -> None:
    assert online_count(np.array([-1, 0, 0, 0, 1, 1, 1, 2, 0])) == 2
    assert online_count(np.array([-1, -1])) == 1
    # The same 1.5 s of speech at a hop of 1 s is two windows: speaker 2 counts there too.
    assert online_count(np.array([-1, 0, 0, 0, 1, 1, 1, 2, 2]), hop_s=0.5) == 2
    assert online_count(np.array([-1, 0, 0, 0, 1, 1, 1, 2, 2]), hop_s=1.0) == 3


def test_interruptions_are_overlaps_and_quick_takeovers() -> None:
    segments = [
        Segment(0.0, 3.0, 0),
        Segment(3.1, 5.0, 1),  # starts 0.1 s after speaker 0 stops: an interruption
        Segment(6.0, 8.0, 0),  # after a 1 s pause: not one
        Segment(7.5, 9.0, 1),  # while speaker 0 still talks: one
        Segment(9.5, 10.0, 1),  # the same speaker again: not a new turn
    ]
    assert interruptions(segments) == 2


def test_labels_and_rttm_lines() -> None:
    assert speaker_labels(3, {1: "Guide Rossi"}) == ["Speaker_1", "Guide Rossi", "Speaker_2"]
    section = {"segments": [{"start": 0.5, "end": 2.25, "speaker": "Guide Rossi"}]}
    assert rttm_lines("my file", section) == [
        "SPEAKER my_file 1 0.500 1.750 <NA> <NA> Guide_Rossi <NA> <NA>\n"
    ]


@pytest.mark.parametrize("n", [0, 1])
def test_clustering_too_few_windows(n: int) -> None:
    labels = global_clusters(voices(1)[:n], distance_threshold=0.3)
    assert labels.tolist() == [0] * n


@pytest.mark.parametrize("n_speakers", [None, 2, 3, 5])
def test_file_clustering_cuts_the_tree_scikit_learn_cuts(n_speakers: int | None) -> None:
    """Our average-linkage tree, cut as AgglomerativeClustering cuts it (same labels)."""
    from sklearn.cluster import AgglomerativeClustering

    rng = np.random.default_rng(n_speakers or 0)
    for _ in range(25):
        k, n = int(rng.integers(1, 6)), int(rng.integers(6, 300))
        centres = rng.normal(size=(k, 256))
        noise = rng.normal(scale=rng.uniform(0.3, 2.0), size=(n, 256))
        x = (centres[rng.integers(0, k, n)] + noise).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        threshold = float(rng.uniform(0.2, 0.9))
        ours = global_clusters(x, distance_threshold=threshold, n_speakers=n_speakers)
        reference = AgglomerativeClustering(
            n_clusters=n_speakers,
            metric="cosine",
            linkage="average",
            distance_threshold=None if n_speakers else threshold,
        ).fit_predict(x)
        assert np.array_equal(ours, relabel_by_appearance(np.asarray(reference)))


@pytest.mark.parametrize("seed", range(4))
def test_the_average_linkage_tree_is_scipys(seed: int) -> None:
    """The tree built without SciPy has SciPy's merge heights, and cut at a count it gives
    fcluster's "maxclust" clusters; duplicated points (equal distances) included."""
    from scipy.cluster.hierarchy import fcluster, linkage

    rng = np.random.default_rng(seed)
    for _ in range(20):
        k, n = int(rng.integers(1, 6)), int(rng.integers(2, 250))
        centres = rng.normal(size=(k, 64))
        x = centres[rng.integers(0, k, n)] + rng.normal(scale=rng.uniform(0.2, 2.0), size=(n, 64))
        x[n // 2 :: 7] = x[0]  # some points repeated exactly
        tree = linkage(x, method="average", metric="cosine")
        heights, pairs = average_linkage(x)
        assert pairs.shape == (n - 1, 2)
        np.testing.assert_allclose(heights, np.sort(np.maximum(tree[:, 2], 0.0)), atol=1e-9)
        for count in (2, 3, 4, 7):
            theirs = fcluster(tree, t=min(count, n), criterion="maxclust")
            ours = global_clusters(x.astype(np.float32), distance_threshold=0.5, n_speakers=count)
            assert np.array_equal(ours, relabel_by_appearance(np.asarray(theirs, np.int64)))
