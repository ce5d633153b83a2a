"""File-analysis service under load: concurrent uploads, job throughput, /health latency.

Runs the real deployment shape on this machine: ``heritage-audio api`` and
``heritage-audio worker`` processes, PostgreSQL (a fresh database, dropped at the
end) and Redis (Celery). Three phases:

1. N concurrent uploads of distinct M MB WAV files while no worker runs: wall time,
   MB/s, and the API process's peak RSS (uploads stream to disk, so memory must not
   grow with N x M).
2. The queued jobs drained by 1 worker, then (a second batch) by 2 workers: jobs/min.
3. Throughout, ``/health`` is polled every 100 ms: p50 / p99 latency under load.

Usage: python bench/api_load.py [--uploads 50] [--mb 10] [--jobs 8] [--type quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import psutil
import soundfile as sf
from common import free_port, wait_until_serving

BIN = Path(sys.executable).parent
PASSWORD = "load-test-password"  # noqa: S105 - a throwaway benchmark account


def _psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qc", sql],
                   check=True, capture_output=True)  # fmt: skip


def _make_files(
    directory: Path, count: int, megabytes: float, seconds_of_speech: Path
) -> list[Path]:
    """Distinct WAVs (so none is deduplicated): speech over a little per-file noise."""
    speech, rate = sf.read(seconds_of_speech, dtype="float32")
    frames = int(megabytes * 1024 * 1024 / 2)
    base = np.tile(speech, frames // len(speech) + 1)[:frames]
    paths = []
    for i in range(count):
        noise = np.random.default_rng(i).normal(0, 0.003, frames).astype(np.float32)
        path = directory / f"load-{i:03d}.wav"
        sf.write(path, base + noise, rate, subtype="PCM_16")
        paths.append(path)
    return paths


class HealthProbe:
    """Polls /health every 100 ms and keeps the latencies."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.latencies: list[float] = []
        self.failures = 0

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            try:
                response = await self.client.get("/health", timeout=10)
                if response.status_code != 200:
                    self.failures += 1
            except httpx.HTTPError:
                self.failures += 1
            self.latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.1)


async def _upload_all(client: httpx.AsyncClient, token: str, paths: list[Path], kind: str,
                      api_pid: int) -> tuple[list[str], float, float]:  # fmt: skip
    process = psutil.Process(api_pid)
    peak = process.memory_info().rss
    done = asyncio.Event()

    async def watch_memory() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.05)

    async def upload(path: Path) -> str:
        with path.open("rb") as f:
            response = await client.post(
                "/api/v1/process", headers={"Authorization": f"Bearer {token}"},
                files={"audio_file": (path.name, f, "audio/wav")},
                data={"processing_type": kind}, timeout=600,
            )  # fmt: skip
        response.raise_for_status()
        task_id: str = response.json()["task_id"]
        return task_id

    watcher = asyncio.create_task(watch_memory())
    started = time.perf_counter()
    ids = await asyncio.gather(*(upload(p) for p in paths))
    elapsed = time.perf_counter() - started
    done.set()
    await watcher
    return list(ids), elapsed, peak / 2**20


async def _drain(client: httpx.AsyncClient, token: str, ids: list[str]) -> float:
    started = time.perf_counter()
    pending = set(ids)
    while pending:
        for task_id in list(pending):
            r = await client.get(f"/api/v1/status/{task_id}",
                                 headers={"Authorization": f"Bearer {token}"})  # fmt: skip
            if r.json()["status"] in ("completed", "failed"):
                if r.json()["status"] == "failed":
                    raise RuntimeError(f"job {task_id} failed: {r.json()['error']}")
                pending.discard(task_id)
        await asyncio.sleep(0.5)
    return time.perf_counter() - started


