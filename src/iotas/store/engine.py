"""Engines for SQLite (embedded) and PostgreSQL (production), from one URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from iotas.domain.errors import InvalidInput


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def database_url(url: str | None, data_dir: Path) -> str:
    """Normalise a user URL to an async driver; None means the embedded SQLite file."""
    if url is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{(data_dir / 'iotas.db').resolve()}"
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    else:
        raise InvalidInput(
            f"unsupported database {backend!r}: use postgresql://... or sqlite:///path"
        )
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url, json_serializer=_dumps, json_deserializer=orjson.loads, pool_size=8
        )
        _sqlite_setup(engine)
        return engine
    return create_async_engine(
        url,
        json_serializer=_dumps,
        json_deserializer=orjson.loads,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
    )


def _sqlite_setup(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that upgrades to a
        # write later can fail with SQLITE_BUSY instead of waiting for the lock.
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
