"""The command line as a user runs it: a subprocess, its exit code, stdout and stderr."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from stream.cli import build_parser
from tests.conftest import DATA, truth

CLI = [sys.executable, "-m", "stream.cli"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_analyze_writes_the_result_document_with_voice_activity(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = _run("analyze", str(DATA / "vad_clean.flac"), "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    info = doc["audio_info"]
    expected = truth("vad_clean.flac")
    assert info["duration"] == pytest.approx(expected["duration"], abs=0.01)
    assert (info["sample_rate"], info["channels"], info["bit_depth"], info["format"]) == (
        16000, 1, 16, "FLAC"
    )  # fmt: skip
    assert len(info["sha256"]) == 64
    segments = doc["results"]["voice_activity"]["segments"]
    assert len(segments) == len(expected["speech"])
    for got, (start, end) in zip(segments, expected["speech"], strict=True):
        assert got["start"] == pytest.approx(start, abs=0.15)
        assert got["end"] == pytest.approx(end, abs=0.3)
    assert doc["provenance"]["models"]["vad"].startswith("silero_vad_16k_seq.onnx sha256:")


def test_analyze_runs_blas_on_one_thread_when_the_user_set_nothing() -> None:
    # Left to its defaults, OpenBLAS starts a spinning thread per core at numpy's import: a
    # second of CPU per 5-minute file for an analysis that is single-threaded by design.
    code = (
        "from stream.cli import main\n"
        "try:\n    main(['analyze', '--help'])\nexcept SystemExit:\n    pass\n"
        "import numpy, threadpoolctl\n"
        "print(max(p['num_threads'] for p in threadpoolctl.threadpool_info()))"
    )
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in names}
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "1"


def test_analyze_to_stdout_and_several_files() -> None:
    proc = _run("analyze", str(DATA / "vad_silence.flac"), str(DATA / "vad_clean.flac"))
    assert proc.returncode == 0, proc.stderr
    docs = json.loads(proc.stdout)
    assert [d["results"]["voice_activity"]["speech_ratio"] == 0 for d in docs] == [True, False]


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.wav", "file is empty"),
        ("corrupt.wav", "cannot decode as audio"),
        ("not_audio.wav", "cannot decode as audio"),
        ("truncated.flac", "cannot decode as audio"),
        ("absent.flac", "no such file"),
    ],
)
def test_unreadable_input_exits_non_zero_with_one_line(name: str, reason: str) -> None:
    proc = _run("analyze", str(DATA / name))
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("heritage-audio: error: ")
    assert reason in lines[0]
    assert "Traceback" not in proc.stderr


def test_run_with_an_unreadable_file_fails_before_serving() -> None:
    proc = _run("run", "--file", str(DATA / "corrupt.wav"), "--port", "1")
    assert proc.returncode == 1
    assert "cannot decode as audio" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_absurd_config_values_exit_with_ex_config(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[[detectors]]\ntype = 'vad'\nmin_speech_ms = -5\n")
    proc = _run("analyze", str(DATA / "vad_clean.flac"), "--config", str(config))
    assert proc.returncode == 78
    assert "detectors.0.vad.min_speech_ms" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_production_without_secrets_refuses_to_start() -> None:
    env = {"ENVIRONMENT": "production", "PATH": "/usr/bin:/bin"}
    proc = _run("analyze", str(DATA / "vad_clean.flac"), env=env)
    assert proc.returncode == 78
    assert "requires SECRET_KEY and DB_PASSWORD to be set" in proc.stderr


def test_help_lists_exactly_the_commands_that_exist() -> None:
    proc = _run("--help")
    assert proc.returncode == 0
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(commands) == {
        "run", "daemon", "api", "worker", "analyze", "devices", "train", "evaluate",
        "subscribe", "db", "users", "keys", "speakers", "models", "aggregate",
    }  # fmt: skip
    for command in commands:
        assert command in proc.stdout
        sub = _run(command, "--help")
        assert sub.returncode == 0
        assert f"usage: heritage-audio {command}" in sub.stdout


@pytest.mark.parametrize(
    ("suffix", "subtype", "fmt"),
    [(".ogg", "VORBIS", "OGG"), (".mp3", "MPEG_LAYER_III", "MP3"), (".wav", "PCM_24", "WAV")],
)
def test_analyze_reads_other_containers(
    tmp_path: Path, suffix: str, subtype: str, fmt: str
) -> None:
    audio, rate = sf.read(DATA / "vad_clean.flac", dtype="float32")
    path = tmp_path / f"clean{suffix}"
    sf.write(path, np.stack([audio, audio], axis=1), rate, subtype)
    proc = _run("analyze", str(path))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["audio_info"]["format"] == fmt
    assert doc["audio_info"]["channels"] == 2
    assert len(doc["results"]["voice_activity"]["segments"]) == len(
        truth("vad_clean.flac")["speech"]
    )


def test_a_missing_portaudio_library_names_the_package(tmp_path: Path) -> None:
    # sounddevice raises OSError at import when libportaudio is absent; make the import fail
    # that way for one subprocess, since the real library is installed on this machine.
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class NoPortAudio:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'sounddevice':\n"
        "            raise OSError('PortAudio library not found')\n"
        "sys.meta_path.insert(0, NoPortAudio())\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}"}
    for args in (("devices",), ("daemon", "--device", "0")):
        proc = _run(*args, env=env)
        assert proc.returncode == 1
        assert proc.stderr.strip() == (
            "heritage-audio: error: PortAudio library not found: install it "
            "(Debian/Ubuntu: apt install libportaudio2; Fedora: dnf install portaudio)"
        )


def test_a_pipeline_without_sources_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "empty.toml"
    config.write_text("sources = []\n")
    proc = _run("daemon", "--config", str(config))
    assert proc.returncode == 78
    assert "no sources configured" in proc.stderr


def test_a_sink_that_cannot_work_stops_the_start_with_its_reason(tmp_path: Path) -> None:
    config = tmp_path / "sink.toml"
    config.write_text(
        '[[sources]]\ntype = "demo"\n[[sinks]]\ntype = "jsonl"\npath = "/nonexistent/x.jsonl"\n'
    )
    for command in (("run", "--port", "1"), ("daemon",)):
        proc = _run(*command, "--config", str(config))
        assert proc.returncode == 78, proc.stderr
        assert "jsonl sink: cannot open /nonexistent/x.jsonl" in proc.stderr
        assert "Traceback" not in proc.stderr
