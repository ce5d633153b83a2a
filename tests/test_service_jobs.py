"""Jobs survive what installations and data centres do to them: killed workers, a database
that goes away, a crashed API. Real Celery workers on the real Redis, real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import redis
import soundfile as sf
from sqlalchemy import select

from api.queue import InProcessQueue
from sinks.store import BlobStore, Database, Result, Task, upgrade
from sinks.store.models import utcnow
from tests.conftest import DATA, free_port
from tests.service import Client, PrivateCluster, api, env_of, postgres_database, settings_for

pytestmark = pytest.mark.timeout(600)
HERITAGE = str(Path(sys.executable).parent / "heritage-audio")


def _task_row(settings: object, task_id: str) -> tuple[Task, int]:
    async def read() -> tuple[Task, int]:
        db = Database(settings, pooled=False)  # type: ignore[arg-type]
        try:
            async with db.session() as session:
                task = await session.get(Task, task_id)
                results = (
                    await session.scalars(select(Result).where(Result.task_id == task_id))
                ).all()
                assert task is not None
                return task, len(results)
        finally:
            await db.close()

    return asyncio.run(read())


def _long_recording(path: Path, minutes: float) -> Path:
    speech, rate = sf.read(DATA / "vad_clean.flac", dtype="int16")
    repeats = int(minutes * 60 * rate / len(speech)) + 1
    sf.write(path, np.tile(speech, repeats), rate, subtype="PCM_16")
    return path


def _start_worker(env: dict[str, str], name: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [HERITAGE, "worker", "--name", name],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the kill takes the pool child too
        )


def _wait_for_workers(client: Client, count: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (client.http.get("/health").json()["jobs"]["workers"] or 0) >= count:
            return
        time.sleep(0.5)
    pytest.fail(f"fewer than {count} worker(s) announced themselves in {timeout} s")


def test_a_job_whose_worker_is_killed_runs_again(tmp_path: Path) -> None:
    broker = redis.Redis(host="127.0.0.1")
    for key in broker.scan_iter("heritage*"):
        broker.delete(key)
    broker.delete("unacked", "unacked_index", "unacked_mutex")
    recording = _long_recording(tmp_path / "long.wav", minutes=8)
    log = tmp_path / "workers.log"
    with postgres_database() as name:
        settings = settings_for("postgresql", tmp_path, name, REDIS_HOST="127.0.0.1")
        env = env_of(settings)
        with api(settings) as client:
            first = _start_worker(env, f"first-{uuid.uuid4().hex[:6]}@test", log)
            second: subprocess.Popen[bytes] | None = None
            try:
                _wait_for_workers(client, 1)
                task_id = client.upload(recording, processing_type="comprehensive").json()[
                    "task_id"
                ]
                deadline = time.monotonic() + 120
                while (s := client.status(task_id))["status"] != "running" or s["progress"] < 0.02:
                    assert s["status"] in ("queued", "running"), s
                    assert time.monotonic() < deadline, "the job never got going"
                    time.sleep(0.1)
                os.killpg(first.pid, signal.SIGKILL)
                first.wait(10)
                killed_at = time.monotonic()
                time.sleep(2)
                assert client.status(task_id)["status"] == "running"  # nobody finished it

                second = _start_worker(env, f"second-{uuid.uuid4().hex[:6]}@test", log)
                while _task_row(settings, task_id)[0].attempts < 2:
                    assert time.monotonic() - killed_at < 120, "the job was never run again"
                    time.sleep(0.5)
                rerun_after = time.monotonic() - killed_at
                restarted = client.wait(task_id, timeout=300, until=("completed", "failed"))
            finally:
                for process in (first, second):
                    if process is not None and process.poll() is None:
                        os.killpg(process.pid, signal.SIGTERM)
                        process.wait(60)
        assert restarted["status"] == "completed", (restarted, log.read_text()[-3000:])
        task, results = _task_row(settings, task_id)
        assert results == 1
        assert task.attempts == 2
        print(f"killed-worker job: run again {rerun_after:.1f} s after the kill")


def test_celery_workers_take_urgent_jobs_first(tmp_path: Path) -> None:
    broker = redis.Redis(host="127.0.0.1")
    for key in broker.scan_iter("heritage-analysis*"):
        broker.delete(key)
    with postgres_database() as name:
        settings = settings_for("postgresql", tmp_path, name, REDIS_HOST="127.0.0.1")
        with api(settings) as client:
            order = ("low", "normal", "high", "urgent")
            ids = {
                priority: client.upload(
                    DATA / "vad_silence.flac", processing_type="quick", priority=priority
                ).json()["task_id"]
                for priority in order  # queued while no worker runs, least urgent first
            }
            worker = _start_worker(env_of(settings), f"prio-{uuid.uuid4().hex[:6]}@test",
                                   tmp_path / "worker.log")  # fmt: skip
            try:
                started = {p: client.wait(t)["started_at"] for p, t in ids.items()}
            finally:
                os.killpg(worker.pid, signal.SIGTERM)
                worker.wait(60)
    assert sorted(started, key=started.__getitem__) == list(reversed(order))


def test_the_worker_command_needs_redis(tmp_path: Path) -> None:
    env = env_of(settings_for("sqlite", tmp_path))
    result = subprocess.run([HERITAGE, "worker"], env=env, capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert result.returncode == 78
    assert "REDIS_HOST" in result.stderr


def test_database_outage_gives_503_then_recovers_without_restart(tmp_path: Path) -> None:
    if shutil.which("runuser") is None:
        pytest.fail("runuser (util-linux) is needed to run a private PostgreSQL")
    cluster = PrivateCluster(free_port())
    try:
        cluster.start()
        settings = settings_for("postgresql", tmp_path, "postgres", DB_PORT=cluster.port)
        with api(settings) as client:
            headers = client.auth("viewer")
            assert client.http.get("/api/v1/tasks", headers=headers).status_code == 200
            cluster.stop()
            health = client.http.get("/health")
            assert health.status_code == 503
            assert health.headers["retry-after"]
            assert health.json()["checks"]["database"]["status"] == "down"
            assert client.http.get("/health/ready").status_code == 503
            assert client.http.get("/health/live").status_code == 200
            outage = client.http.get("/api/v1/tasks", headers=headers)
            assert outage.status_code == 503, outage.text
            assert outage.headers["retry-after"]
            login = client.http.post("/api/v1/auth/login", json={"username": "a", "password": "b"})
            assert login.status_code == 503

            cluster.start()
            deadline = time.monotonic() + 30
            while client.http.get("/health").status_code != 200:
                assert time.monotonic() < deadline, "no recovery after the database came back"
                time.sleep(0.5)
            assert client.http.get("/api/v1/tasks", headers=headers).status_code == 200
            task_id = client.upload(DATA / "vad_silence.flac", processing_type="quick").json()[
                "task_id"
            ]
            assert client.wait(task_id)["status"] == "completed"
    finally:
        cluster.remove()


def test_jobs_queued_when_the_database_goes_away_run_once_it_is_back(tmp_path: Path) -> None:
    """The in-process executor drops a job it cannot claim while the database is away;
    upkeep must queue it again when the database answers (before: queued until a restart),
    and remove the file of an upload refused meanwhile (before: until a restart 10
    minutes later)."""
    cluster = PrivateCluster(free_port())
    try:
        cluster.start()
        settings = settings_for("postgresql", tmp_path, "postgres", DB_PORT=cluster.port)
        recording = _long_recording(tmp_path / "long.wav", minutes=1)
        with api(settings) as client:
            ids = [
                client.upload(recording, name=f"take-{i}.wav", processing_type="quick").json()[
                    "task_id"
                ]
                for i in range(4)
            ]  # one runs, three wait in the executor's queue
            cluster.stop()
            refused = client.upload(DATA / "vad_clean.flac", processing_type="quick")
            assert refused.status_code == 503, refused.text
            time.sleep(8)  # the running job cannot store its result; the others not start
            cluster.start()
            finished = [client.wait(t, timeout=150)["status"] for t in ids]
            stored = {p.name for p in (tmp_path / "uploads").glob("??/*")}
    finally:
        cluster.remove()
    assert finished == ["completed"] * 4
    # The refused upload's file, kept while the database could not say whether a task
    # names it, is gone once it could: only the accepted recording is stored.
    assert len(stored) == 1, stored


def test_jobs_left_running_by_a_crash_are_run_at_start_up(tmp_path: Path) -> None:
    settings = settings_for("sqlite", tmp_path)
    upgrade(settings)
    source = DATA / "vad_silence.flac"
    data = source.read_bytes()
    import hashlib

    sha = hashlib.sha256(data).hexdigest()
    blobs = BlobStore(settings.HERITAGE_DATA_DIR / "uploads")
    blobs.path(sha).parent.mkdir(parents=True)
    blobs.path(sha).write_bytes(data)
    orphan = str(uuid.uuid4())

    async def crashed_mid_job() -> None:
        db = Database(settings, pooled=False)
        try:
            async with db.session() as session:
                session.add(Task(
                    id=orphan, status="running", processing_type="quick", priority=5,
                    filename=source.name, content_sha256=sha, size_bytes=len(data), options={},
                    submitted_by="operator", started_at=utcnow(), attempts=1,
                    lease_owner="dead-host:1", lease_until=utcnow() - timedelta(seconds=1),
                ))  # fmt: skip
        finally:
            await db.close()

    asyncio.run(crashed_mid_job())
    with api(settings) as client:
        assert client.wait(orphan)["status"] == "completed"
    task, results = _task_row(settings, orphan)
    assert (task.attempts, results) == (2, 1)


def test_priority_decides_what_runs_next() -> None:
    async def scenario() -> list[str]:
        order: list[str] = []
        release, all_ran = asyncio.Event(), asyncio.Event()

        async def run(task_id: str) -> None:
            order.append(task_id)
            if len(order) == 5:
                all_ran.set()
            if task_id == "first":
                await release.wait()

        queue = InProcessQueue(run, concurrency=1)
        await queue.start()
        await queue.submit("first", 5)
        await asyncio.sleep(0.05)  # "first" is running; the rest wait
        for task_id, priority in (("low", 8), ("normal", 5), ("urgent", 0), ("high", 3)):
            await queue.submit(task_id, priority)
        await queue.submit("normal", 5)  # a duplicate submission runs once
        release.set()
        await asyncio.wait_for(all_ran.wait(), 10)
        await asyncio.sleep(0.05)
        await queue.stop()
        return order

    assert asyncio.run(scenario()) == ["first", "urgent", "high", "normal", "low"]
