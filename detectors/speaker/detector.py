"""Live diarization: who is speaking on one channel, as ``speaker.turn`` events.

Every ``hop_s`` the detector gates the new audio frame by frame (Silero or
WebRTC VAD, 32 ms frames, after the VAD's gain normalisation; below an energy
floor never speech; detectors see all audio, not only what the VAD detector
calls speech), and if at least ``min_voiced`` of the last ``window_s`` is voiced
it embeds that window (GE2E on onnxruntime) and assigns it to a speaker with
:class:`OnlineClusterer`.

A turn is one speaker's voiced audio without a pause longer than
``turn_pause_s``. While it lasts, every hop that adds voiced audio to it emits a
``speaker.turn`` with the turn's ``t_start`` and its extent so far, so an event
is at most one hop (plus processing) behind the audio. Events of one turn share
``t_start``; the last one carries the final extent. A change of speaker is seen
late (a window must be mostly the new voice, and a new voice needs
``min_evidence`` windows), so the new turn is back-dated to the pause nearest
the estimated change, and the previous turn gets a final event cut there.

With ``keep_embeddings`` (file analysis), every window's embedding and every
frame's gate decision are kept for the whole-file re-clustering of
``detectors.speaker.offline``; live, state is bounded by one window of audio.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field, model_validator

from detectors.base import ChannelResources, Detector, DetectorConfig, register
from detectors.rows import Rows
from detectors.speaker.campplus import CAMPPLUS_SIZE, CamppEncoder, campplus_provenance
from detectors.speaker.clustering import Assignment, Matrix, OnlineClusterer, unit
from detectors.speaker.encoder import ENCODER_MODELS, SpeakerEncoder, encoder_provenance
from detectors.speaker.frontend import normalize_volume, partial_mels
from detectors.speaker.overlap import N_MELS, frame_logmel
from detectors.speaker.profiles import ProfileStore, VoiceProfile, match_names
from detectors.speaker.segmentation import (
    ChunkedSegmentation,
    LocalSegmentation,
    segmentation_provenance,
)
from detectors.vad import (
    SILERO_FRAME,
    LevelNormaliser,
    SileroFrameCache,
    VadConfig,
    WebRtcFrames,
    energy_db,
    shared_silero_frames,
)
from stream.events import Event, SpeakerTurn
from stream.windowing import Samples, Window

logger = logging.getLogger(__name__)

FRAME = SILERO_FRAME  # samples per gate frame (32 ms at 16 kHz)
ORPHANS_KEPT = 16  # short stretches of speech, pauses apart, awaiting their speaker
ORPHAN_MAX_AGE_S = 15.0  # older ones are not given to the speaker named next


class SpeakerConfig(DetectorConfig):
    """Speaker diarization: embeddings over sliding windows, clustered online."""

    type: Literal["speaker"] = "speaker"
    window_s: float = Field(
        1.6, ge=1.2, le=3.2, description="Audio per embedding (s); the encoder sees 1.6 s at once."
    )
    hop_s: float = Field(
        0.5,
        ge=0.25,
        le=2.0,
        description="Time between embeddings (s), rounded to whole 32 ms frames: the latency.",
    )
    file_hop_s: float | None = Field(
        1.0,
        ge=0.25,
        le=2.0,
        description="Files: time between embeddings (s); unset: hop_s. Files need no latency, "
        "and the whole-file re-clustering decides the segments: 1.0 s costs a third less than "
        "0.5 s for the same DER on dev (docs/BENCHMARKS.md, DER against CPU per hop).",
    )
    file_min_evidence: int | None = Field(
        4,
        ge=1,
        le=20,
        description="Files: min_evidence of the clusterer whose count votes on the number of "
        "speakers; unset: min_evidence. The default pipeline's live 3 cost files 2-3 points "
        "of DER on dev (docs/BENCHMARKS.md).",
    )
    file_new_speaker_distance: float | None = Field(
        0.22,
        gt=0,
        lt=1,
        description="Files: new_speaker_distance of the clusterer whose count votes on the "
        "number of speakers; unset: new_speaker_distance. The vote's cuts were calibrated "
        "with 0.22 (docs/BENCHMARKS.md).",
    )
    gate: Literal["silero", "webrtc"] = Field(
        "silero", description="Speech gate per 32 ms frame: Silero VAD or the lighter WebRTC VAD."
    )
    gate_threshold: float = Field(
        0.35,
        gt=0,
        lt=1,
        description="Silero speech probability (below the VAD's 0.5: distant voices in babble "
        "score lower, and the embeddings and clustering judge what passes).",
    )
    energy_floor_dbfs: float = Field(
        -55.0,
        ge=-120,
        le=0,
        description="Frames quieter than this after gain normalisation are never speech.",
    )
    min_voiced: float = Field(
        0.5, gt=0, le=1, description="Share of a window that must be voiced to embed it."
    )
    new_speaker_distance: float = Field(
        0.26,
        gt=0,
        lt=1,
        description="Cosine distance from every known speaker beyond which a window is evidence "
        "of a new speaker. 0.26 on real voices (0.22, chosen on synthetic ones, split a real "
        "voice into several speakers over minutes; docs/BENCHMARKS.md).",
    )
    update_rate: float = Field(
        0.05, gt=0, le=1, description="Least weight of a new window in its speaker's centroid."
    )
    max_speakers: int = Field(
        8, ge=1, le=64, description="Speakers tracked per channel; files: most speakers counted."
    )
    min_speakers: int = Field(
        1, ge=1, le=64, description="Files: fewest speakers counted (when not given)."
    )
    min_evidence: int = Field(
        4, ge=1, le=20, description="Consecutive agreeing windows needed to declare a new speaker."
    )
    turn_pause_s: float = Field(
        0.3, ge=0.05, le=5.0, description="A pause longer than this ends a turn (s)."
    )
    enrolled_distance: float = Field(
        0.25,
        gt=0,
        lt=1,
        description="Largest cosine distance at which a speaker takes an enrolled voice's name.",
    )
    profiles_path: Path | None = Field(
        None,
        description="Voice-profile file (heritage-audio speakers enroll); unset: "
        "speakers/profiles.json under HERITAGE_DATA_DIR.",
    )
    recluster_distance: float = Field(
        0.3,
        gt=0,
        lt=1,
        description="Files: average-linkage cosine distance where the whole-file clustering "
        "stops merging, before it is brought to the number of speakers; one of the cuts "
        "that vote on the count when it is not given.",
    )
    count_distance: float = Field(
        0.2,
        gt=0,
        lt=1,
        description="Files: the tighter cut of the clustering tree that votes on the number "
        "of speakers, with recluster_distance's and the live clusterer's count.",
    )
    file_block_after_s: float = Field(
        45.0,
        ge=0,
        description="Files whose embedded windows span longer than this (s) are clustered in "
        "blocks (file_block_s) first: over a minute or more one real voice's windows drift "
        "into sub-clusters that a cut of the whole tree counts as people (docs/BENCHMARKS.md).",
    )
    file_block_s: float = Field(
        45.0,
        ge=0,
        description="Files: length of the blocks (s) whose windows are clustered on their own "
        "before the blocks' clusters are joined across the file; 0: never.",
    )
    file_block_distance: float = Field(
        0.15,
        gt=0,
        lt=1,
        description="Files clustered in blocks: average-linkage cosine distance where the "
        "blocks' cluster centroids stop merging into speakers.",
    )
    file_switch_rate: float = Field(
        2.0,
        gt=0,
        description="Files clustered in blocks, count estimated: two speakers whose windows "
        "alternate more often than this (changes between them from one window to the next, "
        "per window of the less heard; at most 2) are taken for one voice split in two and "
        "merged. 0.6 halved the error on single far-field voices before one_voice_overlap "
        "(which now joins those, with nothing left for this rule), and it merges the two "
        "people of quick telephone exchanges (docs/BENCHMARKS.md); 2: never (the default).",
    )
    min_speaker_s: float = Field(
        5.0,
        ge=0,
        le=60,
        description="Files: a cluster with less speech than this (s) joins its nearest speaker "
        "(overlaps and noise make small phantom clusters).",
    )
    overlap_threshold: float = Field(
        0.8,
        gt=0,
        le=1,
        description="Files: overlap probability (detectors.speaker.overlap) above which a frame "
        "is given to a second speaker as well; 1: one speaker at a time.",
    )
    one_voice_overlap: float = Field(
        0.5,
        gt=0,
        le=1,
        description="Files, count estimated: two speakers the overlap model hears at once (the "
        "second voice of overlapped speech) for more than this share of the quieter one's "
        "speech are one voice split in two, and are joined. Real pairs of the dev sets stayed "
        "under 0.21, split single voices were at 0.79-0.98 (docs/BENCHMARKS.md); 1: never. "
        "With file_segmentation too, judged by the overlap model all the same.",
    )
    batch: int = Field(
        1,
        ge=1,
        le=64,
        description="Windows per encoder call; each hop's events then come up to batch - 1 "
        "hops later (the int8 encoder takes 5 ms a window in pairs, 7 alone).",
    )
    keep_embeddings: bool = Field(
        False, description="Keep every embedding for whole-file re-clustering (files only)."
    )
    encoder: Literal["ge2e-int8", "ge2e"] = Field(
        "ge2e-int8",
        description="Live: the GE2E speaker encoder with its two upper LSTM layers in int8 "
        "(tools/quantize_speaker_encoder.py; 45 % less CPU per window, which pays for the "
        "0.5 s hop) or the float export.",
    )
    file_encoder: Literal["ge2e", "ge2e-int8", "ge2e+campplus"] = Field(
        "ge2e",
        description="Files: the embeddings the whole-file clustering and re-segmentation use. "
        "ge2e: the float GE2E export; ge2e-int8: its int8 derivative (a third less CPU for "
        "the encoder, file DER up to a point higher on the test sets); ge2e+campplus joins "
        "each window's float GE2E embedding with a CAM++ one (detectors.speaker.campplus): "
        "less confusion on far-field real voices, at about 0.08 CPU-s more per audio-s; "
        "live turns and voice names stay GE2E's.",
    )
    campplus_weight: float = Field(
        0.4,
        gt=0,
        lt=1,
        description="Files with ge2e+campplus: CAM++'s share of the joined cosine similarity "
        "(GE2E has the rest). CAM++ alone confused the synthetic voices (dev DER 18 %).",
    )
    file_segmentation: bool = Field(
        False,
        description="Files: run pyannote's segmentation-3.0 (detectors.speaker.segmentation) "
        "over 10 s chunks and take speech, overlapped speech and turn boundaries from its "
        "local speakers, each mapped to the file's clusters.",
    )
    segmentation_step_s: float = Field(
        2.5,
        ge=1.0,
        le=10.0,
        description="Files with file_segmentation: time between 10 s chunks (s); each chunk "
        "costs about 45 ms of one core.",
    )
    segmentation_overlap_threshold: float = Field(
        0.4,
        ge=0,
        le=1,
        description="Files with file_segmentation: probability of two voices at once above "
        "which a frame is given to a second speaker (the most active other one).",
    )
    segmentation_purity: float = Field(
        0.6,
        ge=0,
        le=1,
        description="Files with file_segmentation: the clusters (and the count) are built on "
        "the windows where one local speaker holds at least this share of the speech alone; "
        "the others follow their nearest cluster (0: all windows).",
    )
    segmentation_count_s: float = Field(
        1.0,
        ge=0,
        le=10,
        description="Files with file_segmentation: the number of speakers, when not given, is "
        "at least the most local speakers one chunk holds with this much speech each "
        "(0: no such floor).",
    )
    campplus_recluster_distance: float = Field(
        0.35,
        gt=0,
        lt=2,
        description="Files with ge2e+campplus: recluster_distance for the joined embeddings.",
    )

    @model_validator(mode="after")
    def _window_covers_hop(self) -> SpeakerConfig:
        if self.hop_s > self.window_s or (self.file_hop_s or 0) > self.window_s:
            raise ValueError("hop_s and file_hop_s must not exceed window_s")
        if self.min_speakers > self.max_speakers:
            raise ValueError("min_speakers must not exceed max_speakers")
        return self


@dataclass
class SpeakerHistory:
    """What one channel's detector saw, for whole-file re-clustering (times in seconds)."""

    channel: int
    frame_s: float  # length of a gate frame
    frame_start: npt.NDArray[np.float64]  # start of every gate frame
    frame_voiced: npt.NDArray[np.bool_]
    window_start: npt.NDArray[np.float64]  # every embedded window
    window_end: npt.NDArray[np.float64]
    embeddings: Matrix  # [windows, 256], unit length
    online: npt.NDArray[np.int64]  # the online cluster of each window (-1: none yet)
    frame_logmel: npt.NDArray[np.float32] | None = None  # [frames, 40], for overlap detection
    campplus: Matrix | None = None  # [windows, 192] CAM++ embeddings (ge2e+campplus only)
    segmentation: LocalSegmentation | None = None  # local speakers (file_segmentation only)


