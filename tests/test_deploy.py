"""Deployment files checked by systemd's own tools."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stream.daemon import DRAIN_S
from tests.conftest import ROOT

UNITS = sorted((ROOT / "systemd").glob("*.service"))


def _local_copy(unit: Path, tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's installed command."""
    command = Path(sys.executable).parent / "heritage-audio"
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("/opt/heritage-audio/venv/bin/heritage-audio",
                                             str(command)))  # fmt: skip
    return copy


def _setting(unit: Path, key: str) -> str:
    match = re.search(rf"^{key}=(.*)$", unit.read_text(), re.MULTILINE)
    assert match, f"{unit.name} has no {key}="
    return match.group(1)


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.fail("systemd-analyze is missing: apt install systemd")
    return path


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_units_pass_systemd_analyze_verify(
    unit: Path, tmp_path: Path, systemd_analyze: str
) -> None:
    result = subprocess.run(
        [systemd_analyze, "verify", str(_local_copy(unit, tmp_path))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert unit.name not in result.stderr, result.stderr  # no warnings about the unit itself


def test_the_daemon_unit_is_hardened(tmp_path: Path, systemd_analyze: str) -> None:
    unit = ROOT / "systemd" / "heritage-audio-daemon.service"
    result = subprocess.run(
        [systemd_analyze, "security", "--offline=true", str(_local_copy(unit, tmp_path))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert exposure, result.stdout + result.stderr
    assert float(exposure.group(1)) <= 2.0  # 1.5 recorded in the README


def test_the_daemon_unit_matches_the_daemon() -> None:
    unit = ROOT / "systemd" / "heritage-audio-daemon.service"
    assert _setting(unit, "Type") == "notify"
    assert int(_setting(unit, "TimeoutStopSec")) >= DRAIN_S + 10, "stop timeout covers the drain"
    assert int(_setting(unit, "WatchdogSec")) > 0
    assert _setting(unit, "RestartPreventExitStatus") == "78"  # EX_CONFIG: fix the config
    assert _setting(unit, "ExecStart").endswith("heritage-audio daemon")
