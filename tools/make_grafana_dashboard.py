"""Write the Grafana dashboard of the Prometheus metrics to deploy/grafana/dashboards/.

The panels are declared here, compactly; the JSON is what Grafana provisions (the compose
file mounts the folder). Run after changing a panel; a test fails while the committed file
is stale, and another checks that every metric a panel queries exists.

    python tools/make_grafana_dashboard.py
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "deploy/grafana/dashboards/heritage-audio.json"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}  # provisioned with this uid
RATE = "$__rate_interval"
SOURCE = 'source=~"$source"'


@dataclass
class Panel:
    title: str
    description: str
    targets: list[tuple[str, str]]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"
    width: int = 8
    stack: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _quantile(q: float, metric: str, by: str, where: str = "") -> str:
    selector = f"{{{where}}}" if where else ""
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({metric}_bucket{selector}[{RATE}])))"


ROWS: list[tuple[str, list[Panel]]] = [
    (
        "Capture",
        [
            Panel(
                "Ingest rate",
                "Audio frames captured per second, by source (a 48 kHz device: 48 000).",
                [
                    (
                        "sum by (source) "
                        f"(rate(heritage_frames_captured_total{{{SOURCE}}}[{RATE}]))",
                        "{{source}}",
                    )
                ],
                unit="Hz",
            ),
            Panel(
                "Sources up",
                "1 while a source delivers audio; 0 while its device is lost and retried.",
                [(f"heritage_source_up{{{SOURCE}}}", "{{instance}} {{source}}")],
                kind="state-timeline",
                extra={"min": 0, "max": 1},
            ),
            Panel(
                "Overflows and dropped blocks",
                "Input overflows reported by the device, and captured blocks dropped because "
                "analysis fell behind. Anything above 0 is audio lost.",
                [
                    (
                        f"sum by (source) (increase(heritage_input_overflows_total{{{SOURCE}}}"
                        f"[{RATE}]))",
                        "overflows {{source}}",
                    ),
                    (
                        f"sum by (source) (increase(heritage_dropped_blocks_total{{{SOURCE}}}"
                        f"[{RATE}]))",
                        "dropped blocks {{source}}",
                    ),
                    (
                        f"sum by (source) (increase(heritage_invalid_samples_total{{{SOURCE}}}"
                        f"[{RATE}]))",
                        "NaN/inf samples {{source}}",
                    ),
                ],
            ),
        ],
    ),
    (
        "Latency",
        [
            Panel(
                "Block processing time",
                "Resampling and analysing one captured block (all channels and detectors). "
                "It must stay below the block's duration (1024 frames at 48 kHz: 21 ms).",
                [
                    (
                        _quantile(0.5, "heritage_block_processing_seconds", "source", SOURCE),
                        "p50 {{source}}",
                    ),
                    (
                        _quantile(0.95, "heritage_block_processing_seconds", "source", SOURCE),
                        "p95 {{source}}",
                    ),
                    (
                        _quantile(0.99, "heritage_block_processing_seconds", "source", SOURCE),
                        "p99 {{source}}",
                    ),
                ],
                unit="s",
                width=12,
            ),
            Panel(
                "Detector time per window (p95)",
                "Time one detector takes on one window.",
                [
                    (
                        _quantile(0.95, "heritage_window_processing_seconds", "detector"),
                        "{{detector}}",
                    )
                ],
                unit="s",
                width=12,
            ),
            Panel(
                "Network CPU",
                "Share of one core each network's runs take (Silero VAD, GE2E, musicnn, YAMNet "
                "...): most of the analysis cost, so the first place to look when a machine "
                "falls behind.",
                [
                    (
                        "sum by (instance, model) "
                        f"(rate(heritage_network_cpu_seconds_total[{RATE}]))",
                        "{{instance}} {{model}}",
                    )
                ],
                unit="percentunit",
                width=24,
                stack=True,
            ),
        ],
    ),
    (
        "Events and queues",
        [
            Panel(
                "Events published",
                "Events per second, by type.",
                [(f"sum by (type) (rate(heritage_events_total[{RATE}]))", "{{type}}")],
                unit="ops",
                stack=True,
            ),
            Panel(
                "Sink queue depth",
                "Events waiting in each sink's bounded in-memory queue.",
                [("sum by (sink) (heritage_sink_queue_depth)", "{{sink}}")],
            ),
            Panel(
                "WebSocket clients",
                "Connected dashboards and other WebSocket clients.",
                [("sum by (instance) (heritage_websocket_clients)", "{{instance}}")],
            ),
            Panel(
                "Redis connected",
                "1 while a Redis sink delivers straight to Redis, 0 while it spools to disk.",
                [("heritage_redis_connected", "{{instance}} {{sink}}")],
                kind="state-timeline",
                extra={"min": 0, "max": 1},
            ),
            Panel(
                "Redis spool (events)",
                "Events held on disk while Redis is unreachable; delivered in order after.",
                [("sum by (sink) (heritage_spool_events)", "{{sink}}")],
            ),
            Panel(
                "Redis spool (bytes)",
                "Disk the spool uses; bounded (256 MiB by default), the oldest dropped beyond.",
                [("sum by (sink) (heritage_spool_bytes)", "{{sink}}")],
                unit="bytes",
            ),
        ],
    ),
    (
        "Jobs",
        [
            Panel(
                "Job throughput",
                "File-analysis jobs finished per minute, by outcome.",
                [(f"sum by (status) (rate(heritage_jobs_total[{RATE}])) * 60", "{{status}}")],
                stack=True,
            ),
            Panel(
                "Jobs waiting and running",
                "File-analysis jobs waiting for a worker, and being run now.",
                [
                    ("max(heritage_job_queue_depth)", "queued"),
                    ("max(heritage_jobs_running)", "running"),
                ],
            ),
            Panel(
                "Job duration",
                "Wall time of one file analysis, from a worker taking the job to its result.",
                [
                    (
                        "histogram_quantile(0.5, sum by (le) "
                        f"(rate(heritage_job_duration_seconds_bucket[{RATE}])))",
                        "p50",
                    ),
                    (
                        "histogram_quantile(0.95, sum by (le) "
                        f"(rate(heritage_job_duration_seconds_bucket[{RATE}])))",
                        "p95",
                    ),
                ],
                unit="s",
            ),
            Panel(
                "Workers",
                "Workers whose heartbeat is in Redis, able to take jobs.",
                [("max(heritage_job_workers)", "workers")],
                width=12,
            ),
            Panel(
                "Database up",
                "1 while the database answers the API.",
                [("heritage_database_up", "{{instance}}")],
                kind="state-timeline",
                width=12,
                extra={"min": 0, "max": 1},
            ),
        ],
    ),
    (
        "HTTP API",
        [
            Panel(
                "HTTP requests",
                "Requests per second, by status.",
                [(f"sum by (status) (rate(heritage_http_requests_total[{RATE}]))", "{{status}}")],
                unit="reqps",
                stack=True,
                width=12,
            ),
            Panel(
                "HTTP latency (p95)",
                "95th percentile of request duration, by route.",
                [(_quantile(0.95, "heritage_http_request_duration_seconds", "route"), "{{route}}")],
                unit="s",
                width=12,
            ),
        ],
    ),
    (
        "Errors",
        [
            Panel(
                "Sink errors and drops",
                "Failed sink deliveries, events dropped from a full queue (a slow dashboard), "
                "spooled events lost (spool full), recorder chunks lost (slow disk).",
                [
                    (
                        f"sum by (sink) (increase(heritage_sink_errors_total[{RATE}]))",
                        "errors {{sink}}",
                    ),
                    (
                        f"sum by (sink) (increase(heritage_sink_dropped_events_total[{RATE}]))",
                        "dropped {{sink}}",
                    ),
                    (
                        f"sum by (sink) (increase(heritage_spool_dropped_events_total[{RATE}]))",
                        "spool lost {{sink}}",
                    ),
                    (
                        f"sum(increase(heritage_recorder_dropped_chunks_total[{RATE}]))",
                        "recorder lost",
                    ),
                ],
            ),
            Panel(
                "Failed jobs and server errors",
                "Jobs that failed, jobs queued again because their worker went away, and HTTP "
                "responses with a 5xx status.",
                [
                    (
                        f'sum(increase(heritage_jobs_total{{status="failed"}}[{RATE}]))',
                        "jobs failed",
                    ),
                    (
                        f"sum(increase(heritage_jobs_requeued_total[{RATE}]))",
                        "jobs requeued",
                    ),
                    (
                        f'sum by (route) (increase(heritage_http_requests_total{{status=~"5.."}}'
                        f"[{RATE}]))",
                        "5xx {{route}}",
                    ),
                ],
            ),
            Panel(
                "Scrape targets down",
                "Services Prometheus cannot scrape (the daemon is down unless its profile runs).",
                [('up{job=~"api|daemon"} == 0', "{{job}} {{instance}}")],
            ),
            Panel(
                "Firing alerts",
                "Alerts of deploy/prometheus/alerts.yml while they fire.",
                [('ALERTS{alertstate="firing"}', "{{alertname}} {{instance}} {{source}}{{sink}}")],
                kind="state-timeline",
                width=24,
            ),
        ],
    ),
]


def _panel(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    defaults: dict[str, Any] = {"unit": panel.unit, **panel.extra}
    custom: dict[str, Any] = {}
    if panel.kind == "timeseries":
        custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
        if panel.stack:
            custom["stacking"] = {"mode": "normal", "group": "A"}
    defaults["custom"] = custom
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [
            {
                "refId": chr(ord("A") + i),
                "datasource": DATASOURCE,
                "expr": expr,
                "legendFormat": legend,
                "range": True,
            }
            for i, (expr, legend) in enumerate(panel.targets)
        ],
    }


def dashboard() -> dict[str, Any]:
    """The dashboard document, laid out row by row on Grafana's 24-column grid."""
    panels: list[dict[str, Any]] = []
    panel_id, y = 1, 0
    for title, row in ROWS:
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id, y, x = panel_id + 1, y + 1, 0
        for panel in row:
            if x + panel.width > 24:
                x, y = 0, y + 8
            panels.append(_panel(panel, panel_id, x, y))
            panel_id, x = panel_id + 1, x + panel.width
        y += 8
    return {
        "uid": "heritage-audio",
        "title": "heritage-audio",
        "description": "Capture, latency, queues, jobs and errors of heritage-audio.",
        "tags": ["heritage-audio"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "source",
                    "label": "source",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {
                        "query": "label_values(heritage_source_up, source)",
                        "refId": "source",
                    },
                    "definition": "label_values(heritage_source_up, source)",
                    "includeAll": True,
                    "multi": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                    "refresh": 2,
                    "sort": 1,
                }
            ]
        },
        "annotations": {"list": []},
        "links": [],
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(render(), encoding="utf-8")
    print(f"wrote {OUT}")
