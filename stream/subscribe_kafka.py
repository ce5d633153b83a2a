"""``heritage-audio subscribe --kafka``: every site's events from Kafka, one JSON line each."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from typing import Any

from aiokafka.errors import KafkaError

from config.settings import Settings
from sinks.kafka import KafkaClient, events_topic
from sinks.kafka_consumer import KafkaSubscriber, KafkaSubscriberConfig

EXIT_FAILURE = 1
DEFAULT_GROUP = "heritage-subscribe"


def run_kafka_subscriber(args: argparse.Namespace, settings: Settings) -> int:
    """Print new events as JSON lines until a signal (or, with ``--burst``, until idle)."""
    client = KafkaClient.from_settings(settings)
    config = KafkaSubscriberConfig(
        topic=events_topic(settings.KAFKA_TOPIC_PREFIX),
        group=args.group or DEFAULT_GROUP,
        start=args.start or "new",
        installation=args.installation,
        burst=args.burst,
        idle_ms=args.block_ms or 5000,
    )
    return asyncio.run(_run(client, config))


async def _print(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def _run(client: KafkaClient, config: KafkaSubscriberConfig) -> int:
    subscriber = KafkaSubscriber(client, config, _print)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, subscriber.stop)
    try:
        await subscriber.run()
    except KafkaError as exc:
        print(f"heritage-audio: error: Kafka at {client.describe()}: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    return 0
