"""tools/gather_real_audio.py: the real development set rebuilt from its manifest and mirrors."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

TOOL = Path(__file__).resolve().parent.parent / "tools" / "gather_real_audio.py"
FIELDS = [
    "clip_id",
    "label",
    "repo",
    "path",
    "commit",
    "licence",
    "offset_s",
    "duration_s",
    "notes",
]


def git(gitdir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(gitdir), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        capture_output=True,
        check=True,
        text=True,
    ).stdout.strip()


def mirror(mirrors: Path, rate: int) -> tuple[str, np.ndarray]:
    """A mirror laid out as fetch leaves it (owner+name/repo/.git), holding a 4 s stereo
    tone at ``rate``; returns its commit and the tone."""
    work = mirrors / "owner+name" / "repo"
    work.mkdir(parents=True)
    git(work, "init", "-q")
    t = np.arange(4 * rate) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    sf.write(work / "tone.wav", np.stack([tone, np.zeros_like(tone)], axis=1), rate)
    git(work, "add", "tone.wav")
    git(work, "commit", "-q", "-m", "tone")
    return git(work, "rev-parse", "HEAD"), tone


def manifest(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({"licence": "CC0-1.0", "notes": "", "repo": "owner/name", **row})
    return path


def gather(tmp_path: Path, rows: list[dict[str, str]]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), str(manifest(tmp_path / "dev.csv", rows)),
         str(tmp_path / "out"), "--mirrors", str(tmp_path / "mirrors")],
        capture_output=True,
        check=False,
        text=True,
    )  # fmt: skip


def test_a_clip_is_cut_at_its_offset_mixed_down_and_resampled(tmp_path: Path) -> None:
    commit, tone = mirror(tmp_path / "mirrors", 44100)
    row = {"clip_id": "tone_a", "label": "other", "path": "tone.wav", "commit": commit,
           "offset_s": "1.0", "duration_s": "2.0"}  # fmt: skip
    done = gather(tmp_path, [row])
    assert done.returncode == 0, done.stderr
    assert "1 clips written" in done.stdout
    audio, rate = sf.read(tmp_path / "out" / "other" / "tone_a.flac")
    assert rate == 16000
    assert audio.ndim == 1
    assert len(audio) == 32000
    # Mixed down: half the tone's amplitude (the right channel is silent).
    assert abs(np.sqrt(np.mean(audio**2)) - np.sqrt(np.mean((tone / 2) ** 2))) < 0.01
    assert (tmp_path / "out" / "manifest.csv").read_text() == (tmp_path / "dev.csv").read_text()


def test_missing_commits_and_clips_past_the_end_are_named_and_fail(tmp_path: Path) -> None:
    commit, _ = mirror(tmp_path / "mirrors", 16000)
    rows = [
        {"clip_id": "good", "label": "opera", "path": "tone.wav", "commit": commit,
         "offset_s": "0.0", "duration_s": "3.0"},
        {"clip_id": "gone", "label": "opera", "path": "tone.wav", "commit": "0" * 40,
         "offset_s": "0.0", "duration_s": "3.0"},
        {"clip_id": "past", "label": "opera", "path": "tone.wav", "commit": commit,
         "offset_s": "3.5", "duration_s": "3.0"},
    ]  # fmt: skip
    done = gather(tmp_path, rows)
    assert done.returncode == 1
    assert "1 clips written" in done.stdout
    assert f"missing: owner/name@{'0' * 10}:tone.wav" in done.stdout
    assert "too short, not written: past: 0.50 s decoded" in done.stdout
    assert sorted(p.name for p in (tmp_path / "out" / "opera").iterdir()) == ["good.flac"]
