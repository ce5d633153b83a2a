"""What the processes keep on disk is theirs alone: the daemon's spool (0700, its files
0600) and sequence counters, and the signing key in the data directory, even when the
process starts with a permissive umask or finds files an earlier version left open."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from config.private import make_private, restrict_umask
from tests.conftest import free_port
from tests.service import api, settings_for

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parent.parent


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def _open_to_everyone(path: Path) -> Path:
    """A directory (or file) as an earlier version, with umask 022, left it."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)
    return path


def test_the_daemon_spools_into_a_private_directory_whatever_its_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    spool = _open_to_everyone(data / "spool" / "redis")
    seq = _open_to_everyone(data / "seq")
    (seq / "old.seq").write_text("41")
    (seq / "old.seq").chmod(0o644)
    config = tmp_path / "pipeline.toml"
    # Nothing listens on the port: every event goes to the spool.
    config.write_text(
        '[[sources]]\ntype = "demo"\nname = "ch1"\n[[detectors]]\ntype = "level"\n'
        f'[[sinks]]\ntype = "redis_streams"\nurl = "redis://127.0.0.1:{free_port()}/0"\n'
    )
    env = {**os.environ, "HERITAGE_DATA_DIR": str(data)}
    for name in ("REDIS_HOST", "METRICS_PORT"):
        env.pop(name, None)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "daemon", "--config", str(config)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=lambda: os.umask(0o022),  # noqa: PLW1509 - the umask a careless unit gives
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while not any(p.stat().st_size for p in spool.glob("*.jsonl")):
            assert daemon.poll() is None, daemon.stderr.read() if daemon.stderr else ""
            assert time.monotonic() < deadline, "nothing was spooled"
            time.sleep(0.2)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=60)
    files = list((data / "spool").rglob("*"))
    assert any(p.suffix == ".jsonl" for p in files), files
    assert "removed from" in stderr.decode()  # the operator is told what was tightened
    for path in [data / "spool", *files, seq, *seq.iterdir()]:
        expected = 0o700 if path.is_dir() else 0o600
        assert _mode(path) == expected, (path, oct(_mode(path)))


def test_a_readable_signing_key_in_the_data_directory_is_made_private(tmp_path: Path) -> None:
    key = tmp_path / "secret_key"
    key.write_text("an-old-key-someone-copied-with-cp")
    key.chmod(0o644)
    with api(settings_for("sqlite", tmp_path, SECRET_KEY=None), users=False) as client:
        assert client.http.get("/health/live").status_code == 200
    assert _mode(key) == 0o600
    assert key.read_text() == "an-old-key-someone-copied-with-cp"  # kept, not replaced


def test_make_private_tightens_a_tree_and_leaves_links_alone(tmp_path: Path) -> None:
    tree = _open_to_everyone(tmp_path / "tree")
    (tree / "inner").mkdir(mode=0o775)
    (tree / "inner" / "file").write_text("x")
    (tree / "inner" / "file").chmod(0o664)
    target = tmp_path / "elsewhere"
    target.write_text("not ours to change")
    target.chmod(0o644)
    (tree / "link").symlink_to(target)
    assert make_private(tree) == 3
    assert [_mode(p) for p in (tree, tree / "inner", tree / "inner" / "file")] == [
        0o700,
        0o700,
        0o600,
    ]
    assert _mode(target) == 0o644
    assert make_private(tree) == 0
    assert make_private(tmp_path / "missing") == 0


def test_restrict_umask_only_ever_tightens() -> None:
    before = os.umask(0o027)
    try:
        assert restrict_umask() == 0o077
        os.umask(0o002)
        assert restrict_umask() == 0o077
        os.umask(0o177)
        assert restrict_umask() == 0o177
    finally:
        os.umask(before)
