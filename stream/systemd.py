"""systemd integration for the capture daemon: readiness, status and a watchdog.

The notify protocol is one datagram to ``$NOTIFY_SOCKET``; it is written here
rather than taken from a package because the packages for it are unmaintained
and the protocol is a few lines. Watchdog pings are sent from the event loop,
and only while every source runner makes progress: a hung detector, a stuck
source thread or a blocked event loop all stop the pings, and systemd restarts
the service (``WatchdogSec``, ``Restart=on-failure``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Sequence

from stream.pipeline import SourceRunner

logger = logging.getLogger(__name__)


def notify(message: str) -> bool:
    """Send ``message`` (e.g. ``"READY=1"``) to systemd; False when not run by systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # abstract namespace
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        logger.warning("systemd notify failed (%s): %s", message.split("=", maxsplit=1)[0], exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Seconds between pings (half of systemd's ``WatchdogSec``); None if no watchdog is set."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2e6


class Watchdog:
    """Pings systemd while the pipeline makes progress; withholds pings once it does not."""

    def __init__(self, runners: Sequence[SourceRunner], stall_s: float) -> None:
        self.runners = runners
        self.stall_s = stall_s
        self._reported: str | None = None

    def stalled(self) -> str | None:
        """The first runner that has made no progress for ``stall_s``, described; else None."""
        now = time.monotonic()
        for runner in self.runners:
            idle = now - runner.last_progress
            if not runner.done.is_set() and idle > self.stall_s:
                return f"source {runner.source.name}: no progress for {idle:.0f} s"
        return None

    async def run(self, interval: float) -> None:
        """Ping every ``interval`` seconds while healthy (a task; cancel it to stop)."""
        while True:
            await asyncio.sleep(interval)
            problem = self.stalled()
            if problem is None:
                notify("WATCHDOG=1")
                self._reported = None
            elif problem != self._reported:
                self._reported = problem
                logger.error("pipeline stalled (%s); withholding the watchdog ping", problem)
                notify(f"STATUS=stalled: {problem}")

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Until every source has left ``starting`` (capture runs, or is being retried)."""
        deadline = time.monotonic() + timeout_s
        # Source threads set the state; polling it for the start-up only is simpler than a
        # cross-thread event.
        while any(r.state == "starting" for r in self.runners) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


def describe(runners: Sequence[SourceRunner]) -> str:
    """A one-line status for ``systemctl status``."""
    return ", ".join(f"{r.source.name}: {r.state}" for r in runners) or "no sources"
