"""The ``heritage-audio`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from api import cli as service_cli
from config.errors import ConfigError, format_validation_error
from config.logging import setup_logging
from config.pipeline import PipelineConfig, load_pipeline_config
from config.settings import Settings, load_settings
from sinks.redis_streams import RedisStreamsSinkConfig
from stream import heritage_cli, models_cli, speakers_cli, subscribe_cli
from stream.sources import (
    AnySourceConfig,
    DemoSourceConfig,
    FileSourceConfig,
    SoundDeviceSourceConfig,
    SourceError,
    build_source,
)

logger = logging.getLogger("heritage_audio")

EXIT_FAILURE = 1
GRACEFUL_S = 20
EXIT_CONFIG = 78  # EX_CONFIG: systemd units list it in RestartPreventExitStatus


def _add_source_options(parser: argparse.ArgumentParser) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="heritage-audio",
        description="Real-time audio analysis for museums, exhibitions and sound archives.",
    )
    parser.add_argument(
        "--log-format", choices=["plain", "json"], help="log line format (default: $LOG_FORMAT)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="capture, analyse and serve the API, live events and dashboard on one port",
        description="All in one process: sources, detectors, HTTP API, WebSocket and dashboard.",
    )
    _add_source_options(run)
    run.add_argument("--host", help="address to listen on (default: $HOST)")
    run.add_argument("--port", type=int, help="port to listen on (default: $PORT)")

    daemon = sub.add_parser(
        "daemon",
        help="capture and analyse only, publishing to the configured sinks",
        description="Capture daemon for installation machines: no HTTP server.",
    )
    _add_source_options(daemon)

    sub.add_parser("devices", help="list capture devices, their channels and sample rates")

    analyze = sub.add_parser(
        "analyze",
        help="analyse audio files offline and write result documents",
        description="Offline analysis. Exits non-zero with a one-line reason for unreadable input.",
    )
    analyze.add_argument("files", nargs="+", type=Path, metavar="FILE")
    analyze.add_argument(
        "--json",
        dest="json_out",
        metavar="PATH",
        default="-",
        help='where to write the result document ("-" for stdout, the default)',
    )
    analyze.add_argument("--config", type=Path, metavar="TOML", help="pipeline config")
    analyze.add_argument(
        "--rttm", type=Path, metavar="PATH", help="also write the speaker timeline as RTTM"
    )
    analyze.add_argument(
        "--speakers",
        type=speakers_cli.speaker_count,
        metavar="N",
        help="number of speakers, if known (else estimated)",
    )

    subscribe_cli.add_parser(sub)
    heritage_cli.add_parser(sub)
    models_cli.add_parser(sub)
    speakers_cli.add_parser(sub)
    service_cli.add_parsers(sub)
    return parser


def _pipeline_config(args: argparse.Namespace, settings: Settings) -> PipelineConfig:
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
    return config


def _check_sources(config: PipelineConfig) -> None:
    """Fail fast, before serving anything, on a source that can never work (a bad file)."""
    if not config.sources:
        raise ConfigError("no sources configured: add [[sources]] or use --demo, --file, --device")
    for source_config in config.sources:
        build_source(source_config).open()


async def serve(
    settings: Settings,
    config: PipelineConfig,
    host: str,
    port: int,
    *,
    migrate: bool = True,
    stop_with_sources: bool = True,
    relay_pattern: str | None = None,
) -> int:
    """Serve the app until interrupted (or, with ``stop_with_sources``, until sources end)."""
    import uvicorn

    from api.app import create_app
    from stream.runtime import Runtime

    runtime = Runtime(config, settings)
    app = create_app(settings, runtime, migrate=migrate, relay_pattern=relay_pattern)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            ws_ping_interval=20,
            # Inside the units' 30 s stop timeout: requests still open then are cut.
            timeout_graceful_shutdown=GRACEFUL_S,
        )
    )

    async def stop_when_sources_end() -> None:
        await runtime.wait_finished()
        logger.info("all sources ended; shutting down")
        await runtime.stop()  # drains the WebSocket clients before the server closes them
        await asyncio.sleep(0.5)
        server.should_exit = True

    watcher = asyncio.create_task(
        stop_when_sources_end() if stop_with_sources else asyncio.Event().wait()
    )
    shown = "localhost" if host in ("0.0.0.0", "::") else host  # noqa: S104
    logger.info("dashboard: http://%s:%d/", shown, port)
    try:
        await server.serve()
    finally:
        watcher.cancel()
    return EXIT_FAILURE if any(r.state == "error" for r in runtime.runners) else 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    config = _pipeline_config(args, settings)
    _check_sources(config)
    return asyncio.run(
        serve(settings, config, args.host or settings.HOST, args.port or settings.PORT)
    )


def cmd_daemon(args: argparse.Namespace, settings: Settings) -> int:
    config = _pipeline_config(args, settings)
    _check_sources(config)
    from stream.daemon import run_daemon

    return asyncio.run(run_daemon(settings, config))


def cmd_devices(args: argparse.Namespace, settings: Settings) -> int:
    from stream.sources.device import list_input_devices

    devices = list_input_devices()
    if not devices:
        print("no capture devices found")
        return 0
    print(f"{'index':>5}  {'channels':>8}  {'rate':>7}  {'host API':<12} name")
    for d in devices:
        print(
            f"{d['index']:>5}  {d['channels']:>8}  {d['default_samplerate']:>7.0f}  "
            f"{d['hostapi']:<12} {d['name']}"
        )
    return 0


class _ProgressBar:
    """A one-line progress bar on stderr, shown only on a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.enabled = sys.stderr.isatty()

    def __call__(self, fraction: float) -> None:
        if self.enabled:
            filled = int(fraction * 30)
            bar = "#" * filled + "-" * (30 - filled)
            sys.stderr.write(f"\r{self.label} [{bar}] {fraction:4.0%}")
            if fraction >= 1.0:
                sys.stderr.write("\n")
            sys.stderr.flush()


