"""Real capture: PortAudio through a PulseAudio null sink, played into with paplay."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DATA, NullSink, truth
from tests.daemon import DaemonProcess, Event

pytestmark = pytest.mark.pulse

CONFIG = """
installation_id = "capture-test"
[[sources]]
type = "sounddevice"
name = "monitor"
device = "pulse"
sample_rate = 48000
block_size = 960
stall_timeout_s = 1.5
retry_initial_s = 0.25
retry_max_s = 1.0

[[detectors]]
type = "vad"

[[sinks]]
type = "jsonl"
path = "-"
"""

# Shorter than any pause in vad_clean.flac, longer than a scheduling hiccup of the player.
UNDERRUN_GAP_S = 0.5


@pytest.fixture
def daemon(tmp_path: Path, null_sink: NullSink) -> Iterator[DaemonProcess]:
    config = tmp_path / "capture.toml"
    config.write_text(CONFIG)
    process = DaemonProcess(config, env={"PULSE_SOURCE": null_sink.monitor})
    yield process
    process.stop()


def _is(kind: str, state: str | None = None) -> object:
    def match(e: Event) -> bool:
        return bool(e["type"] == kind and (state is None or e.get("state") == state))

    return match


def _speech_segments(daemon: DaemonProcess, count: int) -> list[tuple[float, float]]:
    """The speech segments the daemon reported, once it has heard the whole file and stopped.

    A playback underrun on a busy machine puts a short silence into what the sink plays, which
    splits a segment in two; fragments closer than ``UNDERRUN_GAP_S`` are joined again. The
    file's own pauses between segments are all longer than a second.
    """
    for _ in range(count):
        daemon.wait_for(_is("speech.ended"), timeout=30)
    time.sleep(1.0)  # a fragment split off the last segment ends after it
    assert daemon.stop() == 0
    segments: list[tuple[float, float]] = []
    for e in daemon.events:
        if e["type"] != "speech.ended":
            continue
        if segments and e["t_start"] - segments[-1][1] < UNDERRUN_GAP_S:
            segments[-1] = (segments[-1][0], e["t_end"])
        else:
            segments.append((e["t_start"], e["t_end"]))
    return segments


def test_speech_played_into_a_sink_is_detected_from_its_monitor(
    daemon: DaemonProcess, null_sink: NullSink
) -> None:
    daemon.wait_for(_is("source.status", "running"), timeout=15)
    null_sink.play(DATA / "vad_clean.flac", latency_ms=100)
    expected = truth("vad_clean.flac")["speech"]
    got = _speech_segments(daemon, len(expected))
    assert len(got) == len(expected), (got, expected)
    # Stream time starts when capture does, not playback, and a playback underrun on a busy
    # machine delays everything after it: compare each segment with the one before it.
    for i in range(1, len(expected)):
        got_gap = got[i][0] - got[i - 1][0]
        true_gap = expected[i][0] - expected[i - 1][0]
        assert got_gap == pytest.approx(true_gap, abs=0.3), (got, expected)
    for (start, end), (t_start, t_end) in zip(got, expected, strict=True):
        assert end - start == pytest.approx(t_end - t_start, abs=0.35), (got, expected)
    assert daemon.events[-1]["type"] == "source.status"
    assert daemon.events[-1]["state"] == "ended"


def test_a_lost_device_is_reported_and_capture_resumes_when_it_returns(
    daemon: DaemonProcess, null_sink: NullSink
) -> None:
    daemon.wait_for(_is("source.status", "running"), timeout=15)
    player = null_sink.start_playing(DATA / "vad_clean.flac")
    started = daemon.wait_for(_is("speech.started"), timeout=15)
    null_sink.unload()  # the device vanishes mid-sentence
    player.terminate()  # PulseAudio moves a player whose sink vanished; it has done its part
    player.wait(timeout=10)
    closed = daemon.wait_for(_is("speech.ended"), timeout=15)
    assert closed["t_start"] == started["t_start"], "the open segment is closed at the loss"
    lost = daemon.wait_for(_is("source.status", "lost"), timeout=15)
    assert daemon.proc.poll() is None, "the daemon keeps running"
    time.sleep(1.0)
    null_sink.load()
    recovered = daemon.wait_for(_is("source.status", "recovered"), timeout=20)
    assert recovered["t_start"] >= lost["t_start"] + 1.0, "the stream clock moves past the gap"
    null_sink.play(DATA / "vad_clean.flac")
    after = daemon.wait_for(_is("speech.ended"), timeout=30)
    assert after["t_start"] > recovered["t_start"]
    seqs = [e["seq"] for e in daemon.events]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "no event lost"


def test_devices_lists_the_capture_devices(null_sink: NullSink) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "stream.cli", "devices"], capture_output=True, text=True,
        timeout=30, check=True,
    )  # fmt: skip
    header, *rows = proc.stdout.splitlines()
    assert header.split()[:3] == ["index", "channels", "rate"]
    assert any(row.split()[-1] == "pulse" for row in rows), proc.stdout
