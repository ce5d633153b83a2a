"""The ``heritage-audio`` command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when a command runs: `heritage-audio --help` stays fast
    from config.pipeline import PipelineConfig
    from config.settings import Settings

logger = logging.getLogger("heritage_audio")

EXIT_FAILURE = 1
GRACEFUL_S = 20
EXIT_CONFIG = 78  # EX_CONFIG: systemd units list it in RestartPreventExitStatus

Command = Callable[[argparse.Namespace, "Settings"], int]

# Commands other modules offer: the module, its parser builder, and the one-line help
# shown by `heritage-audio --help` (the module is imported only when its command runs;
# tests/test_cli.py checks these lines equal the modules' own).
_PROVIDED: dict[str, tuple[str, str, str]] = {
    "subscribe": ("stream.subscribe_cli", "add_parser",
                  "read live events from Redis through a consumer group, to stdout or a webhook"),
    "train": ("stream.heritage_cli", "add_parser",
              "train the heritage classifier on a folder per category"),
    "evaluate": ("stream.heritage_cli", "add_parser",
                 "score a heritage classifier on a folder per category"),
    "models": ("stream.models_cli", "add_parser",
               "list, activate or roll back versions of the heritage classifier"),
    "speakers": ("stream.speakers_cli", "add_parser",
                 "enroll, list and remove named voices that analysis labels by name"),
    "api": ("api.cli", "add_parsers", "serve the HTTP API and the WebSocket hub (no capture)"),
    "worker": ("api.cli", "add_parsers",
               "execute file-analysis jobs from the Redis queue (Celery)"),
    "db": ("api.cli", "add_parsers", "database schema migrations"),
    "users": ("api.cli", "add_parsers", "manage people who log in"),
    "keys": ("api.cli", "add_parsers", "manage API keys for machines"),
}  # fmt: skip
_HANDLERS = {
    "subscribe": "cmd_subscribe", "train": "cmd_train", "evaluate": "cmd_evaluate",
    "models": "cmd_models", "speakers": "cmd_speakers",
}  # fmt: skip


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


def build_parser(command: str | None = None, *, complete: bool = True) -> argparse.ArgumentParser:
    """The argument parser of every subcommand.

    With ``complete=False`` only ``command``'s provider module is imported; the other
    provided commands get their one-line help (enough for ``--help``) and no options.
    """
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
    from stream.analyze_cli import add_arguments

    add_arguments(analyze)
    built: set[str] = set()
    for name, (module, builder, summary) in _PROVIDED.items():
        if complete or module == _PROVIDED.get(command or "", ("",))[0]:
            if module not in built:
                getattr(importlib.import_module(module), builder)(sub)
                built.add(module)
        else:
            sub.add_parser(name, help=summary, add_help=False)
    return parser


def _provided(name: str) -> Command:
    """The handler of a command another module offers."""
    module = importlib.import_module(_PROVIDED[name][0])
    if name in _HANDLERS:
        handler: Command = getattr(module, _HANDLERS[name])
        return handler
    commands: dict[str, Command] = module.COMMANDS
    return commands[name]


def _lazy(name: str) -> Command:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        return _provided(name)(args, settings)

    return run


def _pipeline_config(args: argparse.Namespace, settings: Settings) -> PipelineConfig:
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
    return config


def _check_sources(config: PipelineConfig) -> None:
    """Fail fast, before serving anything, on a source that can never work (a bad file)."""
    from config.errors import ConfigError
    from stream.sources import build_source

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
    import asyncio

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
    import asyncio

    config = _pipeline_config(args, settings)
    _check_sources(config)
    return asyncio.run(
        serve(settings, config, args.host or settings.HOST, args.port or settings.PORT)
    )


def cmd_daemon(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

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


def cmd_analyze(args: argparse.Namespace, settings: Settings) -> int:
    from stream.analyze_cli import cmd_analyze as run

    return run(args, settings)


COMMANDS: dict[str, Command] = {
    "run": cmd_run,
    "daemon": cmd_daemon,
    "devices": cmd_devices,
    "analyze": cmd_analyze,
    **{name: _lazy(name) for name in _PROVIDED},
}


def _command_word(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv`` (skipping the global options), if any."""
    items = iter(argv)
    for item in items:
        if item == "--log-format":
            next(items, None)
        elif not item.startswith("-"):
            return item
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``heritage-audio`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_word(argv), complete=False)
    args = parser.parse_args(argv)
    from pydantic import ValidationError

    from config.errors import ConfigError, format_validation_error
    from config.logging import setup_logging
    from config.settings import load_settings
    from stream.sources.base import SourceError

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
