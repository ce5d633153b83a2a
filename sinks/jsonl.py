"""JSON Lines sink: one event per line to a file or standard output."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, TextIO

from pydantic import BaseModel, ConfigDict, Field

from config.errors import ConfigError
from config.settings import Settings
from sinks.base import Sink
from sinks.bus import Published
from sinks.metrics import Metrics


class JsonlSinkConfig(BaseModel):
    """Write events as JSON lines (``path = "-"`` for standard output)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["jsonl"] = "jsonl"
    path: str = Field("-", min_length=1, description='File to append to, or "-" for stdout.')

    def build(self, settings: Settings, metrics: Metrics) -> Sink:
        """The sink this entry describes."""
        del settings, metrics
        try:
            return JsonlSink(self)
        except OSError as exc:
            raise ConfigError(f"jsonl sink: cannot open {self.path}: {exc.strerror}") from None


class JsonlSink(Sink):
    """Appends each event's JSON and a newline, flushed per event."""

    def __init__(self, config: JsonlSinkConfig) -> None:
        self.name = f"jsonl:{config.path}"
        self._owned = config.path != "-"
        self._out: TextIO = (
            Path(config.path).open("a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed in close()
            if self._owned
            else sys.stdout
        )

    async def publish(self, item: Published) -> None:
        self._out.write(item.json + "\n")
        self._out.flush()

    async def close(self) -> None:
        if self._owned:
            self._out.close()
