"""The pipeline: source blocks -> per-channel resample, windows, detectors -> stamped events.

A :class:`SourceRunner` runs one source in its own thread, so capture, DSP and
the event loop's I/O never block each other. Events are handed to an ``emit``
callback (the bus, through the loop; or a list, for offline analysis).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from prometheus_client import Histogram

from config.pipeline import PipelineConfig
from detectors import AnyDetectorConfig, Detector, build_detector
from detectors.base import ChannelResources
from sinks.metrics import Metrics
from stream.clock import SampleClock
from stream.events import Event, Heartbeat, SourceState, SourceStatus, stamp
from stream.recorder import ChannelRecorder, RecordingWriter
from stream.resample import Resampler
from stream.seq_state import SeqCounter
from stream.sources import Block, Source, SourceError, StatusChange
from stream.sources.base import Frames
from stream.windowing import Samples, Windower

logger = logging.getLogger(__name__)

Emit = Callable[[list[Event]], None]
AnalysisTap = Callable[[int, Samples], None]
"""Sees each channel's analysis-rate samples (channel, samples), in order, as they pass."""
_PROCESS_START = time.monotonic()


def _event_order(event: Event) -> tuple[float, float]:
    return (event.t_end, event.t_start)


def _in_time_order(groups: Sequence[list[Event]]) -> list[Event]:
    """The events of several detectors (or channels) interleaved by time, each group's own
    in the order it emitted them: a detector may revise an event it sent earlier in the
    same block (a speaker turn cut back once the next voice is sure), and the revision
    must stay after what it revises, where a sort by time would put it before."""
    if len(groups) == 1:
        return groups[0]
    return list(heapq.merge(*groups, key=_event_order))


@dataclass(slots=True)
class _Stage:
    """A detector with its own windower and the histogram of its time per window."""

    windower: Windower
    detector: Detector
    timer: Histogram | None
    cpu_s: float = 0.0  # this thread's CPU seconds spent in the detector and its windows

    def run(self, samples: Samples) -> list[Event]:
        # CPU time is read per block, not per window: reading it is a system call, and the
        # VAD has 31 windows an audio second (cutting the windows now counts here too).
        events: list[Event] = []
        cpu = time.thread_time()
        if self.timer is None:
            for window in self.windower.windows(samples):
                events.extend(self.detector.process(window))
        else:
            for window in self.windower.windows(samples):
                started = time.perf_counter()
                events.extend(self.detector.process(window))
                self.timer.observe(time.perf_counter() - started)
        self.cpu_s += time.thread_time() - cpu
        return events


