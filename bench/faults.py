"""Fault cases against real processes: what the capture daemon produces, Redis gets, and loses.

Each case runs ``heritage-audio daemon`` (4 demo sources paced in real time, the
level detector: about 41 events/s) with two sinks: a JSON-lines file, the ground
truth of what was produced, and Redis Streams, to a redis-server of the case's own
(append-only file fsynced always, so killing Redis loses nothing it acknowledged).
Then it breaks something, restores it, stops the daemon with SIGTERM and counts:

produced    distinct (source, run_id, seq) in the JSON-lines file
delivered   stream entries in Redis
lost        produced but not in Redis
duplicated  entries in Redis beyond the first of each (source, run_id, seq)
reconnect   seconds from the fault's end until the first spooled batch reached Redis
            (heritage_spool_events on the daemon's /metrics falls)
recovery    seconds from the fault's end until the daemon reports Redis connected
            again (heritage_redis_connected = 1: the whole spool delivered)
spool drops heritage_spool_dropped_events_total: losses the daemon counted itself

Cases: redis-killed (SIGKILL, down --redis-down-s, 600 for the issue's 10 minutes),
redis-frozen (SIGSTOP for --freeze-s, 30 by default), daemon-killed (SIGKILL while
its spool holds --spool-s of events, then Redis and a new daemon start), spool-disk-full
(the spool on a 256 KiB tmpfs while Redis is down; needs root to mount), capture-device
(a PulseAudio null sink captured through its monitor, unloaded for --device-gone-s and
loaded again; recovery is until the source reports "recovered"), soak (nothing broken
for --soak-minutes, 30 by default: the daemon's RSS, sampled every 10 s after a minute's
warm-up, and the latency of events read from Redis as a consumer would, per fifth of the
run and as a trend; run it niced in the background).

The service's cases (bench/faults_service.py: the API, its database, workers and
uploads disk) print in the same table, with the HTTP status codes seen: postgres-stopped,
postgres-hung (--pg-down-s), worker-killed, api-killed, uploads-disk-full
(--uploads-full-s).

Usage: python bench/faults.py [--cases redis-killed,redis-frozen,...] [--redis-down-s 60]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import free_port

ROOT = Path(__file__).resolve().parent.parent
KEY = "heritage:faults:events"
SOURCES = 4
CONFIG = """
installation_id = "faults"
{sources}
[[detectors]]
type = "level"

[[sinks]]
type = "jsonl"
path = "{jsonl}"

[[sinks]]
type = "redis_streams"
url = "{url}"
spool_dir = "{spool}"
socket_timeout_s = 1.0
close_timeout_s = 10.0
"""


DEMO_SOURCES = "\n".join(f'[[sources]]\ntype = "demo"\nname = "ch{i + 1}"' for i in range(SOURCES))
DEVICE_SOURCE = """
[[sources]]
type = "sounddevice"
name = "monitor"
device = "pulse"
sample_rate = 48000
block_size = 960
stall_timeout_s = 1.5
retry_initial_s = 0.25
retry_max_s = 1.0
"""


class RedisProcess:
    """redis-server on a port of its own, with an always-fsynced append-only file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        _wait(self._answers, 20, "redis-server did not start")

    def _answers(self) -> bool:
        try:
            with redis.Redis(port=self.port, socket_timeout=1) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def signal(self, signum: int) -> None:
        if self.proc is not None:
            self.proc.send_signal(signum)

    def entries(self) -> list[tuple[str, str, int]]:
        with redis.Redis(port=self.port, decode_responses=True) as client:
            return [
                (f["source"], f["run_id"], int(f["seq"]))
                for _, f in client.xrange(KEY)  # type: ignore[union-attr]
            ]


