"""Microphone and line inputs through PortAudio (sounddevice).

The PortAudio callback only copies the block and hands it over with its status
flags. A device that fails to open, errors, or stops delivering audio is
reported as lost and reopened with exponential backoff; the source never ends
by itself.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from stream.sources.base import Block, Idle, Source, SourceError, SourceItem, StatusChange

logger = logging.getLogger(__name__)

PORTAUDIO_HINT = (
    "PortAudio library not found: install it "
    "(Debian/Ubuntu: apt install libportaudio2; Fedora: dnf install portaudio)"
)


def import_sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio into a one-line :class:`SourceError`."""
    try:
        import sounddevice
    except OSError:
        raise SourceError(PORTAUDIO_HINT) from None
    module: ModuleType = sounddevice
    return module


class SoundDeviceSourceConfig(BaseModel):
    """A capture device (microphone or line input)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["sounddevice"] = "sounddevice"
    name: str = Field("mic", min_length=1, description="Source name carried by events.")
    device: str | int | None = Field(
        None, description="Device name (substring) or index; the system default when unset."
    )
    channels: int = Field(1, ge=1, le=64, description="Input channels, each analysed on its own.")
    sample_rate: int | None = Field(
        None, ge=8000, le=384000, description="Capture rate in Hz; the device default when unset."
    )
    block_size: int = Field(1024, ge=16, le=65536, description="Frames per PortAudio callback.")
    queue_blocks: int = Field(
        128, ge=4, le=10000, description="Blocks buffered between capture and analysis."
    )
    stall_timeout_s: float = Field(
        5.0, gt=0, le=600, description="No audio for this long means the device is lost."
    )
    retry_initial_s: float = Field(1.0, gt=0, le=600, description="First reopen delay.")
    retry_max_s: float = Field(30.0, gt=0, le=3600, description="Longest reopen delay.")


class SoundDeviceSource(Source):
    """Captures from one PortAudio input device."""

    def __init__(self, config: SoundDeviceSourceConfig) -> None:
        super().__init__(config.name)
        self.config = config
        self._sd: ModuleType | None = None
        self._rate = config.sample_rate or 0
        self._queue: queue.Queue[tuple[np.ndarray, bool]] = queue.Queue(config.queue_blocks)

    @property
    def sample_rate(self) -> int:
        return self._rate

    @property
    def channels(self) -> int:
        return self.config.channels

    def open(self) -> None:
        """Check PortAudio is there; a missing device is retried by :meth:`items`, not fatal."""
        self._sd = import_sounddevice()

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        del frames, time_info
        try:
            self._queue.put_nowait((indata.copy(), bool(status.input_overflow)))
        except queue.Full:
            self.dropped_blocks += 1

    def _start_stream(self) -> Any:
        sd = self._sd
        if sd is None:
            raise RuntimeError("SoundDeviceSource.open() must be called first")
        stream = sd.InputStream(
            device=self.config.device,
            channels=self.config.channels,
            samplerate=self.config.sample_rate,
            blocksize=self.config.block_size,
            dtype="float32",
            callback=self._callback,
        )
        if self._rate and int(stream.samplerate) != self._rate:
            # The analysis chains were built for the first rate; keep the stream clock exact.
            stream.close()
            raise SourceError(
                f"device now runs at {int(stream.samplerate)} Hz, not {self._rate} Hz: "
                "set sample_rate in the source config"
            )
        self._rate = int(stream.samplerate)
        stream.start()
        return stream

    def items(self, stop: threading.Event) -> Iterator[SourceItem]:
        cfg = self.config
        delay = cfg.retry_initial_s
        lost_since: float | None = None
        while not stop.is_set():
            try:
                stream = self._start_stream()
            except Exception as exc:  # PortAudio raises several types for a missing device
                if lost_since is None:
                    lost_since = time.monotonic()
                    yield StatusChange("lost", f"cannot open input device: {exc}")
                logger.warning(
                    "source %s: cannot open device (%s); retry in %.1f s", self.name, exc, delay
                )
                yield Idle()  # retrying is progress, as the watchdog sees it
                stop.wait(delay)
                delay = min(delay * 2, cfg.retry_max_s)
                continue
            if lost_since is None:
                yield StatusChange("running", f"capturing {self._rate} Hz x {cfg.channels}")
            else:
                yield StatusChange("recovered", "device back", gap_s=time.monotonic() - lost_since)
            delay = cfg.retry_initial_s
            try:
                yield from self._drain(stream, stop)
            finally:
                self._close(stream)
            if not stop.is_set():
                lost_since = time.monotonic()
                yield StatusChange("lost", f"no audio for {cfg.stall_timeout_s:g} s")

    def _drain(self, stream: Any, stop: threading.Event) -> Iterator[SourceItem]:
        """Yield captured blocks until the stream stalls, fails or ``stop`` is set."""
        last_overrun_report = 0.0
        dropped_seen = self.dropped_blocks
        while not stop.is_set():
            try:
                frames, overflow = self._queue.get(timeout=self.config.stall_timeout_s)
            except queue.Empty:
                return
            self.overflows += overflow
            if overflow or self.dropped_blocks != dropped_seen:
                dropped_seen = self.dropped_blocks
                now = time.monotonic()
                if now - last_overrun_report >= 1.0:  # one report a second at most
                    last_overrun_report = now
                    yield StatusChange(
                        "overrun",
                        f"audio lost: {self.overflows} input overflows, "
                        f"{self.dropped_blocks} blocks dropped (analysis too slow)",
                    )
            yield Block(frames)
            if not stream.active:
                return

    def _close(self, stream: Any) -> None:
        try:
            stream.abort()
            stream.close()
        except Exception as exc:  # a vanished device may fail to close; nothing left to free
            logger.debug("source %s: closing stream: %s", self.name, exc)
        while not self._queue.empty():
            self._queue.get_nowait()


def list_input_devices() -> list[dict[str, Any]]:
    """Input devices with their channel counts and default sample rates."""
    sd = import_sounddevice()
    hostapis = sd.query_hostapis()
    return [
        {
            "index": index,
            "name": dev["name"],
            "hostapi": hostapis[dev["hostapi"]]["name"],
            "channels": dev["max_input_channels"],
            "default_samplerate": dev["default_samplerate"],
        }
        for index, dev in enumerate(sd.query_devices())
        if dev["max_input_channels"] > 0
    ]
