"""``heritage-audio subscribe``: the reference consumer of the live event stream (MAXXI's)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from typing import Any

from redis.exceptions import RedisError

from config.settings import Settings
from sinks.redis_streams import DEFAULT_STREAM_KEY, redact_url, redis_url_from_settings, stream_key
from sinks.subscriber import DeliveryError, Subscriber, SubscriberConfig

logger = logging.getLogger(__name__)

FALLBACK_URL = "redis://127.0.0.1:6379/0"
EXIT_FAILURE = 1
EXIT_USAGE = 2


def _default(name: str) -> Any:
    """The library's default of a subscriber option, shown in ``--help``."""
    return SubscriberConfig.model_fields[name].default


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``subscribe`` subcommand and its options."""
    sub = subparsers.add_parser(
        "subscribe",
        help="read live events from Redis through a consumer group, to stdout or a webhook",
        description=(
            "Read an installation's event stream through a consumer group and print each event "
            "as one JSON line (or POST it to --webhook). Entries are acknowledged only once "
            "delivered; entries a dead consumer left pending are claimed. SIGTERM or Ctrl-C "
            "finishes the batch in hand and exits 0."
        ),
    )
    sub.add_argument(
        "--url",
        help=f"Redis URL (default: redis://$REDIS_HOST:$REDIS_PORT/0, else {FALLBACK_URL})",
    )
    sub.add_argument(
        "--kafka",
        action="store_true",
        help="read every site's events from Kafka ($KAFKA_BOOTSTRAP_SERVERS, topic "
        "$KAFKA_TOPIC_PREFIX.events) instead of Redis; --installation keeps one site's",
    )
    which = sub.add_mutually_exclusive_group()
    which.add_argument(
        "--installation",
        metavar="ID",
        help=f"read the stream of installation ID ({stream_key(DEFAULT_STREAM_KEY, 'ID', '')})",
    )
    which.add_argument("--stream", metavar="KEY", help="read this stream key")
    sub.add_argument("--group", help=f"consumer group (default: {_default('group')})")
    sub.add_argument(
        "--consumer", help="this consumer's name, unique among running ones (default: host-pid)"
    )
    sub.add_argument(
        "--from",
        dest="start",
        choices=["new", "start"],
        help="where a group created now starts: new events, or the oldest kept (default: new)",
    )
    sub.add_argument(
        "--claim-idle-ms",
        type=int,
        metavar="MS",
        help="claim entries another consumer left pending this long "
        f"(default: {_default('claim_idle_ms')})",
    )
    sub.add_argument(
        "--block-ms",
        type=int,
        metavar="MS",
        help=f"longest wait for new events per read (default: {_default('block_ms')})",
    )
    sub.add_argument("--webhook", metavar="URL", help="POST each event (JSON body) to this URL")
    sub.add_argument(
        "--attempts",
        type=int,
        metavar="N",
        help=f"tries per webhook POST before giving up (default: {_default('attempts')})",
    )
    sub.add_argument(
        "--burst",
        action="store_true",
        help="exit 0 once nothing is pending or new within one block interval",
    )


def subscriber_config(args: argparse.Namespace, settings: Settings) -> SubscriberConfig:
    """The subscriber options from the command line; unset ones keep their defaults."""
    url = args.url or redis_url_from_settings(settings) or FALLBACK_URL
    stream = args.stream or stream_key(DEFAULT_STREAM_KEY, args.installation, source="")
    given = {
        "group": args.group,
        "consumer": args.consumer,
        "start": args.start,
        "claim_idle_ms": args.claim_idle_ms,
        "block_ms": args.block_ms,
        "webhook": args.webhook,
        "attempts": args.attempts,
    }
    return SubscriberConfig(
        url=url,
        stream=stream,
        burst=args.burst,
        **{name: value for name, value in given.items() if value is not None},
    )


def cmd_subscribe(args: argparse.Namespace, settings: Settings) -> int:
    """Run the subscriber until a signal (or, with ``--burst``, until caught up)."""
    if args.kafka:
        return _subscribe_kafka(args, settings)
    if not (args.installation or args.stream):
        print(
            "heritage-audio: error: one of --installation or --stream is required", file=sys.stderr
        )
        return EXIT_USAGE
    config = subscriber_config(args, settings)
    return asyncio.run(_subscribe(config))


def _subscribe_kafka(args: argparse.Namespace, settings: Settings) -> int:
    from stream.subscribe_kafka import run_kafka_subscriber

    unsupported = [f"--{name.replace('_', '-')}" for name in ("stream", "url", "webhook",
                   "consumer", "claim_idle_ms", "attempts") if getattr(args, name)]  # fmt: skip
    if unsupported:
        print(f"heritage-audio: error: {', '.join(unsupported)} is for Redis, not --kafka",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    return run_kafka_subscriber(args, settings)


async def _subscribe(config: SubscriberConfig) -> int:
    subscriber = Subscriber(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, subscriber.stop)
    try:
        await subscriber.run()
    except DeliveryError as exc:
        print(f"heritage-audio: error: {exc}; it stays pending", file=sys.stderr)
        return EXIT_FAILURE
    except RedisError as exc:
        print(f"heritage-audio: error: Redis at {redact_url(config.url)}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except BrokenPipeError:
        # The reader went away (`| head`): what it did not get stays pending. Point stdout at
        # /dev/null so the interpreter's final flush does not complain about the pipe too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0