class Daemon:
    """``heritage-audio daemon`` with the two sinks above; its /metrics on a port of its own."""

    def __init__(
        self,
        work: Path,
        redis_url: str,
        spool: Path,
        sources: str = DEMO_SOURCES,
        env: dict[str, str] | None = None,
    ) -> None:
        self.jsonl = work / "produced.jsonl"
        self.config = work / "pipeline.toml"
        self.env = env or {}
        self.config.write_text(
            CONFIG.format(sources=sources, jsonl=self.jsonl, url=redis_url, spool=spool)
        )
        self.data = work / "data"
        self.metrics_port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = work / "daemon.log"

    def start(self) -> None:
        self.metrics_port = free_port()
        env = {
            **os.environ,
            "HERITAGE_DATA_DIR": str(self.data),
            "METRICS_PORT": str(self.metrics_port),
            "HOST": "127.0.0.1",
            **self.env,
        }
        env.pop("REDIS_HOST", None)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", "daemon", "--config", str(self.config)],
                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        _wait(lambda: self.metric("heritage_redis_connected") is not None, 60, "no /metrics")
        _wait(lambda: self.produced_lines() > 0, 60, "the daemon produced nothing")

    def metric(self, name: str) -> float | None:
        try:
            text = httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return None
        values = [
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + "{") or line.startswith(name + " ")
        ]
        return sum(values) if values else None

    def produced_lines(self) -> int:
        if not self.jsonl.exists():
            return 0
        with self.jsonl.open("rb") as f:
            return sum(1 for _ in f)

    def produced(self) -> list[tuple[str, str, int]]:
        out = []
        for line in self.jsonl.read_text().splitlines():
            with contextlib.suppress(ValueError):  # a line torn by SIGKILL
                e = json.loads(line)
                out.append((e["source"], e["run_id"], e["seq"]))
        return out

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(60)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


@dataclass
class Outcome:
    case: str
    fault_s: float
    produced: int = 0
    delivered: int = 0
    lost: int = 0
    duplicated: int = 0
    reconnect_s: float | None = None
    recovery_s: float | None = None
    spool_dropped: float = 0.0
    notes: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    """HTTP status codes seen, and how often (the service's cases)."""

    def line(self) -> str:
        recovery = "-" if self.recovery_s is None else f"{self.recovery_s:.2f} s"
        reconnect = "-" if self.reconnect_s is None else f"{self.reconnect_s:.2f} s"
        statuses = ", ".join(f"{code}: {n}" for code, n in self.statuses.items())
        return (
            f"| {self.case} | {self.fault_s:g} s | {self.produced} | {self.delivered} | "
            f"{self.lost} | {self.duplicated} | {reconnect} | {recovery} | "
            f"{self.spool_dropped:g} | {statuses or '-'} | "
            f"{'; '.join(self.notes)} |"
        )


