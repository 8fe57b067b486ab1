"""Apply the Alembic migrations shipped in this package, at start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from iotas.store import dialects
from iotas.store.dialects import sqlite

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    dialects.of(connection).lock_migrations(connection)
    command.upgrade(alembic_config(connection), "head")


def upgrade_sync(engine: Engine) -> None:
    with engine.connect() as conn:
        conn = conn.execution_options(**{sqlite.IMMEDIATE: True})
        with conn.begin():
            _upgrade(conn)


async def upgrade(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
