"""Following the Kafka aggregates topic into the database, for ``/api/v1/sites``.

The API runs this when ``KAFKA_BOOTSTRAP_SERVERS`` is set. Every API replica joins one
consumer group, so each upsert is written once into the shared database; offsets are
committed after the rows are, so a replica that dies re-reads at most one fetch, which
the upsert makes harmless (see :mod:`sinks.store.sites`). A new group reads the topic
from its start, so an empty database is filled from what the topic still holds.

The API answers from the database: while the brokers are away, this loop retries with
backoff and the routes keep serving what was stored, only growing stale.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from sinks.kafka import KafkaClient, aggregates_topic
from sinks.store import Database
from sinks.store.sites import BadAggregate, parse_record, prune, upsert

logger = logging.getLogger(__name__)

UNAVAILABLE = (KafkaError, OSError, TimeoutError, DBAPIError, PoolTimeout)
"""The brokers or the database away: retried with backoff, offsets not committed."""
BACKOFF_MIN_S = 1.0
BACKOFF_MAX_S = 30.0
PRUNE_EVERY_S = 3600.0


@dataclass
class FollowerCounters:
    """What the follower did, logged at shutdown."""

    stored: int = 0
    malformed: int = 0
    failures: int = 0


class AggregatesFollower:
    """Reads ``PREFIX.aggregates`` and upserts each record into ``site_aggregates``."""

    def __init__(
        self,
        client: KafkaClient,
        prefix: str,
        db: Database,
        *,
        group: str | None = None,
        burst: bool = False,
        idle_ms: int = 1000,
    ) -> None:
        self.topic = aggregates_topic(prefix)
        self.group = group or f"{prefix}-api-sites"
        self._client = client
        self._db = db
        self._burst = burst
        self._idle_ms = idle_ms
        self.counters = FollowerCounters()
        self.connected = False
        self._backoff = BACKOFF_MIN_S

    async def run(self) -> None:
        """Follow the topic until cancelled (or, in burst mode, until a fetch finds nothing)."""
        try:
            while True:
                try:
                    await self._follow()
                    return  # burst mode: caught up
                except UNAVAILABLE as exc:
                    self.connected = False
                    self.counters.failures += 1
                    logger.warning(
                        "site aggregates: cannot follow %s (%s: %s); retrying in %.0f s; "
                        "/api/v1/sites serves what is stored",
                        self.topic, type(exc).__name__, exc, self._backoff,
                    )  # fmt: skip
                    await asyncio.sleep(self._backoff)
                    self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
                except Exception:
                    logger.exception("site aggregates: following %s failed", self.topic)
                    raise
        finally:
            c = self.counters
            logger.info(
                "site aggregates: stopped; %d upsert(s) stored, %d malformed, %d failure(s)",
                c.stored, c.malformed, c.failures,
            )  # fmt: skip

    async def _follow(self) -> None:
        consumer = AIOKafkaConsumer(
            self.topic,
            **self._client.options(),
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
            # A topic created after the API started (by `aggregate`) is found within 30 s.
            metadata_max_age_ms=30_000,
        )
        try:
            await consumer.start()
            self.connected = True
            self._backoff = BACKOFF_MIN_S
            logger.info("site aggregates: following %s (group %s)", self.topic, self.group)
            loop = asyncio.get_running_loop()
            pruned_at = 0.0
            while True:
                batches = await consumer.getmany(timeout_ms=self._idle_ms, max_records=500)
                records = [r for batch in batches.values() for r in batch]
                if records:
                    await self._store([r.value for r in records])
                    await consumer.commit()
                elif self._burst:
                    return
                if loop.time() - pruned_at > PRUNE_EVERY_S:
                    pruned_at = loop.time()
                    async with self._db.session() as session:
                        removed = await prune(session)
                    if removed:
                        logger.info("site aggregates: pruned %d expired row(s)", removed)
        finally:
            self.connected = False
            await consumer.stop()

    async def _store(self, values: list[bytes | None]) -> None:
        rows = []
        for value in values:
            try:
                rows.append(parse_record(value))
            except BadAggregate as exc:
                self.counters.malformed += 1
                logger.warning("site aggregates: skipped a record of %s (%s)", self.topic, exc)
        async with self._db.session() as session:
            await upsert(session, self._db.backend, rows)
        self.counters.stored += len(rows)
