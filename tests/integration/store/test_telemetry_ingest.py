"""Telemetry ingest, latest values and retention through the service, on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic import command
from sqlalchemy import Connection, Table, func, select, text

from iotas.aio import cancel_and_wait
from iotas.domain import clock
from iotas.domain.telemetry import DAY_US, Sample
from iotas.runtime import Runtime, open_runtime
from iotas.services.context import Actor, Context
from iotas.services.telemetry import TelemetryRetention, TelemetryService
from iotas.settings import Settings
from iotas.store import telemetry_repo
from iotas.store.engine import sqlite_engine
from iotas.store.migrate import alembic_config
from iotas.store.schema import telemetry, telemetry_staged
from iotas.store.store import Store, WriteTx

CTX = Context(Actor("tester"), "test")
T = TypeVar("T")
NOW = clock.now_us()


@pytest.fixture
async def rt(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(Settings(data_dir=tmp_path / "d", database_url=database_url))
    try:
        for name in ("a", "b", "c"):
            await runtime.registry.create(CTX, {"id": f"acme:{name}", "kind": "sensor"})
        yield runtime
    finally:
        await runtime.store.dispose()


class CountingStore(Store):
    """The real store, counting write transactions."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.dialect = inner.dialect
        self.writes = 0

    async def read(self, unit: Callable[[Connection], T]) -> T:
        return await self.inner.read(unit)

    async def write(self, unit: Callable[[WriteTx], T]) -> T:
        self.writes += 1
        return await self.inner.write(unit)

    async def write_aside(self, unit: Callable[[Connection], T]) -> T:
        return await self.inner.write_aside(unit)  # moving staged samples: not counted


def num(key: str, ts_us: int, value: float) -> Sample:
    return Sample(key, ts_us, value, None)


async def rows(
    rt: Runtime, thing_id: str | None = None, table: Table | None = None
) -> list[tuple[Any, ...]]:
    """Stored samples, in order: of `table`, or of both (staged and moved) by default."""
    tables = [telemetry, telemetry_staged] if table is None else [table]

    def read(conn: Connection) -> list[tuple[Any, ...]]:
        found = []
        for each in tables:
            query = select(each)
            if thing_id is not None:
                query = query.where(each.c.thing_id == thing_id)
            found += [tuple(row) for row in conn.execute(query)]
        return sorted(found, key=lambda row: (row[0], row[1], row[2]))

    return await rt.store.read(read)


async def test_ingest_stores_samples_latest_and_last_seen_and_drops_unknown_things(
    rt: Runtime,
) -> None:
    before = clock.now_us()
    result = await rt.telemetry.ingest(
        [
            ("acme:a", [num("temp", NOW - 2000, 20.0), Sample("state", NOW - 2000, None, '"ok"')]),
            ("acme:ghost", [num("temp", NOW, 1.0)] * 3),
            ("acme:a", [num("temp", NOW - 1000, 21.0)]),
            ("acme:b", []),
        ]
    )
    assert (result.stored, result.dropped, result.unknown) == (3, 3, frozenset({"acme:ghost"}))
    assert (rt.telemetry.stored_samples, rt.telemetry.dropped_samples) == (3, 3)
    assert await rows(rt) == [
        ("acme:a", "state", NOW - 2000, None, '"ok"'),
        ("acme:a", "temp", NOW - 2000, 20.0, None),
        ("acme:a", "temp", NOW - 1000, 21.0, None),
    ]
    assert await rt.telemetry.latest("acme:a") == {
        "state": (NOW - 2000, "ok"),
        "temp": (NOW - 1000, 21.0),
    }
    thing = await rt.registry.get("acme:a")
    assert thing.last_seen is not None
    assert before <= clock.parse_rfc3339(thing.last_seen) <= clock.now_us()
    assert (await rt.registry.get("acme:b")).last_seen is None


