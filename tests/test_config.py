from pathlib import Path

import pytest

from config.errors import ConfigError
from config.pipeline import PipelineConfig, load_pipeline_config
from config.settings import load_settings
from detectors import VadConfig
from stream.sources import FileSourceConfig

GOOD = """
installation_id = "maxxi-hall-2"
heartbeat_s = 2

[[sources]]
type = "sounddevice"
name = "stage"
device = "USB Audio"
channels = 2
sample_rate = 48000

[[sources]]
type = "file"
path = "tour.flac"
realtime = false

[[detectors]]
type = "vad"
aggressiveness = 2
min_silence_ms = 400

[[sinks]]
type = "jsonl"
path = "-"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pipeline.toml"
    path.write_text(text)
    return path


def test_a_full_toml_file_is_read_into_typed_models(tmp_path: Path) -> None:
    config = load_pipeline_config(_write(tmp_path, GOOD))
    assert config.installation_id == "maxxi-hall-2"
    assert [s.type for s in config.sources] == ["sounddevice", "file"]
    assert isinstance(config.sources[1], FileSourceConfig)
    assert config.sources[1].realtime is False
    assert config.detectors == [VadConfig(aggressiveness=2, min_silence_ms=400)]


def test_defaults_need_no_file() -> None:
    config = load_pipeline_config(None)
    assert config == PipelineConfig()
    assert [d.type for d in config.detectors] == ["vad", "level", "heritage", "speaker"]
    assert config.detectors == PipelineConfig().detectors  # the example shows the defaults


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("instalation_id = 'x'", "instalation_id: unknown key"),
        (
            "[[detectors]]\ntype = 'vad'\naggresiveness = 2",
            "detectors.0.vad.aggresiveness: unknown key",
        ),
        ("[[detectors]]\ntype = 'vad'\naggressiveness = 9", "detectors.0.vad.aggressiveness"),
        ("[[detectors]]\ntype = 'vad'\nframe_ms = 25", "detectors.0.vad.frame_ms"),
        ("[[detectors]]\ntype = 'whisper'", "detectors.0: Input tag 'whisper'"),
        ("[[sources]]\ntype = 'sounddevice'\nchannels = 0", "sources.0.sounddevice.channels"),
        ("[[sources]]\ntype = 'sounddevice'\nsample_rate = 5", "sources.0.sounddevice.sample_rate"),
        ("heartbeat_s = -1", "heartbeat_s: Input should be greater than 0"),
        ("[[detectors]]\ntype = 'vad'\nhangover_ms = 900", "hangover_ms must not exceed"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_bad_keys_and_values_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_pipeline_config(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_pipeline_config(tmp_path / "absent.toml")


def test_environment_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENVIRONMENT", "PORT", "DB_HOST", "REDIS_HOST", "SECRET_KEY", "DB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.ENVIRONMENT == "development"
    assert settings.PORT == 8000
    assert settings.REDIS_PORT == 6379
    assert settings.redis_enabled is False


@pytest.mark.parametrize(
    ("present", "missing"),
    [({}, "SECRET_KEY and DB_PASSWORD"), ({"SECRET_KEY": "s3cret"}, "DB_PASSWORD"),
     ({"DB_PASSWORD": "pw"}, "SECRET_KEY")],
)  # fmt: skip
def test_production_refuses_to_start_without_secrets(
    monkeypatch: pytest.MonkeyPatch, present: dict[str, str], missing: str
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    for name in ("SECRET_KEY", "DB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    for name, value in present.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"requires {missing} to be set"):
        load_settings()


def test_production_starts_with_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", "a-signing-key-of-at-least-32-characters")
    monkeypatch.setenv("DB_PASSWORD", "pw")
    assert load_settings().ENVIRONMENT == "production"


def test_production_refuses_a_short_signing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", "s3cret")
    monkeypatch.setenv("DB_PASSWORD", "pw")
    with pytest.raises(ConfigError, match="SECRET_KEY must be at least 32 characters"):
        load_settings()


def test_a_bad_environment_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "eighty")
    with pytest.raises(ConfigError, match="environment: PORT: "):
        load_settings()


def test_the_annotated_example_config_is_valid() -> None:
    config = load_pipeline_config(Path(__file__).parent.parent / "config" / "example.toml")
    assert config.installation_id == "maxxi-sala-1"
    assert [d.type for d in config.detectors] == ["vad", "level", "heritage", "speaker"]
    assert config.detectors == PipelineConfig().detectors  # the example shows the defaults


def test_secrets_can_come_from_systemd_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "SECRET_KEY").write_text("from-a-credential-" + "k" * 32)
    (tmp_path / "DB_PASSWORD").write_text("pw")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("ENVIRONMENT", "production")
    for name in ("SECRET_KEY", "DB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.SECRET_KEY is not None
    assert settings.SECRET_KEY.get_secret_value() == "from-a-credential-" + "k" * 32
    monkeypatch.setenv("SECRET_KEY", "from-the-environment-" + "e" * 32)
    from_environment = load_settings().SECRET_KEY
    assert from_environment is not None
    assert from_environment.get_secret_value() == "from-the-environment-" + "e" * 32
