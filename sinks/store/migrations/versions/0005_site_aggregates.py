"""site aggregates: the latest windowed figures per site, room and window

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 03:10:00

Filled by the API from the Kafka aggregates topic (``sinks.site_aggregates``), so
``/api/v1/sites`` answers from the database while the brokers are away.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "site_aggregates",
        sa.Column("site", sa.String(length=128), nullable=False),
        sa.Column("room", sa.String(length=128), nullable=False),
        sa.Column("window", sa.String(length=8), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("last_event", sa.DateTime(timezone=True), nullable=True),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("site", "room", "window", "start"),
    )
    with op.batch_alter_table("site_aggregates", schema=None) as batch_op:
        batch_op.create_index("ix_site_aggregates_window_start", ["window", "start"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("site_aggregates", schema=None) as batch_op:
        batch_op.drop_index("ix_site_aggregates_window_start")
    op.drop_table("site_aggregates")