async def test_concurrent_ingests_all_land(rt: Runtime) -> None:
    calls = [
        rt.telemetry.ingest(
            [
                (f"acme:{name}", [num("k", NOW - 100_000 + i * 10 + j, float(i)) for j in range(5)])
                for name in ("a", "b", "c")
            ]
        )
        for i in range(30)
    ]
    results = await asyncio.gather(*calls)
    assert sum(r.stored for r in results) == 30 * 3 * 5
    assert len(await rows(rt)) == 450
    for name in ("a", "b", "c"):
        assert await rt.telemetry.latest(f"acme:{name}") == {"k": (NOW - 100_000 + 294, 29.0)}


@pytest.mark.parametrize("move", [False, True], ids=["staged", "moved"])
async def test_latest_only_moves_forward(rt: Runtime, move: bool) -> None:
    """The same answers whether the samples are staged or moved (SQLite), or a mix."""

    async def ingest(batch: list[tuple[str, list[Sample]]]) -> None:
        await rt.telemetry.ingest(batch)
        if move:
            await rt.telemetry.compact()

    await ingest([("acme:a", [num("temp", NOW, 5.0)])])
    # An older sample (a late backfill) is stored but does not replace it; of equal times
    # the last received wins.
    await ingest([("acme:a", [num("temp", NOW - 1, 4.0)])])
    assert await rt.telemetry.latest("acme:a") == {"temp": (NOW, 5.0)}
    await ingest([("acme:a", [num("temp", NOW, 6.0), num("temp", NOW - 2, 3.0)])])
    assert await rt.telemetry.latest("acme:a") == {"temp": (NOW, 6.0)}
    # Within one batch the newest wins, wherever it stands.
    await ingest(
        [("acme:a", [num("temp", NOW + 9, 9.0), num("temp", NOW + 1, 7.0)]), ("acme:b", [])]
    )
    assert await rt.telemetry.latest("acme:a") == {"temp": (NOW + 9, 9.0)}
    assert len(await rows(rt, "acme:a")) == 6
    # A key only staged so far is listed, and answered when no keys are asked for.
    await rt.telemetry.ingest([("acme:a", [num("hum", NOW, 50.0), num("hum", NOW, 51.0)])])
    assert await rt.telemetry.latest("acme:a") == {"temp": (NOW + 9, 9.0), "hum": (NOW, 51.0)}
    answer = await rt.telemetry.query("acme:a", None, from_us=NOW - 10, to_us=None)
    assert sorted(answer) == ["hum", "temp"] and len(answer["hum"].points) == 2
    await rt.telemetry.compact()
    assert await rt.telemetry.latest("acme:a") == {"temp": (NOW + 9, 9.0), "hum": (NOW, 51.0)}
    # Across moves too: a sample of the same time received later wins.
    await ingest([("acme:a", [num("hum", NOW, 52.0)])])
    assert (await rt.telemetry.latest("acme:a"))["hum"] == (NOW, 52.0)


async def test_samples_of_a_thing_deleted_meanwhile_are_dropped(rt: Runtime) -> None:
    await rt.registry.delete(CTX, "acme:c")
    result = await rt.telemetry.ingest([("acme:c", [num("x", NOW, 1.0)])])
    assert result.unknown == frozenset({"acme:c"}) and await rows(rt) == []


async def test_last_seen_never_moves_back_and_has_a_resolution(rt: Runtime) -> None:
    coarse = TelemetryService(rt.store, last_seen_resolution_us=3_600_000_000)
    await coarse.ingest([("acme:a", [num("x", NOW, 1.0)])])
    first = (await rt.registry.get("acme:a")).last_seen
    await coarse.ingest([("acme:a", [num("x", NOW, 2.0)])])
    assert (await rt.registry.get("acme:a")).last_seen == first  # within the resolution
    fine = TelemetryService(rt.store, last_seen_resolution_us=0)
    await fine.ingest([("acme:a", [num("x", NOW, 3.0)])])
    later = (await rt.registry.get("acme:a")).last_seen
    assert first is not None and later is not None and later > first
    # A Thing returned by a twin change (the embedded store answers from its cache) agrees.
    patched = await rt.registry.patch_twin(CTX, "acme:a", "reported", {"fw": "1"})
    assert patched.last_seen == later


