"""The faust-streaming app of ``heritage-audio aggregate``: every site's events -> windows.

Topics (PREFIX from KAFKA_TOPIC_PREFIX)
    PREFIX.events       read: the sites' events, keyed by installation/source
    PREFIX.aggregates   written: one upsert per changed window, keyed
                        ``site/room/window@start``; a consumer keeps the latest of a key
    PREFIX.dead-letter  written: records that are not events, with a ``reason`` header

Processing guarantee: at least once, made exact by the state. The table ``sources``
(changelogged) holds per source its windows and the ``(run_id, seq)`` and offset it
counted up to, all in one value, so one table write moves both. After a crash:

- an event read again (faust re-reads from the last commit) is a duplicate: counted
  never, but its windows are emitted again, so an upsert lost in the crash is repaired;
- an event whose ``seq`` skips ahead (faust can skip records after a restart or a
  rebalance) has its partition re-read from the source's last counted offset by a side
  reader, and the missing events of every source there are counted before it. A gap
  that is still there is a real loss upstream: it is logged and counted, and counting
  goes on. A skip is noticed when the source's next event arrives: at the latest its
  next heartbeat (every ``heartbeat_s``, 5 s by default).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from aggregate import windows
from sinks.kafka import KafkaClient, aggregates_topic, dead_letter_topic, events_topic

logger = logging.getLogger(__name__)

TABLE = "sources"


class MalformedEventError(ValueError):
    """A record on the events topic that is not an event the aggregates can count."""


@dataclass
class Counters:
    """What the app did, reported at shutdown and in tests."""

    counted: int = 0
    duplicates: int = 0
    malformed: int = 0
    gaps_refilled: int = 0
    gaps_lost: int = 0
    emitted: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


def parse(value: bytes | None) -> dict[str, Any]:
    """The event in a record's value, checked for what counting needs."""
    try:
        event = json.loads(value or b"")
    except ValueError as exc:
        raise MalformedEventError(f"not JSON ({exc})") from None
    if not isinstance(event, dict):
        raise MalformedEventError("not a JSON object")
    for name in ("installation_id", "source", "type", "wall_time"):
        if not isinstance(event.get(name), str) or not event[name]:
            raise MalformedEventError(f"no {name}")
    if not isinstance(event.get("seq"), int) or event["seq"] < 0:
        raise MalformedEventError("no valid seq")
    try:
        windows.event_time(event)
        if event["type"] == "speech.ended":
            float(event["duration"])
        elif event["type"] == "heritage.classified":
            str(event["category"]), float(event["t_end"]) - float(event["t_start"])
        elif event["type"] == "level":
            float(event["rms_dbfs"]), float(event["peak_dbfs"])
        elif event["type"] == "speaker.turn":
            str(event["speaker"])
    except (KeyError, TypeError, ValueError) as exc:
        raise MalformedEventError(f"{event['type']}: {type(exc).__name__} {exc}") from None
    return event


def run_of(event: dict[str, Any]) -> str:
    """The daemon run an event belongs to (``run_id``; older daemons have none)."""
    return str(event.get("run_id") or "")


