"""The archive application end to end: headless Chromium against a real ``heritage-audio run``
(SQLite), signing in per role, uploading, following the job, reviewing, correcting, searching.

Screenshots of every page go to test-artifacts/ for a person to look at.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.archive_server import Server
from tests.conftest import ARTIFACTS, CHROMIUM_ARGS, DATA
from tests.service import PASSWORD

pytestmark = pytest.mark.timeout(420)
RECORDING = DATA / "diarization" / "conversation_2spk.flac"
STEP_MS = 30_000  # no single browser step may wait longer


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
    page.get_by_label("Number of speakers (if known)").fill("2")
    page.get_by_label("Separate voices more accurately (slower)").check()
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
    expect(row).to_contain_text("high")
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
    result = server.api.http.get(f"/api/v1/results/{task_id}", headers=server.api.auth()).json()
    assert "speaker_campplus" in result["provenance"]["models"]  # the box was ticked
    assert result["provenance"]["parameters"]["n_speakers"] == 2  # the count was given
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
    # The live dashboard in the same tab opens its stream with the viewer's token (the
    # server wants one outside development).
    page.goto(f"{server.url}/")
    expect(page.get_by_test_id("connection")).to_have_text("connected")
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


def test_an_admin_adds_a_person_and_creates_a_key(server: Server, browser: Browser) -> None:
    page = signed_in(browser, server, "admin")
    page.get_by_role("link", name="Users and keys").click()
    form = page.get_by_test_id("add-user")
    form.get_by_label("Username").fill("archivista")
    form.get_by_label("Password").fill("una password lunga")
    form.get_by_label("Role").select_option("operator")
    form.get_by_role("button", name="Add user").click()
    expect(page.locator('[data-user="archivista"]')).to_contain_text("operator")
    login = server.api.http.post(
        "/api/v1/auth/login", json={"username": "archivista", "password": "una password lunga"}
    )
    assert login.status_code == 200
    keys = page.get_by_test_id("add-key")
    keys.get_by_label("Key name").fill("catalogue")
    keys.get_by_role("button", name="Create key").click()
    secret = page.get_by_test_id("new-key")
    expect(secret).to_contain_text("shown this once")
    key = (secret.text_content() or "").split(": ")[1].split(" ")[0]
    tasks = server.api.http.get("/api/v1/tasks", headers={"X-API-Key": key})
    assert tasks.status_code == 200
    shot(page, "admin")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator('[data-user="archivista"]').get_by_role("button", name="Remove").click()
    expect(page.locator('[data-user="archivista"]')).to_have_count(0)
    page.locator('[data-key="catalogue"]').get_by_role("button", name="Revoke").click()
    expect(page.locator('[data-key="catalogue"]')).to_contain_text("revoked")
    assert server.api.http.get("/api/v1/tasks", headers={"X-API-Key": key}).status_code == 401


def test_pages_work_by_keyboard_on_a_tablet_with_every_control_labelled(
    server: Server, browser: Browser
) -> None:
    task_id = server.api.upload(DATA / "vad_music.flac", title="Tablet").json()["task_id"]
    assert server.api.wait(task_id)["status"] == "completed"
    page = browser.new_page(viewport={"width": 768, "height": 1024}, has_touch=True)
    page.set_default_timeout(STEP_MS)
    page.goto(f"{server.url}/app/#/login")
    page.keyboard.type("operator")
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("signed-in")).to_be_visible()
    unlabelled = """() => [...document.querySelectorAll('main input, main select, main textarea')]
        .filter(el => el.type !== 'file' && !el.closest('label') && !el.getAttribute('aria-label'))
        .map(el => el.name)"""
    overflow = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    ready = {
        "jobs": "main[data-loaded] [data-testid=job-row]",
        "upload": "[data-testid=upload-form]",
        "search": "[data-testid=search-result]",
        f"recording/{task_id}": "[data-testid=lanes][data-drawn]",
    }
    for route, selector in ready.items():
        page.goto(f"{server.url}/app/#/{route}")
        page.wait_for_selector(selector)
        assert page.evaluate(unlabelled) == [], route
        assert page.evaluate(overflow) <= 0, f"{route} scrolls sideways on a tablet"
    expect(page.get_by_test_id("lanes")).to_have_attribute("data-drawn", "true")
    shot(page, "recording-tablet")
    # A segment is reached and played with the keyboard alone: one tab stop per lane,
    # arrows move along it.
    speech = page.locator("[data-lane=speech] .seg")
    assert speech.evaluate_all("bs => bs.filter(b => b.tabIndex === 0).length") == 1
    speech.first.focus()
    page.keyboard.press("ArrowRight")
    expect(speech.nth(1)).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_function("el => !el.paused", arg=page.get_by_test_id("player").element_handle())
    expect(page.get_by_test_id("selected-segment")).to_contain_text("Speech")
    start = float(speech.nth(1).get_attribute("data-start") or "nan")
    assert page.get_by_test_id("player").evaluate("el => el.currentTime") >= start - 0.05


def test_a_speaker_named_and_enrolled_is_recognised_by_the_next_analysis(
    server: Server, browser: Browser
) -> None:
    first = server.api.upload(RECORDING, title="Prima").json()["task_id"]
    assert server.api.wait(first)["status"] == "completed"
    page = signed_in(browser, server, "operator")
    page.goto(f"{server.url}/app/#/recording/{first}")
    page.locator('[data-lane="speaker:Speaker_1"] .seg').first.click()
    form = page.get_by_test_id("rename-form")
    form.get_by_label("Name this speaker").fill("Maria Lai")
    form.get_by_label("recognise this voice in later analyses").check()
    form.get_by_role("button", name="Apply").click()
    expect(page.get_by_test_id("toast")).to_have_text("Correction stored")
    expect(page.locator('[data-lane="speaker:Speaker_1"] .lane-label')).to_contain_text("Maria Lai")
    second = server.api.upload(RECORDING, title="Seconda").json()["task_id"]
    assert server.api.wait(second)["status"] == "completed"
    result = server.api.http.get(f"/api/v1/results/{second}", headers=server.api.auth()).json()
    assert "Maria Lai" in result["results"]["speaker_recognition"]["speakers"]
    found = server.api.http.get(
        "/api/v1/recordings", params={"speaker": "maria"}, headers=server.api.auth()
    ).json()
    assert {item["task_id"] for item in found["items"]} == {first, second}


STRICT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'"
)


def test_every_page_runs_under_a_strict_content_security_policy(
    server: Server, browser: Browser
) -> None:
    """No inline script or style anywhere: the pages work with a CSP that forbids them. (The
    dashboard's WebSocket is left out: Chromium's local-network checks block it from a
    document the test rewrote, with or without a policy.)"""
    task_id = server.api.upload(DATA / "vad_clean.flac", title="Politica").json()["task_id"]
    assert server.api.wait(task_id)["status"] == "completed"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(STEP_MS)
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security" in m.text else 0)

    def with_csp(route: Route) -> None:
        response = route.fetch()
        headers = {**response.headers, "content-security-policy": STRICT_CSP}
        route.fulfill(response=response, headers=headers)

    page.route(lambda url: "/api/" not in url, with_csp)
    page.goto(f"{server.url}/")
    expect(page.get_by_test_id("event-log")).to_be_attached()
    page.goto(f"{server.url}/app/#/login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("signed-in")).to_be_visible()
    for route, ready in (
        ("jobs", "main[data-loaded]"), ("upload", "[data-testid=drop-zone]"),
        ("search", "[data-testid=search-result]"), ("admin", "[data-user=admin]"),
        (f"recording/{task_id}", "[data-testid=waveform][data-drawn]"),
    ):  # fmt: skip
        page.goto(f"{server.url}/app/#/{route}")
        page.wait_for_selector(ready)
    page.locator("[data-lane=speech] .seg").first.click()
    page.wait_for_function("el => !el.paused", arg=page.get_by_test_id("player").element_handle())
    assert violations == []


def test_the_application_speaks_italian_when_asked(server: Server, browser: Browser) -> None:
    page = signed_in(browser, server, "viewer")
    page.get_by_test_id("language").select_option("it")
    expect(page.get_by_role("link", name="Lavori")).to_be_visible()
    expect(page.get_by_role("link", name="Cerca")).to_be_visible()
    expect(page.get_by_role("heading", name="Lavori")).to_be_visible()
    page.get_by_role("link", name="Cerca").click()
    expect(page.get_by_label("Categoria")).to_contain_text("Musica popolare")
    assert page.evaluate("document.documentElement.lang") == "it"
    shot(page, "search-italian")