async def test_retention_deletes_only_old_rows_in_bounded_batches(rt: Runtime) -> None:
    old = NOW - 31 * DAY_US
    await rt.telemetry.ingest(
        [
            ("acme:a", [num("t", old + i, float(i)) for i in range(23)]),
            ("acme:b", [num("t", NOW - 29 * DAY_US, 1.0), num("t", NOW, 2.0)]),
            ("acme:c", [num("u", old, 0.0)]),
        ]
    )
    store = CountingStore(rt.store)
    forever = TelemetryRetention(store, retention_days=0)
    assert await forever.run_once(NOW) == 0 and store.writes == 0

    retention = TelemetryRetention(store, retention_days=30, batch_size=5)
    assert await retention.run_once(NOW) == 24
    assert store.writes == 5  # 5 + 5 + 5 + 5 + 4: every batch bounded, the last one short
    assert await rows(rt) == [
        ("acme:b", "t", NOW - 29 * DAY_US, 1.0, None),
        ("acme:b", "t", NOW, 2.0, None),
    ]
    # Latest values outlive the history they came from.
    assert await rt.telemetry.latest("acme:c") == {"u": (old, 0.0)}
    assert await retention.run_once(NOW) == 0


async def test_delete_older_than_is_bounded(rt: Runtime) -> None:
    await rt.telemetry.ingest([("acme:a", [num("t", NOW - 1000 + i, 0.0) for i in range(10)])])
    await rt.telemetry.compact()  # retention deletes from the series index

    def count(conn: Connection) -> int:
        return int(conn.execute(select(func.count()).select_from(telemetry)).scalar_one())

    step = await rt.store.write(lambda tx: telemetry_repo.delete_older_than(tx.conn, NOW, 4))
    assert step.deleted == 4 and await rt.store.read(count) == 6
    assert not step.done and step.after is None  # the series may have more: start with it
    # The oldest go first, nothing at or after the cutoff.
    step = await rt.store.write(
        lambda tx: telemetry_repo.delete_older_than(tx.conn, NOW - 1000 + 8, 100)
    )
    assert step.deleted == 4 and await rt.store.read(count) == 2
    assert step.done and step.after == ("acme:a", "t")


async def test_retention_walks_series_in_bounded_steps(rt: Runtime) -> None:
    """Many series, few samples each: a step stops at `series_limit` series and the next
    goes on after the last one it finished."""
    old = NOW - 31 * DAY_US
    await rt.telemetry.ingest(
        [
            (f"acme:{name}", [num("o1", old, 0.0), num("o2", old, 0.0), num("n", NOW, 1.0)])
            for name in "abc"
        ]
    )
    await rt.telemetry.compact()
    # Series in order: a/n a/o1 a/o2 b/n | b/o1 b/o2 c/n c/o1 | c/o2
    step = await rt.store.write(
        lambda tx: telemetry_repo.delete_older_than(tx.conn, NOW - DAY_US, 100, None, 4)
    )
    assert (step.deleted, step.after, step.done) == (2, ("acme:b", "n"), False)
    step = await rt.store.write(
        lambda tx: telemetry_repo.delete_older_than(tx.conn, NOW - DAY_US, 100, step.after, 4)
    )
    assert (step.deleted, step.after, step.done) == (3, ("acme:c", "o1"), False)
    step = await rt.store.write(
        lambda tx: telemetry_repo.delete_older_than(tx.conn, NOW - DAY_US, 100, step.after, 4)
    )
    assert (step.deleted, step.done) == (1, True)
    assert sorted({row[1] for row in await rows(rt)}) == ["n"]


async def test_retention_loop_runs_until_cancelled(rt: Runtime) -> None:
    await rt.telemetry.ingest([("acme:a", [num("t", NOW - 40 * DAY_US, 0.0)])])
    task = asyncio.create_task(TelemetryRetention(rt.store).run(interval=3600))
    for _ in range(200):
        if not await rows(rt):
            break
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await rows(rt) == []


