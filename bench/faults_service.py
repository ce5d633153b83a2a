"""Fault cases of the file-analysis service: the API, its database, its workers, its disk.

Each case runs ``heritage-audio api`` (and ``worker``) as real processes with a data
directory, a database and, where used, a redis-server of its own, uploads real audio
while something breaks, restores it and counts (columns as in bench/faults.py):

produced    uploads attempted (or jobs submitted)
delivered   uploads answered 202 whose job completed
lost        uploads answered 202 whose job neither completed nor failed with a reason
duplicated  result rows beyond one per task, plus task rows for uploads that were refused
reconnect   seconds from the fault's end to the first request served again
recovery    seconds from the fault's end until every accepted job is finished
statuses    HTTP status codes seen (``conn`` for a refused or dropped connection)

and whether anything was left in ``uploads/``: half-received files and stored files no
task names.

Cases: postgres-stopped (a private PostgreSQL, ``pg_ctl stop -m fast`` for --pg-down-s),
postgres-hung (its every process SIGSTOPped for --pg-down-s), worker-killed (a Celery
worker SIGKILLed mid-job, a second one started), api-killed (the API SIGKILLed while
an upload is half received, then restarted), uploads-disk-full (uploads on a 2 MiB
tmpfs, remounted at 64 MiB after --disk-full-s; needs root).
"""

from __future__ import annotations

import collections
import contextlib
import io
import itertools
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import free_port
from bench.faults import Outcome, RedisProcess, _wait

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "stream.cli"]
PASSWORD = "faults-password-1"  # noqa: S105 - a throwaway user of a throwaway service
SPEECH = ROOT / "tests" / "data" / "vad_clean.flac"


def wav(seconds: float, seed: int) -> bytes:
    """Real audio, new content (and hash) per seed: the speech fixture with a little noise."""
    speech, rate = sf.read(SPEECH, dtype="float32")
    rng = np.random.default_rng(seed)
    frames = int(seconds * rate)
    audio = np.resize(speech, frames) + rng.normal(0, 0.002, frames).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


