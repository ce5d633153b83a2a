"""WebSocket fan-out: N clients, R events/s, delivery latency from creation to receipt.

The server (this script with --serve, in its own process) runs the real app with
no sources and publishes ``level`` events at R per second, each stamped with its
creation time in ``wall_time``. This process connects N real WebSocket clients
and records, for every message, receipt time minus creation time (one machine,
one clock). Target (DESIGN.md): 500 clients at 50 events/s, p99 <= 50 ms.

Usage: python bench/ws_fanout.py [--clients 500] [--rate 50] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import re
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import numpy as np
import uvicorn
from common import free_port, wait_until_serving
from websockets.asyncio.client import connect

from api.app import create_app
from config.pipeline import PipelineConfig
from config.settings import Settings
from stream.events import Level, stamp
from stream.runtime import Runtime

WALL_TIME = re.compile(r'"wall_time":"([^"]+)"')


async def serve(port: int, rate: float) -> None:
    """The app, with a publisher task standing in for the detectors."""
    runtime = Runtime(PipelineConfig(sources=[]), Settings())
    server = uvicorn.Server(
        uvicorn.Config(create_app(Settings(), runtime), host="127.0.0.1", port=port,
                       log_level="warning", ws_ping_interval=None)
    )  # fmt: skip

    async def publish() -> None:
        seq = 0
        started = time.monotonic()
        while True:
            seq += 1
            event = Level(channel=0, t_start=seq / rate, t_end=(seq + 1) / rate,
                          rms_dbfs=-30.0, peak_dbfs=-20.0, clipped=0.0)  # fmt: skip
            runtime.bus.publish([stamp(event, installation_id="bench", source="bench",
                                       seq=seq, wall_time=datetime.now(UTC))])  # fmt: skip
            await asyncio.sleep(max(0.0, started + seq / rate - time.monotonic()))

    publisher = asyncio.create_task(publish())
    try:
        await server.serve()
    finally:
        publisher.cancel()


async def measure(port: int, clients: int, seconds: float) -> tuple[list[float], int]:
    """Latencies (ms) over all clients after all are connected; and the messages counted."""
    url = f"ws://127.0.0.1:{port}/ws/events"
    sockets = [await connect(url, max_queue=None) for _ in range(clients)]
    latencies: list[float] = []
    recording = asyncio.Event()

    async def read(ws: object) -> None:
        async for message in ws:  # type: ignore[attr-defined]
            now = datetime.now(UTC)
            if recording.is_set():
                created = datetime.fromisoformat(WALL_TIME.search(message).group(1))  # type: ignore[union-attr]
                latencies.append((now - created).total_seconds() * 1000)

    readers = [asyncio.create_task(read(ws)) for ws in sockets]
    await asyncio.sleep(2.0)  # let snapshots and connection bursts settle
    recording.set()
    await asyncio.sleep(seconds)
    recording.clear()
    for ws in sockets:
        await ws.close()
    for task in readers:
        task.cancel()
    return latencies, len(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve, args.rate))
        return

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), "--rate", str(args.rate)]
    )
    try:
        wait_until_serving(port)
        latencies, count = asyncio.run(measure(port, args.clients, args.seconds))
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    finally:
        server.terminate()
        server.wait(10)
    dropped = re.search(r'heritage_sink_dropped_events_total\{sink="websocket"\} (\S+)', metrics)
    expected = args.clients * args.rate * args.seconds
    lat = np.array(latencies)
    print(f"ws_fanout  {datetime.now(UTC):%Y-%m-%d %H:%M} UTC  {platform.node()}")
    print(
        f"{args.clients} clients x {args.rate:g} events/s for {args.seconds:g} s: "
        f"{count} messages received of ~{expected:.0f} sent; dropped by the hub: "
        f"{dropped.group(1) if dropped else 0}"
    )
    print(
        f"delivery latency ms: p50 {np.median(lat):.1f}  p95 {np.quantile(lat, 0.95):.1f}  "
        f"p99 {np.quantile(lat, 0.99):.1f}  max {lat.max():.1f}   (target p99 <= 50)"
    )


if __name__ == "__main__":
    main()
