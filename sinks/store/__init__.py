"""The store: database models, sessions, migrations and content-addressed upload files.

Enrolled voice profiles are not here: the capture daemon, which has no database,
reads them too, so they live in the data directory (detectors/speaker/profiles.py).

SQLite under the data directory by default (aiosqlite); PostgreSQL (asyncpg)
when ``DB_HOST`` is set. The schema is owned by Alembic (``heritage-audio db
upgrade``); the database is the source of truth for every job's state.
"""

from sinks.store.blobs import BlobStore
from sinks.store.database import Database, SchemaBehind, database_url, upgrade
from sinks.store.models import (
    ApiKey,
    AuditEntry,
    Base,
    LoginAttempt,
    MaxxiFeedback,
    MaxxiStatus,
    OutboxItem,
    Result,
    Task,
    User,
)
from sinks.store.search import Recording
from sinks.store.sites import SiteAggregate

__all__ = [
    "ApiKey",
    "AuditEntry",
    "Base",
    "BlobStore",
    "Database",
    "LoginAttempt",
    "MaxxiFeedback",
    "MaxxiStatus",
    "OutboxItem",
    "Recording",
    "Result",
    "SchemaBehind",
    "SiteAggregate",
    "Task",
    "User",
    "database_url",
    "upgrade",
]