@dataclass
class _Hop:
    start: int  # stream sample index of the hop's first sample
    voiced: npt.NDArray[np.bool_]  # per gate frame of the hop
    mels: npt.NDArray[np.float32] | None  # the window's partials, if it is worth embedding
    window_voiced: npt.NDArray[np.bool_]  # per gate frame of the window ending with the hop
    audio: npt.NDArray[np.float32] | None = None  # the window (ge2e+campplus only)


@dataclass
class _Turn:
    cluster: int
    t_start: float
    t_end: float  # end of its last voiced frame
    emitted_end: float = -1.0
    confidence_sum: float = 0.0
    windows: int = 0  # windows assigned to the turn

    @property
    def confidence(self) -> float:
        return self.confidence_sum / self.windows if self.windows else 0.5


class SpeechGate:
    """Per 32 ms frame: speech or not (energy floor, then a VAD frame classifier).

    With Silero, the frames are judged through a :class:`SileroFrameCache` that the
    channel's VAD shares (``attach``) when its normaliser settings are the defaults the
    gate uses, so Silero runs once per frame for both.
    """

    def __init__(self, config: SpeakerConfig, sample_rate: int) -> None:
        self._vad = VadConfig(engine=config.gate, threshold=config.gate_threshold, frame_ms=30)
        self._rate = sample_rate
        self._threshold = config.gate_threshold
        self._floor = config.energy_floor_dbfs
        self._silence = self._vad.silence_floor_dbfs
        self._silero = SileroFrameCache(self._vad, sample_rate) if config.gate == "silero" else None
        self._webrtc = WebRtcFrames(self._vad, 16000) if config.gate == "webrtc" else None
        # The same gain normalisation as the VAD detector, so distant voices pass the gate.
        self._normaliser = LevelNormaliser(self._vad, FRAME / sample_rate)

    def attach(self, resources: ChannelResources) -> None:
        if self._silero is not None:
            self._silero = shared_silero_frames(resources, self._vad, self._rate)

    def reset(self) -> None:
        if self._silero is not None:
            self._silero.reset()
        if self._webrtc is not None:
            self._webrtc.reset()
        self._normaliser.reset()

    def frames(self, start: int, samples: Samples) -> npt.NDArray[np.bool_]:
        """The decision for each whole 512-sample frame of ``samples`` (from stream sample
        ``start``)."""
        if self._silero is not None:
            judged = self._silero.judge(start, samples)
            energy, gain, probability = judged[:, 0], judged[:, 1], judged[:, 2]
            loud = (energy >= self._silence) & (energy + gain >= self._floor)
            return np.asarray(loud & (probability >= self._threshold), dtype=np.bool_)
        assert self._webrtc is not None
        n = len(samples) // FRAME
        frames = samples[: n * FRAME].reshape(n, FRAME)
        energies = [energy_db(f) for f in frames]
        gains = [self._normaliser.gain_db(e) for e in energies]
        frames = frames * (10 ** (np.array(gains) / 20)).astype(np.float32)[:, np.newaxis]
        # WebRTC VAD takes 10/20/30 ms: it judges the first 480 samples of the 512.
        return np.array(
            [
                e >= self._silence
                and e + g >= self._floor
                and self._webrtc.is_voiced(f[: self._webrtc.frame])
                for f, e, g in zip(frames, energies, gains, strict=True)
            ],
            dtype=np.bool_,
        )