class ChannelChain:
    """Resampler, windowers and detectors of one channel, with its sample position."""

    def __init__(
        self,
        channel: int,
        in_rate: int,
        out_rate: int,
        detectors: Sequence[AnyDetectorConfig],
        *,
        position: int = 0,
        metrics: Metrics | None = None,
        recorder: ChannelRecorder | None = None,
        tap: AnalysisTap | None = None,
        lookahead: int = 0,
    ) -> None:
        self.channel = channel
        # File analysis: samples gathered so that shared resources batch their work over
        # them (ChannelResources.preview) before the detectors see them, block by block as
        # they came (their memory stays that of small blocks); 0 live.
        self._lookahead = lookahead
        # Held samples are copied into one buffer made once: blocks held for seconds and
        # then freed among the detectors' allocations would fragment the C heap.
        self._hold = np.empty(2 * lookahead, np.float32)
        self._held: list[int] = []  # the lengths of the blocks held, in order
        self._held_samples = 0
        self._tap = tap
        self.rate = out_rate
        self.position = position  # analysis samples since stream start
        self._resampler = Resampler(in_rate, out_rate)
        self._recorder = recorder
        self._stages: list[_Stage] = []
        self._resources = resources = ChannelResources()
        for config in detectors:
            detector = build_detector(config, channel, out_rate)
            window, hop = detector.window_samples()
            windower = Windower(window, hop, channel=channel, sample_rate=out_rate)
            windower.reset(position)
            timer = metrics.window_seconds.labels(config.type) if metrics else None
            self._stages.append(_Stage(windower, detector, timer))
        for stage in self._stages:
            stage.detector.attach(resources)  # e.g. one Silero pass for the VAD and speaker gate

    @property
    def t(self) -> float:
        """Stream seconds analysed so far."""
        return self.position / self.rate

    @property
    def detectors(self) -> list[Detector]:
        """This channel's detectors, in config order (file analysis reads what they kept)."""
        return [stage.detector for stage in self._stages]

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds each detector type has spent on this channel so far."""
        spent = dict(self._resources.cpu_s)  # work shared ahead of the windows
        for stage in self._stages:
            name = stage.detector.name
            spent[name] = spent.get(name, 0.0) + stage.cpu_s
        return spent

    def push(self, samples: Samples) -> list[Event]:
        """Analyse the next samples of this channel (at the input rate)."""
        return self._analyse(self._resampler.process(samples))

    def finish(self) -> list[Event]:
        """End of stream: flush the resampler and close every detector's open state."""
        events = self._analyse(self._resampler.process(np.zeros(0, np.float32), last=True))
        return events + self._release() + self._close_detectors()

    def interrupt(self) -> list[Event]:
        """The audio broke off here: close every detector's open state and start afresh."""
        events = self._release() + self._close_detectors()
        for stage in self._stages:
            stage.detector.reset()
        self._resampler.reset()
        return events

    def _close_detectors(self) -> list[Event]:
        events: list[Event] = []
        for stage in self._stages:
            events.extend(stage.detector.finish(self.t))
        if self._recorder is not None:
            self._recorder.push(np.zeros(0, np.float32), self.position, events)
            self._recorder.close()
        return events

    def jump(self, gap_s: float) -> list[Event]:
        """Audio was missing for ``gap_s`` seconds: resume after the gap on the stream clock."""
        events = self.interrupt()
        self.position += round(gap_s * self.rate)
        for stage in self._stages:
            stage.windower.reset(self.position)
        return events

    def _analyse(self, samples: Samples) -> list[Event]:
        if self._tap is not None:
            self._tap(self.channel, samples)
        if not self._lookahead:
            return self._detect(samples)
        n = len(samples)
        events = self._release() if self._held_samples + n > len(self._hold) else []
        if n > len(self._hold):
            return events + self._detect(samples)
        self._hold[self._held_samples : self._held_samples + n] = samples
        self._held.append(n)
        self._held_samples += n
        return events + (self._release() if self._held_samples >= self._lookahead else [])

    def _release(self) -> list[Event]:
        """Preview the held samples as one run, then analyse them block by block."""
        if not self._held_samples:
            return []
        self._resources.preview(self.position, self._hold[: self._held_samples])
        events: list[Event] = []
        offset = 0
        for n in self._held:
            events.extend(self._detect(self._hold[offset : offset + n]))
            offset += n
        self._held, self._held_samples = [], 0
        return events

    def _detect(self, samples: Samples) -> list[Event]:
        start = self.position
        self.position += len(samples)
        events = _in_time_order([stage.run(samples) for stage in self._stages])
        if self._recorder is not None:
            self._recorder.push(samples, start, events)
        return events


