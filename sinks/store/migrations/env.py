"""Alembic environment: runs migrations on the service's own async engine."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from config.settings import load_settings
from sinks.store.database import create_engine
from sinks.store.models import Base
from sinks.store.search import include_name  # also registers the recordings table

config = context.config
settings = config.attributes.get("settings") or load_settings()


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_name=include_name,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    engine = create_engine(settings, pooled=False)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


asyncio.run(_main())
