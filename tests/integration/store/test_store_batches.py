"""The store under concurrency: batches, failing units, the embedded cache, the file lock."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from iotas.domain import journal as ev
from iotas.domain.errors import Conflict, NotFound, PreconditionFailed
from iotas.runtime import Runtime
from iotas.services.context import Actor, Context
from iotas.store import store as store_module
from iotas.store.engine import DataFileBusy, database_url, open_store
from iotas.store.store import PostgresStore, SqliteStore, WriteTx

CTX = Context(Actor("tester"), "test")


async def _journal(rt: Runtime) -> list[dict[str, Any]]:
    return await rt.journal.feed(0, 1000)


async def test_concurrent_patches_to_one_thing_all_land_in_order(rt: Runtime) -> None:
    await rt.registry.create(CTX, {"id": "acme:p", "kind": "pump"})
    await asyncio.gather(
        *(rt.registry.patch_twin(CTX, "acme:p", "reported", {f"k{i}": i}) for i in range(50))
    )
    thing = await rt.registry.get("acme:p")
    assert thing.twin.reported == {f"k{i}": i for i in range(50)}
    assert thing.twin.version == 50 and thing.revision == 51
    events = await _journal(rt)
    assert [e["seq"] for e in events] == list(range(1, 52))
    assert (await rt.journal.verify()).ok


async def test_a_failing_unit_in_a_batch_leaves_nothing_behind(rt: Runtime) -> None:
    await rt.registry.create(CTX, {"id": "acme:p", "kind": "pump"})
    calls = [
        rt.registry.patch_twin(CTX, "acme:p", "desired", {"a": 1}),
        rt.registry.patch_twin(CTX, "acme:p", "desired", {"b": 2}, if_match={0}),  # stale
        rt.registry.create(CTX, {"id": "acme:p", "kind": "pump"}),  # exists
        rt.registry.patch_twin(CTX, "acme:missing", "desired", {"c": 3}),
        rt.registry.patch_twin(CTX, "acme:p", "desired", {"d": 4}),
    ]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert isinstance(results[1], PreconditionFailed)
    assert isinstance(results[2], Conflict)
    assert isinstance(results[3], NotFound)
    thing = await rt.registry.get("acme:p")
    assert thing.twin.desired == {"a": 1, "d": 4} and thing.twin.version == 2
    assert [e["type"] for e in await _journal(rt)] == [
        ev.THING_CREATED,
        ev.DESIRED_CHANGED,
        ev.DESIRED_CHANGED,
    ]
    assert (await rt.journal.verify()).ok


async def test_a_unit_that_fails_after_writing_is_rolled_back(rt: Runtime) -> None:
    await rt.registry.create(CTX, {"id": "acme:p", "kind": "pump"})

    def half_done(tx: WriteTx) -> None:
        tx.record("acme:p", ev.DESIRED_CHANGED, actor="x", cause=None, patch={"z": 1})
        tx.conn.exec_driver_sql("DELETE FROM things")
        raise RuntimeError("boom")

    _ok, boom = await asyncio.gather(
        rt.registry.patch_twin(CTX, "acme:p", "desired", {"a": 1}),
        rt.store.write(half_done),
        return_exceptions=True,
    )
    assert isinstance(boom, RuntimeError)
    assert (await rt.registry.get("acme:p")).twin.desired == {"a": 1}
    assert len(await _journal(rt)) == 2
    assert (await rt.journal.verify()).ok


async def test_delete_and_recreate_in_one_batch(rt: Runtime) -> None:
    await rt.registry.create(CTX, {"id": "acme:p", "kind": "pump", "attributes": {"v": 1}})
    calls = [
        rt.registry.delete(CTX, "acme:p"),
        rt.registry.create(CTX, {"id": "acme:p", "kind": "valve"}),
        rt.registry.patch(CTX, "acme:p", {"attributes": {"v": 2}}),
    ]
    if isinstance(rt.store, SqliteStore):
        # Submitted together, they share one batch and run in submission order.
        await asyncio.gather(*calls)
    else:
        # Concurrent PostgreSQL transactions have no defined order; the sequence is the point.
        for call in calls:
            await call
    thing = await rt.registry.get("acme:p")
    assert thing.kind == "valve" and thing.attributes == {"v": 2} and thing.revision == 2
    assert (await rt.journal.verify()).ok


async def test_a_second_process_cannot_open_the_embedded_file(tmp_path: Path) -> None:
    url = database_url(None, tmp_path)
    first = await open_store(url, on_commit=lambda _seq, _types: None)
    try:
        with pytest.raises(DataFileBusy, match="another iotas process"):
            await open_store(url, on_commit=lambda _seq, _types: None)
    finally:
        await first.dispose()
    again = await open_store(url, on_commit=lambda _seq, _types: None)
    await again.dispose()


async def test_writes_wait_for_a_write_aside_and_the_loop_does_not(tmp_path: Path) -> None:
    """A `write_aside` unit has the writer to itself on its own thread: writes queue behind
    it and land after it, the event loop runs meanwhile, and a caller that gives up does not
    free the writer while the unit still runs."""
    store = await open_store(database_url(None, tmp_path), on_commit=lambda _seq, _types: None)
    started, release = threading.Event(), threading.Event()

    def slow(conn: Connection) -> int:
        started.set()
        assert release.wait(10)
        conn.exec_driver_sql(
            "INSERT INTO telemetry_staged (thing_id, key, ts_us, num) VALUES ('a', 'k', 1, 1.0)"
        )
        return 7

    def staged(conn: Connection) -> int:
        return int(conn.exec_driver_sql("SELECT count(*) FROM telemetry_staged").scalar_one())

    try:
        aside = asyncio.create_task(store.write_aside(slow))
        assert await asyncio.to_thread(started.wait, 10)
        # The loop runs while the unit holds the writer: were the unit on the loop's thread,
        # nothing here would run, `release` would never be set, and the unit would fail.
        write = asyncio.create_task(store.write(lambda tx: staged(tx.conn)))
        await asyncio.sleep(0.05)
        assert not write.done()
        aside.cancel()
        await asyncio.sleep(0.05)
        assert not write.done()  # still behind the unit, which runs on
        release.set()
        assert await asyncio.wait_for(write, 10) == 1  # it saw the unit's committed row
        with pytest.raises(asyncio.CancelledError):
            await aside
        assert await store.write_aside(staged) == 1
    finally:
        release.set()
        await store.dispose()


async def test_a_failing_write_aside_undoes_itself_and_writes_go_on(tmp_path: Path) -> None:
    store = await open_store(database_url(None, tmp_path), on_commit=lambda _seq, _types: None)
    started, release = threading.Event(), threading.Event()

    def failing(conn: Connection) -> None:
        conn.exec_driver_sql(
            "INSERT INTO telemetry_staged (thing_id, key, ts_us, num) VALUES ('a', 'k', 1, 1.0)"
        )
        started.set()
        assert release.wait(10)
        raise OSError("disk I/O error")

    def staged(conn: Connection) -> int:
        return int(conn.exec_driver_sql("SELECT count(*) FROM telemetry_staged").scalar_one())

    try:
        aside = asyncio.create_task(store.write_aside(failing))
        assert await asyncio.to_thread(started.wait, 10)
        write = asyncio.create_task(store.write(lambda tx: staged(tx.conn)))
        release.set()
        with pytest.raises(OSError, match="disk I/O error"):
            await aside
        assert await asyncio.wait_for(write, 10) == 0  # queued behind it, ran after the rollback
        assert await store.write_aside(staged) == 0  # the writer is usable again
    finally:
        release.set()
        await store.dispose()


_KILL_OTHERS = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_postgres_writer_outlives_its_connection(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer keeps its connection between batches (decision 59): after a pause it takes
    a pinged one, and a connection lost under it costs at most the batch that found it."""
    assert isinstance(rt.store, PostgresStore)
    await rt.registry.create(CTX, {"id": "acme:p", "kind": "pump"})

    async def kill_the_writers_connection() -> None:
        killed = await rt.store.read(lambda conn: conn.execute(_KILL_OTHERS).scalar_one())
        assert killed >= 1

    monkeypatch.setattr(store_module, "WRITER_IDLE_S", 0.0)  # every batch comes after a pause
    await kill_the_writers_connection()
    await rt.registry.patch_twin(CTX, "acme:p", "reported", {"a": 1})  # no failure at all

    monkeypatch.setattr(store_module, "WRITER_IDLE_S", 3600.0)  # no pause: the same connection
    await rt.registry.patch_twin(CTX, "acme:p", "reported", {"b": 2})
    await kill_the_writers_connection()
    with contextlib.suppress(DBAPIError):  # the batch that finds it lost may fail
        await rt.registry.patch_twin(CTX, "acme:p", "reported", {"c": 3})
    await rt.registry.patch_twin(CTX, "acme:p", "reported", {"d": 4})

    thing = await rt.registry.get("acme:p")
    assert {"a": 1, "b": 2, "d": 4}.items() <= thing.twin.reported.items()
    assert (await rt.journal.verify()).ok
