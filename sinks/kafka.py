"""Kafka sink: every event one record on ``PREFIX.events``; spooled on disk while Kafka is away.

Records
    value   the event's JSON, byte for byte as on the WebSocket and in Redis
    key     ``installation_id/source``: the source's id across sites, so all of a
            source's events land on one partition, in order

Delivery
    Each batch is handed to the producer in order and awaited whole (``acks=all``;
    aiokafka keeps one request in flight per partition, so a retry never reorders).
    When the brokers cannot be reached, or a batch is not acknowledged within
    ``send_timeout_s``, that batch and every later one go to a bounded on-disk spool
    (:mod:`sinks.spool`). A background task starts a new producer with exponential
    backoff and jitter; once it connects it delivers the spool in order, acknowledging
    each batch only after the brokers did, then goes back to direct delivery.

    Delivery is at least once: a batch interrupted mid-way is sent again whole. The
    idempotent producer (``enable_idempotence``) removes those duplicates where the
    broker supports it (Tansu 0.6 does not: its InitProducerId fails); consumers drop
    the rest by ``(source, run_id, seq)`` (:func:`sinks.kafka_consumer.event_identity`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import ConfigDict, Field

from config.errors import ConfigError
from config.settings import Settings
from sinks.base import Sink
from sinks.bus import Published
from sinks.metrics import Metrics
from sinks.spool import Spool
from sinks.spooling import SpoolingSink, SpoolingSinkConfig

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

# aiokafka is imported where a client is made, not here: the pipeline configuration
# imports this module for KafkaSinkConfig, and every `heritage-audio analyze` with it.

logger = logging.getLogger(__name__)

MIB = 1 << 20
_FIRST_CONNECT_S = 3.0
"""Longest wait for the brokers at start-up before spooling (the daemon starts regardless)."""


def _unavailable() -> tuple[type[BaseException], ...]:
    """Whatever keeps a record from being stored: brokers gone, timing out, or refusing it."""
    from aiokafka.errors import KafkaError

    return (KafkaError, OSError, TimeoutError)


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]


def events_topic(prefix: str) -> str:
    """The topic every site publishes its events to."""
    return f"{prefix}.events"


def aggregates_topic(prefix: str) -> str:
    """The topic `aggregate` writes its windowed figures to (upserts, compactable)."""
    return f"{prefix}.aggregates"


def dead_letter_topic(prefix: str) -> str:
    """Where `aggregate` puts records it could not read, with the reason in a header."""
    return f"{prefix}.dead-letter"


def record_key(installation_id: str, source: str) -> bytes:
    """The partition key of a source's events: its id across all sites."""
    return f"{installation_id}/{source}".encode()


@dataclass(frozen=True)
class KafkaClient:
    """How to reach the brokers: addresses and TLS/SASL, rendered into aiokafka's options."""

    bootstrap_servers: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism = "PLAIN"
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings, bootstrap_servers: str | None = None) -> KafkaClient:
        """The client the KAFKA_* settings describe (:class:`ConfigError` if incomplete)."""
        servers = bootstrap_servers or settings.KAFKA_BOOTSTRAP_SERVERS
        if not servers:
            raise ConfigError("kafka: no brokers to reach: set KAFKA_BOOTSTRAP_SERVERS")
        password = settings.KAFKA_SASL_PASSWORD
        client = cls(
            bootstrap_servers=servers,
            security_protocol=settings.KAFKA_SECURITY_PROTOCOL,
            sasl_mechanism=settings.KAFKA_SASL_MECHANISM,
            sasl_username=settings.KAFKA_SASL_USERNAME,
            sasl_password=password.get_secret_value() if password else None,
            ssl_cafile=settings.KAFKA_SSL_CAFILE,
            ssl_certfile=settings.KAFKA_SSL_CERTFILE,
            ssl_keyfile=settings.KAFKA_SSL_KEYFILE,
        )
        client.check()
        return client

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def check(self) -> None:
        """Raise :class:`ConfigError` naming the setting that is missing or contradictory."""
        if self.uses_sasl and not (self.sasl_username and self.sasl_password):
            raise ConfigError(
                f"kafka: KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        if bool(self.ssl_certfile) != bool(self.ssl_keyfile):
            raise ConfigError("kafka: KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE go together")
        tls_files = (self.ssl_cafile, self.ssl_certfile, self.ssl_keyfile)
        if not self.uses_tls and any(tls_files):
            raise ConfigError(
                "kafka: KAFKA_SSL_* files are set but KAFKA_SECURITY_PROTOCOL is "
                f"{self.security_protocol}; use SSL or SASL_SSL"
            )
        for path in tls_files:
            if path is not None and not path.is_file():
                raise ConfigError(f"kafka: {path}: no such file")

    def options(self) -> dict[str, Any]:
        """Keyword arguments of aiokafka's producer, consumer and admin client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers.split(","),
            "security_protocol": self.security_protocol,
        }
        if self.uses_tls:
            from aiokafka.helpers import create_ssl_context

            # Verifies the broker's certificate and host name (the default context does).
            options["ssl_context"] = create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
            )
        if self.uses_sasl:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options

    def describe(self) -> str:
        """Where and how, for a log line (no secrets)."""
        return f"{self.bootstrap_servers} ({self.security_protocol})"


async def ensure_topics(
    client: KafkaClient, names: list[str], partitions: int, replication: int = 1
) -> None:
    """Create the topics that do not exist yet (brokers without auto-creation need it)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(**client.options())
    await admin.start()
    try:
        for name in names:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(name, partitions, replication)])
    finally:
        await admin.close()