async def test_the_server_enforces_the_retention_setting(database_url: str, tmp_path: Path) -> None:
    """The app's lifespan runs retention with the configured period and interval."""
    from iotas.api.app import create_app

    settings = Settings(
        data_dir=tmp_path / "d",
        database_url=database_url,
        telemetry_retention_days=1,
        telemetry_retention_interval=0.05,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        runtime: Runtime = app.state.runtime
        await runtime.registry.create(CTX, {"id": "acme:a", "kind": "sensor"})
        now = clock.now_us()
        await runtime.telemetry.ingest(
            [("acme:a", [num("t", now - 2 * DAY_US, 1.0), num("t", now, 2.0)])]
        )
        for _ in range(400):
            if len(await rows(runtime)) == 1:
                break
            await asyncio.sleep(0.01)
        assert [row[2:4] for row in await rows(runtime)] == [(now, 2.0)]


async def test_samples_read_the_same_staged_moved_and_across_both(rt: Runtime) -> None:
    """On SQLite ingest stages samples and `compact` moves them into the series index;
    queries (raw, pages, buckets) answer the same wherever the samples are."""
    first = [num("t", NOW - 10_000 + i * 100, float(i)) for i in range(40)]
    later = [num("t", NOW - 10_000 + 50 + i * 100, float(100 + i)) for i in range(40)]

    async def answers() -> list[Any]:
        query = rt.telemetry.query
        start = NOW - 20_000
        return [
            await query("acme:a", ["t"], from_us=start, to_us=None),
            await query("acme:a", ["t"], from_us=start, to_us=None, limit=7),
            await query("acme:a", ["t"], from_us=start, to_us=None, bucket_us=1000, agg="avg"),
            await query("acme:a", ["t"], from_us=start, to_us=None, bucket_us=1000, agg="last"),
            await query("acme:a", ["t"], from_us=start, to_us=None, bucket_us=1000, agg="count"),
        ]

    await rt.telemetry.ingest([("acme:a", first)])
    sqlite = rt.store.dialect.stages_telemetry
    assert len(await rows(rt, table=telemetry_staged)) == (40 if sqlite else 0)
    staged_answers = await answers()
    assert rt.telemetry.counters()["staged_samples"] == (40 if sqlite else 0)
    assert await rt.telemetry.compact() == (40 if sqlite else 0)
    counters = rt.telemetry.counters()
    assert counters["stored_samples"] == 40 and counters["staged_samples"] == 0
    assert (counters["moves"], counters["moved_samples"]) == ((1, 40) if sqlite else (0, 0))
    assert (counters["last_move_ms"] is not None) == sqlite
    assert await rows(rt, table=telemetry_staged) == []
    assert len(await rows(rt, table=telemetry)) == 40
    assert await answers() == staged_answers
    # Half moved, half staged, interleaved in time: one ordered answer.
    await rt.telemetry.ingest([("acme:a", later)])
    mixed = (await rt.telemetry.query("acme:a", ["t"], from_us=NOW - 20_000, to_us=None))["t"]
    assert [ts for ts, _ in mixed.points] == sorted(s.ts_us for s in first + later)
    page = await rt.telemetry.query("acme:a", ["t"], from_us=NOW - 20_000, to_us=None, limit=5)
    assert page["t"].points == mixed.points[:5] and page["t"].resume_us == mixed.points[4][0] + 1
    mixed_answers = await answers()
    await rt.telemetry.compact()
    assert await answers() == mixed_answers
    assert len(await rows(rt)) == 80


async def test_staged_samples_move_once_enough_wait_or_the_time_passes(sqlite_rt: Runtime) -> None:
    rt = sqlite_rt
    rt.telemetry.stage_samples = 10
    mover = asyncio.create_task(rt.telemetry.run_compaction(interval=30.0))
    try:
        await rt.telemetry.ingest([("acme:a", [num("t", NOW - i, 0.0) for i in range(12)])])
        for _ in range(200):  # enough samples waited: moved long before the interval
            if not await rows(rt, table=telemetry_staged):
                break
            await asyncio.sleep(0.02)
        assert await rows(rt, table=telemetry_staged) == []
        assert len(await rows(rt)) == 12
    finally:
        await cancel_and_wait([mover])
    timed = asyncio.create_task(rt.telemetry.run_compaction(interval=0.05))
    try:
        await rt.telemetry.ingest([("acme:b", [num("t", NOW, 1.0)])])  # below the count
        for _ in range(200):
            if not await rows(rt, table=telemetry_staged):
                break
            await asyncio.sleep(0.02)
        assert await rows(rt, table=telemetry_staged) == []
        assert len(await rows(rt, table=telemetry)) == 13
    finally:
        await cancel_and_wait([timed])


class FailingMoves(CountingStore):
    """The real store, whose next `failures` moves of staged samples fail."""

    def __init__(self, inner: Store, failures: int) -> None:
        super().__init__(inner)
        self.failures = failures

    async def write_aside(self, unit: Callable[[Connection], T]) -> T:
        if self.failures:
            self.failures -= 1
            raise OSError("disk I/O error")
        return await self.inner.write_aside(unit)


@pytest.fixture
async def sqlite_rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime on SQLite only: the one place samples are staged and moved."""
    url = f"sqlite:///{tmp_path / 'iotas.db'}"
    runtime = await open_runtime(Settings(data_dir=tmp_path / "d", database_url=url))
    try:
        for name in ("a", "b"):
            await runtime.registry.create(CTX, {"id": f"acme:{name}", "kind": "sensor"})
        yield runtime
    finally:
        await runtime.store.dispose()


async def test_a_failed_move_is_tried_again_with_no_new_samples(sqlite_rt: Runtime) -> None:
    rt = sqlite_rt
    store = FailingMoves(rt.store, failures=1)
    service = TelemetryService(store)
    await service.ingest([("acme:a", [num("t", NOW, 1.0)])])
    with pytest.raises(OSError):
        await service.compact()
    assert len(await rows(rt, table=telemetry_staged)) == 1
    mover = asyncio.create_task(service.run_compaction(interval=0.05))
    try:
        for _ in range(200):
            if not await rows(rt, table=telemetry_staged):
                break
            await asyncio.sleep(0.02)
        assert await rows(rt, table=telemetry_staged) == []
        assert len(await rows(rt, table=telemetry)) == 1
        # And once more after a failure of the loop's own round, with nothing new to count.
        await service.ingest([("acme:a", [num("t", NOW + 1, 2.0)])])
        store.failures = 1
        for _ in range(200):
            if not await rows(rt, table=telemetry_staged):
                break
            await asyncio.sleep(0.02)
        assert await rows(rt, table=telemetry_staged) == [] and store.failures == 0
        assert await service.latest("acme:a") == {"t": (NOW + 1, 2.0)}
        counters = service.counters()
        assert counters["move_failures"] == 2 and counters["moved_samples"] == 2
    finally:
        await cancel_and_wait([mover])


async def test_downgrading_past_the_staging_table_keeps_staged_samples(tmp_path: Path) -> None:
    """SQLite only: the one place samples are staged."""
    url = f"sqlite:///{tmp_path / 'iotas.db'}"
    runtime = await open_runtime(Settings(data_dir=tmp_path / "d", database_url=url))
    try:
        await runtime.registry.create(CTX, {"id": "acme:a", "kind": "sensor"})
        await runtime.telemetry.ingest([("acme:a", [num("t", NOW, 1.0), num("u", NOW, 5.0)])])
        await runtime.telemetry.compact()
        await runtime.telemetry.ingest([("acme:a", [num("t", NOW + 1, 2.0), num("t", NOW, 3.0)])])
    finally:
        await runtime.store.dispose()
    engine = sqlite_engine(url)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0007")
            history = conn.execute(select(func.count()).select_from(telemetry)).scalar_one()
            latest = conn.execute(
                text("SELECT key, ts_us, num FROM telemetry_latest ORDER BY key")
            ).all()
    finally:
        engine.dispose()
    assert history == 4
    assert [tuple(row) for row in latest] == [("t", NOW + 1, 2.0), ("u", NOW, 5.0)]
