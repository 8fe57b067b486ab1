"""Opening the database named by a URL: the embedded SQLite file or PostgreSQL."""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from iotas.domain.errors import InvalidInput
from iotas.store import migrate
from iotas.store.dialects import sqlite
from iotas.store.store import PostgresStore, SqliteStore, Store


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def database_url(url: str | None, data_dir: Path) -> str:
    """Normalise a user URL; None means the embedded SQLite file in the data directory."""
    if url is None:
        data_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(data_dir / 'iotas.db').resolve()}"
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend == "sqlite":
        parsed = parsed.set(drivername="sqlite")
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    else:
        raise InvalidInput(
            f"unsupported database {backend!r}: use postgresql://... or sqlite:///path"
        )
    return parsed.render_as_string(hide_password=False)


def _sqlite_loads(value: Any) -> Any:
    """SQLite gives a column declared JSON numeric affinity: a document that is a bare number
    (an invocation's input `3`) is stored, and read back, as that number, not as text."""
    if isinstance(value, int | float):
        return value
    return orjson.loads(value)


def sqlite_engine(url: str) -> Engine:
    engine = create_sync_engine(
        url,
        json_serializer=_dumps,
        json_deserializer=_sqlite_loads,
        pool_size=8,
        max_overflow=8,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when a transaction begins (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in sqlite.CONNECT_PRAGMAS:
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front (see `sqlite.IMMEDIATE`).
        conn.exec_driver_sql(
            sqlite.begin(conn.get_execution_options().get(sqlite.IMMEDIATE, False))
        )

    return engine


def lock_data_file(url: str) -> int:
    """Hold an exclusive lock beside the SQLite file for as long as the process uses it.

    The embedded store batches writes and caches committed state in its own process; a second
    iotas process writing the same file would make that cache wrong, so it is refused.
    """
    database = make_url(url).database
    if not database or database == ":memory:":
        raise InvalidInput("the embedded store needs a SQLite file, not an in-memory database")
    path = Path(database + ".lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise DataFileBusy(
            f"another iotas process is using {database}; stop it or use another --data-dir"
        ) from None
    return fd


class DataFileBusy(RuntimeError):
    pass


async def open_store(
    url: str, *, on_commit: Callable[[int], None], durability: str = "normal"
) -> Store:
    """Open, migrate and return the store for a URL from `database_url`. `durability` is
    `Settings.durability`; it sets SQLite's writer (PostgreSQL keeps its own settings)."""
    if url.startswith("sqlite"):
        lock = lock_data_file(url)
        try:
            engine = sqlite_engine(url)
            await asyncio.to_thread(migrate.upgrade_sync, engine)
        except BaseException:
            os.close(lock)
            raise
        return SqliteStore(engine, on_commit=on_commit, lock_fd=lock, durability=durability)
    async_engine = create_async_engine(
        url,
        json_serializer=_dumps,
        json_deserializer=orjson.loads,
        pool_size=10,
        max_overflow=10,
        pool_pre_ping=True,
    )
    await migrate.upgrade(async_engine)
    return PostgresStore(async_engine, on_commit=on_commit)