class KafkaSinkConfig(SpoolingSinkConfig):
    """Publish every event to Kafka; spool to disk while the brokers are unreachable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: Literal["kafka"] = "kafka"
    bootstrap_servers: str | None = Field(
        None,
        title="Brokers",
        description="Comma-separated host:port; default KAFKA_BOOTSTRAP_SERVERS.",
    )
    topic_prefix: str | None = Field(
        None,
        title="Topic prefix",
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="Events go to PREFIX.events; default KAFKA_TOPIC_PREFIX.",
    )
    create_topic: bool = Field(
        True, title="Create the topic", description="Create PREFIX.events if it does not exist."
    )
    partitions: int = Field(
        12, ge=1, le=10_000, description="Partitions of the topic when this sink creates it."
    )
    replication_factor: int = Field(
        1, ge=1, le=32, description="Copies of each partition when this sink creates the topic."
    )
    idempotent: bool = Field(
        False,
        title="Idempotent producer",
        description="Brokers drop retried duplicates (needs InitProducerId; Tansu lacks it).",
    )
    batch_size: int = Field(500, ge=1, le=100_000, description="Most events awaited at once.")
    linger_ms: int = Field(5, ge=0, le=10_000, description="Wait to fill a request, ms.")
    compression: Literal["gzip", "lz4", "snappy", "zstd"] | None = Field(
        None, description="Record batch compression (lz4, snappy, zstd need their packages)."
    )
    send_timeout_s: float = Field(
        10.0, gt=0, le=600, description="A batch not acknowledged this long: brokers are away."
    )

    def build(self, settings: Settings, metrics: Metrics) -> Sink:
        """The sink this entry describes, its spool opened (:class:`ConfigError` if it cannot)."""
        client = KafkaClient.from_settings(settings, self.bootstrap_servers)
        spool = self.open_spool(settings, "kafka", "Kafka")
        topic = events_topic(self.topic_prefix or settings.KAFKA_TOPIC_PREFIX)
        return KafkaSink(self, client, topic, spool, metrics)


class KafkaSink(SpoolingSink[tuple[bytes, str]]):
    """Produces batches to ``topic``; spools them in order while the brokers are away."""

    service = "Kafka"

    def __init__(
        self,
        config: KafkaSinkConfig,
        client: KafkaClient,
        topic: str,
        spool: Spool,
        metrics: Metrics,
    ) -> None:
        name = f"kafka:{client.bootstrap_servers}/{topic}"
        super().__init__(
            name,
            config,
            spool,
            metrics,
            metrics.kafka_connected.labels(name),
            batch_size=config.batch_size,
            drain_batch=config.batch_size,
            spooling=True,  # until a producer has connected (and any old spool is out)
        )
        self.unavailable = _unavailable()
        self.topic = topic
        self._config = config
        self._client = client
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        """Connect and deliver a spool left by an earlier run; if the brokers are away,
        spool from the first event and keep trying in the background."""
        try:
            async with asyncio.timeout(min(self._config.send_timeout_s, _FIRST_CONNECT_S)):
                await self._probe()
                await self._drain()
        except self.unavailable as exc:
            await self._reset_connection()
            self._lost(exc)
            self._start_recovery()

    # -- the transport -------------------------------------------------------

    async def _probe(self) -> None:
        """A started producer (and the topic), or an exception if the brokers are away."""
        if self._producer is not None:
            return
        if self._config.create_topic:
            await ensure_topics(
                self._client, [self.topic], self._config.partitions, self._config.replication_factor
            )
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(
            **self._client.options(),
            client_id=f"heritage-audio:{self.topic}",
            acks="all",
            enable_idempotence=self._config.idempotent,
            linger_ms=self._config.linger_ms,
            max_batch_size=256 * 1024,
            compression_type=self._config.compression,
            request_timeout_ms=int(self._config.send_timeout_s * 1000),
        )
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self._producer = producer

    async def _deliver(self, batch: list[tuple[bytes, str]]) -> None:
        """Produce ``batch`` in order and wait until the brokers stored all of it."""
        await self._probe()
        producer = self._producer
        if producer is None:  # pragma: no cover - _probe either sets it or raises
            from aiokafka.errors import KafkaError

            raise KafkaError("no producer")
        async with asyncio.timeout(self._config.send_timeout_s):
            futures = [await producer.send(self.topic, value.encode(), key=key)
                       for key, value in batch]  # fmt: skip
            await asyncio.gather(*futures)

    def _batch_of_items(self, items: list[Published]) -> list[tuple[bytes, str]]:
        return [(record_key(i.event.installation_id, i.event.source), i.json) for i in items]

    def _record_of_line(self, event: dict[str, Any], line: str) -> tuple[bytes, str]:
        return record_key(str(event["installation_id"]), str(event["source"])), line

    async def _reset_connection(self) -> None:
        await self._drop_producer(flush=False)

    async def _release(self) -> None:
        await self._drop_producer(flush=True)

    async def _drop_producer(self, *, flush: bool) -> None:
        """Stop the producer; a broken one is abandoned within a second (its batches are
        spooled and go out again through the next one)."""
        producer, self._producer = self._producer, None
        if producer is None:
            return
        with contextlib.suppress(*self.unavailable):
            async with asyncio.timeout(self._config.close_timeout_s if flush else 1.0):
                await producer.stop()
