"""Reading the Kafka event topic: a consumer group that resumes from its committed offsets.

Offsets are committed only after the events of a fetch were handed on, so a
consumer that dies re-reads at most one fetch (at-least-once); :class:`Dedup`
drops what was already seen by ``(installation, source, run_id, seq)``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer

from sinks.kafka import KafkaClient

logger = logging.getLogger(__name__)

SourceId = tuple[str, str]
"""(installation_id, source): a source across all sites."""


def event_identity(event: dict[str, Any]) -> tuple[SourceId, tuple[str, int]]:
    """The source of an event and its position in that source's sequence.

    ``run_id`` changes when a daemon restarts (its ``seq`` starts again), so positions are
    compared as ``(run_id, seq)`` within one run; events without ``run_id`` (older daemons)
    count as one run.
    """
    source = (str(event["installation_id"]), str(event["source"]))
    return source, (str(event.get("run_id") or ""), int(event["seq"]))


RUNS_KEPT = 16
"""Runs remembered per source: a re-read of an older run's events is still recognised."""


@dataclass
class Dedup:
    """Drops events a source already delivered: a re-sent batch, a re-read fetch.

    Keeps per source the last seq of its latest runs (bounded by sources x RUNS_KEPT,
    not by uptime).
    """

    last: dict[SourceId, dict[str, int]] = field(default_factory=dict)
    duplicates: int = 0

    def is_new(self, event: dict[str, Any]) -> bool:
        """True the first time an event is seen."""
        source, (run_id, seq) = event_identity(event)
        runs = self.last.setdefault(source, {})
        if run_id in runs and seq <= runs[run_id]:
            self.duplicates += 1
            return False
        if run_id not in runs:
            while len(runs) >= RUNS_KEPT:
                del runs[next(iter(runs))]
        runs[run_id] = seq
        return True


@dataclass(frozen=True)
class KafkaSubscriberConfig:
    """What `heritage-audio subscribe --kafka` reads and how."""

    topic: str
    group: str = "heritage-subscribe"
    start: Literal["new", "start"] = "new"
    installation: str | None = None
    burst: bool = False
    idle_ms: int = 5000
    """With ``burst``: exit after a fetch that waited this long and found nothing."""


class KafkaSubscriber:
    """Hands each new event (decoded JSON) to ``deliver``; commits after each fetch."""

    def __init__(
        self,
        client: KafkaClient,
        config: KafkaSubscriberConfig,
        deliver: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        self._client = client
        self._config = config
        self._deliver = deliver
        self._stopping = asyncio.Event()
        self.dedup = Dedup()
        self.delivered = 0
        self.malformed = 0

    def stop(self) -> None:
        """Finish the fetch in hand, commit, and return from :meth:`run`."""
        self._stopping.set()

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            self._config.topic,
            **self._client.options(),
            group_id=self._config.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest" if self._config.start == "start" else "latest",
            session_timeout_ms=10_000,
            heartbeat_interval_ms=3_000,
        )
        await consumer.start()
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=self._config.idle_ms)
                records = [r for batch in batches.values() for r in batch]
                for record in records:
                    await self._handle(record.value)
                if records:
                    await consumer.commit()
                elif self._config.burst:
                    return
        finally:
            await consumer.stop()
            logger.info(
                "kafka subscriber: %d event(s) delivered, %d duplicate(s), %d malformed",
                self.delivered,
                self.dedup.duplicates,
                self.malformed,
            )

    async def _handle(self, value: bytes | None) -> None:
        try:
            event = json.loads(value or b"")
            if not isinstance(event, dict):
                raise TypeError("not a JSON object")
            event_identity(event)
        except (ValueError, KeyError, TypeError) as exc:
            self.malformed += 1
            logger.warning("kafka subscriber: skipped a malformed record (%s)", exc)
            return
        if self._config.installation and event["installation_id"] != self._config.installation:
            return
        if self.dedup.is_new(event):
            await self._deliver(event)
            self.delivered += 1
