"""The exhibit dashboard in headless Chromium against the real server.

A file source runs through the pipeline (levels, speech); speaker and heritage
events, whose detectors come with their own issues, are published into the
same hub for a second source, as the detectors will.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from config.pipeline import PipelineConfig
from config.settings import Settings
from stream.events import Event, HeritageClassified, SpeakerTurn, stamp
from stream.runtime import Runtime
from stream.sources import FileSourceConfig
from tests.conftest import CHROMIUM_ARGS, DATA, free_port, serving

# Distinct non-background colours drawn on a canvas (ignores anti-aliased edges).
CANVAS_COLOURS = """canvas => {
  const {data} = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height);
  const counts = new Map();
  for (let i = 0; i < data.length; i += 4) {
    const key = `${data[i]},${data[i + 1]},${data[i + 2]}`;
    counts.set(key, (counts.get(key) || 0) + 1);
  }
  const background = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0];
  return [...counts.entries()].filter(([k, n]) => k !== background && n > 200).length;
}"""


class Gallery:
    """Publishes speaker and heritage events for the source ``gallery``, channel 0."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.seq = 0
        self.t = 0.0

    def publish(self, event: Event) -> None:
        self.seq += 1
        self.runtime.emit([
            stamp(event, installation_id="sala-1", source="gallery", seq=self.seq,
                  wall_time=datetime.now(UTC))
        ])  # fmt: skip

    def turn(self, speaker: str, seconds: float) -> None:
        self.publish(SpeakerTurn(channel=0, t_start=self.t, t_end=self.t + seconds,
                                 speaker=speaker, confidence=0.9))  # fmt: skip
        self.t += seconds

    def category(self, category: str, confidence: float) -> None:
        scores = dict.fromkeys(
            ("folk_music", "classical_music", "opera", "spoken_word", "historical_speech",
             "religious_chant"),
            (1 - confidence) / 5,
        )  # fmt: skip
        scores[category] = confidence
        self.publish(HeritageClassified(channel=0, t_start=max(0, self.t - 4), t_end=self.t,
                                        category=category, confidence=confidence,
                                        scores=scores))  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture
def page_and_gallery() -> Iterator[tuple[Page, Gallery]]:
    source = FileSourceConfig(name="tour", path=DATA / "vad_clean.flac", loop=True)
    runtime = Runtime(PipelineConfig(sources=[source]), Settings())
    with serving(runtime) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 900})
        page.goto(url + "/")
        yield page, Gallery(runtime)
        browser.close()


def test_the_dashboard_shows_speaker_and_category_changing(
    page_and_gallery: tuple[Page, Gallery], artifacts: Path
) -> None:
    page, gallery = page_and_gallery
    expect(page.get_by_test_id("connection")).to_have_text("connected", timeout=10_000)
    tour = page.locator('[data-testid="channel-card"][data-source="tour"]')
    expect(tour.get_by_test_id("source-state")).to_have_text("running", timeout=10_000)
    expect(tour.get_by_test_id("speech")).to_have_text("speech", timeout=15_000)

    gallery.turn("Speaker_1", 6)
    gallery.category("folk_music", 0.82)
    card = page.locator('[data-testid="channel-card"][data-source="gallery"]')
    expect(card.get_by_test_id("speaker")).to_have_text("Speaker_1", timeout=5_000)
    expect(card.get_by_test_id("category")).to_have_text("Folk music")
    page.screenshot(path=str(artifacts / "dashboard-speaker-1-folk.png"))

    gallery.turn("Speaker_2", 5)
    gallery.turn("Guide Rossi", 4)
    gallery.category("opera", 0.74)
    expect(card.get_by_test_id("speaker")).to_have_text("Guide Rossi", timeout=5_000)
    expect(card.get_by_test_id("category")).to_have_text("Opera")
    page.wait_for_timeout(500)  # one animation frame or more: the canvases are redrawn
    speakers = card.locator("canvas").nth(0).evaluate(CANVAS_COLOURS)
    categories = card.locator("canvas").nth(1).evaluate(CANVAS_COLOURS)
    assert speakers >= 3, "three speakers on the speaker timeline"
    assert categories >= 2, "folk music then opera on the category timeline"
    expect(page.get_by_test_id("event-log")).to_contain_text("Guide Rossi")
    page.screenshot(path=str(artifacts / "dashboard-speaker-changes-opera.png"))


def test_the_dashboard_says_when_it_is_disconnected_and_reconnects_by_itself() -> None:
    port = free_port()

    def runtime() -> Runtime:
        source = FileSourceConfig(name="tour", path=DATA / "vad_clean.flac", loop=True)
        return Runtime(PipelineConfig(sources=[source]), Settings())

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page()
        connection = page.get_by_test_id("connection")
        with serving(runtime(), port) as url:
            page.goto(url + "/")
            expect(connection).to_have_text("connected", timeout=10_000)
        expect(connection).to_have_text("disconnected", timeout=10_000)
        expect(page.locator("body")).to_have_class(re.compile("offline"))
        with serving(runtime(), port):  # the server comes back on the same address
            expect(connection).to_have_text("connected", timeout=15_000)
            expect(page.locator("body")).not_to_have_class(re.compile("offline"))
        browser.close()
