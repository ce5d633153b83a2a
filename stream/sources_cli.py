"""Source options shared by the commands that capture (``daemon`` here, ``run`` in api/cli.py)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config.pipeline import PipelineConfig
    from config.settings import Settings


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """``--demo``, ``--file``, ``--device`` and their companions."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--demo", action="store_true", help="analyse the bundled demo scene, looping"
    )
    group.add_argument("--file", type=Path, metavar="PATH", help="analyse an audio file")
    group.add_argument(
        "--device", metavar="NAME", help="capture from an input device (name or index)"
    )
    parser.add_argument(
        "--channels", type=int, default=1, metavar="N", help="channels to capture with --device"
    )
    parser.add_argument(
        "--fast", action="store_true", help="with --file: as fast as the CPU allows, not real time"
    )
    parser.add_argument(
        "--config", type=Path, metavar="TOML", help="pipeline config (default: $HERITAGE_CONFIG)"
    )


def pipeline_config(args: argparse.Namespace, settings: Settings) -> PipelineConfig:
    """The pipeline config of a capturing command: its TOML, with the source the options name."""
    from config.pipeline import load_pipeline_config
    from sinks.redis_streams import RedisStreamsSinkConfig
    from stream.sources import (
        AnySourceConfig,
        DemoSourceConfig,
        FileSourceConfig,
        SoundDeviceSourceConfig,
    )

    config = load_pipeline_config(args.config or settings.HERITAGE_CONFIG)
    source: AnySourceConfig | None = None
    if getattr(args, "demo", False):
        source = DemoSourceConfig()
    elif getattr(args, "file", None):
        source = FileSourceConfig(name=args.file.name, path=args.file, realtime=not args.fast)
    elif getattr(args, "device", None):
        device: str | int = int(args.device) if args.device.isdigit() else args.device
        source = SoundDeviceSourceConfig(name=str(device), device=device, channels=args.channels)
    if source is not None:
        config = config.model_copy(update={"sources": [source]})
    if settings.redis_enabled and not any(s.type == "redis_streams" for s in config.sinks):
        # DESIGN: with a Redis host configured, Redis sinks are on.
        config = config.model_copy(update={"sinks": [*config.sinks, RedisStreamsSinkConfig()]})
    if settings.kafka_enabled and not any(s.type == "kafka" for s in config.sinks):
        # With brokers configured, the Kafka sink is on too: a site may publish to both.
        from sinks.kafka import KafkaSinkConfig

        config = config.model_copy(update={"sinks": [*config.sinks, KafkaSinkConfig()]})
    return config


def check_sources(config: PipelineConfig) -> None:
    """Fail fast, before serving anything, on a source that can never work (a bad file)."""
    from config.errors import ConfigError
    from stream.sources import build_source

    if not config.sources:
        raise ConfigError("no sources configured: add [[sources]] or use --demo, --file, --device")
    for source_config in config.sources:
        build_source(source_config).open()