@register("speaker")
class SpeakerDetector(Detector):
    """Emits ``speaker.turn`` events for one channel (see the module docstring)."""

    name = "speaker"

    def __init__(
        self,
        config: SpeakerConfig,
        channel: int,
        sample_rate: int,
        *,
        encoder: SpeakerEncoder | None = None,
        profiles: dict[str, VoiceProfile] | None = None,
    ) -> None:
        if sample_rate != 16000:
            raise ValueError(f"the speaker encoder runs at 16000 Hz, not {sample_rate}")
        self.config = config
        self.channel = channel
        self.rate = sample_rate
        self.hop = max(1, round(config.hop_s * sample_rate / FRAME)) * FRAME
        self.window = max(self.hop, round(config.window_s * sample_rate / FRAME) * FRAME)
        self._encoder = encoder or SpeakerEncoder(ge2e_model(config))
        self._campplus = (
            CamppEncoder()
            if config.keep_embeddings and config.file_encoder == "ge2e+campplus"
            else None
        )
        self._segmentation = (
            ChunkedSegmentation(config.segmentation_step_s)
            if config.keep_embeddings and config.file_segmentation
            else None
        )
        self._profiles = profiles if profiles is not None else load_profiles(config)
        self._gate = SpeechGate(config, sample_rate)
        self._clusterer = OnlineClusterer(
            new_speaker_distance=config.new_speaker_distance,
            update_rate=config.update_rate,
            max_speakers=config.max_speakers,
            min_evidence=config.min_evidence,
        )
        self.failed_windows = 0  # windows the encoder gave no embedding for (logged)
        self.reset()

    def window_samples(self) -> tuple[int, int]:
        return self.hop, self.hop

    def attach(self, resources: ChannelResources) -> None:
        self._gate.attach(resources)

    def reset(self) -> None:
        self._gate.reset()
        self._clusterer.reset()
        if self._segmentation is not None:
            self._segmentation.reset()
        self._audio = np.zeros(self.window, dtype=np.float32)
        self._voiced = np.zeros(self.window // FRAME, dtype=np.bool_)
        self._queue: list[_Hop] = []
        self._turn: _Turn | None = None
        self._unattributed: float | None = None  # onset of speech no window has named yet
        self._unattributed_end = 0.0  # and the end of its last voiced frame
        # Earlier such stretches, pauses apart, awaiting a speaker (bounded: a channel that
        # hears only clicks for hours must not grow).
        self._orphans: deque[tuple[float, float]] = deque(maxlen=ORPHANS_KEPT)
        self._change_at: float | None = None  # estimated start of a voice not yet declared
        self._labels: dict[int, str] = {}
        self._unknown = 0  # Speaker_N numbers handed out
        # The whole-file history (keep_embeddings): compact rows, about 0.2 MB per minute.
        self._frames_start = Rows(np.float64)
        self._frames_voiced = Rows(np.bool_)
        self._frames_logmel = Rows(np.float32, N_MELS)
        self._windows = Rows(np.float64, 3, block=1024)  # start, end, online cluster
        self._embeddings = Rows(np.float32, 256, block=1024)
        self._campplus_embeddings = Rows(np.float32, CAMPPLUS_SIZE, block=1024)
        self._campplus_pending: list[npt.NDArray[np.float32]] = []

    # -- the stream -------------------------------------------------------------------------

    def process(self, window: Window) -> list[Event]:
        voiced = self._gate.frames(window.start, window.samples)
        self._audio = np.concatenate([self._audio[self.hop :], window.samples])
        self._voiced = np.concatenate([self._voiced[len(voiced) :], voiced])
        hop = _Hop(window.start, voiced, self._window_mels(), self._voiced)
        if hop.mels is not None and self._campplus is not None:
            hop.audio = normalize_volume(self._audio)
        self._queue.append(hop)
        if self.config.keep_embeddings:
            starts = (window.start + FRAME * np.arange(len(voiced))) / self.rate
            self._frames_start.append(starts)
            self._frames_voiced.append(voiced)
            n = len(voiced)
            frames = window.samples[: n * FRAME].reshape(n, FRAME)
            self._frames_logmel.append(frame_logmel(frames))
        if self._segmentation is not None:
            self._segmentation.push(window.samples)
        if len(self._queue) < self.config.batch:
            return []
        return self._drain()

    def finish(self, t_end: float) -> list[Event]:
        del t_end
        return self._drain()

    def history(self) -> SpeakerHistory:
        """Every window embedded and every frame gated so far (needs ``keep_embeddings``)."""
        if not self.config.keep_embeddings:
            raise RuntimeError("the speaker detector keeps no history without keep_embeddings")
        windows = self._windows.array()
        return SpeakerHistory(
            channel=self.channel,
            frame_s=FRAME / self.rate,
            frame_start=self._frames_start.array(),
            frame_voiced=self._frames_voiced.array(),
            window_start=windows[:, 0],
            window_end=windows[:, 1],
            embeddings=self._embeddings.array(),
            online=windows[:, 2].astype(np.int64),
            frame_logmel=self._frames_logmel.array(),
            campplus=self._campplus_embeddings.array() if self._campplus else None,
            segmentation=self._segmentation.result() if self._segmentation else None,
        )

    # -- embedding --------------------------------------------------------------------------

    def _window_mels(self) -> npt.NDArray[np.float32] | None:
        if self._voiced.mean() < self.config.min_voiced:
            return None
        try:
            return partial_mels(normalize_volume(self._audio))
        except ValueError:  # digital silence: nothing to embed
            return None

    def _drain(self) -> list[Event]:
        queue, self._queue = self._queue, []
        mels = [hop.mels for hop in queue if hop.mels is not None]
        counts = [len(m) for m in mels]
        embeddings: list[npt.NDArray[np.float32]] = []
        if mels:
            try:
                partials = self._encoder.embed_partials(np.concatenate(mels))
                embeddings = [
                    unit(part.mean(axis=0)) for part in np.split(partials, np.cumsum(counts)[:-1])
                ]
                if self._campplus is not None:
                    audio = [hop.audio for hop in queue if hop.audio is not None]
                    self._campplus_pending = list(self._campplus.embed_windows(audio))
            except ValueError as exc:  # one odd window must not stop the channel
                embeddings = []
                self.failed_windows += len(mels)
                logger.warning("speaker: %d windows not embedded on channel %d: %s",
                               len(mels), self.channel, exc)  # fmt: skip
        events: list[Event] = []
        pending = iter(embeddings)
        for hop in queue:
            embedding = next(pending, None) if hop.mels is not None else None
            events.extend(self._advance(hop, embedding))
        return events

    # -- turns ------------------------------------------------------------------------------

    def _advance(self, hop: _Hop, embedding: npt.NDArray[np.float32] | None) -> list[Event]:
        frame_s = FRAME / self.rate
        t_hop = hop.start / self.rate
        end = t_hop + self.hop / self.rate
        voiced_at = t_hop + frame_s * np.flatnonzero(hop.voiced)
        # A long pause closes the turn; its last event already carries its extent.
        first = float(voiced_at[0]) if len(voiced_at) else end
        pause = self.config.turn_pause_s
        if self._turn is not None and first - self._turn.t_end > pause:
            self._turn = None
        if self._turn is None and len(voiced_at):
            # Speech no window has named yet. Too short for a window of its own, a stretch
            # followed by a long pause becomes a turn of its own (of the speaker the next
            # window names): the turn opened then must not reach back over the silence.
            if self._unattributed is not None and first - self._unattributed_end > pause:
                self._orphans.append((self._unattributed, self._unattributed_end))
                self._unattributed = None
            if self._unattributed is None:
                self._unattributed = first
            self._unattributed_end = float(voiced_at[-1]) + frame_s
        events: list[Event] = []
        if embedding is not None:
            assignment = self._clusterer.assign(embedding)
            self._remember(end, embedding, assignment)
            if assignment is not None:
                events.extend(self._attribute(assignment, end, hop.window_voiced))
        turn = self._turn
        if turn is not None and len(voiced_at):
            turn.t_end = max(turn.t_end, float(voiced_at[-1]) + frame_s)
        if turn is not None and turn.t_end > max(turn.emitted_end, turn.t_start):
            events.append(self._event(turn))
        return events

    def _attribute(
        self, assignment: Assignment, end: float, voiced: npt.NDArray[np.bool_]
    ) -> list[Event]:
        """Open, keep or change the turn after the window ending at ``end`` (its gate frames
        ``voiced``) was assigned."""
        if self._clusterer.pending == 1:
            self._change_at = self._boundary(end, voiced)  # the first window unlike every one
        matched = assignment.new or assignment.distance <= self.config.new_speaker_distance
        cut = self._boundary(end, voiced)
        if assignment.new and self._change_at is not None:
            cut = self._change_at
        if self._clusterer.pending == 0:
            self._change_at = None
        events: list[Event] = []
        turn = self._turn
        if turn is None:
            for t_start, t_end in self._orphans:
                if end - t_end > ORPHAN_MAX_AGE_S:
                    continue  # too long ago to say who it was
                orphan = _Turn(assignment.cluster, t_start, t_end,
                               confidence_sum=assignment.confidence, windows=1)  # fmt: skip
                events.append(self._event(orphan))
            self._orphans.clear()
            start = (
                self._unattributed if self._unattributed is not None else end - self.hop / self.rate
            )
            turn = self._turn = _Turn(assignment.cluster, start, start)
        elif matched and assignment.cluster != turn.cluster:
            # Unmatched windows (a voice not declared yet) leave the turn as it is.
            cut = min(max(cut, turn.t_start), turn.t_end)
            turn.t_end = cut
            events.append(self._event(turn))
            turn = self._turn = _Turn(assignment.cluster, cut, cut)
        self._unattributed = None
        turn.confidence_sum += assignment.confidence
        turn.windows += 1
        return events

    def _boundary(self, end: float, voiced: npt.NDArray[np.bool_]) -> float:
        """Where a voice that fills most of the window ending at ``end`` (gate frames
        ``voiced``) probably began: the speech onset after the pause nearest the window's
        middle, else the middle. The window's own frames: with ``batch`` above 1 a hop is
        attributed after later ones were gated."""
        frame_s = FRAME / self.rate
        start = end - self.window / self.rate
        middle = end - self.window / self.rate / 2
        onsets = [
            start + i * frame_s for i in range(1, len(voiced)) if voiced[i] and not voiced[i - 1]
        ]
        if not onsets:
            return middle
        return min(onsets, key=lambda t: abs(t - middle))

    def _remember(
        self, end: float, embedding: npt.NDArray[np.float32], assignment: Assignment | None
    ) -> None:
        if not self.config.keep_embeddings:
            return
        cluster = assignment.cluster if assignment is not None else -1
        self._windows.append([(end - self.window / self.rate, end, cluster)])
        self._embeddings.append(embedding[np.newaxis])
        if self._campplus is not None:
            self._campplus_embeddings.append(self._campplus_pending.pop(0)[np.newaxis])

    def _event(self, turn: _Turn) -> SpeakerTurn:
        turn.emitted_end = turn.t_end
        return SpeakerTurn(
            channel=self.channel,
            t_start=round(turn.t_start, 3),
            t_end=round(turn.t_end, 3),
            speaker=self._label(turn.cluster),
            confidence=round(turn.confidence, 3),
        )

    def _label(self, cluster: int) -> str:
        label = self._labels.get(cluster)
        if label is None or (label.startswith("Speaker_") and self._profiles):
            taken = {v: k for k, v in self._labels.items()}
            free = {n: p for n, p in self._profiles.items() if n not in taken}
            centroid = self._clusterer.centroids[cluster][np.newaxis]
            name = match_names(centroid, free, self.config.enrolled_distance).get(0)
            if name is not None:
                label = name
            elif label is None:
                self._unknown += 1
                label = f"Speaker_{self._unknown}"
            self._labels[cluster] = label
        return label


def ge2e_model(config: SpeakerConfig) -> Path:
    """The GE2E file that embeds the windows: the live ``encoder``, or in file analysis
    (``keep_embeddings``) the one ``file_encoder`` names."""
    if not config.keep_embeddings:
        return ENCODER_MODELS[config.encoder]
    return ENCODER_MODELS["ge2e-int8" if config.file_encoder == "ge2e-int8" else "ge2e"]


def speaker_models(config: SpeakerConfig) -> dict[str, str]:
    """The models a file analysis with ``config`` ran, for its ``provenance.models``: the GE2E
    encoder, and CAM++ and the segmentation where the options ask for them."""
    models = {"speaker_encoder": encoder_provenance(ge2e_model(config))}
    if config.file_encoder == "ge2e+campplus":
        models["speaker_campplus"] = campplus_provenance()
    if config.file_segmentation:
        models["speaker_segmentation"] = segmentation_provenance()
    return models


def profile_store(config: SpeakerConfig, data_dir: Path | None = None) -> ProfileStore:
    """The voice-profile store ``config`` names, else the one of the data directory
    (``data_dir``, by default HERITAGE_DATA_DIR from the settings)."""
    if config.profiles_path is not None:
        return ProfileStore(config.profiles_path)
    if data_dir is None:
        from config.settings import load_settings  # the data directory is a deployment setting

        data_dir = load_settings().HERITAGE_DATA_DIR
    return ProfileStore.in_data_dir(data_dir)


def load_profiles(config: SpeakerConfig) -> dict[str, VoiceProfile]:
    """The enrolled voices ``config`` labels speakers with (none, with a warning, if the
    store is unreadable: naming is a convenience, not a reason to stop listening)."""
    try:
        return profile_store(config).load()
    except ValueError as exc:
        logger.warning("speaker names disabled: %s", exc)
        return {}
