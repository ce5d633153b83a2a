"""Helpers shared by the benchmarks that run a server process."""

from __future__ import annotations

import socket
import time

import httpx


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until_serving(port: int, within_s: float = 10.0) -> None:
    """Return once ``/health`` answers on ``port``; ``RuntimeError`` after ``within_s``."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"no server answered on port {port} within {within_s:g} s")