class PostgresCluster:
    """A PostgreSQL of the case's own (initdb in a temp dir, run as ``postgres``): the
    machine's shared server on 5432 is never touched."""

    def __init__(self) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            raise RuntimeError("PostgreSQL server binaries are missing under /usr/lib/postgresql")
        self.bin = bins[-1]
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="faults-pg-"))
        subprocess.run(["chown", "postgres:postgres", str(self.dir)], check=True)
        self._run("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust")

    def _run(self, tool: str, *argv: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / tool), *argv],
                       check=True, capture_output=True)  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-w", "-l", str(self.dir / "log"),
                  "-o", options, "start")  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-w", "-m", "fast", "stop")

    def pids(self) -> list[int]:
        """The postmaster and every process it started (backends, writers, checkpointer)."""
        postmaster = int((self.dir / "data" / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True,
                                  text=True, check=False).stdout.split()  # fmt: skip
        return [postmaster, *map(int, children)]

    def signal(self, signum: int) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError, FileNotFoundError):
            self.signal(signal.SIGCONT)
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Service:
    """``heritage-audio api`` (and workers) sharing one data directory and database."""

    def __init__(self, work: Path, **env: str) -> None:
        self.work = work
        self.data = work / "data"
        self.port = free_port()
        self.env = {
            **os.environ,
            "ENVIRONMENT": "testing",
            "SECRET_KEY": uuid.uuid4().hex,
            "HERITAGE_DATA_DIR": str(self.data),
            "MAXXI_OUTPUT_DIR": str(work / "maxxi"),
            "LOGIN_MAX_ATTEMPTS": "1000",
            **env,
        }
        if "REDIS_HOST" not in env:
            self.env.pop("REDIS_HOST", None)  # the in-process queue
        self.proc: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.log = work / "service.log"
        self.token = ""

    def prepare(self) -> None:
        subprocess.run([*CLI, "db", "upgrade"], cwd=ROOT, env=self.env, check=True,
                       capture_output=True)  # fmt: skip
        subprocess.run([*CLI, "users", "add", "faults", "--role", "operator"], cwd=ROOT,
                       env=self.env, input=PASSWORD + "\n", text=True, check=True,
                       capture_output=True)  # fmt: skip

    def start(self) -> float:
        """Start the API; seconds until it answers ``/health/live``."""
        started = time.monotonic()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [*CLI, "api", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        _wait(self._live, 120, "the API did not start")
        if not self.token:
            login = httpx.post(f"{self.url}/api/v1/auth/login", timeout=30,
                               json={"username": "faults", "password": PASSWORD})  # fmt: skip
            login.raise_for_status()
            self.token = login.json()["access_token"]
        return time.monotonic() - started

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _live(self) -> bool:
        try:
            return httpx.get(f"{self.url}/health/live", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as log:
            worker = subprocess.Popen(
                [*CLI, "worker", "--name", name], cwd=ROOT, env=self.env, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,  # the kill takes its pool too
            )  # fmt: skip
        self.workers.append(worker)
        return worker

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def stop(self) -> None:
        for worker in self.workers:
            if worker.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(worker.pid, signal.SIGKILL)
                worker.wait()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def upload(
        self, body: bytes, name: str, timeout: float = 60, processing_type: str = "quick"
    ) -> tuple[str, str | None]:
        """POST /api/v1/process: (status code or "conn", task id if accepted)."""
        try:
            response = httpx.post(
                f"{self.url}/api/v1/process",
                headers={"Authorization": f"Bearer {self.token}"},
                files={"audio_file": (name, body, "audio/wav")},
                data={"processing_type": processing_type},
                timeout=timeout,
            )
        except httpx.TransportError:
            return "conn", None
        task = response.json().get("task_id") if response.status_code == 202 else None
        return str(response.status_code), task

    def job(self, task_id: str) -> str | None:
        try:
            response = httpx.get(f"{self.url}/api/v1/status/{task_id}", timeout=10,
                                 headers={"Authorization": f"Bearer {self.token}"})  # fmt: skip
        except httpx.TransportError:
            return None
        return str(response.json()["status"]) if response.status_code == 200 else None

    def leftovers(self) -> tuple[int, int]:
        """Files in uploads/: (half-received, stored that no task row names)."""
        uploads = self.data / "uploads"
        incoming = len(list(uploads.glob(".incoming-*")))
        stored = {p.name for p in uploads.glob("??/*") if len(p.name) == 64}
        return incoming, len(stored - self.referenced())

    def referenced(self) -> set[str]:
        if "DB_HOST" in self.env:
            rows = subprocess.run(
                ["psql", "-h", "127.0.0.1", "-p", self.env["DB_PORT"], "-U", "postgres", "-d",
                 "postgres", "-Atc", "SELECT content_sha256 FROM tasks"],
                capture_output=True, text=True, check=True,
            ).stdout.split()  # fmt: skip
            return set(rows)
        with contextlib.closing(sqlite3.connect(self.data / "heritage-audio.db")) as db:
            return {row[0] for row in db.execute("SELECT content_sha256 FROM tasks")}

    def result_rows(self) -> dict[str, int]:
        query = "SELECT task_id, count(*) FROM results GROUP BY task_id"
        if "DB_HOST" in self.env:
            out = subprocess.run(
                ["psql", "-h", "127.0.0.1", "-p", self.env["DB_PORT"], "-U", "postgres", "-d",
                 "postgres", "-AtF", " ", "-c", query],
                capture_output=True, text=True, check=True,
            ).stdout.split("\n")  # fmt: skip
            return {t: int(n) for t, n in (line.split() for line in out if line.strip())}
        with contextlib.closing(sqlite3.connect(self.data / "heritage-audio.db")) as db:
            return dict(db.execute(query))


class Uploader(threading.Thread):
    """Uploads a new 1 s WAV every ``every_s`` and records (time, status, task id)."""

    def __init__(self, service: Service, every_s: float = 0.25, seconds: float = 1.0) -> None:
        super().__init__(daemon=True)
        self.service = service
        self.every_s = every_s
        self.seconds = seconds
        self.sent: list[tuple[float, str, str | None]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.is_set():
            n += 1
            body = wav(self.seconds, seed=n + os.getpid() * 1000)
            status, task = self.service.upload(body, f"fault-{n}.wav")
            self.sent.append((time.monotonic(), status, task))
            self.stopping.wait(self.every_s)

    def first_after(self, since: float, status: str = "202") -> float | None:
        return next((t - since for t, s, _ in self.sent if t > since and s == status), None)

    def stop(self) -> None:
        self.stopping.set()
        self.join(120)


def _finish(outcome: Outcome, service: Service, accepted: list[str], since: float,
            within_s: float = 300) -> None:  # fmt: skip
    """Wait until every accepted job is finished; tally delivered, lost and duplicates."""
    states: dict[str, str | None] = {}

    def all_done() -> bool:
        for task in accepted:
            if states.get(task) not in ("completed", "failed"):
                states[task] = service.job(task)
        return all(states.get(t) in ("completed", "failed") for t in accepted)

    with contextlib.suppress(RuntimeError):
        _wait(all_done, within_s, "jobs unfinished")
        outcome.recovery_s = time.monotonic() - since
    outcome.delivered = sum(states.get(t) == "completed" for t in accepted)
    failed = sum(states.get(t) == "failed" for t in accepted)
    outcome.lost = len(accepted) - outcome.delivered - failed
    if failed:
        outcome.notes.append(f"{failed} job(s) failed with a reason")
    if outcome.lost:
        unfinished = collections.Counter(
            str(states.get(t)) for t in accepted if states.get(t) not in ("completed", "failed")
        )
        outcome.notes.append(f"unfinished after {within_s:g} s: {dict(unfinished)}")
    rows = service.result_rows()
    outcome.duplicated = sum(n - 1 for n in rows.values() if n > 1)
    stray = set(rows) - set(accepted)
    if stray:
        outcome.duplicated += len(stray)
        outcome.notes.append(f"{len(stray)} result(s) of uploads that were refused")
    incoming, unreferenced = service.leftovers()
    outcome.notes.append(
        f"uploads/ after: {incoming} half-received, {unreferenced} stored without a task"
    )


def _statuses(sent: list[tuple[float, str, str | None]]) -> dict[str, int]:
    return dict(sorted(collections.Counter(s for _, s, _ in sent).items()))


def _postgres_fault(work: Path, down_s: float, hang: bool) -> Outcome:
    name = "PostgreSQL hung (every process SIGSTOPped)" if hang else "PostgreSQL stopped"
    outcome = Outcome(f"{name}, uploads every 0.25 s", down_s)
    cluster = PostgresCluster()
    cluster.start()
    service = Service(work, DB_HOST="127.0.0.1", DB_PORT=str(cluster.port), DB_USER="postgres",
                      DB_NAME="postgres", DB_PASSWORD="unused")  # noqa: S106  # fmt: skip
    uploader = Uploader(service)
    try:
        service.prepare()
        service.start()
        uploader.start()
        time.sleep(5)
        if hang:
            cluster.signal(signal.SIGSTOP)
        else:
            cluster.stop()
        time.sleep(down_s)
        if hang:
            cluster.signal(signal.SIGCONT)
        else:
            cluster.start()
        back = time.monotonic()
        _wait(lambda: uploader.first_after(back) is not None, 120, "no upload accepted again")
        time.sleep(5)
        uploader.stop()
        outcome.reconnect_s = uploader.first_after(back)
        outcome.produced = len(uploader.sent)
        accepted = [t for _, s, t in uploader.sent if t is not None]
        _finish(outcome, service, accepted, back)
        outcome.statuses = _statuses(uploader.sent)
        slowest = max(_durations(uploader.sent, every_s=uploader.every_s), default=0.0)
        outcome.notes.append(f"slowest answer about {slowest:.1f} s")
        return outcome
    finally:
        uploader.stopping.set()
        service.stop()
        cluster.remove()


def _durations(sent: list[tuple[float, str, str | None]], every_s: float) -> list[float]:
    """How long each answer took, from the gaps between sends (each send waits the answer)."""
    return [b[0] - a[0] - every_s for a, b in itertools.pairwise(sent)]


def postgres_stopped(work: Path, down_s: float) -> Outcome:
    return _postgres_fault(work, down_s, hang=False)


def postgres_hung(work: Path, down_s: float) -> Outcome:
    return _postgres_fault(work, down_s, hang=True)


def worker_killed(work: Path, jobs: int = 4, minutes: float = 2.0) -> Outcome:
    """Celery workers on a redis-server of the case's own; SQLite shared by API and workers."""
    outcome = Outcome(f"Celery worker SIGKILLed mid-job, {jobs} jobs queued", 0)
    server = RedisProcess(work)
    server.start()
    service = Service(work, REDIS_HOST="127.0.0.1", REDIS_PORT=str(server.port))
    try:
        service.prepare()
        service.start()
        service.start_worker(f"first-{uuid.uuid4().hex[:6]}@faults")
        sent = [
            service.upload(
                wav(minutes * 60, seed), f"long-{seed}.wav", processing_type="comprehensive"
            )
            for seed in range(jobs)
        ]
        outcome.produced = len(sent)
        outcome.statuses = _statuses([(0.0, s, t) for s, t in sent])
        accepted = [t for _, t in sent if t is not None]
        running = _wait(lambda: any(service.job(t) == "running" for t in accepted), 120,
                        "no job started")  # fmt: skip
        time.sleep(3)  # well into the job
        victim = service.workers[0]
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        killed = time.monotonic()
        service.start_worker(f"second-{uuid.uuid4().hex[:6]}@faults")
        _finish(outcome, service, accepted, killed, within_s=600)
        outcome.notes.append(f"killed {running + 3:.0f} s after the first job started")
        return outcome
    finally:
        service.stop()
        server.kill()


def api_killed(work: Path, upload_mb: float = 40.0) -> Outcome:
    """SIGKILL the API while a large upload is half received; restart it."""
    outcome = Outcome("API SIGKILLed during an upload, restarted", 0)
    service = Service(work)
    service.prepare()
    service.start()
    uploader = Uploader(service, every_s=0.2)
    body = wav(upload_mb * 2**20 / (2 * 16000), seed=7)  # 16 kHz mono PCM_16

    def slowly() -> Iterator[bytes]:
        for start in range(0, len(body), 256 * 1024):
            yield body[start : start + 256 * 1024]
            time.sleep(0.05)

    big: list[str] = []

    def send_big() -> None:
        try:
            response = httpx.post(f"{service.url}/api/v1/process", content=_multipart(slowly()),
                                  headers={"Authorization": f"Bearer {service.token}",
                                           "Content-Type": f"multipart/form-data; boundary={B}"},
                                  timeout=120)  # fmt: skip
            big.append(str(response.status_code))
        except httpx.TransportError:
            big.append("conn")

    sender = threading.Thread(target=send_big, daemon=True)
    try:
        uploader.start()
        time.sleep(2)
        sender.start()
        uploads = service.data / "uploads"
        _wait(lambda: any(p.stat().st_size > 4 << 20 for p in uploads.glob(".incoming-*")), 60,
              "the large upload never reached the disk")  # fmt: skip
        service.kill()
        killed = time.monotonic()
        half = len(list(uploads.glob(".incoming-*")))
        sender.join(30)
        restart_s = service.start()
        outcome.reconnect_s = uploader.first_after(killed)
        if outcome.reconnect_s is None:
            _wait(lambda: uploader.first_after(killed) is not None, 60, "no upload after restart")
            outcome.reconnect_s = uploader.first_after(killed)
        time.sleep(3)
        uploader.stop()
        sent = [*uploader.sent, (killed, big[0] if big else "none", None)]
        outcome.produced = len(sent)
        outcome.statuses = _statuses(sent)
        accepted = [t for _, s, t in uploader.sent if t is not None]
        outcome.notes.append(
            f"{half} half-received file(s) at the kill; the API's restart took {restart_s:.1f} s"
        )
        _finish(outcome, service, accepted, killed)
        return outcome
    finally:
        uploader.stopping.set()
        service.stop()


B = "faults-boundary"


def _multipart(audio: Iterator[bytes]) -> Iterator[bytes]:
    yield (f"--{B}\r\nContent-Disposition: form-data; name=\"processing_type\"\r\n\r\nquick\r\n"
           f"--{B}\r\nContent-Disposition: form-data; name=\"audio_file\"; filename=\"big.wav\""
           "\r\nContent-Type: audio/wav\r\n\r\n").encode()  # fmt: skip
    yield from audio
    yield f"\r\n--{B}--\r\n".encode()


def uploads_disk_full(work: Path, full_s: float) -> Outcome:
    """Uploads on a 2 MiB tmpfs (each upload about 0.3 MB) for ``full_s``, then 64 MiB."""
    outcome = Outcome("uploads disk full (2 MiB tmpfs), then remounted at 64 MiB", full_s)
    uploads = work / "data" / "uploads"
    uploads.mkdir(parents=True)
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(uploads)],
                       check=True, capture_output=True)  # fmt: skip
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        outcome.notes.append(f"skipped: cannot mount a tmpfs ({exc})")
        return outcome
    service = Service(work)
    uploader = Uploader(service, every_s=0.2, seconds=10.0)
    try:
        service.prepare()
        service.start()
        uploader.start()
        _wait(lambda: any(s == "507" for _, s, _ in uploader.sent), 60, "the disk never filled")
        time.sleep(full_s)
        health = httpx.get(f"{service.url}/health", timeout=10).json()["checks"]["storage"]
        outcome.notes.append(f"/health storage while full: {health['status']}")
        subprocess.run(["mount", "-o", "remount,size=64m", str(uploads)], check=True)
        back = time.monotonic()
        _wait(lambda: uploader.first_after(back) is not None, 60, "no upload accepted again")
        outcome.reconnect_s = uploader.first_after(back)
        time.sleep(3)
        uploader.stop()
        outcome.produced = len(uploader.sent)
        outcome.statuses = _statuses(uploader.sent)
        accepted = [t for _, s, t in uploader.sent if t is not None]
        _finish(outcome, service, accepted, back)
        return outcome
    finally:
        uploader.stopping.set()
        service.stop()
        subprocess.run(["umount", "-l", str(uploads)], check=False)
