"""MAXXI outbox: callbacks waiting, delivered or dead-lettered

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05 23:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "maxxi_outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("delivery_id", sa.String(length=36), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retry_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("delivery_id"),
    )
    with op.batch_alter_table("maxxi_outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_maxxi_outbox_status_next", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_maxxi_outbox_task_id"), ["task_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("maxxi_outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_maxxi_outbox_task_id"))
        batch_op.drop_index("ix_maxxi_outbox_status_next")
    op.drop_table("maxxi_outbox")
