"""The live runtime: source threads feeding the event bus, and the sinks it feeds.

``start()`` and ``stop()`` are readable lists of steps; ``stop()`` undoes
``start()`` in reverse and drains the sinks within a time limit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from config.pipeline import PipelineConfig
from config.settings import Settings
from sinks.base import pump
from sinks.bus import EventBus
from sinks.hub import LiveState
from sinks.metrics import Metrics
from stream.events import Event
from stream.pipeline import SourceRunner
from stream.sources import build_source

logger = logging.getLogger(__name__)


class Runtime:
    """Sources, detectors, bus and sinks of one process."""

    def __init__(
        self, config: PipelineConfig, settings: Settings, metrics: Metrics | None = None
    ) -> None:
        self.config = config
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.bus = EventBus(self.metrics)
        self.live = LiveState(self.bus)
        self.started_at = time.monotonic()
        self.runners = [
            SourceRunner(build_source(c), config, self.emit, self.metrics) for c in config.sources
        ]
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sink_tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    async def start(self) -> None:
        """Start sinks first (so no event is missed), then the source threads."""
        self._loop = asyncio.get_running_loop()
        for sink_config in self.config.sinks:
            sink = sink_config.build(self.settings, self.metrics)
            subscription = self.bus.subscribe(sink.name, self.config.queues.sink_events)
            self._sink_tasks.append(asyncio.create_task(pump(sink, subscription, self.metrics)))
        for runner in self.runners:
            thread = threading.Thread(
                target=runner.run,
                args=(self._stop,),
                name=f"source-{runner.source.name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        logger.info(
            "runtime started: %d source(s), %d sink(s)", len(self.runners), len(self._sink_tasks)
        )

    async def wait_finished(self) -> None:
        """Return once every source has ended (never, for live devices)."""
        await asyncio.gather(*(asyncio.to_thread(r.done.wait) for r in self.runners))

    async def stop(self, drain_s: float = 5.0) -> None:
        """Stop sources, deliver what they emitted, drain sinks; idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        for thread in self._threads:
            await asyncio.to_thread(thread.join, drain_s)
            if thread.is_alive():
                logger.error("source thread %s did not stop within %.0f s", thread.name, drain_s)
        await asyncio.sleep(0)  # run event deliveries the threads scheduled last
        self.bus.close()
        if self._sink_tasks:
            _, pending = await asyncio.wait(self._sink_tasks, timeout=drain_s)
            for task in pending:
                task.cancel()
            if pending:
                logger.error("%d sink(s) did not drain within %.0f s", len(pending), drain_s)
        logger.info(
            "runtime stopped: %s",
            ", ".join(
                f"{r.source.name} {r.t:.1f} s analysed, {r.source.overflows} overflows"
                for r in self.runners
            ),
        )

    def emit(self, events: list[Event]) -> None:
        """Hand events to the bus on the event loop; safe from any thread (source threads)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.bus.publish, events)

    def sources_status(self) -> list[dict[str, Any]]:
        """Each source's state, for ``/health``."""
        return [runner.status() for runner in self.runners]
