"""Voice activity detection: a per-frame speech classifier plus onset/offset debouncing.

Two classifiers: Silero VAD (the default: ONNX, shipped in ``detectors/models``)
and WebRTC VAD (about eight times lighter, but it takes music for speech, and
music is everywhere in a museum: frame F1 0.68 against Silero's 0.97 on the
music fixture, see docs/BENCHMARKS.md). Either way a segment starts after
``min_speech_ms`` of consecutive voiced frames (its start back-dated to the first
of them) and ends after ``min_silence_ms`` of consecutive unvoiced frames. Starts
are padded by ``onset_pad_ms`` and ends by ``hangover_ms``, as Silero's own
``speech_pad_ms`` does.

Ahead of the classifier, :class:`LevelNormaliser` (an AGC) brings speech to one
level whatever the microphone distance, and the energy floor is applied after it,
so a quiet room is judged as a loud one is: attenuating a file by 30 dB changes
its frame F1 by less than 0.01, and speech at -45 dBFS is found (see
docs/BENCHMARKS.md). Only frames below ``silence_floor_dbfs`` as recorded
(digital silence) are rejected on absolute level.
"""

from __future__ import annotations

import math
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt
import webrtcvad
from pydantic import Field, model_validator

from detectors.base import ChannelResources, Detector, DetectorConfig, register
from detectors.files import model_provenance
from detectors.onnx import onnx_session
from stream.events import Event, SpeechEnded, SpeechStarted
from stream.windowing import Samples, Window

SILERO_MODEL = Path(str(resources.files("detectors") / "models" / "silero_vad_16k_seq.onnx"))
"""Silero VAD 5's network as ``tools/export_silero_lean.py`` rebuilds it from the original
export (``silero_vad_16k_op15.onnx``, kept beside it for the parity test): the same weights
without the per-call shape logic, taking a run of frames as consecutive LSTM steps."""
SILERO_FRAME = 512  # samples at 16 kHz: the model's fixed chunk
SILERO_CONTEXT = 64  # samples of the previous chunk the model sees first
NOISE_RISE_DB_PER_S = 1.0  # how fast the noise floor estimate may climb (minimum statistics)
SEQUENCE_CHUNK = 64  # frames per call when a run of frames is judged at once (2 s)
PREVIEW_MIN_FRAMES = 2  # a single previewed frame is left to frame-by-frame judging


class VadConfig(DetectorConfig):
    """Voice activity detection."""

    type: Literal["vad"] = "vad"
    engine: Literal["silero", "webrtc"] = Field(
        "silero",
        description="Frame classifier: Silero VAD (ONNX; rejects music) or WebRTC VAD (lighter).",
    )
    aggressiveness: int = Field(
        3, ge=0, le=3, description="WebRTC VAD mode: 0 lenient ... 3 strict about non-speech."
    )
    frame_ms: Literal[10, 20, 30] = Field(30, description="WebRTC VAD frame length (ms).")
    threshold: float = Field(
        0.5, gt=0, lt=1, description="Silero VAD: speech probability that counts as voiced."
    )
    model_path: Path | None = Field(
        None, description="Silero VAD ONNX file; the shipped model when unset."
    )
    min_speech_ms: int = Field(
        90, ge=10, le=2000, description="Consecutive voiced audio needed to start a segment."
    )
    min_silence_ms: int = Field(
        150, ge=10, le=5000, description="Consecutive unvoiced audio needed to end a segment."
    )
    onset_pad_ms: int = Field(
        30, ge=0, le=500, description="Padding before the first voiced frame (soft onsets)."
    )
    hangover_ms: int = Field(
        30, ge=0, le=2000, description="Padding added after the last voiced frame of a segment."
    )
    normalise: bool = Field(
        True,
        description="Gain normalisation (AGC) ahead of the frame classifier, so that quiet, "
        "distant speech is judged as loud speech is.",
    )
    target_dbfs: float = Field(
        -20.0, ge=-40, le=0, description="Level the tracked speech level is brought to."
    )
    max_gain_db: float = Field(
        40.0, ge=0, le=60, description="Most gain the normaliser applies (quiet inputs)."
    )
    attack_ms: int = Field(
        100,
        ge=0,
        le=2000,
        description="Time constant with which the tracked speech level rises (a click moves it "
        "little).",
    )
    release_db_per_s: float = Field(
        1.5, gt=0, le=60, description="How fast the tracked speech level falls in a pause."
    )
    noise_margin_db: float = Field(
        15.0,
        ge=0,
        le=60,
        description="The tracked noise floor is never raised above target_dbfs minus this.",
    )
    energy_floor_dbfs: float = Field(
        -55.0,
        ge=-120,
        le=0,
        description="Frames quieter than this after normalisation are never speech.",
    )
    silence_floor_dbfs: float = Field(
        -90.0,
        ge=-120,
        le=0,
        description="Frames quieter than this as recorded are never speech (digital silence).",
    )

    @model_validator(mode="after")
    def _hangover_within_silence(self) -> VadConfig:
        if self.hangover_ms > self.min_silence_ms:
            raise ValueError("hangover_ms must not exceed min_silence_ms")
        return self


