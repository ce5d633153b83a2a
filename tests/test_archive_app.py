"""The archive application end to end: headless Chromium against a real ``heritage-audio run``
(SQLite), signing in per role, uploading, following the job, reviewing, correcting, searching.

Screenshots of every page go to test-artifacts/ for a person to look at.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import ARTIFACTS, CHROMIUM_ARGS, DATA, free_port
from tests.service import PASSWORD, Client, add_users, env_of, settings_for

pytestmark = pytest.mark.timeout(420)
RECORDING = DATA / "diarization" / "conversation_2spk.flac"
BIN = Path(sys.executable).parent
STEP_MS = 30_000  # no single browser step may wait longer


class Server:
    """``heritage-audio run --demo`` as a subprocess on a free port."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = settings_for("sqlite", data_dir)
        add_users(self.settings)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (data_dir / "server.log").open("wb")
        self.proc = subprocess.Popen(
            [str(BIN / "heritage-audio"), "run", "--demo", "--host", "127.0.0.1",
             "--port", str(self.port)],
            env=env_of(self.settings), stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code in (200, 503):
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"heritage-audio run did not start: {self.log.name}")
            time.sleep(0.2)
        self.api = Client(httpx.Client(base_url=self.url, timeout=30), self.settings)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("archive"))
    try:
        yield running
    finally:
        running.api.http.close()
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, timeout=STEP_MS
        )
        yield chromium
        chromium.close()


def signed_in(browser: Browser, server: Server, role: str) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(STEP_MS)
    page.goto(f"{server.url}/")
    page.get_by_role("link", name="Archive").click()
    page.get_by_label("Username").fill(role)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("signed-in")).to_have_text(f"{role} ({role})")
    return page


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"archive-{name}.png"), full_page=True)


def test_an_operator_uploads_reviews_corrects_and_finds_a_recording(
    server: Server, browser: Browser
) -> None:
    page = signed_in(browser, server, "operator")
    shot(page, "jobs-empty")
    page.get_by_role("link", name="Upload").click()
    page.get_by_label("Title").fill("Intervista nello studio")
    page.get_by_label("Creator").fill("Archivio MAXXI")
    page.get_by_label("Date (YYYY, YYYY-MM or YYYY-MM-DD)").fill("1987-05-12")
    page.get_by_label("Priority").select_option("high")
    page.get_by_test_id("file-input").set_input_files([str(RECORDING), str(DATA / "not_audio.wav")])
    items = page.get_by_test_id("upload-item")
    expect(items).to_have_count(2)
    refused = items.filter(has_text="not_audio.wav")
    expect(refused).to_have_attribute("data-state", "refused")
    expect(refused).to_contain_text("Refused: ")
    expect(refused).to_contain_text("not a recognised audio file")
    accepted = items.filter(has_text=RECORDING.name)
    expect(accepted).to_have_attribute("data-state", "queued")
    shot(page, "upload")

    # The job list follows the job live until it completes.
    page.get_by_role("link", name="Jobs").click()
    expect(page.get_by_test_id("jobs-live")).to_have_attribute("data-live", "true")
    row = page.get_by_test_id("job-row").filter(has_text="Intervista nello studio")
    expect(row.get_by_test_id("job-status")).to_have_attribute(
        "data-status", "completed", timeout=180_000
    )
    expect(row).to_contain_text("operator")
    expect(row).to_contain_text("3")  # high priority's queue level
    shot(page, "jobs")
    row.get_by_role("link", name="Intervista nello studio").click()

    # The result: waveform, spectrogram and lanes drawn.
    expect(page.get_by_test_id("recording-title")).to_have_text("Intervista nello studio")
    expect(page.get_by_test_id("waveform")).to_have_attribute("data-drawn", "true")
    lanes = page.get_by_test_id("lane")
    names = list(lanes.evaluate_all("ls => ls.map(l => l.dataset.lane)"))
    assert {"speech", "heritage", "music", "silence"} <= set(names)
    assert any(n.startswith("speaker:") for n in names)
    speech = page.locator("[data-lane=speech] .seg")
    assert speech.count() > 1
    assert speech.first.bounding_box()["width"] > 0  # type: ignore[index]

    # Clicking a segment plays it from its start.
    second = speech.nth(1)
    start = float(second.get_attribute("data-start") or "nan")
    second.click()
    player = page.get_by_test_id("player")
    page.wait_for_function(
        "el => !el.paused && el.currentTime >= 0", arg=player.element_handle(), timeout=STEP_MS
    )
    position = player.evaluate("el => el.currentTime")
    assert start - 0.05 <= position <= start + 3, (start, position)
    shot(page, "recording")

    # Relabel the heritage segment; the API has it, with who made it.
    heritage = page.locator("[data-lane=heritage] .seg").first
    heritage.click()
    predicted = heritage.get_attribute("data-category")
    other = "opera" if predicted != "opera" else "folk_music"
    page.get_by_test_id("relabel-form").get_by_label("Relabel this segment").select_option(other)
    page.get_by_test_id("relabel-form").get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("toast")).to_have_text("Correction stored")
    expect(page.locator("[data-lane=heritage] .seg.corrected")).to_have_count(1)
    task_id = page.url.rsplit("/", 1)[-1]
    stored = server.api.http.get(
        f"/api/v1/results/{task_id}/corrections", headers=server.api.auth("viewer")
    ).json()
    assert [(c["category"], c["reported_by"]) for c in stored] == [(other, "operator")]
    assert stored[0]["start"] == float(heritage.get_attribute("data-start") or "nan")
    expect(page.get_by_test_id("corrections")).to_contain_text("operator")
    shot(page, "recording-corrected")

    # Search by the Dublin Core title.
    page.get_by_role("link", name="Search").click()
    page.get_by_test_id("search-words").fill("studio intervista")
    page.get_by_role("button", name="Find").click()
    results = page.get_by_test_id("search-result")
    expect(results).to_have_count(1)
    expect(results).to_contain_text("Intervista nello studio")
    shot(page, "search")


