"""End to end: ``heritage-audio run --file`` as a user starts it, watched by real clients."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
from playwright.sync_api import expect, sync_playwright
from websockets.sync.client import connect

from tests.conftest import CHROMIUM_ARGS, DATA, free_port, truth

LEAD_IN = 3.0  # seconds of silence before the fixture, so clients connect before speech


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    events: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    speech, rate = sf.read(DATA / "vad_clean.flac", dtype="float32")
    audio = np.concatenate([np.zeros(int(LEAD_IN * rate), np.float32), speech])
    path = tmp_path / "tour.flac"
    sf.write(path, audio, rate)
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "run", "--file", str(path),
             "--host", "127.0.0.1", "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail(f"server did not start:\n{log.read_text()}")
    yield Server(proc, url, log)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _collect(server: Server) -> None:
    with connect(server.url.replace("http", "ws") + "/ws/events") as ws:
        for message in ws:
            server.events.append(json.loads(message))
        server.close_code = ws.close_code


def test_live_events_reach_websocket_clients_and_the_dashboard(
    server: Server, artifacts: Path
) -> None:
    client = threading.Thread(target=_collect, args=(server,), daemon=True)
    client.start()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        page.goto(server.url + "/")
        expect(page.get_by_test_id("connection")).to_have_text("connected", timeout=10_000)
        card = page.get_by_test_id("channel-card").first
        expect(card.get_by_test_id("speech")).to_have_text("speech", timeout=15_000)
        expect(card.get_by_test_id("level")).not_to_have_text("", timeout=5_000)
        expect(card.get_by_test_id("source-state")).to_have_text("running", timeout=10_000)
        log = page.get_by_test_id("event-log")
        expect(log).to_contain_text("speech.ended", timeout=15_000)
        expect(log).to_contain_text("speech.started")
        page.screenshot(path=str(artifacts / "dashboard-e2e.png"))

        health = httpx.get(server.url + "/health", timeout=5).json()
        assert health["status"] == "healthy"
        assert health["sources"][0]["state"] == "running"
        assert health["sources"][0]["stream_seconds"] > LEAD_IN
        assert set(health["system_metrics"]) >= {"cpu_percent", "memory_percent", "disk_percent"}

        metrics = httpx.get(server.url + "/metrics", timeout=5).text
        check = subprocess.run(
            ["promtool", "check", "metrics"],
            input=metrics,
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert 'heritage_events_total{type="speech.started"}' in metrics
        assert "heritage_websocket_clients 2.0" in metrics

        assert server.proc.wait(timeout=60) == 0, server.log.read_text()
        expect(page.get_by_test_id("connection")).to_have_text("disconnected", timeout=10_000)
        browser.close()

    client.join(10)
    expected = [(s + LEAD_IN, e + LEAD_IN) for s, e in truth("vad_clean.flac")["speech"]]
    started = [e["t_start"] for e in server.events if e["type"] == "speech.started"]
    ended = [e["t_end"] for e in server.events if e["type"] == "speech.ended"]
    assert started == pytest.approx([s for s, _ in expected], abs=0.1)
    assert ended == pytest.approx([e for _, e in expected], abs=0.1)
    assert server.events[-1]["type"] == "source.status"
    assert server.events[-1]["state"] == "ended"
    assert server.close_code == 1000, "the end of the stream is a normal closure"
