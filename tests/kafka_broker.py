"""A real Kafka-protocol broker for the tests: Tansu 0.6 from .tools/bin (tools/install-tools.sh).

Tansu keeps everything in memory, so a restart starts empty: tests that kill and
restart it recreate their topics and read what each life of the broker received.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

ROOT = Path(__file__).parent.parent
TANSU = ROOT / ".tools" / "bin" / "tansu"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Broker:
    """One Tansu process on a fixed port that a test may kill and start again."""

    def __init__(self, log_dir: Path) -> None:
        if not os.access(TANSU, os.X_OK):
            raise RuntimeError(
                f"{TANSU} is missing: run `bash tools/install-tools.sh` (make test does)"
            )
        self.port = _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._log = log_dir / f"tansu-{self.port}.log"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the broker and wait until it accepts connections."""
        url = f"tcp://{self.bootstrap}"
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [str(TANSU), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"tansu exited: {self._log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("tansu did not listen within 20 s")

    def kill(self) -> None:
        """SIGKILL the broker: what it held is gone, clients see connections drop."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait(10)
        self._process = None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._process = None

    def create_topics(self, names: list[str], partitions: int = 4) -> None:
        """Create ``names`` (existing ones are left as they are)."""
        asyncio.run(create_topics(self.bootstrap, names, partitions))


async def create_topics(bootstrap: str, names: list[str], partitions: int = 4) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for name in names:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()