def energy_db(samples: Samples) -> float:
    """Mean-square energy of a frame in dB relative to full scale, floored at -120."""
    # np.mean's own sum and division, without its Python wrapper (called per 32 ms frame).
    return _power_db(float(np.add.reduce(np.square(samples, dtype=np.float64))) / len(samples))


def energies_db(frames: Samples) -> list[float]:
    """:func:`energy_db` of each row of ``frames`` (the same figures), summed at once."""
    powers = np.add.reduce(np.square(frames, dtype=np.float64), axis=1) / frames.shape[1]
    return [_power_db(p) for p in powers.tolist()]


def _power_db(power: float) -> float:
    return 10.0 * math.log10(power) if power > 1e-12 else -120.0


class LevelNormaliser:
    """Causal per-frame gain (dB) that brings speech to one level whatever the input level.

    Two trackers in dB, two floats of state: the speech level rises towards a louder
    frame's energy with time constant ``attack_ms`` and falls by ``release_db_per_s`` in
    pauses; the noise floor follows a quieter frame down at once and rises by
    ``NOISE_RISE_DB_PER_S`` (minimum statistics). The gain brings the speech level to
    ``target_dbfs`` but never lifts the noise floor above ``target_dbfs - noise_margin_db``
    and never exceeds ``max_gain_db``, so room tone is not raised to speech level. Frames
    below ``silence_floor_dbfs`` (digital silence) move neither tracker. Every rule is
    relative, so a quieter copy of a stream gets the same normalised frames (until the gain
    cap), and since state advances per frame it does not depend on chunk sizes.
    """

    def __init__(self, config: VadConfig, frame_s: float) -> None:
        self._config = config
        self._release = config.release_db_per_s * frame_s
        attack_s = config.attack_ms / 1000
        self._attack = 1.0 - math.exp(-frame_s / attack_s) if attack_s else 1.0
        self._rise = NOISE_RISE_DB_PER_S * frame_s
        self.reset()

    def reset(self) -> None:
        self._level: float | None = None  # tracked speech level (dBFS)
        self._noise: float | None = None  # tracked noise floor (dBFS)
        self._gain = 0.0

    def gain_db(self, energy: float) -> float:
        """The gain for a frame of ``energy`` dBFS, after updating the trackers with it."""
        config = self._config
        if not config.normalise:
            return 0.0
        if energy < config.silence_floor_dbfs:
            return self._gain
        if self._level is None or self._noise is None:
            self._level = self._noise = energy
        else:
            if energy > self._level:
                self._level += self._attack * (energy - self._level)
            else:
                self._level = max(energy, self._level - self._release)
            self._noise = min(energy, self._noise + self._rise)
        gain = min(
            config.target_dbfs - self._level,
            config.target_dbfs - config.noise_margin_db - self._noise,
        )
        self._gain = min(gain, config.max_gain_db)
        return self._gain


class FrameClassifier(Protocol):
    """Decides, frame by frame, whether a frame holds speech."""

    frame: int  # samples per frame

    def is_voiced(self, samples: Samples) -> bool: ...

    def reset(self) -> None: ...


class WebRtcFrames:
    """WebRTC VAD on 10/20/30 ms frames of 16-bit PCM."""

    def __init__(self, config: VadConfig, sample_rate: int) -> None:
        if sample_rate not in (8000, 16000, 32000, 48000):
            raise ValueError(f"WebRTC VAD cannot run at {sample_rate} Hz")
        self.frame = sample_rate * config.frame_ms // 1000
        self._rate = sample_rate
        self._vad = webrtcvad.Vad(config.aggressiveness)

    def is_voiced(self, samples: Samples) -> bool:
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        return bool(self._vad.is_speech(pcm, self._rate))

    def reset(self) -> None:
        """WebRTC VAD keeps no state that matters between segments."""


