"""The archive application's page speed: a recording's page with an hour's result, and the
job list with 10,000 jobs, in headless Chromium against ``heritage-audio api`` (SQLite).

The hour is the demo scene looped (16 kHz FLAC). Its result document is synthetic but as
dense as a real hour's (speech, four speakers, a category window every 10 s, music,
silence), so the page draws as many segments as it would. Jobs are written straight into
the store. Run: ``.venv/bin/python bench/archive_app.py [--hours 1] [--jobs 10000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.overviews import cached_overview  # noqa: E402
from api.security import hash_password  # noqa: E402
from bench.common import free_port, wait_until_serving  # noqa: E402
from config.settings import Settings  # noqa: E402
from detectors.files import file_sha256  # noqa: E402
from sinks.store import BlobStore, Database, Result, Task, User, search, upgrade  # noqa: E402
from sinks.store.models import utcnow  # noqa: E402

CATEGORIES = (
    "folk_music",
    "classical_music",
    "opera",
    "spoken_word",
    "historical_speech",
    "religious_chant",
    "other",
)
PASSWORD = "bench-password-1"  # noqa: S105 - a throw-away user of a throw-away store
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
]


def long_recording(path: Path, seconds: float) -> None:
    """The demo scene looped to ``seconds`` of 16 kHz mono FLAC."""
    scene, rate = sf.read(str(ROOT / "stream" / "data" / "demo.flac"), dtype="int16")
    if scene.ndim > 1:
        scene = scene[:, 0]
    with sf.SoundFile(str(path), "w", rate, 1, format="FLAC", subtype="PCM_16") as out:
        left = int(seconds * rate)
        while left > 0:
            out.write(scene[:left])
            left -= len(scene[:left])


def dense_document(task_id: str, seconds: float, sha256: str) -> dict[str, Any]:
    """A result document with an hour's worth of segments in every lane."""
    rng = random.Random(7)
    speech, turns, t = [], [], 0.0
    while t < seconds - 5:
        length = rng.uniform(1.5, 8.0)
        speech.append({"start": round(t, 2), "end": round(t + length, 2)})
        turns.append(
            {
                "start": round(t, 2),
                "end": round(t + length, 2),
                "speaker": f"Speaker_{rng.randint(1, 4)}",
            }
        )
        t += length + rng.uniform(0.3, 4.0)
    timeline = []
    for start in np.arange(0, seconds, 10.0):
        category = CATEGORIES[int(start // 600) % len(CATEGORIES)]
        timeline.append(
            {
                "start": float(start),
                "end": float(min(seconds, start + 10)),
                "category": category,
                "confidence": round(rng.uniform(0.4, 0.99), 3),
            }
        )
    speakers = {
        f"Speaker_{i}": {"speaking_time": 0.0, "turns": 0, "name": None} for i in range(1, 5)
    }
    return {
        "task_id": task_id,
        "audio_info": {
            "duration": seconds,
            "sample_rate": 16000,
            "channels": 1,
            "bit_depth": 16,
            "format": "FLAC",
            "sha256": sha256,
            "filename": "hour.flac",
        },
        "results": {
            "voice_activity": {"speech_ratio": 0.6, "segments": speech},
            "speaker_recognition": {
                "speakers_detected": 4,
                "dominant_speaker": "Speaker_1",
                "segments": turns,
                "speakers": speakers,
                "interruptions": 0,
            },
            "heritage_classification": {
                "predicted_category": "spoken_word",
                "confidence": 0.8,
                "scores": {},
                "timeline": timeline,
            },
            "metadata_generation": {
                "technical": {"loudness": {"integrated_lufs": -23.0}},
                "dublin_core": {"elements": {"title": ["An hour"]}},
            },
        },
        "provenance": {"software_version": "bench", "models": {"heritage": "sha256:bench"}},
    }


async def fill_store(settings: Settings, sha256: str, size: int, seconds: float, jobs: int) -> str:
    """Users, ``jobs`` jobs (a tenth failed, the rest completed) and the hour's result."""
    db = Database(settings, pooled=False)
    hour_id = str(uuid.uuid4())
    now = utcnow()
    try:
        async with db.session() as session:
            for role in ("operator", "viewer"):
                session.add(User(username=role, password_hash=hash_password(PASSWORD), role=role))
            for i in range(jobs):
                session.add(
                    Task(
                        id=str(uuid.uuid4()),
                        status="failed" if i % 10 == 0 else "completed",
                        processing_type="comprehensive",
                        priority=5,
                        filename=f"rec{i}.flac",
                        content_sha256=sha256,
                        size_bytes=1000,
                        submitted_by="operator",
                        options={"dublin_core": {"title": f"Recording {i}"}},
                        created_at=now - timedelta(seconds=jobs - i),
                        completed_at=now,
                        processing_time=12.5,
                        progress=1.0,
                    )
                )
            task = Task(
                id=hour_id,
                status="completed",
                processing_type="comprehensive",
                priority=5,
                filename="hour.flac",
                content_sha256=sha256,
                size_bytes=size,
                submitted_by="operator",
                options={"dublin_core": {"title": "An hour"}},
                created_at=now,
                completed_at=now,
                processing_time=60.0,
                progress=1.0,
            )
            document = dense_document(hour_id, seconds, sha256)
            session.add(task)
            await session.flush()  # no ORM relationship orders the inserts: tasks first
            session.add(Result(task_id=hour_id, document=document))
            session.add(search.entry_of(task, document))
    finally:
        await db.close()
    return hour_id


def paint_times(page: Any) -> dict[str, float]:
    """Seconds from navigation start to first contentful paint and to each part drawn."""
    page.wait_for_selector("[data-testid=lanes][data-drawn]", timeout=60_000)
    drawn = page.evaluate("performance.now()")
    page.wait_for_selector("[data-testid=waveform][data-drawn]", timeout=60_000)
    waveform = page.evaluate("performance.now()")
    fcp = page.evaluate(
        "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN"
    )
    buttons = page.locator(".seg").count()
    return {
        "fcp": fcp / 1000,
        "lanes": drawn / 1000,
        "waveform": waveform / 1000,
        "segments": buttons,
    }


def measure_browser(url: str, token: dict[str, str], hour_id: str) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    out: dict[str, Any] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.add_init_script(
            f"sessionStorage.setItem('heritage-audio-session', {json.dumps(json.dumps(token))})"
        )
        page = context.new_page()
        page.goto(f"{url}/app/#/recording/{hour_id}")
        out["first"] = paint_times(page)
        visits = []
        for _ in range(3):
            page.goto("about:blank")
            page.goto(f"{url}/app/#/recording/{hour_id}")
            visits.append(paint_times(page))
        out["next"] = visits
        page.goto("about:blank")
        started = time.perf_counter()
        page.goto(f"{url}/app/#/jobs")
        page.wait_for_selector("main[data-loaded] [data-testid=job-row]", timeout=60_000)
        out["jobs_page"] = page.evaluate("performance.now()") / 1000
        out["jobs_rows"] = page.locator("[data-testid=job-row]").count()
        started = time.perf_counter()
        page.get_by_test_id("title-filter").fill("Recording 9999")
        page.wait_for_function(
            "document.querySelectorAll('[data-testid=job-row]').length === 1", timeout=60_000
        )
        out["jobs_filter"] = time.perf_counter() - started
        browser.close()
    return out


def api_times(url: str, token: str, jobs: int) -> dict[str, float]:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as http:

        def median(path: str) -> float:
            times = []
            for _ in range(20):
                started = time.perf_counter()
                http.get(path).raise_for_status()
                times.append(time.perf_counter() - started)
            return statistics.median(times)

        return {
            "first_page": median("/api/v1/tasks?limit=50"),
            "last_page": median(f"/api/v1/tasks?limit=50&offset={max(0, jobs - 50)}"),
            "failed": median("/api/v1/tasks?limit=50&status=failed"),
            "title": median("/api/v1/tasks?limit=50&q=Recording%209999"),
            "search": median("/api/v1/recordings?q=hour"),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    seconds = args.hours * 3600
    with tempfile.TemporaryDirectory(prefix="bench-archive-") as tmp:
        data = Path(tmp)
        audio = data / "hour.flac"
        long_recording(audio, seconds)
        env = {
            **os.environ,
            "ENVIRONMENT": "testing",
            "SECRET_KEY": "bench-" + uuid.uuid4().hex,
            "HERITAGE_DATA_DIR": str(data / "data"),
        }
        env.pop("DB_HOST", None)
        env.pop("REDIS_HOST", None)
        settings = Settings(
            ENVIRONMENT="testing",
            HERITAGE_DATA_DIR=data / "data",
            SECRET_KEY=env["SECRET_KEY"],
            REDIS_HOST=None,
            DB_HOST=None,
        )
        upgrade(settings)
        sha256 = file_sha256(audio)
        BlobStore(settings.HERITAGE_DATA_DIR / "uploads").add_file(audio, sha256)
        size = audio.stat().st_size
        hour_id = asyncio.run(fill_store(settings, sha256, size, seconds, args.jobs))
        started = time.perf_counter()
        cached_overview(settings, audio, sha256)
        overview_s = time.perf_counter() - started
        port = free_port()
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "heritage-audio"),
                "api",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_until_serving(port, 60)
            url = f"http://127.0.0.1:{port}"
            login = httpx.post(
                f"{url}/api/v1/auth/login", json={"username": "viewer", "password": PASSWORD}
            ).json()
            token = {"token": login["access_token"], "role": "viewer", "name": "viewer"}
            browser = measure_browser(url, token, hour_id)
            api = api_times(url, login["access_token"], args.jobs)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    first, visits = browser["first"], browser["next"]
    print(
        f"archive application, {time.strftime('%Y-%m-%d')}, {platform.node()}, "
        f"{os.cpu_count()} CPUs, {args.hours:g} h recording, {args.jobs} jobs, SQLite"
    )
    print(f"segments drawn in the lanes: {first['segments']}")
    print(f"overview of the recording computed once: {overview_s:.2f} s")
    print(
        f"recording page, first visit: FCP {first['fcp']:.2f} s, lanes {first['lanes']:.2f} s, "
        f"waveform {first['waveform']:.2f} s"
    )
    for key in ("fcp", "lanes", "waveform"):
        values = [v[key] for v in visits]
        print(f"recording page, next visits ({key}): {min(values):.2f}-{max(values):.2f} s")
    print(
        f"job list rendered ({browser['jobs_rows']} rows of {args.jobs}): "
        f"{browser['jobs_page']:.2f} s"
    )
    print(
        f"job list filtered by title to one row (250 ms debounce included): "
        f"{browser['jobs_filter']:.2f} s"
    )
    for name, value in api.items():
        print(f"API median of 20, {name}: {value * 1000:.1f} ms")


if __name__ == "__main__":
    main()
