"""tools/derive_conversations.py: excerpts, telephone renderings and monologues of a set."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

TOOL = Path(__file__).resolve().parent.parent / "tools" / "derive_conversations.py"
RATE = 16_000
# (start, duration, speaker) of a 130 s conversation: A, then B, then A and B at once.
TURNS = [(0.0, 60.0, "A"), (60.0, 50.0, "B"), (110.0, 10.0, "A"), (112.0, 8.0, "B")]


def conversation(folder: Path, name: str = "dev_000") -> tuple[Path, np.ndarray]:
    """A tone per speaker (A 300 Hz, B 3800 Hz) where the reference says they talk."""
    t = np.arange(int(130 * RATE)) / RATE
    audio = np.zeros_like(t)
    for start, duration, who in TURNS:
        span = slice(int(start * RATE), int((start + duration) * RATE))
        audio[span] += 0.3 * np.sin(2 * np.pi * (300 if who == "A" else 3800) * t[span])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.flac"
    sf.write(path, audio.astype(np.float32), RATE)
    rows = [f"SPEAKER {name} 1 {s:.3f} {d:.3f} <NA> <NA> {w} <NA> <NA>" for s, d, w in TURNS]
    path.with_suffix(".rttm").write_text("\n".join(rows) + "\n")
    return path, audio


def derive(kind: str, source: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), kind, str(source), str(out), *extra],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def turns(path: Path) -> list[tuple[float, float, str]]:
    return [
        (float(f[3]), float(f[4]), f[7])
        for f in (line.split() for line in path.read_text().splitlines())
    ]


def test_cut_makes_excerpts_with_their_part_of_the_reference(tmp_path: Path) -> None:
    conversation(tmp_path / "set")
    assert derive("cut", tmp_path / "set", tmp_path / "cut").returncode == 0
    # 130 s in 90 s excerpts: 0-90 and 90-130 (40 s, under the 45 s kept): one excerpt.
    assert sorted(p.name for p in (tmp_path / "cut").glob("*.flac")) == ["dev_000.flac"]
    assert sf.info(tmp_path / "cut" / "dev_000.flac").duration == 90.0
    assert turns(tmp_path / "cut" / "dev_000.rttm") == [(0.0, 60.0, "A"), (60.0, 30.0, "B")]
    assert derive("cut", tmp_path / "set", tmp_path / "cut40", "--seconds", "40").returncode == 0
    second = turns(tmp_path / "cut40" / "dev_001.rttm")  # 40-80 s
    assert second == [(0.0, 20.0, "A"), (20.0, 20.0, "B")]
    assert len(list((tmp_path / "cut40").glob("*.flac"))) == 3  # the last 10 s are dropped


def test_phone_keeps_the_band_of_a_telephone_line(tmp_path: Path) -> None:
    conversation(tmp_path / "set")
    assert derive("phone", tmp_path / "set", tmp_path / "phone").returncode == 0
    audio, rate = sf.read(tmp_path / "phone" / "dev_000.flac", dtype="float32")
    assert rate == RATE
    a = audio[int(10 * rate) : int(50 * rate)]  # A's 300 Hz tone: in the band
    b = audio[int(70 * rate) : int(100 * rate)]  # B's 3800 Hz tone: above it
    assert np.sqrt(np.mean(a**2)) > 20 * np.sqrt(np.mean(b**2))
    assert (tmp_path / "phone" / "dev_000.rttm").read_text() == (
        tmp_path / "set" / "dev_000.rttm"
    ).read_text()


def test_monologue_keeps_one_voice_and_silences_the_others(tmp_path: Path) -> None:
    _, original = conversation(tmp_path / "set")
    assert derive("monologue", tmp_path / "set", tmp_path / "mono").returncode == 0
    audio, rate = sf.read(tmp_path / "mono" / "dev_000.flac", dtype="float32")
    assert turns(tmp_path / "mono" / "dev_000.rttm") == [(0.0, 60.0, "A"), (110.0, 10.0, "A")]
    assert np.allclose(audio[: 60 * rate], original[: 60 * rate], atol=1e-4)
    assert not audio[60 * rate : 110 * rate].any()  # B's turn
    assert not audio[112 * rate : 120 * rate].any()  # A and B at once: not one voice
    assert np.abs(audio[110 * rate : 112 * rate]).max() > 0.1


def test_a_folder_without_conversations_is_a_clear_error(tmp_path: Path) -> None:
    result = derive("cut", tmp_path, tmp_path / "out")
    assert result.returncode == 2
    assert "no <split>_NNN.flac" in result.stderr
    assert not (tmp_path / "out").exists()
