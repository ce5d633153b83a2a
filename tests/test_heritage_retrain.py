"""Curators teach the heritage classifier: the correction route, ``train --from-store``
and ``models list | activate | rollback``.

The base vectors are a stand-in made here from the committed clips (five jittered copies
of each clip's excerpts, one copy of each held out), never the shipped
``heritage_base.npz``; the "shipped" model is a stand-in fitted on them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from config.settings import Settings
from detectors.files import file_sha256
from detectors.heritage import registry as registry_module
from detectors.heritage import retrain as retrain_module
from detectors.heritage.model import load_model, save_model
from detectors.heritage.registry import ModelRegistry, registry_dir, resolve_model_path
from detectors.heritage.training import Example, Vectorizer, fit_hierarchy, make_card
from sinks.store import AuditEntry, BlobStore, Database, MaxxiFeedback, Result, Task, upgrade
from sinks.store.corrections import correction_payload
from stream.cli import COMMANDS, build_parser
from tests.conftest import DATA
from tests.service import Client, api, settings_for

CLIPS = sorted((DATA / "heritage").glob("*.flac"))
COPIES = 5  # pseudo-files per clip in the stand-in base; copy 0 is the validation slice
WRONG = {  # a deliberately harmful relabelling
    "classical_music": "spoken_word",
    "folk_music": "historical_speech",
    "historical_speech": "opera",
    "opera": "folk_music",
    "religious_chant": "spoken_word",
    "spoken_word": "religious_chant",
}


@dataclass(frozen=True)
class Base:
    npz: Path
    shipped: Path
    cache: Path


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    """Stand-in base vectors and a stand-in shipped model (whose card records no score)."""
    folder = tmp_path_factory.mktemp("base")
    cache = folder / "vectors"
    vectorizer = Vectorizer(cache=cache)
    rng = np.random.default_rng(12)
    xs, ys, groups = [], [], []
    for i, clip in enumerate(CLIPS):
        x = vectorizer.example(Example(clip, clip.stem))
        scale = x.std(axis=0) + 1e-3
        for k in range(COPIES):
            xs.append(x + rng.normal(0, 0.05, x.shape) * scale)
            ys += [clip.stem] * len(x)
            groups += [i * COPIES + k] * len(x)
    x_all = np.concatenate(xs)
    npz = folder / "heritage_base.npz"
    np.savez_compressed(
        npz,
        x=x_all.astype(np.float16),
        y=np.asarray(ys),
        weights=np.ones(len(ys), dtype=np.float32),
        groups=np.asarray(groups, dtype=np.int32),
    )
    train = np.asarray(groups) % COPIES != 0
    estimators = fit_hierarchy(x_all[train], np.asarray(ys)[train])
    shipped = folder / "shipped.skops"
    card = make_card("shipped", [Example(c, c.stem) for c in CLIPS], x_all, {"scores": {}})
    save_model(estimators, card, shipped)
    return Base(npz, shipped, cache)


@pytest.fixture
def store(tmp_path: Path, base: Base, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """An empty store (SQLite, real migrations) with the stand-ins patched in."""
    monkeypatch.setattr(retrain_module, "BASE_VECTORS", base.npz)
    monkeypatch.setattr(registry_module, "DEFAULT_MODEL", base.shipped)
    settings = settings_for("sqlite", tmp_path)
    upgrade(settings)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "heritage-vectors").symlink_to(base.cache)  # vectors of the clips
    return settings


def add_tasks(settings: Settings, status: str = "completed") -> dict[str, str]:
    """One task per committed clip, its audio in the blob store; category -> task id."""
    blobs = BlobStore(settings.HERITAGE_DATA_DIR / "uploads")
    ids: dict[str, str] = {}

    async def add() -> None:
        db = Database(settings, pooled=False)
        try:
            async with db.session() as session:
                for clip in CLIPS:
                    sha = file_sha256(clip)
                    blobs.add_file(clip, sha)
                    task_id = str(uuid.uuid4())
                    ids[clip.stem] = task_id
                    session.add(
                        Task(
                            id=task_id, status=status, processing_type="heritage",
                            filename=clip.name, content_sha256=sha,
                            size_bytes=clip.stat().st_size, submitted_by="operator",
                        )
                    )  # fmt: skip
                    await session.flush()
                    if status == "completed":
                        session.add(Result(task_id=task_id, document={"task_id": task_id}))
        finally:
            await db.close()

    asyncio.run(add())
    return ids


def add_corrections(settings: Settings, rows: list[tuple[str, dict[str, Any]]]) -> None:
    """Feedback rows (task id, payload) of kind ``correction``, in this order."""

    async def add() -> None:
        db = Database(settings, pooled=False)
        try:
            for task_id, payload in rows:
                async with db.session() as session:
                    session.add(
                        MaxxiFeedback(
                            task_id=task_id, kind="correction", payload=payload,
                            reported_by="archivist",
                        )
                    )  # fmt: skip
        finally:
            await db.close()

    asyncio.run(add())


def good_corrections(ids: dict[str, str]) -> list[tuple[str, dict[str, Any]]]:
    """The right category of every clip: whole files, one range, one sent by MAXXI."""
    rows = [(ids[c], correction_payload(c, None, None, "")) for c in ids if c != "opera"]
    maxxi = {"corrections": {"category": "opera", "speakers": {}}, "note": ""}
    rows.append((ids["opera"], {**maxxi, "archive_reference": None}))
    rows.append((ids["folk_music"], correction_payload("folk_music", 0.0, 3.5, "verse")))
    return rows


def cli(settings: Settings, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run a command in-process with ``settings``: (exit code, stdout, stderr)."""
    args = build_parser().parse_args(argv)
    code = COMMANDS[args.command](args, settings)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def listed(out: str) -> dict[str, list[str]]:
    """``models list`` rows by name: status, created, F1, corrections (reason left out)."""
    rows = [line.split() for line in out.splitlines()[1:]]
    return {r[0]: r[1:5] for r in rows}


