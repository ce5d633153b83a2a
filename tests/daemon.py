"""Run ``heritage-audio daemon`` as a subprocess and read its events from stdout, or its
runtime in this process for a while (:func:`run_runtime`)."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

Event = dict[str, Any]


class DaemonProcess:
    """The capture daemon with a JSON-lines sink on stdout, read by a background thread."""

    def __init__(self, config: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.events: list[Event] = []
        self._queue: queue.Queue[Event] = queue.Queue()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "daemon", "--config", str(config), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.stderr_lines: deque[str] = deque(maxlen=200)
        self._readers = [
            threading.Thread(target=self._read_events, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read_events(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(json.loads(line))

    def _read_stderr(self) -> None:
        # Drained continuously: a full pipe would block the daemon's logging.
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def wait_for(self, predicate: Callable[[Event], bool], timeout: float) -> Event:
        """The first new event matching ``predicate``; fails after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self._queue.get(timeout=left)
            except queue.Empty:
                break
            self.events.append(event)
            if predicate(event):
                return event
        raise AssertionError(
            f"no matching event within {timeout} s; got {[e['type'] for e in self.events][-20:]}"
            f"\nstderr: {''.join(self.stderr_lines)}"
        )

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, and the exit code once it has drained."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(5)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        while not self._queue.empty():
            self.events.append(self._queue.get_nowait())
        return code


def run_runtime(config: Any, seconds: float) -> Any:
    """Start a :class:`stream.runtime.Runtime` on ``config`` (a ``PipelineConfig``) in this
    process, let it run ``seconds``, stop it and return it (its metrics hold the run)."""
    import asyncio

    from config.settings import Settings
    from stream.runtime import Runtime

    async def run() -> Runtime:
        runtime = Runtime(config, Settings())
        await runtime.start()
        await asyncio.sleep(seconds)
        await runtime.stop()
        return runtime

    return asyncio.run(run())
