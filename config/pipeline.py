"""The pipeline configuration: sources, detectors, sinks and queues, from a TOML file.

Every model forbids unknown keys, so a misspelt option fails at start-up with
its dotted path instead of being silently ignored.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from config.errors import ConfigError, format_validation_error
from detectors import AnyDetectorConfig, HeritageConfig, LevelConfig, SpeakerConfig, VadConfig
from sinks.jsonl import JsonlSinkConfig
from sinks.kafka import KafkaSinkConfig
from sinks.redis_streams import RedisStreamsSinkConfig
from stream.recorder import RecorderConfig
from stream.sources import AnySourceConfig, SoundDeviceSourceConfig

AnySinkConfig = Annotated[
    JsonlSinkConfig | RedisStreamsSinkConfig | KafkaSinkConfig, Field(discriminator="type")
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class QueueConfig(_Strict):
    """Bounds of the queues between the pipeline and its consumers."""

    sink_events: int = Field(
        10_000,
        ge=10,
        le=1_000_000,
        description="Events buffered per sink; oldest dropped when full.",
    )
    client_events: int = Field(
        500, ge=10, le=100_000, description="Events buffered per WebSocket client; oldest dropped."
    )


def _default_sources() -> list[AnySourceConfig]:
    return [SoundDeviceSourceConfig()]


def _default_detectors() -> list[AnyDetectorConfig]:
    # Speaker embeddings every 0.5 s by the int8 encoder, two windows per call (events up
    # to 1 s behind the audio): better live turns than every second with the float
    # encoder, for the same CPU, within 0.03 CPU-s per audio-s per channel
    # (docs/BENCHMARKS.md, "Live embeddings in int8").
    return [
        VadConfig(),
        LevelConfig(),
        HeritageConfig(),
        SpeakerConfig(hop_s=0.5, min_evidence=4, batch=2),
    ]


class PipelineConfig(_Strict):
    """Everything the capture pipeline runs: read from the TOML file named by HERITAGE_CONFIG."""

    installation_id: str = Field(
        "heritage-audio", min_length=1, max_length=128, description="Carried by every event."
    )
    analysis_sample_rate: Literal[16000] = Field(
        16000, description="Rate every channel is resampled to before detection."
    )
    heartbeat_s: float = Field(
        5.0, gt=0, le=3600, description="Stream seconds between heartbeat events of a source."
    )
    stall_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="A source without progress this long is a hung pipeline: the daemon stops "
        "pinging the systemd watchdog. Keep above the device retry_max_s.",
    )
    sources: list[AnySourceConfig] = Field(default_factory=_default_sources)
    detectors: list[AnyDetectorConfig] = Field(default_factory=_default_detectors)
    sinks: list[AnySinkConfig] = Field(default_factory=list)
    queues: QueueConfig = Field(default_factory=QueueConfig)
    recorder: RecorderConfig = Field(default_factory=RecorderConfig)


def load_pipeline_config(path: Path | None) -> PipelineConfig:
    """Read and validate the TOML file at ``path`` (defaults when ``None``)."""
    if path is None:
        return PipelineConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(str(path), exc)) from None


def with_speaker_settings(config: PipelineConfig, **settings: Any) -> PipelineConfig:
    """``config`` with ``settings`` on its speaker detectors (a default one if it has none);
    a ValidationError if they do not make a valid detector."""
    if not settings:
        return config
    detectors = list(config.detectors)
    found = [i for i, d in enumerate(detectors) if isinstance(d, SpeakerConfig)]
    if not found:
        detectors.append(SpeakerConfig())
        found = [len(detectors) - 1]
    for i in found:
        detectors[i] = SpeakerConfig.model_validate({**detectors[i].model_dump(), **settings})
    return config.model_copy(update={"detectors": detectors})


ACCURATE_SPEAKERS = {"file_encoder": "ge2e+campplus"}
"""``analyze --accurate-speakers``: the settings that separate real voices best for their
CPU (docs/BENCHMARKS.md)."""