def cmd_analyze(args: argparse.Namespace, settings: Settings) -> int:
    from stream.analyze import analyze_file

    config = load_pipeline_config(args.config or settings.HERITAGE_CONFIG)
    if settings.LOG_LEVEL != "DEBUG":
        # A batch command: its problems are its exit code and one line on stderr.
        logging.getLogger().setLevel(logging.CRITICAL)
    documents: list[dict[str, Any]] = []
    for path in args.files:
        documents.append(
            analyze_file(path, config, progress=_ProgressBar(path.name), n_speakers=args.speakers)
        )
    payload: Any = documents[0] if len(documents) == 1 else documents
    text = json.dumps(payload, indent=2, ensure_ascii=False) + "\n"
    if args.json_out == "-":
        sys.stdout.write(text)
    else:
        Path(args.json_out).write_text(text, encoding="utf-8")
    if args.rttm:
        from stream.speaker_report import write_rttm

        write_rttm(args.rttm, zip(args.files, documents, strict=True))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], int]] = {
    "run": cmd_run,
    "daemon": cmd_daemon,
    "devices": cmd_devices,
    "analyze": cmd_analyze,
    "subscribe": subscribe_cli.cmd_subscribe,
    "train": heritage_cli.cmd_train,
    "evaluate": heritage_cli.cmd_evaluate,
    "models": models_cli.cmd_models,
    "speakers": speakers_cli.cmd_speakers,
    **service_cli.COMMANDS,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``heritage-audio`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        setup_logging(settings.LOG_LEVEL, args.log_format or settings.LOG_FORMAT)
        return COMMANDS[args.command](args, settings)
    except ConfigError as exc:
        print(f"heritage-audio: configuration error:\n{exc}", file=sys.stderr)
        return EXIT_CONFIG
    except ValidationError as exc:
        message = format_validation_error("command line", exc)
        print(f"heritage-audio: configuration error:\n{message}", file=sys.stderr)
        return EXIT_CONFIG
    except SourceError as exc:
        print(f"heritage-audio: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
