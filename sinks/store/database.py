"""Engines, sessions and the schema check.

One :class:`Database` per process (per event loop). SQLite is opened in WAL
mode with a busy timeout, so the API and a worker can share it; PostgreSQL
connections are checked before use, so a restarted server is picked up
again without restarting the service.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool

from config.settings import Settings

# Alembic announces its context at INFO on every schema check; only upgrades should talk.
logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
MIGRATIONS = Path(str(resources.files("sinks.store") / "migrations"))
PING_TIMEOUT_S = 3.0


class SchemaBehind(RuntimeError):  # noqa: N818 - reads as a state, like FileExistsError
    """The database schema is not at the code's migration head."""


def database_url(settings: Settings) -> URL:
    """PostgreSQL (asyncpg) when ``DB_HOST`` is set, else SQLite in the data directory."""
    if settings.DB_HOST:
        password = settings.DB_PASSWORD.get_secret_value() if settings.DB_PASSWORD else None
        return URL.create(
            "postgresql+asyncpg",
            username=settings.DB_USER,
            password=password,
            host=settings.DB_HOST,
            port=settings.DB_PORT,
            database=settings.DB_NAME,
        )
    path = settings.HERITAGE_DATA_DIR / "heritage-audio.db"
    return URL.create("sqlite+aiosqlite", database=str(path.resolve()))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def private_file(path: Path) -> None:
    """Create ``path`` (and a missing parent directory) readable by the owner only.

    SQLite gives its ``-wal`` and ``-shm`` files the database file's mode, so creating
    the file first at 0600 keeps all three private. An existing file is left alone
    unless it is readable by others, which is corrected (it holds password hashes).
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)


def create_engine(settings: Settings, *, pooled: bool = True) -> AsyncEngine:
    """An async engine for ``settings``; ``pooled=False`` for short-lived loops (workers)."""
    url = database_url(settings)
    options: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_backend_name() == "sqlite":
        private_file(Path(url.database or ""))
        options = {"connect_args": {"timeout": 10}}
    else:
        options["connect_args"] = {"timeout": PING_TIMEOUT_S, "command_timeout": 30}
    if not pooled:
        options["poolclass"] = NullPool
    engine = create_async_engine(url, **options)
    if url.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def alembic_config(settings: Settings) -> Config:
    """Alembic's config, built in code: no alembic.ini to keep in step."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["settings"] = settings
    return config


def head_revision(settings: Settings) -> str | None:
    """The newest migration this code ships."""
    return ScriptDirectory.from_config(alembic_config(settings)).get_current_head()


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (``heritage-audio db upgrade``), saying which."""
    log = logging.getLogger("alembic.runtime.migration")
    level = log.level
    log.setLevel(logging.INFO)
    try:
        command.upgrade(alembic_config(settings), revision)
    finally:
        log.setLevel(level)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


class Database:
    """The engine and session factory of one process."""

    def __init__(self, settings: Settings, *, pooled: bool = True) -> None:
        self.settings = settings
        self.engine = create_engine(settings, pooled=pooled)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def backend(self) -> str:
        return self.engine.url.get_backend_name()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session that commits on success and rolls back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """Raise if the database does not answer ``SELECT 1`` within a few seconds."""
        async with asyncio.timeout(PING_TIMEOUT_S), self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def current_revision(self) -> str | None:
        async with self.engine.connect() as connection:
            return await connection.run_sync(_current)

    async def check_schema(self) -> None:
        """Raise :class:`SchemaBehind` unless the schema is at this code's head."""
        current, head = await self.current_revision(), head_revision(self.settings)
        if current != head:
            raise SchemaBehind(
                f"database schema is at {current or 'nothing'}, this version needs {head}: "
                "run `heritage-audio db upgrade`"
            )

    async def close(self) -> None:
        await self.engine.dispose()
