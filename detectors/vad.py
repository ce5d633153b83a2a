"""Voice activity detection on WebRTC VAD, with onset/offset debouncing.

A segment starts after ``min_speech_ms`` of consecutive voiced frames (its start
is back-dated to the first of them) and ends after ``min_silence_ms`` of
consecutive unvoiced frames; the reported end is the last voiced frame plus
``hangover_ms`` so trailing consonants are not cut.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import webrtcvad
from pydantic import Field, model_validator

from detectors.base import Detector, DetectorConfig, register
from detectors.level import dbfs
from stream.events import Event, SpeechEnded, SpeechStarted
from stream.windowing import Window


class VadConfig(DetectorConfig):
    """Voice activity detection (WebRTC VAD)."""

    type: Literal["vad"] = "vad"
    aggressiveness: int = Field(
        3, ge=0, le=3, description="WebRTC VAD mode: 0 lenient ... 3 strict about non-speech."
    )
    frame_ms: Literal[10, 20, 30] = Field(30, description="VAD frame length in milliseconds.")
    min_speech_ms: int = Field(
        90, ge=10, le=2000, description="Consecutive voiced audio needed to start a segment."
    )
    min_silence_ms: int = Field(
        250, ge=10, le=5000, description="Consecutive unvoiced audio needed to end a segment."
    )
    hangover_ms: int = Field(
        50, ge=0, le=2000, description="Padding added after the last voiced frame of a segment."
    )
    energy_floor_dbfs: float = Field(
        -55.0, ge=-120, le=0, description="Frames quieter than this are never speech."
    )

    @model_validator(mode="after")
    def _hangover_within_silence(self) -> VadConfig:
        if self.hangover_ms > self.min_silence_ms:
            raise ValueError("hangover_ms must not exceed min_silence_ms")
        return self


@register("vad")
class VadDetector(Detector):
    """Emits ``speech.started`` and ``speech.ended`` for one channel."""

    name = "vad"

    def __init__(self, config: VadConfig, channel: int, sample_rate: int) -> None:
        if sample_rate not in (8000, 16000, 32000, 48000):
            raise ValueError(f"WebRTC VAD cannot run at {sample_rate} Hz")
        self.config = config
        self.channel = channel
        self.sample_rate = sample_rate
        self._frame = sample_rate * config.frame_ms // 1000
        self._start_frames = -(-config.min_speech_ms // config.frame_ms)
        self._end_frames = -(-config.min_silence_ms // config.frame_ms)
        self._vad = webrtcvad.Vad(config.aggressiveness)
        self.reset()

    def reset(self) -> None:
        self._in_speech = False
        self._run = 0  # consecutive frames disagreeing with the current state
        self._run_start = 0.0  # start of the first frame of that run
        self._segment_start = 0.0
        self._last_voiced_end = 0.0

    def window_samples(self) -> tuple[int, int]:
        return self._frame, self._frame

    def is_voiced(self, samples: np.ndarray) -> bool:
        """The raw per-frame decision, before debouncing."""
        if dbfs(float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))) < (
            self.config.energy_floor_dbfs
        ):
            return False
        pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        return bool(self._vad.is_speech(pcm, self.sample_rate))

    def process(self, window: Window) -> list[Event]:
        voiced = self.is_voiced(window.samples)
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
            self._segment_start = self._run_start
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
        return SpeechEnded(channel=self.channel, t_start=start, t_end=end, duration=end - start)