def _start_workers(count: int, env: dict[str, str], log: Path) -> list[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        return [
            subprocess.Popen(
                [str(BIN / "heritage-audio"), "worker", "--name", f"bench{i}@load"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for i in range(count)
        ]


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for p in processes:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in processes:
        p.wait(120)


async def _wait_workers(client: httpx.AsyncClient, count: int) -> None:
    for _ in range(600):
        if ((await client.get("/health")).json()["jobs"]["workers"] or 0) >= count:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError("workers did not come up")


def _environment(work: Path, database: str, args: argparse.Namespace) -> dict[str, str]:
    return {
        **os.environ, "HERITAGE_DATA_DIR": str(work / "data"), "DB_HOST": "127.0.0.1",
        "DB_USER": "postgres", "DB_NAME": database, "REDIS_HOST": "127.0.0.1",
        "MAXXI_OUTPUT_DIR": str(work / "maxxi"), "LOG_LEVEL": "WARNING",
        "MAX_UPLOAD_MB": str(int(args.mb * 2)), "SECRET_KEY": "bench-" + "k" * 40,
    }  # fmt: skip


async def measure(args: argparse.Namespace, port: int, api_pid: int, paths: list[Path], *,
                  env: dict[str, str], log: Path) -> None:  # fmt: skip
    workers: list[subprocess.Popen[bytes]] = []
    limits = httpx.Limits(max_connections=args.uploads + 10)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits) as client:
        login = await client.post("/api/v1/auth/login",
                                  json={"username": "bench", "password": PASSWORD})  # fmt: skip
        token = login.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        idle_rss = psutil.Process(api_pid).memory_info().rss / 2**20
        probe = HealthProbe(client)
        prober = asyncio.create_task(probe.run())

        uploads = paths[: args.uploads]
        ids, elapsed, peak = await _upload_all(client, token, uploads, "quick", api_pid)
        upload_lat = list(probe.latencies)
        print(f"uploads: {args.uploads} x {args.mb:g} MB concurrently in {elapsed:.1f} s "
              f"({args.uploads * args.mb / elapsed:.1f} MB/s); API RSS {idle_rss:.0f} MB idle, "
              f"{peak:.0f} MB peak (+{peak - idle_rss:.0f} MB)")  # fmt: skip
        for task_id in ids:  # throughput is timed on fresh batches of the chosen type
            await client.delete(f"/api/v1/tasks/{task_id}", headers=auth)

        timed = paths[args.uploads :]
        batches = [timed[: args.jobs // 2], timed[args.jobs // 2 :]]
        try:
            for n_workers, batch in zip((1, 2), batches, strict=True):
                batch_ids, _, _ = await _upload_all(client, token, batch, args.type, api_pid)
                workers = _start_workers(n_workers, env, log)
                await _wait_workers(client, n_workers)
                seconds = await _drain(client, token, batch_ids)
                audio_min = len(batch) * args.mb * 1024 * 1024 / 2 / 16000 / 60
                print(f"{n_workers} worker(s): {len(batch)} {args.type} jobs "
                      f"({audio_min:.0f} min of audio) in {seconds:.1f} s = "
                      f"{len(batch) / seconds * 60:.1f} jobs/min")  # fmt: skip
                _stop(workers)
                workers = []
        finally:
            _stop(workers)
        prober.cancel()
        lat = np.array(probe.latencies) * 1000
        up = np.array(upload_lat) * 1000
        print(f"/health under load: {len(lat)} probes, p50 {np.percentile(lat, 50):.1f} ms, "
              f"p99 {np.percentile(lat, 99):.1f} ms (during the uploads: p99 "
              f"{np.percentile(up, 99):.1f} ms), {probe.failures} non-200")  # fmt: skip


def main(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="heritage-load-"))
    database = f"heritage_bench_{uuid.uuid4().hex[:8]}"
    _psql(f'CREATE DATABASE "{database}"')
    env = _environment(work, database, args)
    cli = str(BIN / "heritage-audio")
    subprocess.run([cli, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run([cli, "users", "add", "bench", "--role", "admin"], env=env, check=True,
                   input=PASSWORD.encode(), capture_output=True)  # fmt: skip
    fixture = Path(__file__).parent.parent / "tests" / "data" / "vad_clean.flac"
    total = args.uploads + args.jobs
    print(f"making {total} distinct {args.mb:g} MB WAV files ...", flush=True)
    paths = _make_files(work, total, args.mb, fixture)
    log = work / "server.log"
    port = free_port()
    with log.open("ab") as out:
        api = subprocess.Popen([cli, "api", "--host", "127.0.0.1", "--port", str(port)],
                               env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_until_serving(port, 120)
        asyncio.run(measure(args, port, api.pid, paths, env=env, log=log))
    finally:
        api.send_signal(signal.SIGTERM)
        api.wait(60)
        _psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    print(
        f"{time.strftime('%Y-%m-%d')} on {platform.node()} ({os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}); logs in {log}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--mb", type=float, default=10.0)
    parser.add_argument("--jobs", type=int, default=8, help="jobs timed, half per worker count")
    parser.add_argument("--type", default="comprehensive", help="processing type of timed jobs")
    main(parser.parse_args())
