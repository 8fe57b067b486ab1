"""What an acknowledged write survives on SQLite (`Settings.durability`), and checkpoints
that run beside the writer instead of inside its commits."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import Connection

from iotas.runtime.node import open_runtime
from iotas.services.context import Actor, Context
from iotas.settings import Settings
from iotas.store.dialects.sqlite import sqlite_connection

CTX = Context(Actor("tester"), "test")


def _synchronous(conn: Connection) -> int:
    return int(sqlite_connection(conn).execute("PRAGMA synchronous").fetchone()[0])


@pytest.mark.parametrize(("durability", "level"), [("normal", 1), ("full", 2)])
async def test_the_durability_setting_reaches_the_writer_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durability: str, level: int
) -> None:
    """From the environment, as `iotas up` reads it, to the connection that commits."""
    monkeypatch.setenv("IOTAS_DURABILITY", durability.upper())
    settings = Settings.from_env(data_dir=tmp_path)
    assert settings.durability == durability
    rt = await open_runtime(settings)
    try:
        await rt.registry.create(CTX, {"id": "acme:d", "kind": "pump"})
        assert await rt.store.write_aside(_synchronous) == level  # the writer's connection
    finally:
        await rt.store.dispose()


def test_an_unknown_durability_is_refused() -> None:
    with pytest.raises(ValueError, match="durability must be one of normal, full"):
        Settings(durability="fsync")


async def test_commits_reach_the_database_file_through_the_checkpoint_thread(
    tmp_path: Path,
) -> None:
    """The writer's own autocheckpoint is far away (100,000 pages); the store's checkpoint
    thread copies the WAL into the file within about a second of the commits."""
    settings = Settings(data_dir=tmp_path)
    rt = await open_runtime(settings)

    def head_in_file() -> int:
        # immutable=1: the main file alone, as if there were no WAL.
        uri = f"file:{settings.sqlite_path}?immutable=1"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
            try:
                return int(conn.execute("SELECT seq FROM journal_head").fetchone()[0])
            except sqlite3.OperationalError:  # not even the schema is in the file yet
                return -1

    try:
        for i in range(5):
            await rt.registry.create(CTX, {"id": f"acme:c{i}", "kind": "pump"})
        head = await rt.journal.head_seq()
        deadline = time.monotonic() + 10
        while head_in_file() < head:
            assert time.monotonic() < deadline, "the WAL was not checkpointed within 10 s"
            await asyncio.sleep(0.05)
    finally:
        await rt.store.dispose()