class SourceRunner:
    """Runs one source through the detectors; :meth:`run` is a thread body that never raises."""

    def __init__(
        self,
        source: Source,
        config: PipelineConfig,
        emit: Emit,
        metrics: Metrics,
        recording: RecordingWriter | None = None,
        *,
        tap: AnalysisTap | None = None,
        run_id: str | None = None,
        seq: SeqCounter | None = None,
        lookahead_s: float = 0.0,
        window_timing: bool = True,
    ) -> None:
        self.source = source
        self._lookahead_s = lookahead_s
        # The per-window time histogram, for live monitoring; file analysis reads CPU
        # seconds per detector instead, and spares the 5 us a window of observing it.
        self._window_timing = window_timing
        self.run_id = run_id if run_id is not None else str(uuid.uuid4())
        """Stamped on every event: a new UUID per daemon start (shared by its sources)."""
        self._recording = recording
        self._tap = tap
        self.config = config
        self.state: SourceState = "starting"
        self.message = ""
        self.done = threading.Event()
        self._emit = emit
        self._metrics = metrics
        # The per-block series, resolved once: the label never changes.
        name = source.name
        self._frames_total = metrics.frames.labels(name)
        self._block_seconds = metrics.block_seconds.labels(name)
        self._invalid_samples = metrics.invalid_samples.labels(name)
        self._overflows_total = metrics.overflows.labels(name)
        self._dropped_total = metrics.dropped_blocks.labels(name)
        # Anchored by the first event: the source's "running" status, as capture starts.
        self._clock = SampleClock()
        self._chains: list[ChannelChain] = []
        self._seq = seq if seq is not None else SeqCounter()
        self._next_heartbeat = config.heartbeat_s
        self._overflows_seen = 0
        self._dropped_seen = 0
        self._gap_before_start_s = 0.0
        self.last_progress = time.monotonic()
        """When the runner last received or finished an item (monotonic s), for the watchdog."""

    @property
    def t(self) -> float:
        """Stream seconds analysed so far."""
        return self._chains[0].t if self._chains else self._gap_before_start_s

    @property
    def chains(self) -> tuple[ChannelChain, ...]:
        """One chain per channel (none before the first block); read them once ``done`` is set."""
        return tuple(self._chains)

    def status(self) -> dict[str, Any]:
        """The source's state for ``/health``."""
        src = self.source
        return {
            "name": src.name,
            "state": self.state,
            "message": self.message,
            "stream_seconds": round(self.t, 3),
            "channels": len(self._chains),
            "overflows": src.overflows,
            "dropped_blocks": src.dropped_blocks,
        }

    def prepare(self) -> None:
        """Build the detectors now (the source must be open): loading models is then not
        charged to the first block."""
        if not self._chains:
            self._build_chains()

    def warm(self, seconds: float = 2.0) -> None:
        """Build and run every configured detector once on a throwaway channel, without
        opening the source: models load and their first inference happens here, so the
        first captured block does not wait for them (the daemon calls this before READY)."""
        rate = self.config.analysis_sample_rate
        chain = ChannelChain(0, rate, rate, self.config.detectors)
        noise = np.random.default_rng(0).normal(0.0, 0.05, round(seconds * rate))
        chain.push(noise.astype(np.float32))
        chain.finish()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds each detector type has spent, summed over channels."""
        spent: dict[str, float] = {}
        for chain in self._chains:
            for name, seconds in chain.cpu_seconds().items():
                spent[name] = spent.get(name, 0.0) + seconds
        return spent

    def run(self, stop: threading.Event) -> None:
        """Open the source and analyse it until it ends or ``stop`` is set."""
        name = self.source.name
        try:
            self._run(stop)
        except SourceError as exc:
            self._publish([self._status_event(StatusChange("error", str(exc)))])
        except Exception as exc:
            logger.exception("source %s: pipeline failed", name)
            self._publish([self._status_event(StatusChange("error", f"internal error: {exc}"))])
        finally:
            self._seq.close()
            self._metrics.source_up.labels(name).set(0)
            self.done.set()

    def _run(self, stop: threading.Event) -> None:
        source = self.source
        source.open()
        for item in source.items(stop):
            self.last_progress = time.monotonic()
            if isinstance(item, Block):
                events = self._process(item.frames)
            elif isinstance(item, StatusChange):
                events = self._on_status(item)
            else:
                continue  # Idle: the source is alive and waiting
            self._publish(events)
            self.last_progress = time.monotonic()
        closing = _in_time_order([chain.finish() for chain in self._chains])
        reason = "stopped" if stop.is_set() else "end of stream"
        closing.append(self._status_event(StatusChange("ended", reason)))
        self._publish(closing)

    def _build_chains(self) -> None:
        """One chain per channel, once the source knows its rate (a device may open late)."""
        source = self.source
        rate = self.config.analysis_sample_rate
        # Audio lost before the first block still counts on the stream clock.
        start = round(self._gap_before_start_s * rate)
        self._chains = [
            ChannelChain(
                c, source.sample_rate, rate, self.config.detectors, position=start,
                metrics=self._metrics if self._window_timing else None,
                recorder=self._recorder_for(c), tap=self._tap,
                lookahead=round(self._lookahead_s * rate),
            )
            for c in range(source.channels)
        ]  # fmt: skip
        logger.info(
            "source %s: %d Hz x %d channels -> %d Hz",
            source.name,
            source.sample_rate,
            source.channels,
            rate,
        )

    def _recorder_for(self, channel: int) -> ChannelRecorder | None:
        if self._recording is None:
            return None
        return ChannelRecorder(
            self._recording, source=self.source.name, channel=channel,
            rate=self.config.analysis_sample_rate, wall_time=self._clock.wall_time,
        )  # fmt: skip

    def _process(self, frames: Frames) -> list[Event]:
        started = time.perf_counter()
        if not self._chains:
            self._build_chains()
        if not np.isfinite(frames).all():
            self._invalid_samples.inc(int(np.count_nonzero(~np.isfinite(frames))))
            frames = np.nan_to_num(frames, nan=0.0, posinf=0.0, neginf=0.0)
        events = _in_time_order([chain.push(frames[:, chain.channel]) for chain in self._chains])
        events.extend(self._heartbeats())
        self._frames_total.inc(len(frames))
        self._sync_loss_counters()
        self._block_seconds.observe(time.perf_counter() - started)
        return events

    def _sync_loss_counters(self) -> None:
        """Carry the source's own loss counters into the metrics."""
        src = self.source
        if src.overflows != self._overflows_seen:
            self._overflows_total.inc(src.overflows - self._overflows_seen)
            self._overflows_seen = src.overflows
        if src.dropped_blocks != self._dropped_seen:
            self._dropped_total.inc(src.dropped_blocks - self._dropped_seen)
            self._dropped_seen = src.dropped_blocks

    def _heartbeats(self) -> list[Event]:
        """Heartbeats at exact multiples of ``heartbeat_s`` stream seconds."""
        events: list[Event] = []
        while self.t >= self._next_heartbeat:
            t = self._next_heartbeat
            self._next_heartbeat += self.config.heartbeat_s
            uptime = time.monotonic() - _PROCESS_START
            events.append(Heartbeat(channel=None, t_start=t, t_end=t, uptime_s=uptime))
        return events

    def _on_status(self, change: StatusChange) -> list[Event]:
        events: list[Event] = []
        if change.state == "lost":
            for chain in self._chains:
                events.extend(chain.interrupt())
        elif change.state == "recovered":
            if not self._chains:
                self._gap_before_start_s += change.gap_s
            for chain in self._chains:
                events.extend(chain.jump(change.gap_s))
        events.append(self._status_event(change))
        return events

    def _status_event(self, change: StatusChange) -> SourceStatus:
        self.state = change.state
        self.message = change.message
        up = change.state in ("running", "recovered", "overrun")
        self._metrics.source_up.labels(self.source.name).set(int(up))
        log = {"error": logger.error, "lost": logger.warning, "overrun": logger.warning}.get(
            change.state, logger.info
        )
        log("source %s: %s %s", self.source.name, change.state, change.message)
        return SourceStatus(
            channel=None,
            t_start=self.t,
            t_end=self.t,
            state=change.state,
            message=change.message,
            overflows=self.source.overflows,
        )

    def _publish(self, events: list[Event]) -> None:
        if not events:
            return
        stamped: list[Event] = []
        first = self._seq.take(len(events))  # persisted before any of them leaves
        for seq, event in enumerate(events, start=first):
            stamped.append(
                stamp(
                    event,
                    installation_id=self.config.installation_id,
                    source=self.source.name,
                    run_id=self.run_id,
                    seq=seq,
                    wall_time=self._clock.wall_time(event.t_start),
                )
            )
        self._emit(stamped)
