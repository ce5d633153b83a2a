"""``/health/live`` latency while a login flood makes the API check passwords.

Starts ``heritage-audio api`` (SQLite in a temporary data directory) with one user
and a lockout limit high enough that every login is checked (the worst case:
Argon2 on each request), then:

1. polls ``/health/live`` every 20 ms for ``--seconds`` alone: p50 / p99 / max;
2. the same while ``--threads`` clients log in with the right password in a loop:
   p50 / p99 / max of the probe, logins answered per second, and how many were
   refused with 429 because the hashing pool's queue was full.

``--source DIR`` runs another checkout of the code (e.g. a ``git worktree`` of an
older commit), to measure before and after with the same script.

Usage: python bench/login_flood.py [--threads 16] [--seconds 20] [--source DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from common import free_port, wait_until_serving

PASSWORD = "flood-test-password"  # noqa: S105 - a throwaway benchmark account
PROBE_EVERY_S = 0.02


def _probe(port: int, seconds: float, stop: threading.Event) -> list[float]:
    """Latencies (ms) of /health/live, one request every 20 ms, on a kept-alive connection."""
    latencies: list[float] = []
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        while time.monotonic() < deadline and not stop.is_set():
            started = time.perf_counter()
            http.get("/health/live").raise_for_status()
            latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(PROBE_EVERY_S)
    return latencies


def _flood(port: int, stop: threading.Event, counts: dict[int, int], lock: threading.Lock) -> None:
    body = {"username": "flood", "password": PASSWORD}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        while not stop.is_set():
            code = http.post("/api/v1/auth/login", json=body).status_code
            with lock:
                counts[code] = counts.get(code, 0) + 1


def _summary(name: str, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (
        f"{name}: n={len(ordered)} p50={statistics.median(ordered):.1f} ms "
        f"p99={p99:.1f} ms max={ordered[-1]:.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--source", type=Path, help="run the code of this checkout")
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="login-flood-"))
    port = free_port()
    env = {
        **os.environ,
        "ENVIRONMENT": "testing",
        "SECRET_KEY": "flood-" + "k" * 40,
        "HERITAGE_DATA_DIR": str(data),
        "LOGIN_MAX_ATTEMPTS": "1000",
        "LOG_LEVEL": "WARNING",
    }
    cwd = Path(__file__).resolve().parent.parent
    if args.source is not None:
        env["PYTHONPATH"] = str(args.source.resolve())
        cwd = args.source.resolve()
    cli = [sys.executable, "-m", "stream.cli"]
    subprocess.run([*cli, "db", "upgrade"], env=env, cwd=cwd, check=True, capture_output=True)
    subprocess.run([*cli, "users", "add", "flood", "--role", "viewer"], env=env, cwd=cwd,
                   input=PASSWORD + "\n", text=True, check=True, capture_output=True)  # fmt: skip
    server = subprocess.Popen(
        [*cli, "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until_serving(port, within_s=60)
        print(f"machine: {platform.node()} {os.cpu_count()} CPUs; code: {cwd}")
        stop = threading.Event()
        idle = _probe(port, args.seconds, stop)
        print(_summary("/health/live alone", idle))

        counts: dict[int, int] = {}
        lock = threading.Lock()
        flooders = [
            threading.Thread(target=_flood, args=(port, stop, counts, lock), daemon=True)
            for _ in range(args.threads)
        ]
        for thread in flooders:
            thread.start()
        time.sleep(1.0)  # the flood under way
        with lock:
            counts.clear()
        started = time.monotonic()
        loaded = _probe(port, args.seconds, stop)
        elapsed = time.monotonic() - started
        stop.set()
        for thread in flooders:
            thread.join(30)
        print(_summary(f"/health/live during a {args.threads}-thread login flood", loaded))
        answered = sum(counts.values())
        print(
            f"logins: {answered / elapsed:.1f}/s answered, "
            + ", ".join(f"{code}: {n}" for code, n in sorted(counts.items()))
        )
    finally:
        server.terminate()
        server.wait(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