class SileroFrames:
    """Silero VAD (ONNX) on 32 ms frames, carrying its recurrent state and left context.

    The session reads and writes buffers bound once (``io_binding``): a frame costs
    one copy into the input buffer and no conversion of inputs or outputs, about a
    quarter less CPU per frame than ``session.run`` with its dicts of arrays.
    """

    def __init__(self, config: VadConfig, sample_rate: int) -> None:
        if sample_rate != 16000:
            raise ValueError(f"the shipped Silero VAD runs at 16000 Hz, not {sample_rate}")
        self.frame = SILERO_FRAME
        self._threshold = config.threshold
        self._session = onnx_session(config.model_path or SILERO_MODEL)
        self._sr = np.array(sample_rate, dtype=np.int64)
        # The shipped graph takes runs of frames and no rate; the original export takes one
        # frame (or a batch of streams) and the rate.
        self._sequence = "sr" not in {i.name for i in self._session.get_inputs()}
        # [context | frame] in, the probability out, and the state in two buffers that
        # swap roles each frame (a run reads one and writes the other).
        self._input = np.zeros((1, SILERO_CONTEXT + SILERO_FRAME), dtype=np.float32)
        self._output = np.zeros((1, 1), dtype=np.float32)
        self._states = (np.zeros((2, 1, 128), np.float32), np.zeros((2, 1, 128), np.float32))
        self._bindings = (self._bind(0), self._bind(1))
        self.reset()

    def _bind(self, read: int) -> Any:
        binding = self._session.io_binding()
        inputs: list[tuple[str, npt.NDArray[Any]]] = [
            ("input", self._input), ("state", self._states[read])
        ]  # fmt: skip
        if not self._sequence:
            inputs.append(("sr", self._sr))
        for name, array in inputs:
            binding.bind_input(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
        for name, array in (("output", self._output), ("stateN", self._states[1 - read])):
            binding.bind_output(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)
        return binding

    def reset(self) -> None:
        self._states[0][:] = 0.0
        self._read = 0  # which state buffer holds the current state
        self._input[0, :SILERO_CONTEXT] = 0.0

    def probability(self, samples: Samples) -> float:
        """Speech probability of one 512-sample frame."""
        self._input[0, SILERO_CONTEXT:] = samples
        self._session.run_with_iobinding(self._bindings[self._read])
        self._read = 1 - self._read
        # The context of the next frame: the last samples of this one.
        self._input[0, :SILERO_CONTEXT] = self._input[0, -SILERO_CONTEXT:]
        return float(self._output[0, 0])

    def is_voiced(self, samples: Samples) -> bool:
        return self.probability(samples) >= self._threshold

    def probabilities(self, frames: Samples) -> Samples:
        """Speech probabilities of consecutive 512-sample frames (shape ``(n, 512)``), as
        :meth:`probability` would give them one by one, state carried.

        The shipped graph (``tools/export_silero_lean.py``) takes a run of frames as the
        steps of its LSTM: the convolutions run on all frames at once and the recurrence
        inside one call, about 40 us per frame instead of 70-100 (within 4e-7 of frame by
        frame). A model with the original interface is run frame by frame.
        """
        n = len(frames)
        out = np.empty(n, np.float32)
        if not self._sequence:
            for i, frame in enumerate(frames):
                out[i] = self.probability(frame)
            return out
        for first in range(0, n, SEQUENCE_CHUNK):
            chunk = frames[first : first + SEQUENCE_CHUNK]
            context = np.concatenate(
                [self._input[:, :SILERO_CONTEXT], chunk[:-1, -SILERO_CONTEXT:]]
            )
            state = self._states[self._read]
            probability, state_n = self._session.run(
                None, {"input": np.concatenate([context, chunk], axis=1), "state": state}
            )
            out[first : first + len(chunk)] = probability[:, 0]
            state[:] = state_n
            self._input[0, :SILERO_CONTEXT] = chunk[-1, -SILERO_CONTEXT:]
        return out


FrameJudgements = npt.NDArray[np.float64]
"""Per 32 ms frame: ``[energy dBFS as recorded, normaliser gain dB, Silero probability]``."""


def normaliser_key(config: VadConfig) -> tuple[object, ...]:
    """What decides a frame's Silero probability: the model and the normaliser's settings."""
    return (
        config.model_path, config.normalise, config.target_dbfs, config.max_gain_db,
        config.attack_ms, config.release_db_per_s, config.noise_margin_db,
        config.silence_floor_dbfs,
    )  # fmt: skip


class SileroFrameCache:
    """Energy, normaliser gain and Silero probability of each 32 ms frame, computed once.

    The VAD and the speaker detector's gate judge the same frames of a channel through
    the same normaliser and differ only in their thresholds and floors, so a channel's
    detectors share one of these (``Detector.attach``): Silero runs once per frame
    instead of twice (1.2 CPU-s of a 5-minute file analysis). Frames are keyed by their
    first sample on the stream clock; they are computed in order (Silero and the
    normaliser carry state), whichever detector asks first, and the last ``keep`` are
    kept for the one that asks later. A frame that does not follow the last one (the
    stream jumped) starts afresh. Silero hears every frame, quiet ones too.
    """

    stage = "vad"  # whose CPU the batched judging counts as (ChannelResources.preview)

    def __init__(self, config: VadConfig, sample_rate: int, keep: int = 4096) -> None:
        self._silero = SileroFrames(config, sample_rate)
        self._normaliser = LevelNormaliser(config, SILERO_FRAME / sample_rate)
        self._keep = keep
        self.reset()

    def reset(self) -> None:
        self._silero.reset()
        self._normaliser.reset()
        self._frames: dict[int, tuple[float, float, float]] = {}
        self._next: int | None = None  # stream sample where the next new frame starts
        self._ahead = np.zeros(0, np.float32)  # previewed samples not yet judged
        self._ahead_end: int | None = None  # stream sample just after them

    def preview(self, start: int, samples: Samples) -> None:
        """The channel's next samples, handed over before any detector's window of them.

        Its whole frames are judged at once (energies vectorised, Silero over the run of
        frames in one call, :meth:`SileroFrames.probabilities`) and served from the cache
        as the windows ask; the judgements are those of frame-by-frame judging. Only file
        analysis previews (10 s at a time, ``ChannelChain``'s lookahead); live blocks are
        judged frame by frame as the windows ask.
        """
        end = start + len(samples)
        if self._ahead_end != start:
            self._ahead = np.zeros(0, np.float32)
        ahead = np.concatenate([self._ahead, samples]) if len(self._ahead) else samples
        origin = end - len(ahead)
        first = origin if self._next is None else self._next
        if not origin <= first <= end:  # not contiguous with what was judged: leave it
            self._ahead, self._ahead_end = np.zeros(0, np.float32), None
            return
        n = (end - first) // SILERO_FRAME
        if n < PREVIEW_MIN_FRAMES:
            self._ahead, self._ahead_end = ahead[first - origin :].copy(), end
            return
        frames = ahead[first - origin : first - origin + n * SILERO_FRAME].reshape(n, SILERO_FRAME)
        energies = energies_db(frames)
        gains = np.array([self._normaliser.gain_db(e) for e in energies])
        scale = (10.0 ** (gains / 20)).astype(np.float32)
        probabilities = self._silero.probabilities(frames * scale[:, None])
        for i in range(n):
            self._frames[first + i * SILERO_FRAME] = (
                energies[i], float(gains[i]), float(probabilities[i])
            )  # fmt: skip
        self._next = first + n * SILERO_FRAME
        for _ in range(len(self._frames) - self._keep):
            del self._frames[next(iter(self._frames))]
        self._ahead, self._ahead_end = ahead[self._next - origin :].copy(), end

    def judge(self, start: int, samples: Samples) -> FrameJudgements:
        """Judgements of the whole frames of ``samples``, which begin at stream sample ``start``."""
        n = len(samples) // SILERO_FRAME
        out = np.empty((n, 3), dtype=np.float64)
        for i in range(n):
            out[i] = self.judge_frame(
                start + i * SILERO_FRAME, samples[i * SILERO_FRAME : (i + 1) * SILERO_FRAME]
            )
        return out

    def judge_frame(self, at: int, frame: Samples) -> tuple[float, float, float]:
        """``(energy dBFS, gain dB, probability)`` of the frame at stream sample ``at``."""
        judged = self._frames.get(at)
        if judged is None:
            if self._next is not None and at != self._next:
                self.reset()
            judged = self._judge(frame)
            self._frames[at] = judged
            self._next = at + SILERO_FRAME
            if len(self._frames) > self._keep:
                del self._frames[next(iter(self._frames))]
        return judged

    def _judge(self, frame: Samples) -> tuple[float, float, float]:
        energy = energy_db(frame)
        gain = self._normaliser.gain_db(energy)
        return energy, gain, self._silero.probability(frame * np.float32(10 ** (gain / 20)))


def shared_silero_frames(
    resources: ChannelResources | None, config: VadConfig, sample_rate: int
) -> SileroFrameCache:
    """The channel's frame cache for ``config``'s model and normaliser (a private one if none)."""
    if resources is None:
        return SileroFrameCache(config, sample_rate)
    return resources.get(
        ("silero-frames", sample_rate, normaliser_key(config)),
        lambda: SileroFrameCache(config, sample_rate),
    )


def vad_provenance(config: VadConfig) -> str:
    """What decided speech, for a result's ``provenance.models``."""
    if config.engine == "webrtc":
        return f"webrtcvad-wheels {version('webrtcvad-wheels')}"
    return model_provenance(config.model_path or SILERO_MODEL)


@register("vad")
class VadDetector(Detector):
    """Emits ``speech.started`` and ``speech.ended`` for one channel."""

    name = "vad"

    def __init__(self, config: VadConfig, channel: int, sample_rate: int) -> None:
        self.config = config
        self.channel = channel
        self._rate = sample_rate
        # Silero frames through a cache that the channel's speaker gate may share (attach);
        # WebRTC frames (10-30 ms, a cheap classifier) directly.
        self._silero = SileroFrameCache(config, sample_rate) if config.engine == "silero" else None
        self._frames: FrameClassifier | None = (
            None if config.engine == "silero" else WebRtcFrames(config, sample_rate)
        )
        frame = SILERO_FRAME if self._frames is None else self._frames.frame
        frame_ms = 1000 * frame / sample_rate
        self._start_frames = max(1, round(config.min_speech_ms / frame_ms))
        self._end_frames = max(1, round(config.min_silence_ms / frame_ms))
        self._normaliser = LevelNormaliser(config, frame_ms / 1000)
        self.reset()

    def attach(self, resources: ChannelResources) -> None:
        if self._silero is not None:
            self._silero = shared_silero_frames(resources, self.config, self._rate)

    def reset(self) -> None:
        if self._silero is not None:
            self._silero.reset()
        if self._frames is not None:
            self._frames.reset()
        self._normaliser.reset()
        self._in_speech = False
        self._run = 0  # consecutive frames disagreeing with the current state
        self._run_start = 0.0  # start of the first frame of that run
        self._segment_start = 0.0
        self._last_voiced_end = 0.0
        self._previous_end = 0.0

    def window_samples(self) -> tuple[int, int]:
        frame = SILERO_FRAME if self._frames is None else self._frames.frame
        return frame, frame

    def is_voiced(self, window: Window) -> bool:
        """The raw per-frame decision, before debouncing."""
        config = self.config
        if self._silero is not None:
            energy, gain, probability = self._silero.judge_frame(window.start, window.samples)
            return (
                energy >= config.silence_floor_dbfs
                and energy + gain >= config.energy_floor_dbfs
                and probability >= config.threshold
            )
        assert self._frames is not None
        samples = window.samples
        energy = energy_db(samples)
        gain = self._normaliser.gain_db(energy)
        if energy < self.config.silence_floor_dbfs:
            return False
        if energy + gain < self.config.energy_floor_dbfs:
            return False
        return self._frames.is_voiced(samples * np.float32(10 ** (gain / 20)))

    def process(self, window: Window) -> list[Event]:
        voiced = self.is_voiced(window)
        if voiced:
            self._last_voiced_end = window.t_end
        if voiced == self._in_speech:
            self._run = 0
            return []
        if self._run == 0:
            self._run_start = window.t_start
        self._run += 1
        if self._in_speech and self._run >= self._end_frames:
            return [self._end(window.t_end)]
        if not self._in_speech and self._run >= self._start_frames:
            self._in_speech = True
            self._run = 0
            # Pad the onset, but never back into the previous segment or before the stream.
            padded = self._run_start - self.config.onset_pad_ms / 1000
            self._segment_start = max(padded, self._previous_end, 0.0)
            return [
                SpeechStarted(channel=self.channel, t_start=self._segment_start, t_end=window.t_end)
            ]
        return []

    def finish(self, t_end: float) -> list[Event]:
        if not self._in_speech:
            return []
        return [self._end(t_end)]

    def _end(self, now: float) -> SpeechEnded:
        end = min(self._last_voiced_end + self.config.hangover_ms / 1000, now)
        start = self._segment_start
        self._in_speech = False
        self._run = 0
        self._previous_end = end
        return SpeechEnded(channel=self.channel, t_start=start, t_end=end, duration=end - start)
