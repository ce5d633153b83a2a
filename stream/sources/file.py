"""Audio files (WAV, FLAC, OGG, MP3, ... via libsndfile), paced in real time or at full speed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import soundfile as sf
from pydantic import BaseModel, ConfigDict, Field

from stream.sources.base import Block, Frames, Source, SourceError, SourceItem, StatusChange

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


Opener = Callable[[Path], Any]
"""Opens the file for the decoder: returns a binary file object with read, seek and tell
(e.g. one that hashes what it reads)."""
BlockTap = Callable[[Frames], None]
"""Sees every block as decoded: the file's own rate and channels, before any mixdown."""


class FileSource(Source):
    """Reads an audio file block by block.

    The file is opened once, by :meth:`open`, and read by :meth:`items`. ``opener``
    replaces the plain open (file analysis hashes the bytes on the way); ``tap`` sees
    every decoded block before the mixdown (loudness and peaks need the original).
    """

    def __init__(
        self, config: FileSourceConfig, *, opener: Opener | None = None, tap: BlockTap | None = None
    ) -> None:
        super().__init__(config.name)
        self.config = config
        self._opener = opener
        self._tap = tap
        self._file: sf.SoundFile | None = None

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
        return int(self._require_file().samplerate)

    @property
    def file_channels(self) -> int:
        """Channels in the file, whatever the mixdown."""
        return int(self._require_file().channels)

    @property
    def channels(self) -> int:
        return 1 if self.config.mixdown else self.file_channels

    @property
    def soundfile(self) -> sf.SoundFile:
        """The open decoder (format, subtype, frames); after :meth:`open`."""
        return self._require_file()

    @property
    def is_finite(self) -> bool:
        return not self.config.loop

    def _require_file(self) -> sf.SoundFile:
        if self._file is None:
            raise RuntimeError("FileSource.open() must be called first")
        return self._file

    def open(self) -> None:
        """Open and check the file (once: a second call keeps the open decoder)."""
        if self._file is not None and not self._file.closed:
            return
        path = self.config.path
        try:
            f = sf.SoundFile(self._opener(path) if self._opener else str(path))
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise SourceError(describe_decode_error(path, exc)) from None
        if not MIN_SAMPLE_RATE <= f.samplerate <= MAX_SAMPLE_RATE:
            f.close()
            raise SourceError(f"{path}: unsupported sample rate {f.samplerate} Hz")
        if not 1 <= f.channels <= MAX_CHANNELS:
            f.close()
            raise SourceError(f"{path}: unsupported channel count {f.channels}")
        self._file = f

    def close(self) -> None:
        """Close the decoder (``items`` does at its end)."""
        if self._file is not None:
            self._file.close()

    def items(self, stop: threading.Event) -> Iterator[SourceItem]:
        self.open()
        f = self._require_file()
        try:
            yield StatusChange("running", f"reading {self.config.path.name}")
            yield from self._blocks(f, stop)
        finally:
            f.close()

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
            if self._tap is not None:
                self._tap(data)
            if self.config.mixdown and data.shape[1] > 1:
                # A matrix-vector product: several times faster than mean(axis=1).
                mix = np.full((data.shape[1], 1), 1.0 / data.shape[1], np.float32)
                data = data @ mix
            frames_done += len(data)
            if self.config.realtime:
                # A live block is available once its last frame was captured. Pace by the
                # sample count, so sleep jitter never accumulates.
                stop.wait(max(0.0, started + frames_done / rate - time.monotonic()))
            yield Block(np.ascontiguousarray(data))
