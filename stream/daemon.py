"""The capture daemon's service loop: start, tell systemd, run until done or told to stop.

Stopping on SIGTERM or SIGINT: intake stops, the sources close their open
segments, sinks drain within ``drain_s`` (the Redis spool keeps the rest), and
the process exits 0. systemd's ``TimeoutStopSec`` must exceed the drain.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from config.pipeline import PipelineConfig
from config.private import restrict_umask
from config.settings import Settings
from stream.runtime import Runtime
from stream.systemd import Watchdog, describe, notify, watchdog_interval

logger = logging.getLogger(__name__)

DRAIN_S = 10.0
"""Longest graceful drain; systemd/heritage-audio-daemon.service waits 30 s."""


async def run_daemon(settings: Settings, config: PipelineConfig) -> int:
    """Run the capture pipeline until its sources end or a signal arrives; the exit code."""
    restrict_umask()  # spool segments, seq counters, recordings: this user's alone
    runtime = Runtime(config, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    await runtime.start()
    metrics_server = None
    if settings.METRICS_PORT:
        # No HTTP API here: Prometheus scrapes this port (docker-compose.yml, the daemon job).
        from prometheus_client import start_http_server

        metrics_server, _ = start_http_server(
            settings.METRICS_PORT, addr=settings.bind_host, registry=runtime.metrics.registry
        )
    watchdog = Watchdog(runtime.runners, config.stall_s)
    await watchdog.wait_ready()
    notify(f"READY=1\nSTATUS={describe(runtime.runners)}")
    interval = watchdog_interval()
    pinger = asyncio.create_task(watchdog.run(interval)) if interval else None

    finished = asyncio.create_task(runtime.wait_finished())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({finished, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if stop.is_set():
        logger.info("signal received; draining for at most %.0f s", DRAIN_S)
    notify("STOPPING=1")
    await runtime.stop(DRAIN_S)
    if metrics_server is not None:
        metrics_server.shutdown()
    for task in (pinger, finished, stopping):
        if task is not None:
            task.cancel()
    return 1 if any(r.state == "error" for r in runtime.runners) else 0