def test_train_from_store_adds_an_active_version_that_results_name(
    store: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    add_corrections(store, good_corrections(add_tasks(store)))
    code, out, err = cli(store, capsys, "train", "--from-store")
    assert code == 0, err
    assert "learned from 7 corrections of 6 tasks" in out
    assert "v1: active" in out
    code, out, _ = cli(store, capsys, "models", "list")
    assert code == 0
    rows = listed(out)
    assert rows["v1"][0] == "active"
    assert rows["shipped"][0] == "inactive"
    assert float(rows["v1"][2]) >= 0.8
    assert rows["v1"][3] == "7"
    card = load_model(resolve_model_path(None, store.HERITAGE_DATA_DIR)).card
    assert card["version"] == "v1"
    assert card["parent"] == "shipped"
    assert card["corrections"] == 7
    assert card["training_data"]["hash"].startswith("sha256:")
    assert card["validation"]["held_out_base_files"] == len(CLIPS)
    assert card["validation"]["cross_validated_corrections"] == 7


def test_harmful_corrections_are_refused_and_rollback_restores_the_previous_version(
    store: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = add_tasks(store)
    add_corrections(store, good_corrections(ids))
    assert cli(store, capsys, "train", "--from-store")[0] == 0
    # Newer corrections of the same files replace the good ones: every label wrong.
    add_corrections(store, [(ids[c], correction_payload(WRONG[c], None, None, "")) for c in ids])
    code, out, err = cli(store, capsys, "train", "--from-store")
    assert code == 0, err
    assert "v2: refused, kept inactive: validation macro-F1" in out
    registry = ModelRegistry(registry_dir(store.HERITAGE_DATA_DIR))
    assert registry.active == "v1"
    refused = next(v for v in registry.versions() if v.name == "v2")
    assert refused.status == "refused"
    assert "is lower than" in refused.reason
    assert listed(cli(store, capsys, "models", "list")[1])["v2"][0] == "refused"

    assert cli(store, capsys, "models", "activate", "v2")[:2] == (
        0, "active heritage model: v2 (was v1)\n",
    )  # fmt: skip
    code, out, _ = cli(store, capsys, "models", "rollback")
    assert (code, out) == (0, "active heritage model: v1 (rolled back from v2)\n")
    assert load_model(resolve_model_path(None, store.HERITAGE_DATA_DIR)).version == "v1"
    assert cli(store, capsys, "models", "rollback")[:2] == (
        0, "active heritage model: shipped (rolled back from v1)\n",
    )  # fmt: skip
    code, out, err = cli(store, capsys, "models", "rollback")
    assert code != 0
    assert err.count("\n") == 1
    assert "nothing to roll back to" in err


def test_unknown_version_and_empty_store_give_one_line_errors(
    store: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(store, capsys, "models", "activate", "v9")
    assert code != 0
    assert out == ""
    assert err.count("\n") == 1
    assert "no heritage model version 'v9'" in err
    code, _, err = cli(store, capsys, "train", "--from-store")
    assert code != 0
    assert err == "heritage-audio: error: no corrections with stored audio to learn from\n"
    assert cli(store, capsys, "models", "list")[1].splitlines()[1].split()[:2] == [
        "shipped", "active",
    ]  # fmt: skip


# The archivists' route ---------------------------------------------------------------


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, dict[str, str]]]:
    settings = settings_for("sqlite", tmp_path_factory.mktemp("corrections-api"))
    upgrade(settings)
    done = add_tasks(settings)
    failed = add_tasks(settings, status="failed")
    with api(settings) as c:
        yield c, {"done": done["opera"], "failed": failed["opera"]}


def test_archivists_correct_a_file_or_a_range_and_read_them_back(
    client: tuple[Client, dict[str, str]],
) -> None:
    c, tasks = client
    url = f"/api/v1/results/{tasks['done']}/corrections"
    whole = c.http.post(url, json={"category": "other"}, headers=c.auth("operator"))
    assert whole.status_code == 201, whole.text
    assert (whole.json()["start"], whole.json()["source"]) == (None, "archivist")
    ranged = {"category": "religious_chant", "start": 1.5, "end": 4.0, "note": "the choir"}
    assert c.http.post(url, json=ranged, headers=c.auth("admin")).status_code == 201
    feedback = {"task_id": tasks["done"], "kind": "correction",
                "corrections": {"category": "opera"}}  # fmt: skip
    assert (
        c.http.post("/api/maxxi/results", json=feedback, headers=c.auth("integration")).status_code
        == 201
    )
    listed = c.http.get(url, headers=c.auth("viewer"))
    assert listed.status_code == 200
    got = [(x["category"], x["start"], x["end"], x["source"]) for x in listed.json()]
    assert got[-3:] == [
        ("other", None, None, "archivist"),
        ("religious_chant", 1.5, 4.0, "archivist"),
        ("opera", None, None, "maxxi"),
    ]

    async def audited() -> list[str | None]:
        db = Database(c.settings, pooled=False)
        try:
            async with db.session() as session:
                rows = await session.scalars(
                    select(AuditEntry).where(AuditEntry.action == "result.corrected")
                )
                return [r.detail for r in rows if r.target == tasks["done"]]
        finally:
            await db.close()

    assert {"other (file)", "religious_chant (1.5-4 s)"} <= set(asyncio.run(audited()))


@pytest.mark.parametrize(
    "body",
    [
        {"category": "opera", "start": 4.0, "end": 2.0},
        {"category": "opera", "start": 2.0, "end": 2.0},
        {"category": "opera", "start": 2.0},
        {"category": "opera", "start": -1.0, "end": 2.0},
        {"category": "jazz"},
        {"start": 0.0, "end": 1.0},
    ],
)
def test_bad_corrections_are_422(client: tuple[Client, dict[str, str]], body: Any) -> None:
    c, tasks = client
    url = f"/api/v1/results/{tasks['done']}/corrections"
    response = c.http.post(url, json=body, headers=c.auth("operator"))
    assert response.status_code == 422, response.text


def test_corrections_need_a_completed_task_and_an_archivist_role(
    client: tuple[Client, dict[str, str]],
) -> None:
    c, tasks = client
    body = {"category": "opera"}
    unknown = f"/api/v1/results/{uuid.uuid4()}/corrections"
    assert c.http.post(unknown, json=body, headers=c.auth("admin")).status_code == 404
    assert c.http.get(unknown, headers=c.auth("admin")).status_code == 404
    failed = f"/api/v1/results/{tasks['failed']}/corrections"
    response = c.http.post(failed, json=body, headers=c.auth("admin"))
    assert response.status_code == 409
    assert "task is failed" in response.json()["detail"]
    done = f"/api/v1/results/{tasks['done']}/corrections"
    for role in ("viewer", "integration"):
        assert c.http.post(done, json=body, headers=c.auth(role)).status_code == 403
    assert c.http.post(done, json=body).status_code == 401


def test_the_corrections_path_allows_get_and_post(client: tuple[Client, dict[str, str]]) -> None:
    c, tasks = client
    url = f"/api/v1/results/{tasks['done']}/corrections"
    response = c.http.put(url, json={}, headers=c.auth("admin"))
    assert response.status_code == 405
    assert {"GET", "POST"} <= set(response.headers["allow"].split(", "))


def test_an_active_version_fitted_on_older_vectors_gives_way_to_the_shipped_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After an upgrade that changes the excerpt vectors, a museum's retrained model cannot
    read them: the detector uses the shipped model (and says so) instead of failing."""
    import json
    import os
    import shutil

    from detectors.heritage.excerpt import VECTOR_VERSION
    from detectors.heritage.model import DEFAULT_MODEL, linear_path

    root = registry_dir(tmp_path)
    folder = root / "v1"
    folder.mkdir(parents=True)
    shutil.copy(DEFAULT_MODEL, folder / "heritage.skops")
    shutil.copy(linear_path(DEFAULT_MODEL), linear_path(folder / "heritage.skops"))
    card = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    (folder / "heritage.json").write_text(json.dumps({**card, "vector_version": "old/1"}))
    state = {"active": "v1", "history": ["shipped"], "versions": {"v1": {"status": "inactive"}}}
    (root / "registry.json").write_text(json.dumps(state))
    with caplog.at_level("WARNING", logger="detectors.heritage.registry"):
        assert resolve_model_path(None, tmp_path) == DEFAULT_MODEL
    assert "fitted on vectors 'old/1'" in caplog.text
    assert VECTOR_VERSION in caplog.text
    listed_v1 = next(v for v in ModelRegistry(root).versions() if v.name == "v1")
    assert listed_v1.status == "stale"
    assert "retrain it" in listed_v1.reason
    # The same version made for today's vectors is used.
    (folder / "heritage.json").write_text(json.dumps({**card, "vector_version": VECTOR_VERSION}))
    (root / "registry.json").write_text(json.dumps(state))
    later = (root / "registry.json").stat().st_mtime + 5  # the resolver re-reads on a new mtime
    os.utime(root / "registry.json", (later, later))
    assert resolve_model_path(None, tmp_path) == folder / "heritage.skops"
