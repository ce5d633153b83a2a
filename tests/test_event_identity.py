"""Event identity across daemon restarts: a new run_id per start, seq continuing after it.

The daemon runs as a real process on the bundled demo scene (paced in real time)
and is stopped cleanly, then SIGKILLed, with its counters in a data directory of
the test's own.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from config.pipeline import PipelineConfig
from sinks.metrics import Metrics
from stream.pipeline import SourceRunner
from stream.seq_state import SeqCounter, seq_file
from stream.sources import FileSource, FileSourceConfig
from tests.conftest import DATA
from tests.daemon import DaemonProcess, Event

CONFIG = """
installation_id = "restart-test"
[[sources]]
type = "demo"
name = "hall/1 ü"
block_size = 1600

[[detectors]]
type = "level"

[[sinks]]
type = "jsonl"
path = "-"
"""


def _run_daemon(config: Path, data_dir: Path, events: int, *, kill: bool) -> list[Event]:
    daemon = DaemonProcess(config, env={"HERITAGE_DATA_DIR": str(data_dir), "REDIS_HOST": ""})
    try:
        daemon.wait_for(lambda e: e["seq"] and len(daemon.events) >= events, timeout=60)
    finally:
        if kill:
            daemon.proc.kill()
            daemon.proc.wait(10)
        daemon.stop()
    return daemon.events


def test_seq_continues_across_clean_restarts_and_sigkill_with_a_new_run_id(
    tmp_path: Path,
) -> None:
    config = tmp_path / "pipeline.toml"
    config.write_text(CONFIG)
    runs = [
        _run_daemon(config, tmp_path / "data", 20, kill=False),
        _run_daemon(config, tmp_path / "data", 20, kill=True),
        _run_daemon(config, tmp_path / "data", 20, kill=False),
    ]
    run_ids = [{e["run_id"] for e in run} for run in runs]
    assert all(len(ids) == 1 for ids in run_ids)
    assert len(set.union(*run_ids)) == 3  # a new UUID per start
    for run in runs:
        seqs = [e["seq"] for e in run]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # no gap within a run
    # A clean stop: the next run continues at the very next number.
    assert runs[1][0]["seq"] == runs[0][-1]["seq"] + 1
    # SIGKILL: the numbers taken before the kill are never issued again.
    assert runs[2][0]["seq"] > runs[1][-1]["seq"]
    identities = [(e["source"], e["run_id"], e["seq"]) for run in runs for e in run]
    assert len(identities) == len(set(identities))


def test_a_damaged_counter_file_starts_again_at_one(tmp_path: Path) -> None:
    path = seq_file(tmp_path, "stage")
    path.write_bytes(b"\x00garbage")
    counter = SeqCounter(path)
    assert counter.take(3) == 1
    counter.close()
    assert SeqCounter(path).take(1) == 4


def test_a_runner_stamps_its_run_id_and_continues_its_counter(tmp_path: Path) -> None:
    events: list[Any] = []
    counter = SeqCounter(seq_file(tmp_path, "file"))
    counter.take(41)
    source = FileSource(FileSourceConfig(path=DATA / "vad_clean.flac", realtime=False))
    runner = SourceRunner(
        source, PipelineConfig(), events.extend, Metrics(), run_id="run-a", seq=counter
    )
    runner.run(threading.Event())
    assert {e.run_id for e in events} == {"run-a"}
    assert [e.seq for e in events] == list(range(42, 42 + len(events)))
    assert SeqCounter(seq_file(tmp_path, "file")).last == 41 + len(events)