def _wait(condition: Callable[[], object], within_s: float, failure: str) -> float:
    """Poll ``condition`` every 20 ms; the seconds it took, or RuntimeError."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within_s:
            raise RuntimeError(f"{failure} within {within_s:g} s")
        time.sleep(0.02)
    return time.monotonic() - started


def _tally(outcome: Outcome, daemon: Daemon, server: RedisProcess) -> Outcome:
    produced = set(daemon.produced())
    delivered = server.entries()
    outcome.produced = len(produced)
    outcome.delivered = len(delivered)
    outcome.lost = len(produced - set(delivered))
    outcome.duplicated = len(delivered) - len(set(delivered))
    if extra := len(set(delivered) - produced):
        outcome.notes.append(f"{extra} delivered but not in the JSON-lines file")
    return outcome


def _statuses(daemon: Daemon, state: str) -> int:
    return sum(
        1
        for line in daemon.jsonl.read_text().splitlines()
        if '"source.status"' in line and f'"state":"{state}"' in line
    )


def _pulse_answers() -> bool:
    return subprocess.run(["pactl", "info"], check=False, capture_output=True).returncode == 0


def _pactl(*args: str) -> str:
    return subprocess.run(
        ["pactl", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def capture_device(work: Path, gone_s: float) -> Outcome:
    outcome = Outcome("capture device removed (PulseAudio null sink unloaded), restored", gone_s)
    if subprocess.run(["pulseaudio", "--check"], check=False).returncode != 0:
        subprocess.run(
            ["pulseaudio", "-D", "--exit-idle-time=-1", "--disallow-exit"],
            check=False, capture_output=True,
        )  # fmt: skip
        _wait(_pulse_answers, 10, "no PulseAudio server")
    name = f"faults_{os.getpid()}"

    def load() -> str:
        return _pactl("load-module", "module-null-sink", f"sink_name={name}", "rate=48000",
                      "channels=1")  # fmt: skip

    module = load()
    server = RedisProcess(work)
    daemon = Daemon(
        work, server.url, work / "spool", DEVICE_SOURCE, {"PULSE_SOURCE": f"{name}.monitor"}
    )
    # An idle null sink's monitor stalls (the daemon reports that as a loss too): keep
    # the demo scene playing into it.
    player = _play(name)
    server.start()
    try:
        daemon.start()
        _wait(lambda: _statuses(daemon, "running"), 30, "capture did not start")
        time.sleep(3)
        recovered = _statuses(daemon, "recovered")
        _pactl("unload-module", module)
        _wait(lambda: _statuses(daemon, "lost"), 30, "the loss was not reported")
        player.terminate()  # PulseAudio moved it to another sink: it has done its part
        player.wait(10)
        time.sleep(gone_s)
        module = load()
        player = _play(name)
        outcome.recovery_s = _wait(
            lambda: _statuses(daemon, "recovered") > recovered, 60, "capture did not resume"
        )
        time.sleep(3)
        outcome.notes.append(
            f"recovery: until the source reports recovered; {_statuses(daemon, 'lost')} "
            "lost / recovered pair(s) reported"
        )
        daemon.stop()
        return _tally(outcome, daemon, server)
    finally:
        player.kill()
        player.wait()
        daemon.kill()
        server.kill()
        with contextlib.suppress(subprocess.CalledProcessError):
            _pactl("unload-module", module)


def _play(sink: str) -> subprocess.Popen[bytes]:
    scene = ROOT / "stream" / "data" / "demo.flac"
    return subprocess.Popen(["paplay", "--latency-msec=20", f"--device={sink}", str(scene)])


def _connected(daemon: Daemon) -> bool:
    return daemon.metric("heritage_redis_connected") == 1


def _recover(outcome: Outcome, daemon: Daemon, since: float) -> None:
    """Time the first spooled batch reaching Redis, then the whole spool, from ``since``."""
    peak = daemon.metric("heritage_spool_events") or 0.0
    while not _connected(daemon):
        spooled = daemon.metric("heritage_spool_events") or 0.0
        if spooled < peak and outcome.reconnect_s is None:
            outcome.reconnect_s = time.monotonic() - since
        peak = max(peak, spooled)
        if time.monotonic() - since > 300:
            raise RuntimeError("the daemon did not deliver its spool within 300 s")
        time.sleep(0.02)
    outcome.recovery_s = time.monotonic() - since
    if outcome.reconnect_s is None:  # the spool went out in one batch, or was empty
        outcome.reconnect_s = outcome.recovery_s


@contextlib.contextmanager
def _setup(work: Path, spool: Path | None = None) -> Iterator[tuple[RedisProcess, Daemon]]:
    server = RedisProcess(work)
    daemon = Daemon(work, server.url, spool or work / "spool")
    server.start()
    try:
        yield server, daemon
    finally:
        daemon.kill()
        server.kill()


def redis_killed(work: Path, down_s: float) -> Outcome:
    outcome = Outcome("Redis killed (SIGKILL), restarted", down_s)
    with _setup(work) as (server, daemon):
        daemon.start()
        time.sleep(5)
        server.kill()
        time.sleep(down_s)
        server.start()
        _recover(outcome, daemon, time.monotonic())
        time.sleep(5)
        outcome.spool_dropped = daemon.metric("heritage_spool_dropped_events_total") or 0
        daemon.stop()
        return _tally(outcome, daemon, server)


def redis_frozen(work: Path, freeze_s: float) -> Outcome:
    outcome = Outcome("Redis frozen (SIGSTOP), resumed", freeze_s)
    with _setup(work) as (server, daemon):
        daemon.start()
        time.sleep(5)
        server.signal(signal.SIGSTOP)
        time.sleep(freeze_s)
        server.signal(signal.SIGCONT)
        _recover(outcome, daemon, time.monotonic())
        time.sleep(5)
        outcome.spool_dropped = daemon.metric("heritage_spool_dropped_events_total") or 0
        daemon.stop()
        return _tally(outcome, daemon, server)


def daemon_killed(work: Path, spool_s: float) -> Outcome:
    outcome = Outcome("daemon SIGKILLed with a full spool, restarted", spool_s)
    with _setup(work) as (server, daemon):
        daemon.start()
        time.sleep(3)
        server.kill()
        time.sleep(spool_s)  # the spool fills with everything produced meanwhile
        spooled = daemon.metric("heritage_spool_events") or 0
        daemon.kill()
        server.start()
        started = time.monotonic()
        daemon.start()
        _recover(outcome, daemon, started)
        outcome.notes.append(
            f"{spooled:g} events spooled at the kill; times from the new daemon's start"
        )
        time.sleep(3)
        outcome.spool_dropped = daemon.metric("heritage_spool_dropped_events_total") or 0
        daemon.stop()
        return _tally(outcome, daemon, server)


def spool_disk_full(work: Path, down_s: float) -> Outcome:
    outcome = Outcome("spool disk full (256 KiB tmpfs), Redis down", down_s)
    mount = work / "tmpfs"
    mount.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
            check=True, capture_output=True,
        )  # fmt: skip
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        outcome.notes.append(f"skipped: cannot mount a tmpfs ({exc})")
        return outcome
    try:
        with _setup(work, mount / "spool") as (server, daemon):
            daemon.start()
            time.sleep(3)
            server.kill()
            time.sleep(down_s)
            outcome.spool_dropped = daemon.metric("heritage_spool_dropped_events_total") or 0
            server.start()
            _recover(outcome, daemon, time.monotonic())
            time.sleep(5)
            dropped_total = daemon.metric("heritage_spool_dropped_events_total") or 0
            daemon.stop()
            _tally(outcome, daemon, server)
            outcome.notes.append(
                f"lost events counted by the daemon: {dropped_total:g} of {outcome.lost}"
            )
            outcome.spool_dropped = dropped_total
            return outcome
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (VmRSS in /proc), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class _LatencyReader(threading.Thread):
    """Reads the stream as a consumer would and keeps (receipt time, latency) per event.

    Latency is receipt minus the wall-clock time of the event's end (``wall_time`` is
    its start on the sample clock; a level event is published once its window ends).
    """

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.samples: list[tuple[float, float]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        last = "$"
        with redis.Redis(port=self.port, decode_responses=True) as client:
            while not self.stopping.is_set():
                reply = client.xread({KEY: last}, count=1000, block=500)
                for _, entries in reply or []:  # type: ignore[union-attr]
                    now = time.time()
                    for entry_id, fields in entries:
                        last = entry_id
                        event = json.loads(fields["event"]) if "event" in fields else fields
                        self.samples.append((now, now - _event_end(event)))


def _event_end(event: dict[str, object]) -> float:
    start = datetime.fromisoformat(str(event["wall_time"])).timestamp()
    return start + float(str(event["t_end"])) - float(str(event["t_start"]))


def _slope_per_30_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(seconds, value)`` points, scaled to 30 minutes."""
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var * 1800


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def soak(work: Path, minutes: float, warmup_s: float = 60.0) -> Outcome:
    """The daemon with 4 demo channels for ``minutes``: RSS growth and event latency trend.

    RSS is sampled every 10 s; growth is from the end of ``warmup_s`` (imports, model
    loading and the first buffers filled) to the end, and as a fitted slope.
    """
    outcome = Outcome(f"soak, {SOURCES} channels, nothing broken", minutes * 60)
    load_before = os.getloadavg()
    with _setup(work) as (server, daemon):
        reader = _LatencyReader(server.port)
        daemon.start()
        reader.start()
        if daemon.proc is None:
            raise RuntimeError("the daemon did not start")
        started = time.monotonic()
        rss: list[tuple[float, float]] = []
        while (elapsed := time.monotonic() - started) < minutes * 60:
            if elapsed >= warmup_s:
                rss.append((elapsed, _rss_bytes(daemon.proc.pid) / 2**20))
            time.sleep(10)
        rss.append((time.monotonic() - started, _rss_bytes(daemon.proc.pid) / 2**20))
        daemon.stop()
        time.sleep(1)
        reader.stopping.set()
        reader.join(5)
        _tally(outcome, daemon, server)
    outcome.notes.append(
        f"RSS {rss[0][1]:.1f} MB at {warmup_s:g} s, {rss[-1][1]:.1f} MB at the end: "
        f"growth {rss[-1][1] - rss[0][1]:+.1f} MB, fitted {_slope_per_30_min(rss):+.2f} MB/30 min, "
        f"max {max(v for _, v in rss):.1f} MB"
    )
    outcome.notes.append(_latency_trend(reader.samples))
    load_after = os.getloadavg()
    outcome.notes.append(
        f"load average {load_before[0]:.1f} before, {load_after[2]:.1f} over the last 15 min"
    )
    return outcome


