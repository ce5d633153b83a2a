"""The dashboard's multi-site view in headless Chromium, fed by the real API and database."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import CHROMIUM_ARGS
from tests.service import Client, api, settings_for
from tests.test_sites import _record, store_records

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Client, str]]:
    settings = settings_for("sqlite", tmp_path)
    with api(settings) as client:
        yield client, str(client.http.base_url)


def _signed_in(page: Page, token: str) -> None:
    """The archive application's sign-in, as the dashboard finds it in this tab."""
    session = json.dumps({"token": token, "role": "viewer", "name": "viewer"})
    page.add_init_script(f"sessionStorage.setItem('heritage-audio-session', {session!r});")


def test_the_dashboard_shows_each_site_for_the_chosen_window_and_refreshes(
    served: tuple[Client, str], artifacts: Path
) -> None:
    client, url = served
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    quarter = now.replace(minute=now.minute - now.minute % 15)
    store_records(client.settings, [
        _record("maxxi", "gallery-5", "1m", now, 40, speech_minutes=0.75, distinct_speakers=2,
                occupancy=0.75),
        _record("maxxi", "auditorium", "1m", now, 30, speech_minutes=0.25, distinct_speakers=1,
                occupancy=0.25, dominant_category="folk_music",
                category_seconds={"folk_music": 50.0}),
        _record("maxxi", "gallery-5", "15m", quarter, 400, speech_minutes=6.5,
                distinct_speakers=5, occupancy=0.43),
        _record("partner-museum", "chapel", "15m", quarter - timedelta(days=3), 90,
                speech_minutes=2.0, dominant_category="religious_chant",
                category_seconds={"religious_chant": 600.0, "spoken_word": 200.0},
                level={"count": 4, "rms_mean_dbfs": -33.24, "rms_max_dbfs": -30.0,
                       "peak_max_dbfs": -12.0}),
    ])  # fmt: skip
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        _signed_in(page, client.token("viewer"))
        page.goto(url + "/?sites_refresh=2")
        panel = page.get_by_test_id("sites")
        expect(panel).to_be_visible(timeout=10_000)
        rows = page.get_by_test_id("site-row")
        expect(rows).to_have_count(2)

        maxxi = page.locator('[data-testid="site-row"][data-site="maxxi"]')
        chapel = page.locator('[data-testid="site-row"][data-site="partner-museum"]')
        # 15 minutes (the default): each site's newest quarter
        expect(maxxi.get_by_test_id("site-speech")).to_have_text("6.5")
        expect(maxxi.get_by_test_id("site-speakers")).to_have_text("5")
        expect(maxxi.get_by_test_id("site-category")).to_have_text("Opera 100%")
        expect(maxxi.get_by_test_id("site-rooms")).to_have_text("2")
        expect(maxxi.get_by_test_id("site-fresh")).to_have_attribute("data-fresh", "true")
        expect(chapel.get_by_test_id("site-category")).to_have_text("Religious chant 75%")
        expect(chapel.get_by_test_id("site-level")).to_have_text("-33.2 dBFS")
        expect(chapel.get_by_test_id("site-fresh")).to_have_attribute("data-fresh", "false")
        expect(chapel.get_by_test_id("site-fresh")).to_have_text("3 days ago")
        page.screenshot(path=str(artifacts / "dashboard-sites-15m.png"))

        # 1 minute: both rooms of maxxi combined; the chapel has no such window
        page.get_by_test_id("sites-window").select_option("1m")
        expect(maxxi.get_by_test_id("site-speech")).to_have_text("1.0")
        expect(maxxi.get_by_test_id("site-speakers")).to_have_text("3")
        expect(maxxi.get_by_test_id("site-occupancy")).to_have_text("75%")
        expect(maxxi.get_by_test_id("site-category")).to_have_text("Folk music 63%")
        expect(chapel.get_by_test_id("site-speech")).to_have_text("—")

        # a new site's aggregate arrives: the next refresh shows it without a reload
        # (in a thread: Playwright's sync API runs an event loop in this one)
        writer = threading.Thread(target=store_records, args=(
            client.settings, [_record("site-3", "hall", "1m", now, 5)]))  # fmt: skip
        writer.start()
        writer.join(30)
        expect(rows).to_have_count(3, timeout=10_000)
        expect(page.get_by_test_id("sites-status")).to_contain_text("3 sites")
        page.screenshot(path=str(artifacts / "dashboard-sites-1m.png"))
        browser.close()


def test_the_sites_panel_stays_hidden_without_a_sign_in(served: tuple[Client, str]) -> None:
    client, url = served
    store_records(client.settings, [_record("maxxi", "gallery-5", "1m", datetime.now(UTC), 3)])
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(url + "/?sites_refresh=2")
        page.wait_for_timeout(2500)  # one refresh period
        expect(page.get_by_test_id("sites")).to_be_hidden()
        expect(page.get_by_test_id("site-row")).to_have_count(0)
        # the same page with a token shows the site: hidden was for want of a caller
        page.goto(url + f"/?sites_refresh=2&token={client.token('viewer')}")
        expect(page.get_by_test_id("site-row")).to_have_count(1, timeout=10_000)
        browser.close()
