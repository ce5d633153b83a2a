"""recording search: one searchable row per completed analysis

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05 23:50:00

Rows of results stored before this revision are filled in by the service at
start-up (``sinks.store.search.unindexed``), so this migration only builds the table.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("title", sa.String(length=1000), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=True),
        sa.Column("speakers", sa.Text(), nullable=False),
        sa.Column("date_from", sa.Date(), nullable=True),
        sa.Column("date_to", sa.Date(), nullable=True),
        sa.Column("duration", sa.Float(), nullable=True),
        sa.Column("indexed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("task_id"),
    )
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recordings_category"), ["category"], unique=False)
        batch_op.create_index(batch_op.f("ix_recordings_date_from"), ["date_from"], unique=False)
        batch_op.create_index(batch_op.f("ix_recordings_duration"), ["duration"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_recordings_fulltext ON recordings "
            "USING gin (to_tsvector('simple', text))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_recordings_fulltext")
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recordings_duration"))
        batch_op.drop_index(batch_op.f("ix_recordings_date_from"))
        batch_op.drop_index(batch_op.f("ix_recordings_category"))
    op.drop_table("recordings")
