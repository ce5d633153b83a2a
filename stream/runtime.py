"""The live runtime: source threads feeding the event bus, and the sinks it feeds.

``start()`` and ``stop()`` are readable lists of steps; ``stop()`` undoes
``start()`` in reverse and drains the sinks within a time limit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily

from config.pipeline import PipelineConfig
from config.private import make_private
from config.settings import Settings
from detectors.onnx import process_network_cpu_s
from sinks.base import pump
from sinks.bus import EventBus
from sinks.hub import LiveState
from sinks.metrics import Metrics
from stream.events import Event
from stream.pipeline import SourceRunner
from stream.recorder import RecordingWriter
from stream.seq_state import SeqCounter, seq_file
from stream.sources import SourceError, build_source

logger = logging.getLogger(__name__)


def analyse_recording(path: Path) -> None:
    """Write the offline analysis of a finished recording beside it (``.json``)."""
    from stream.analyze import analyze_file  # the analysis stack, only when asked for

    try:
        document = analyze_file(path)
    except SourceError as exc:
        logger.error("recorder: cannot analyse %s: %s", path.name, exc)
        return
    path.with_suffix(".json").write_text(json.dumps(document, indent=2), encoding="utf-8")


def _spool_dirs(config: PipelineConfig, settings: Settings) -> list[Path]:
    """The default spool directory and any a sink names (``spool_dir``)."""
    named = [getattr(sink, "spool_dir", None) for sink in config.sinks]
    return [settings.HERITAGE_DATA_DIR / "spool", *(Path(d) for d in named if d)]


class NetworkCpuCollector:
    """``heritage_network_cpu_seconds_total{model}``: CPU seconds of each network's runs in
    this process, read from the sessions' own accounting when scraped."""

    name = "heritage_network_cpu_seconds"
    labels = ("model",)

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            self.name,
            "CPU seconds spent in each network's runs (ONNX model file), all threads.",
            labels=list(self.labels),
        )
        for model, seconds in sorted(process_network_cpu_s().items()):
            family.add_metric([model], seconds)
        yield family


class Runtime:
    """Sources, detectors, bus and sinks of one process."""

    def __init__(
        self, config: PipelineConfig, settings: Settings, metrics: Metrics | None = None
    ) -> None:
        self.config = config
        self.settings = settings
        if metrics is None:
            metrics = Metrics()
            metrics.registry.register(NetworkCpuCollector())
        self.metrics = metrics
        self.bus = EventBus(self.metrics)
        self.live = LiveState(self.bus)
        self.started_at = time.monotonic()
        self.recording = (
            RecordingWriter(
                config.recorder,
                self.metrics.recorder_dropped.inc,
                analyse_recording if config.recorder.analyze else None,
            )
            if config.recorder.enabled
            else None
        )
        self.run_id = str(uuid.uuid4())
        """Stamped on every event of this process: ``(source, run_id, seq)`` is unique."""
        seq_dir = settings.HERITAGE_DATA_DIR / "seq"
        for private in (seq_dir, *_spool_dirs(config, settings)):
            make_private(private)  # what an earlier version left readable to others
        self.runners = [
            SourceRunner(
                source, config, self.emit, self.metrics, self.recording,
                run_id=self.run_id, seq=SeqCounter(seq_file(seq_dir, source.name)),
            )
            for source in map(build_source, config.sources)
        ]  # fmt: skip
        logger.info("run %s", self.run_id)
        # Built here, not in start(): a sink that cannot work is a configuration error
        # raised before anything is served.
        self.sinks = [c.build(settings, self.metrics) for c in config.sinks]
        self._running_sources = 0
        self._sources_ended = asyncio.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sink_tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False

    async def start(self) -> None:
        """Warm the detectors, start sinks (so no event is missed), then the source threads.

        Warming builds every detector and runs it once before any capture stream opens,
        so loading models never stalls the first blocks (the daemon reports READY after).
        """
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._warm)
        for sink in self.sinks:
            await sink.start()
            subscription = self.bus.subscribe(sink.name, self.config.queues.sink_events)
            self._sink_tasks.append(asyncio.create_task(pump(sink, subscription, self.metrics)))
        self._running_sources = len(self.runners)
        if not self.runners:
            self._sources_ended.set()
        for runner in self.runners:
            thread = threading.Thread(
                target=self._run_source,
                args=(runner,),
                name=f"source-{runner.source.name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        logger.info(
            "runtime started: %d source(s), %d sink(s)", len(self.runners), len(self._sink_tasks)
        )

    def _warm(self) -> None:
        started = time.monotonic()
        for runner in self.runners:
            try:
                runner.warm()
            except Exception:  # the runner reports the same failure when audio comes
                logger.exception("source %s: warming the detectors failed", runner.source.name)
        logger.info("detectors warmed in %.1f s", time.monotonic() - started)

    async def wait_finished(self) -> None:
        """Return once every source has ended (never, for live devices or before start)."""
        await self._sources_ended.wait()

    def _run_source(self, runner: SourceRunner) -> None:
        """Thread body: run one source, then tell the loop it has ended."""
        runner.run(self._stop)
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._source_ended)

    def _source_ended(self) -> None:
        self._running_sources -= 1
        if self._running_sources == 0:
            self._sources_ended.set()

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
        if self.recording is not None:
            await asyncio.to_thread(self.recording.close, drain_s)
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
