"""systemd integration: READY, watchdog pings from a healthy pipeline only, graceful stop.

The test plays systemd: it binds the datagram socket named by NOTIFY_SOCKET and
reads what the daemon sends.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from config.pipeline import PipelineConfig
from sinks.metrics import Metrics
from stream.pipeline import SourceRunner
from stream.sources import Block, Source, SourceItem
from stream.systemd import Watchdog
from tests.conftest import DATA

PING_USEC = 400_000  # WatchdogSec=0.4 s: a ping every 0.2 s


class NotifySocket:
    """What systemd listens on; collects the daemon's messages."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[tuple[float, str]] = []

    def read(self, seconds: float) -> list[str]:
        """Messages arriving within ``seconds``."""
        got: list[str] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.sock], [], [], left)
            if ready:
                got.append(self.sock.recv(4096).decode())
        return got

    def wait_for(self, prefix: str, seconds: float) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for message in self.read(0.1):
                if message.startswith(prefix):
                    return message
        raise AssertionError(f"no {prefix!r} from the daemon within {seconds} s")


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.sock.close()


def _daemon(config: Path, notify: NotifySocket) -> subprocess.Popen[bytes]:
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": str(PING_USEC)}
    return subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "daemon", "--config", str(config)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_ready_then_pings_then_a_graceful_stop(tmp_path: Path, notify_socket: NotifySocket) -> None:
    config = tmp_path / "daemon.toml"
    events = tmp_path / "events.jsonl"
    config.write_text(
        f'[[sources]]\ntype = "file"\npath = "{DATA / "vad_clean.flac"}"\nloop = true\n'
        f'[[sinks]]\ntype = "jsonl"\npath = "{events}"\n'
    )
    daemon = _daemon(config, notify_socket)
    try:
        ready = notify_socket.wait_for("READY=1", 15)
        assert "STATUS=file: running" in ready
        pings = [m for m in notify_socket.read(1.5) if m == "WATCHDOG=1"]
        assert len(pings) >= 5, pings
        started = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert notify_socket.wait_for("STOPPING=1", 5)
        assert daemon.wait(15) == 0
        assert time.monotonic() - started < 10, "drained well within TimeoutStopSec"
    finally:
        daemon.kill()
        daemon.wait()
        assert daemon.stderr is not None
        daemon.stderr.close()
    # Drained: every event reached the sink, gapless, open speech closed, the end reported.
    delivered = [json.loads(line) for line in events.read_text().splitlines()]
    assert [e["seq"] for e in delivered] == list(range(1, len(delivered) + 1))
    types = [e["type"] for e in delivered]
    assert types.count("speech.started") == types.count("speech.ended")
    assert delivered[-1]["type"] == "source.status"
    assert delivered[-1]["state"] == "ended"


def test_no_pings_while_the_event_loop_is_blocked_and_pings_again_after(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    # Events flood a JSON-lines sink writing to a pipe. While the test reads the pipe, all is
    # well; when it stops reading, the pipe fills, the sink's write blocks the event loop,
    # and the pings must stop until the pipe is read again.
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    draining = threading.Event()
    draining.set()
    finished = threading.Event()

    def drain() -> None:
        while not finished.is_set():
            if draining.is_set() and select.select([reader], [], [], 0.05)[0]:
                os.read(reader, 1 << 16)
            else:
                time.sleep(0.01)

    config = tmp_path / "flood.toml"
    config.write_text(
        f'[[sources]]\ntype = "file"\npath = "{DATA / "vad_clean.flac"}"\n'
        "realtime = false\nloop = true\n"
        f'[[sinks]]\ntype = "jsonl"\npath = "{fifo}"\n'
        # A fast flood: only the level meter, at its highest rate.
        '[[detectors]]\ntype = "level"\nrate_hz = 100\n'
    )
    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    daemon = _daemon(config, notify_socket)
    try:
        notify_socket.wait_for("READY=1", 15)
        assert notify_socket.read(1.5).count("WATCHDOG=1") >= 3, "healthy: pings"
        draining.clear()
        notify_socket.read(1.0)  # the pipe fills within milliseconds; pings before that go
        assert notify_socket.read(1.5).count("WATCHDOG=1") == 0, "blocked: no pings"
        assert daemon.poll() is None
        draining.set()
        assert notify_socket.read(1.5).count("WATCHDOG=1") >= 2, "unblocked: pings again"
    finally:
        daemon.kill()
        daemon.wait()
        finished.set()
        thread.join(5)
        os.close(reader)
        assert daemon.stderr is not None
        daemon.stderr.close()


class HangingSource(Source):
    """Delivers one block, then hangs as a stuck driver or a stuck detector would."""

    def __init__(self) -> None:
        super().__init__("stuck")
        self.release = threading.Event()

    @property
    def sample_rate(self) -> int:
        return 16000

    @property
    def channels(self) -> int:
        return 1

    def open(self) -> None:
        pass

    def items(self, stop: threading.Event) -> Iterator[SourceItem]:
        yield Block(np.zeros((1600, 1), np.float32))
        self.release.wait()  # stuck, ignoring stop, until the test lets go


def test_a_pipeline_thread_without_progress_is_reported_as_stalled() -> None:
    source = HangingSource()
    runner = SourceRunner(source, PipelineConfig(sources=[]), lambda events: None, Metrics())
    thread = threading.Thread(target=runner.run, args=(threading.Event(),), daemon=True)
    thread.start()
    watchdog = Watchdog([runner], stall_s=0.3)
    try:
        assert watchdog.stalled() is None
        time.sleep(0.5)
        problem = watchdog.stalled()
        assert problem is not None
        assert problem.startswith("source stuck: no progress for")
    finally:
        source.release.set()
        thread.join(5)
    assert watchdog.stalled() is None, "a runner that has ended is not stalled"
