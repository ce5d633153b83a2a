"""Audio files (WAV, FLAC, OGG, MP3, ... via libsndfile), paced in real time or at full speed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict, Field

from stream.sources.base import Block, Source, SourceError, SourceItem, StatusChange

logger = logging.getLogger(__name__)

MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768_000
MAX_CHANNELS = 64


class FileSourceConfig(BaseModel):
    """An audio file played through the pipeline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["file"] = "file"
    name: str = Field("file", min_length=1, description="Source name carried by events.")
    path: Path = Field(description="Audio file (any format libsndfile reads).")
    realtime: bool = Field(True, description="Pace the file in real time, as if it were live.")
    loop: bool = Field(False, description="Start again at the end (the demo scene loops).")
    mixdown: bool = Field(True, description="Analyse the mean of all channels as one channel.")
    block_size: int = Field(1024, ge=16, le=65536, description="Frames read per block.")


class DemoSourceConfig(BaseModel):
    """The bundled demo scene, looping in real time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["demo"] = "demo"
    name: str = Field("demo", min_length=1)
    block_size: int = Field(1024, ge=16, le=65536)


def demo_scene_path() -> Path:
    """The demo recording that ships in the package."""
    return Path(str(resources.files("stream") / "data" / "demo.flac"))


def describe_decode_error(path: Path, exc: Exception) -> str:
    """A one-line reason why ``path`` could not be decoded."""
    if not path.exists():
        return f"{path}: no such file"
    if path.is_dir():
        return f"{path}: is a directory, not an audio file"
    if path.stat().st_size == 0:
        return f"{path}: file is empty"
    detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{path}: cannot decode as audio ({detail})"


class FileSource(Source):
    """Reads an audio file block by block."""

    def __init__(self, config: FileSourceConfig) -> None:
        super().__init__(config.name)
        self.config = config
        self._info: sf._SoundFileInfo | None = None

    @classmethod
    def demo(cls, config: DemoSourceConfig) -> FileSource:
        """The bundled demo scene as a looping, real-time file source."""
        return cls(
            FileSourceConfig(
                name=config.name, path=demo_scene_path(), loop=True, block_size=config.block_size
            )
        )

    @property
    def sample_rate(self) -> int:
        return int(self._require_info().samplerate)

    @property
    def channels(self) -> int:
        return 1 if self.config.mixdown else int(self._require_info().channels)

    @property
    def is_finite(self) -> bool:
        return not self.config.loop

    def _require_info(self) -> sf._SoundFileInfo:
        if self._info is None:
            raise RuntimeError("FileSource.open() must be called first")
        return self._info

    def open(self) -> None:
        path = self.config.path
        try:
            info = sf.info(str(path))
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise SourceError(describe_decode_error(path, exc)) from None
        if not MIN_SAMPLE_RATE <= info.samplerate <= MAX_SAMPLE_RATE:
            raise SourceError(f"{path}: unsupported sample rate {info.samplerate} Hz")
        if not 1 <= info.channels <= MAX_CHANNELS:
            raise SourceError(f"{path}: unsupported channel count {info.channels}")
        self._info = info

    def items(self, stop: threading.Event) -> Iterator[SourceItem]:
        path = self.config.path
        try:
            f = sf.SoundFile(str(path))
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise SourceError(describe_decode_error(path, exc)) from None
        with f:
            yield StatusChange("running", f"reading {path.name}")
            yield from self._blocks(f, stop)

    def _blocks(self, f: sf.SoundFile, stop: threading.Event) -> Iterator[Block]:
        rate = f.samplerate
        frames_done = 0
        started = time.monotonic()
        while not stop.is_set():
            try:
                data = f.read(self.config.block_size, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                raise SourceError(
                    f"{self.config.path}: cannot decode as audio after {frames_done / rate:.1f} s "
                    f"(truncated or corrupt: {exc})"
                ) from None
            if len(data) == 0:
                if not self.config.loop or frames_done == 0:
                    return
                f.seek(0)
                continue
            if self.config.mixdown and data.shape[1] > 1:
                data = data.mean(axis=1, keepdims=True, dtype=np.float32)
            frames_done += len(data)
            if self.config.realtime:
                # A live block is available once its last frame was captured. Pace by the
                # sample count, so sleep jitter never accumulates.
                stop.wait(max(0.0, started + frames_done / rate - time.monotonic()))
            yield Block(np.ascontiguousarray(data))
