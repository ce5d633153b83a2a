"""Process settings from environment variables (names and defaults of the product brief).

Sources, channels, windows, detectors and sinks live in the TOML pipeline file
(:mod:`config.pipeline`); this module holds what differs per deployment.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.errors import ConfigError, format_validation_error


class Settings(BaseSettings):
    """Deployment settings, read from the environment (and an optional `.env`)."""

    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", case_sensitive=True, validate_default=True
    )

    ENVIRONMENT: Literal["development", "testing", "staging", "production"] = "development"
    HOST: str = "0.0.0.0"  # noqa: S104 - a service binds all interfaces by default
    PORT: int = Field(8000, ge=1, le=65535)
    DEBUG: bool = False
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    LOG_FORMAT: Literal["plain", "json"] = "plain"
    SECRET_KEY: SecretStr | None = None
    DB_HOST: str | None = None
    DB_PORT: int = Field(5432, ge=1, le=65535)
    DB_NAME: str = "heritage_audio"
    DB_USER: str = "heritage"
    DB_PASSWORD: SecretStr | None = None
    REDIS_HOST: str | None = None
    REDIS_PORT: int = Field(6379, ge=1, le=65535)
    MAXXI_COMPATIBILITY_MODE: bool = True
    MAXXI_OUTPUT_FORMAT: Literal["json", "xml"] = "json"
    MAXXI_METADATA_SCHEMA: Literal["dublin_core"] = "dublin_core"
    MAXXI_OUTPUT_DIR: Path = Path("data/maxxi")
    HERITAGE_CONFIG: Path | None = Field(None, description="TOML pipeline configuration file.")
    MAXXI_CALLBACK_URL: str | None = Field(
        None, description="MAXXI endpoint notified (HMAC-signed POST) when an analysis completes."
    )
    MAXXI_CALLBACK_SECRET: SecretStr | None = Field(
        None, description="Key of the callback's HMAC-SHA256 signature (defaults to SECRET_KEY)."
    )
    MAXXI_CALLBACK_RETRY_FOR_S: float = Field(
        86_400,
        ge=0,
        le=30 * 86_400,
        description="How long a failing callback is retried before it becomes a dead letter.",
    )
    MAXXI_CALLBACK_BACKOFF_S: float = Field(
        5.0, gt=0, le=3600, description="First wait before retrying a failed callback."
    )
    MAXXI_CALLBACK_MAX_BACKOFF_S: float = Field(
        600.0, gt=0, le=86_400, description="Longest wait between retries of a callback."
    )
    HERITAGE_DATA_DIR: Path = Path("data")
    HERITAGE_SPOOL_FSYNC: Literal["always", "interval", "never"] = Field(
        "interval",
        description=(
            "When event spools are forced to disk: each batch (always), every "
            "HERITAGE_SPOOL_FSYNC_INTERVAL_S (interval) or when the kernel likes (never)."
        ),
    )
    HERITAGE_SPOOL_FSYNC_INTERVAL_S: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Most seconds of spooled events a power cut can lose with fsync=interval.",
    )
    ACCESS_TOKEN_EXPIRE_MINUTES: int = Field(60, ge=1, le=7 * 24 * 60)
    MAX_UPLOAD_MB: int = Field(500, ge=1, le=100_000, description="Largest accepted upload.")
    METRICS_ALLOW_NETWORKS: str = Field(
        "127.0.0.0/8,::1/128",
        description="Comma-separated networks that may read /metrics without a token.",
    )
    IDENTITY_CACHE_SECONDS: float = Field(
        5.0,
        ge=0,
        le=60,
        description="How long a token's user check is cached; a removal, disabling or "
        "logout-all made by another process takes effect within this time.",
    )
    LOGIN_MAX_ATTEMPTS: int = Field(5, ge=1, le=1000)
    LOGIN_LOCKOUT_SECONDS: int = Field(300, ge=1, le=86_400)
    PASSWORD_HASH_THREADS: int = Field(
        1, ge=1, le=64, description="Threads that check passwords (Argon2) in an API process."
    )
    PASSWORD_HASH_QUEUE: int = Field(
        16, ge=0, le=10_000, description="Password checks that may wait; past it, 429."
    )
    FORWARDED_ALLOW_IPS: str = Field(
        "",
        description="Comma-separated proxy addresses (or networks) whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; empty: none, the peer's address is the client's.",
    )
    WORKER_CONCURRENCY: int = Field(1, ge=1, le=64, description="Jobs a worker runs at once.")
    METRICS_PORT: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="Port where `daemon` (which has no HTTP API) serves /metrics; unset = none.",
    )
    KAFKA_BOOTSTRAP_SERVERS: str | None = Field(
        None,
        description="Comma-separated host:port of Kafka brokers; set, the daemon publishes there.",
    )
    KAFKA_TOPIC_PREFIX: str = Field(
        "heritage",
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="Topics are PREFIX.events, PREFIX.aggregates and PREFIX.dead-letter.",
    )
    KAFKA_SECURITY_PROTOCOL: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    KAFKA_SASL_MECHANISM: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    KAFKA_SASL_USERNAME: str | None = None
    KAFKA_SASL_PASSWORD: SecretStr | None = None
    KAFKA_SSL_CAFILE: Path | None = Field(None, description="CA bundle that signs the brokers.")
    KAFKA_SSL_CERTFILE: Path | None = Field(None, description="Client certificate (mutual TLS).")
    KAFKA_SSL_KEYFILE: Path | None = Field(None, description="Key of the client certificate.")

    @model_validator(mode="after")
    def _production_needs_secrets(self) -> Settings:
        if self.ENVIRONMENT == "production":
            missing = [
                name
                for name in ("SECRET_KEY", "DB_PASSWORD")
                if not (value := getattr(self, name)) or not value.get_secret_value()
            ]
            if missing:
                raise ValueError(
                    "ENVIRONMENT=production requires " + " and ".join(missing) + " to be set"
                )
            if self.SECRET_KEY is not None and len(self.SECRET_KEY.get_secret_value()) < 32:
                raise ValueError(
                    "SECRET_KEY must be at least 32 characters (it signs access tokens)"
                )
        return self

    @property
    def redis_enabled(self) -> bool:
        """Redis sinks are on only when a Redis host is configured."""
        return bool(self.REDIS_HOST)

    @property
    def kafka_enabled(self) -> bool:
        """Kafka sinks are on only when brokers are configured."""
        return bool(self.KAFKA_BOOTSTRAP_SERVERS)


def load_settings() -> Settings:
    """Read settings from the environment, raising :class:`ConfigError` with the bad key.

    Under systemd, secrets may come as credentials (``LoadCredential=SECRET_KEY:...``):
    files named like the variable in ``$CREDENTIALS_DIRECTORY``. The environment wins.
    """
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    try:
        return Settings(_secrets_dir=credentials)
    except ValidationError as exc:
        raise ConfigError(format_validation_error("environment", exc)) from None
