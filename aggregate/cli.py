"""``heritage-audio aggregate``: run the faust app that aggregates every site's events."""

from __future__ import annotations

import argparse
import asyncio
import logging

from config.errors import ConfigError
from config.settings import Settings
from sinks.kafka import (
    KafkaClient,
    aggregates_topic,
    dead_letter_topic,
    ensure_topics,
    events_topic,
)

logger = logging.getLogger(__name__)

HELP = "aggregate every site's Kafka events into windowed figures per site and room (faust)"


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``aggregate`` subcommand and its options."""
    sub = subparsers.add_parser(
        "aggregate",
        help=HELP,
        description=(
            "Consume $KAFKA_TOPIC_PREFIX.events from every site and keep, per site and room, "
            "speech minutes, distinct speakers, the dominant heritage category and its share, "
            "occupancy and levels over tumbling 1 and 15 min and hopping 1 h windows; upserts "
            "go to $KAFKA_TOPIC_PREFIX.aggregates, unreadable records to "
            "$KAFKA_TOPIC_PREFIX.dead-letter. Run several to share the partitions; SIGTERM "
            "stops cleanly."
        ),
    )
    sub.add_argument(
        "--app-id",
        help="consumer group, and prefix of the changelog topics; one per deployment "
        "(default: $KAFKA_TOPIC_PREFIX-aggregate)",
    )
    sub.add_argument(
        "--partitions",
        type=int,
        metavar="N",
        help="partitions of the events topic (default: read from the brokers; 12 if the "
        "topic does not exist yet, which is then created)",
    )
    sub.add_argument(
        "--replication",
        type=int,
        default=1,
        metavar="N",
        help="replication factor of the topics this app creates (default: %(default)s)",
    )


async def _prepare(
    client: KafkaClient, prefix: str, partitions: int | None, replication: int
) -> int:
    """The events topic's partition count; the topics the app reads and writes exist after."""
    from aiokafka.admin import AIOKafkaAdminClient

    topic = events_topic(prefix)
    if partitions is None:
        admin = AIOKafkaAdminClient(**client.options())
        await admin.start()
        try:
            found = []
            if topic in await admin.list_topics():
                found = (await admin.describe_topics([topic]))[0]["partitions"]
        finally:
            await admin.close()
        partitions = len(found) or 12
    names = [topic, aggregates_topic(prefix), dead_letter_topic(prefix)]
    await ensure_topics(client, names, partitions, replication)
    return partitions


def cmd_aggregate(args: argparse.Namespace, settings: Settings) -> int:
    """Run the aggregate worker until SIGTERM or SIGINT."""
    if args.partitions is not None and args.partitions < 1:
        raise ConfigError("aggregate: --partitions must be at least 1")
    client = KafkaClient.from_settings(settings)
    prefix = settings.KAFKA_TOPIC_PREFIX
    partitions = asyncio.run(_prepare(client, prefix, args.partitions, args.replication))

    import faust

    from aggregate.app import Aggregator

    app_id = args.app_id or f"{prefix}-aggregate"
    aggregator = Aggregator(client, prefix, partitions, app_id=app_id, replication=args.replication)
    logger.info(
        "aggregate: %s from %s, %d partition(s), app %s",
        events_topic(prefix), client.describe(), partitions, app_id,
    )  # fmt: skip
    worker = faust.Worker(aggregator.app, loglevel=settings.LOG_LEVEL, quiet=True)
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        c = aggregator.counters
        logger.info(
            "aggregate: stopped; %d event(s) counted, %d duplicate(s), %d malformed, "
            "%d refilled after a gap, %d lost upstream, %d upsert(s) emitted",
            c.counted, c.duplicates, c.malformed, c.gaps_refilled, c.gaps_lost, c.emitted,
        )  # fmt: skip
    return code
