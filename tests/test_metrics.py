"""Every metric the live path exposes passes Prometheus's own linter."""

from __future__ import annotations

import subprocess

from prometheus_client import Counter, Gauge, Histogram, generate_latest

from sinks.metrics import Metrics


def test_every_metric_family_passes_promtool() -> None:
    metrics = Metrics()
    families = {name: m for name, m in vars(metrics).items() if name != "registry"}
    assert len(families) >= 17
    for metric in families.values():
        # Give every family a sample, so its full exposition (labels, buckets) is checked.
        child = metric.labels(*["x"] * len(metric._labelnames)) if metric._labelnames else metric
        if isinstance(child, Counter):
            child.inc()
        elif isinstance(child, Gauge):
            child.set(1)
        elif isinstance(child, Histogram):
            child.observe(0.001)
    text = generate_latest(metrics.registry).decode()
    check = subprocess.run(
        ["promtool", "check", "metrics"], input=text, capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stdout + check.stderr
    for name in (
        "heritage_spool_events",
        "heritage_window_processing_seconds_bucket",
        "heritage_websocket_clients",
        "heritage_recorder_dropped_chunks_total",
    ):
        assert name in text  # fmt: skip
