"""Prometheus metrics of the live path, on a registry of their own (one per runtime)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Every counter, gauge and histogram the pipeline, bus and sinks update."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.frames = Counter(
            "heritage_frames_captured",
            "Audio frames received from sources.",
            ["source"],
            registry=r,
        )
        self.overflows = Counter(
            "heritage_input_overflows",
            "Input overflows reported by capture devices.",
            ["source"],
            registry=r,
        )
        self.dropped_blocks = Counter(
            "heritage_dropped_blocks",
            "Captured blocks dropped because analysis fell behind.",
            ["source"],
            registry=r,
        )
        self.invalid_samples = Counter(
            "heritage_invalid_samples",
            "NaN or infinite samples replaced by silence.",
            ["source"],
            registry=r,
        )
        self.source_up = Gauge(
            "heritage_source_up", "1 while a source delivers audio.", ["source"], registry=r
        )
        self.block_seconds = Histogram(
            "heritage_block_processing_seconds",
            "Time to resample and analyse one captured block, all channels and detectors.",
            ["source"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=r,
        )
        self.window_seconds = Histogram(
            "heritage_window_processing_seconds",
            "Time a detector takes to analyse one window.",
            ["detector"],
            buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1),
            registry=r,
        )
        self.recorder_dropped = Counter(
            "heritage_recorder_dropped_chunks",
            "Audio chunks the recorder lost because the disk could not keep up.",
            registry=r,
        )
        self.events = Counter("heritage_events", "Events published, by type.", ["type"], registry=r)
        self.queue_depth = Gauge(
            "heritage_sink_queue_depth", "Events waiting in a sink's queue.", ["sink"], registry=r
        )
        self.sink_dropped = Counter(
            "heritage_sink_dropped_events",
            "Events dropped because a sink's queue was full.",
            ["sink"],
            registry=r,
        )
        self.sink_errors = Counter(
            "heritage_sink_errors", "Sink deliveries that failed.", ["sink"], registry=r
        )
        self.spool_events = Gauge(
            "heritage_spool_events",
            "Events waiting in a sink's on-disk spool.",
            ["sink"],
            registry=r,
        )
        self.spool_bytes = Gauge(
            "heritage_spool_bytes",
            "Bytes of the events waiting in a sink's on-disk spool.",
            ["sink"],
            registry=r,
        )
        self.spool_dropped = Counter(
            "heritage_spool_dropped_events",
            "Spooled events lost: oldest dropped when the spool was full, or unwritable.",
            ["sink"],
            registry=r,
        )
        self.redis_connected = Gauge(
            "heritage_redis_connected",
            "1 while a Redis sink delivers straight to Redis, 0 while it spools.",
            ["sink"],
            registry=r,
        )
        self.kafka_connected = Gauge(
            "heritage_kafka_connected",
            "1 while a Kafka sink delivers straight to the brokers, 0 while it spools.",
            ["sink"],
            registry=r,
        )
        self.ws_clients = Gauge(
            "heritage_websocket_clients", "Connected WebSocket clients.", registry=r
        )