class Aggregator:
    """The faust app, its table and topics, and the handling of one record."""

    def __init__(
        self,
        client: KafkaClient,
        prefix: str,
        partitions: int,
        *,
        app_id: str = "heritage-aggregate",
        replication: int = 1,
    ) -> None:
        self.client = client
        self.counters = Counters()
        self.app = faust.App(
            app_id,
            broker=[f"kafka://{server}" for server in client.bootstrap_servers.split(",")],
            broker_credentials=_credentials(client),
            store="memory://",
            processing_guarantee="at_least_once",
            web_enabled=False,
            # Tansu: the first join waits half the session timeout (31.7 s by default).
            broker_session_timeout=6,
            broker_heartbeat_interval=2,
            # Tansu reports a log's end as the last batch's base offset + 1: with one record
            # per batch, a table restore reads the changelog to its real end.
            producer_max_batch_size=1,
            topic_replication_factor=replication,
            topic_partitions=partitions,
            table_standby_replicas=0,
        )
        self.events = self.app.topic(
            events_topic(prefix), key_type=bytes, value_type=bytes,
            key_serializer="raw", value_serializer="raw",
        )  # fmt: skip
        self.output = self.app.topic(
            aggregates_topic(prefix), key_serializer="raw", value_serializer="raw"
        )
        self.dead_letter = self.app.topic(
            dead_letter_topic(prefix), key_serializer="raw", value_serializer="raw"
        )
        # Values are the JSON-able state dicts of aggregate.windows (faust's json codec).
        self.table = self.app.Table(TABLE, partitions=partitions, key_type=str)
        self.app.agent(self.events, name="aggregate-events")(self._agent)
        self.app.on_partitions_assigned.connect(self._assigned)

    async def _assigned(self, sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """Say which partitions of the events topic this worker now reads (after a rebalance)."""
        assigned = args[0] if args else kwargs.get("assigned", ())
        topic = self.events.get_topic_name()
        mine = sorted(tp.partition for tp in assigned if tp.topic == topic)
        logger.info("aggregate: reading partition(s) %s of %s", mine, topic)

    async def _agent(self, stream: Any) -> None:
        async for event in stream.events():
            await self.handle(event.message)

    async def handle(self, message: Any) -> None:
        """Count one record of the events topic (or put it in the dead-letter topic)."""
        try:
            event = parse(message.value)
        except MalformedEventError as exc:
            await self._reject(message, str(exc))
            return
        key = f"{event['installation_id']}/{event['source']}"
        state = self._state(key)
        match windows.verdict(state, run_of(event), event["seq"]):
            case "gap":
                await self._refill(key, state, message, event)
                state = self._state(key)
                if windows.verdict(state, run_of(event), event["seq"]) == "gap":
                    self.counters.gaps_lost += 1
                    logger.warning(
                        "aggregate: %s: seq %d follows %d in run %r: %d event(s) lost upstream",
                        key, event["seq"], state["seq"], run_of(event),
                        event["seq"] - state["seq"] - 1,
                    )  # fmt: skip
                    await self._count(key, state, event, message.offset)
                else:
                    await self._handle_read(key, state, event, message.offset)
            case _:
                await self._handle_read(key, state, event, message.offset)

    async def _handle_read(
        self, key: str, state: dict[str, Any], event: dict[str, Any], offset: int
    ) -> None:
        if windows.verdict(state, run_of(event), event["seq"]) == "duplicate":
            self.counters.duplicates += 1
            await self._emit(key, state, windows.keys_of(event))
        else:
            await self._count(key, state, event, offset)

    async def _count(
        self, key: str, state: dict[str, Any], event: dict[str, Any], offset: int
    ) -> None:
        changed = windows.count(state, event, run_of(event), offset)
        self.table[key] = state
        self.counters.counted += 1
        await self._emit(key, state, changed)

    async def _emit(self, key: str, state: dict[str, Any], window_keys: list[str]) -> None:
        site, room = key.split("/", 1)
        for window_key in window_keys:
            figures = state["windows"].get(window_key)
            if figures is None:  # expired: older than the retention
                continue
            record = windows.output_record(site, room, window_key, figures)
            await self.output.send(
                key=f"{key}/{window_key}".encode(),
                value=json.dumps(record, separators=(",", ":")).encode(),
            )
            self.counters.emitted += 1

    def _state(self, key: str) -> dict[str, Any]:
        stored = self.table.get(key)
        # A copy: the table sees a change only when a new value is assigned.
        state: dict[str, Any] = json.loads(json.dumps(stored)) if stored else windows.new_state()
        return state

    async def _refill(
        self, key: str, state: dict[str, Any], message: Any, event: dict[str, Any]
    ) -> None:
        """Re-read the source's records between its last counted offset and ``message``."""
        logger.warning(
            "aggregate: %s: seq %d follows %d; re-reading partition %d from offset %d",
            key, event["seq"], state["seq"], message.partition, state["offset"] + 1,
        )  # fmt: skip
        tp = TopicPartition(message.topic, message.partition)
        reader = AIOKafkaConsumer(**self.client.options(), group_id=None,
                                  enable_auto_commit=False)  # fmt: skip
        await reader.start()
        try:
            reader.assign([tp])
            reader.seek(tp, max(0, state["offset"] + 1))
            done = False
            while not done:
                batches = await reader.getmany(tp, timeout_ms=2000)
                records = batches.get(tp, [])
                if not records:
                    break
                for record in records:
                    if record.offset >= message.offset:
                        done = True
                        break
                    await self._refill_record(record)
        finally:
            await reader.stop()

    async def _refill_record(self, record: Any) -> None:
        """Count a re-read record if it is new; any source of the partition (a skip drops
        every record of the range, not only the one whose gap showed it)."""
        try:
            event = parse(record.value)
        except MalformedEventError:
            return  # the stream put it in the dead-letter topic when it passed
        key = f"{event['installation_id']}/{event['source']}"
        state = self._state(key)
        if windows.verdict(state, run_of(event), event["seq"]) == "new":
            self.counters.gaps_refilled += 1
            await self._count(key, state, event, record.offset)

    async def _reject(self, message: Any, reason: str) -> None:
        self.counters.malformed += 1
        kind = reason.split(" ", 1)[0]
        self.counters.by_reason[kind] = self.counters.by_reason.get(kind, 0) + 1
        logger.warning(
            "aggregate: partition %d offset %d is not an event (%s); sent to the dead-letter topic",
            message.partition, message.offset, reason,
        )  # fmt: skip
        await self.dead_letter.send(
            key=message.key,
            value=message.value or b"",
            headers={"reason": reason.encode(), "partition": str(message.partition).encode(),
                     "offset": str(message.offset).encode()},
        )  # fmt: skip


def _credentials(client: KafkaClient) -> faust.types.auth.CredentialsT | None:
    options = client.options()
    context = options.get("ssl_context")
    if client.uses_sasl:
        return faust.SASLCredentials(
            username=client.sasl_username,
            password=client.sasl_password,
            mechanism=client.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None
