"""``heritage-audio run --demo`` as a subprocess, for the archive application's tests."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from tests.service import Client, add_users, env_of, settings_for

BIN = Path(sys.executable).parent


class Server:
    """``heritage-audio run --demo`` as a subprocess on a free port."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = settings_for("sqlite", data_dir)
        add_users(self.settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (data_dir / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [str(BIN / "heritage-audio"), "run", "--demo", "--host", "127.0.0.1",
             "--port", str(self.port)],
            env=env_of(self.settings), stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code in (200, 503):
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"heritage-audio run did not start: {self.log.name}")
            time.sleep(0.2)
        self.api = Client(httpx.Client(base_url=self.url, timeout=30), self.settings)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()