def test_bad_dublin_core_gets_a_clear_message_and_nothing_is_stored(
    server: Server, browser: Browser, tmp_path: Path
) -> None:
    before = server.api.http.get("/api/v1/tasks", headers=server.api.auth()).json()["total"]
    page = signed_in(browser, server, "operator")
    page.get_by_role("link", name="Upload").click()
    page.get_by_label("Date (YYYY, YYYY-MM or YYYY-MM-DD)").fill("the summer of '69")
    page.get_by_test_id("file-input").set_input_files(str(DATA / "vad_silence.flac"))
    item = page.get_by_test_id("upload-item").first
    expect(item).to_have_attribute("data-state", "refused")
    expect(item).to_contain_text('"the summer of \'69" is not a date')
    # A 10 MB title: the page's field is capped, so the form is built by a script.
    page.evaluate(
        """async () => {
          const form = new FormData();
          form.append("title", "x".repeat(10 * 1024 * 1024));
          form.append("audio_file", new Blob([new Uint8Array(1000)]), "t.wav");
          const token = JSON.parse(sessionStorage.getItem("heritage-audio-session")).token;
          const r = await fetch("/api/v1/process", {method: "POST", body: form,
                                headers: {Authorization: `Bearer ${token}`}});
          window.bigTitle = [r.status, (await r.json()).detail];
        }"""
    )
    assert page.evaluate("window.bigTitle") == [413, "form fields are too large"]
    shot(page, "upload-refused")
    after = server.api.http.get("/api/v1/tasks", headers=server.api.auth()).json()["total"]
    assert after == before


def test_a_viewer_reads_but_cannot_upload_or_correct(server: Server, browser: Browser) -> None:
    task_id = server.api.upload(DATA / "vad_music.flac", title="Sola lettura").json()["task_id"]
    assert server.api.wait(task_id)["status"] == "completed"
    page = signed_in(browser, server, "viewer")
    expect(page.get_by_role("link", name="Upload")).to_have_count(0)
    page.goto(f"{server.url}/app/#/upload")
    expect(page.get_by_test_id("not-allowed")).to_be_visible()
    page.goto(f"{server.url}/app/#/recording/{task_id}")
    expect(page.get_by_test_id("lanes")).to_have_attribute("data-drawn", "true")
    page.locator("[data-lane=heritage] .seg").first.click()
    expect(page.get_by_test_id("selected-segment")).to_be_visible()
    expect(page.get_by_test_id("relabel-form")).to_have_count(0)
    expect(page.get_by_test_id("mark-wrong")).to_have_count(0)
    expect(page.get_by_test_id("relabel-file")).to_have_count(0)
    expect(page.get_by_test_id("dc-form").get_by_role("button", name="Save")).to_have_count(0)
    shot(page, "recording-viewer")
    # And the API says no as well.
    denied = server.api.http.post(
        f"/api/v1/results/{task_id}/corrections",
        json={"category": "opera"},
        headers=server.api.auth("viewer"),
    )
    assert denied.status_code == 403
    refused = server.api.upload(DATA / "vad_music.flac", role="viewer")
    assert refused.status_code == 403


def test_the_front_page_links_to_sign_in_and_the_application(
    server: Server, browser: Browser
) -> None:
    page = browser.new_page()
    page.set_default_timeout(STEP_MS)
    page.goto(f"{server.url}/")
    expect(page.get_by_role("link", name="Sign in")).to_have_attribute("href", "/app/#/login")
    page.get_by_role("link", name="Sign in").click()
    expect(page.get_by_label("Username")).to_be_focused()
