"""Tables of the file-analysis service (SQLAlchemy 2 declarative, typed)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JOB_STATUSES = ("queued", "running", "completed", "failed")
ROLES = ("admin", "operator", "viewer", "integration")


def utcnow() -> datetime:
    """Timezone-aware now; every timestamp in the store is UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: store timezone-aware UTC times")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    """Declarative base with the project's type map."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
    }


class Task(Base):
    """One analysis job: an upload and what became of it."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_status_priority", "status", "priority", "created_at"),
        Index("ix_tasks_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    processing_type: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer, default=5)
    filename: Mapped[str] = mapped_column(String(255))
    content_sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    submitted_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    processing_time: Mapped[float | None] = mapped_column(Float, default=None)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128), default=None)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    maxxi_notified_at: Mapped[datetime | None] = mapped_column(default=None)


class Result(Base):
    """The result document of a completed task (exactly one per task)."""

    __tablename__ = "results"

    task_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    document: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    """A person who logs in: archivist, curator, operator."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Carried in every access token and compared on each request: bumping it (logout-all,
    # a password change, disabling) revokes the user's tokens at once. It starts at a
    # random value, so a token of a removed user never matches a later user whose row
    # reuses the id (SQLite reuses the highest rowid).
    token_version: Mapped[int] = mapped_column(
        Integer, default=lambda: secrets.randbelow(2**30), server_default="0"
    )


class LoginAttempt(Base):
    """Login attempts counted against one account or one address in the current window.

    ``count`` is taken (atomically) before the password is checked and given back when
    it was right, so concurrent guesses past the limit are refused without a check.
    """

    __tablename__ = "login_attempts"

    key: Mapped[str] = mapped_column(String(160), primary_key=True)  # account:NAME / address:IP
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """A machine credential. Only a hash of the secret is stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked: Mapped[bool] = mapped_column(default=False)


class AuditEntry(Base):
    """Who did what security-relevant thing, from where, and whether it worked."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_action_at", "action", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    address: Mapped[str | None] = mapped_column(String(64), default=None)
    target: Mapped[str | None] = mapped_column(String(128), default=None)
    ok: Mapped[bool] = mapped_column(default=True)
    detail: Mapped[str | None] = mapped_column(Text, default=None)


class MaxxiStatus(Base):
    """An installation or archive status report pushed by MAXXI."""

    __tablename__ = "maxxi_status"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    component: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reported_by: Mapped[str] = mapped_column(String(128))


class MaxxiFeedback(Base):
    """An acknowledgement or a curator's correction of a result, kept for retraining."""

    __tablename__ = "maxxi_feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    task_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("tasks.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column()
    reported_by: Mapped[str] = mapped_column(String(128))


OUTBOX_STATUSES = ("pending", "delivered", "dead")


class OutboxItem(Base):
    """A MAXXI callback waiting to be delivered, delivered, or given up on (dead letter).

    Written when a job completes; a dispatcher posts it, retrying with backoff, and
    records every outcome here, so no delivery is ever only logged.
    """

    __tablename__ = "maxxi_outbox"
    __table_args__ = (Index("ix_maxxi_outbox_status_next", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(36), index=True)
    delivery_id: Mapped[str] = mapped_column(String(36), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retry_until: Mapped[datetime] = mapped_column()
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_status: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)
