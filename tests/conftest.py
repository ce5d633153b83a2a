"""Shared fixtures: committed audio with its truth, and helpers to run the pipeline."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from config.pipeline import PipelineConfig
from sinks.metrics import Metrics
from stream.events import Event
from stream.pipeline import SourceRunner
from stream.runtime import Runtime
from stream.sources import FileSource, FileSourceConfig

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent
ARTIFACTS = ROOT / "test-artifacts"
# Debian's Chromium as root, headless, with nothing reaching for the (closed) network.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def truth(name: str) -> dict[str, Any]:
    """The truth JSON committed beside a fixture."""
    data: dict[str, Any] = json.loads((DATA / name).with_suffix(".json").read_text())
    return data


def run_file(
    path: Path, config: PipelineConfig | None = None, block_size: int = 1024
) -> list[Event]:
    """All events the pipeline emits for ``path``, analysed as fast as possible."""
    source = FileSource(FileSourceConfig(path=path, realtime=False, block_size=block_size))
    events: list[Event] = []
    SourceRunner(source, config or PipelineConfig(), events.extend, Metrics()).run(
        threading.Event()
    )
    return events


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def serving(runtime: Runtime, port: int | None = None, **app_options: Any) -> Iterator[str]:
    """The app for ``runtime`` on a real uvicorn server in a thread; yields its base URL."""
    import uvicorn

    from api.app import create_app, uvicorn_config

    port = port or free_port()
    app = create_app(runtime.settings, runtime, **app_options)
    server = uvicorn.Server(
        uvicorn_config(app, "127.0.0.1", port, log_config=None, ws_ping_interval=None)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture(scope="session", autouse=True)
def _data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Application data (SQLite store, uploads, keys) of the whole run in a temporary directory."""

    previous = os.environ.get("HERITAGE_DATA_DIR")
    os.environ["HERITAGE_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    yield
    if previous is None:
        os.environ.pop("HERITAGE_DATA_DIR", None)
    else:
        os.environ["HERITAGE_DATA_DIR"] = previous


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Directory for screenshots and logs kept after the run."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def pulse_server() -> None:
    """A running PulseAudio server (started here if needed; CI runs as root)."""
    if shutil.which("pulseaudio") is None:
        pytest.fail("pulseaudio is not installed: apt install pulseaudio pulseaudio-utils")
    if subprocess.run(["pulseaudio", "--check"], check=False).returncode != 0:
        subprocess.run(
            ["pulseaudio", "-D", "--exit-idle-time=-1", "--disallow-exit", "--log-target=stderr"],
            check=True,
            capture_output=True,
        )
        for _ in range(50):
            if subprocess.run(["pactl", "info"], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.1)


class NullSink:
    """A PulseAudio null sink; capture its ``.monitor`` to hear what is played into it."""

    def __init__(self) -> None:
        self.name = f"ha_test_{uuid.uuid4().hex[:8]}"
        self.module: str | None = None

    @property
    def monitor(self) -> str:
        return f"{self.name}.monitor"

    def load(self) -> None:
        self.module = subprocess.run(
            ["pactl", "load-module", "module-null-sink", f"sink_name={self.name}",
             "rate=48000", "channels=1"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip

    def unload(self) -> None:
        if self.module is not None:
            subprocess.run(["pactl", "unload-module", self.module], check=True)
            self.module = None

    def play(self, path: Path, latency_ms: int = 20) -> None:
        """Play a file into the sink, returning when it has been played."""
        self.start_playing(path, latency_ms).wait(timeout=120)

    def start_playing(self, path: Path, latency_ms: int = 20) -> subprocess.Popen[bytes]:
        """Start playing a file into the sink.

        A short latency makes an idle sink start at once; a longer one rides out scheduling
        hiccups on a busy machine without an underrun.
        """
        return subprocess.Popen(
            ["paplay", f"--latency-msec={latency_ms}", f"--device={self.name}", str(path)]
        )


@pytest.fixture
def null_sink(pulse_server: None) -> Iterator[NullSink]:
    sink = NullSink()
    sink.load()
    yield sink
    sink.unload()


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real Kafka-protocol broker (Tansu, memory storage) on a free port, for the session.

    Never skipped: a missing binary fails the test with how to install it.
    """
    from tests.kafka_broker import Broker

    broker = Broker(tmp_path_factory.mktemp("kafka"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
