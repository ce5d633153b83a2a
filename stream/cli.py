"""The ``heritage-audio`` command line."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from config.threads import single_thread_environment
from stream.sources_cli import add_source_options, check_sources, pipeline_config

if TYPE_CHECKING:  # imported when a command runs: `heritage-audio --help` stays fast
    from config.settings import Settings

_pipeline_config = pipeline_config  # the name tests and older scripts import

logger = logging.getLogger("heritage_audio")

EXIT_FAILURE = 1
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
    "run": ("api.cli", "add_parsers",
            "capture, analyse and serve the API, live events and dashboard on one port"),
    "api": ("api.cli", "add_parsers", "serve the HTTP API and the WebSocket hub (no capture)"),
    "worker": ("api.cli", "add_parsers",
               "execute file-analysis jobs from the Redis queue (Celery)"),
    "db": ("api.cli", "add_parsers", "database schema migrations"),
    "users": ("api.cli", "add_parsers", "manage people who log in"),
    "keys": ("api.cli", "add_parsers", "manage API keys for machines"),
    "aggregate": ("aggregate.cli", "add_parser",
                  "aggregate every site's Kafka events into windowed figures per site and room "
                  "(faust)"),
}  # fmt: skip
_ANALYSING = frozenset({"analyze", "daemon", "run", "api", "worker"})
"""Commands that analyse audio: one BLAS thread each (config.threads)."""

_HANDLERS = {
    "subscribe": "cmd_subscribe", "train": "cmd_train", "evaluate": "cmd_evaluate",
    "models": "cmd_models", "speakers": "cmd_speakers", "aggregate": "cmd_aggregate",
}  # fmt: skip


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

    daemon = sub.add_parser(
        "daemon",
        help="capture and analyse only, publishing to the configured sinks",
        description="Capture daemon for installation machines: no HTTP server.",
    )
    add_source_options(daemon)

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


def cmd_daemon(args: argparse.Namespace, settings: Settings) -> int:
    import asyncio

    config = pipeline_config(args, settings)
    check_sources(config)
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
    command = _command_word(argv)
    if command in _ANALYSING:
        single_thread_environment()  # before numpy, SciPy and onnxruntime load
    parser = build_parser(command, complete=False)
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
