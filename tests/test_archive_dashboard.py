"""The live dashboard's event log (filtered by type, a category change logged once) and its
per-channel timeline of the last minutes, in headless Chromium against the real server."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.test_dashboard import CANVAS_COLOURS, Gallery, page_and_gallery

__all__ = ["page_and_gallery"]  # the fixture, shared with the dashboard's own tests
pytestmark = pytest.mark.timeout(120)


def test_a_category_change_is_logged_once_and_the_log_filters_by_type(
    page_and_gallery: tuple[Page, Gallery], artifacts: Path
) -> None:
    page, gallery = page_and_gallery
    expect(page.get_by_test_id("connection")).to_have_text("connected", timeout=10_000)
    for _ in range(4):  # classified every hop, the same category
        gallery.turn("Speaker_1", 10)
        gallery.category("folk_music", 0.8)
    for _ in range(3):
        gallery.turn("Guide Rossi", 10)
        gallery.category("opera", 0.7)
    card = page.locator('[data-testid="channel-card"][data-source="gallery"]')
    expect(card.get_by_test_id("category")).to_have_text("Opera", timeout=5_000)
    log = page.get_by_test_id("event-log")
    lines = log.locator('li[data-group="heritage"]').filter(has_text="gallery/0")
    expect(lines).to_have_count(2)
    expect(lines.first).to_contain_text("Folk music → Opera (70%)")

    page.get_by_test_id("log-filter").select_option("heritage")
    visible = log.locator("li:visible")
    expect(visible.first).to_contain_text("heritage.classified")
    assert all("heritage.classified" in text for text in visible.all_inner_texts())
    page.get_by_test_id("log-filter").select_option("speaker")
    expect(log.locator("li:visible").first).to_contain_text("Guide Rossi")
    page.get_by_test_id("log-filter").select_option("all")

    # The last minutes of the gallery channel: speakers and categories drawn.
    row = page.locator('.recent-row[data-source="gallery"] canvas')
    page.wait_for_timeout(1500)  # redrawn once a second
    assert row.evaluate(CANVAS_COLOURS) >= 3, "two speakers and two categories in the stripes"
    tour = page.locator('.recent-row[data-source="tour"] canvas')
    expect(tour).to_be_visible()
    page.screenshot(path=str(artifacts / "dashboard-recent-minutes.png"))