def _latency_trend(samples: list[tuple[float, float]]) -> str:
    """Latency p50/p95 per fifth of the run, and the fitted trend of the per-minute p50."""
    if not samples:
        return "no events read from Redis"
    first = samples[0][0]
    span = samples[-1][0] - first or 1.0
    fifths: list[list[float]] = [[] for _ in range(5)]
    minutes: dict[int, list[float]] = {}
    for t, latency in samples:
        fifths[min(4, int((t - first) / span * 5))].append(latency)
        minutes.setdefault(int((t - first) // 60), []).append(latency)
    parts = ", ".join(
        f"{_percentile(f, 0.5) * 1000:.0f}/{_percentile(f, 0.95) * 1000:.0f}" for f in fifths if f
    )
    p50s = [(m * 60.0, _percentile(v, 0.5) * 1000) for m, v in sorted(minutes.items())]
    return (
        f"latency p50/p95 ms by fifth of the run: {parts}; per-minute p50 trend "
        f"{_slope_per_30_min(p50s):+.1f} ms/30 min"
    )


def _service_cases(args: argparse.Namespace) -> dict[str, Callable[[Path], Outcome]]:
    """The API's cases (bench/faults_service.py), named like the others."""
    from bench import faults_service as fs

    return {
        "postgres-stopped": lambda w: fs.postgres_stopped(w, args.pg_down_s),
        "postgres-hung": lambda w: fs.postgres_hung(w, args.pg_down_s),
        "worker-killed": fs.worker_killed,
        "api-killed": fs.api_killed,
        "uploads-disk-full": lambda w: fs.uploads_disk_full(w, args.uploads_full_s),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--cases",
        default="redis-killed,redis-frozen,daemon-killed,spool-disk-full,capture-device",
    )
    parser.add_argument("--redis-down-s", type=float, default=60.0)
    parser.add_argument("--freeze-s", type=float, default=30.0)
    parser.add_argument("--spool-s", type=float, default=30.0)
    parser.add_argument("--disk-full-s", type=float, default=60.0)
    parser.add_argument("--device-gone-s", type=float, default=10.0)
    parser.add_argument("--soak-minutes", type=float, default=30.0)
    parser.add_argument("--pg-down-s", type=float, default=20.0)
    parser.add_argument("--uploads-full-s", type=float, default=10.0)
    args = parser.parse_args()
    cases: dict[str, Callable[[Path], Outcome]] = {
        "redis-killed": lambda w: redis_killed(w, args.redis_down_s),
        "redis-frozen": lambda w: redis_frozen(w, args.freeze_s),
        "daemon-killed": lambda w: daemon_killed(w, args.spool_s),
        "spool-disk-full": lambda w: spool_disk_full(w, args.disk_full_s),
        "capture-device": lambda w: capture_device(w, args.device_gone_s),
        "soak": lambda w: soak(w, args.soak_minutes),
        **_service_cases(args),
    }
    print(f"# {time.strftime('%Y-%m-%d')} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs; {SOURCES} demo sources, level detector")  # fmt: skip
    print("| case | fault | produced | delivered | lost | duplicated | reconnect | recovery | "
          "spool drops | status codes | notes |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name in args.cases.split(","):
        with tempfile.TemporaryDirectory(prefix=f"faults-{name}-") as work:
            print(cases[name](Path(work)).line(), flush=True)


if __name__ == "__main__":
    main()
