"""Migration 0009 on a database written before it: which Things it takes as registered
through the directory (decision 45); on both backends."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import Connection, select

from iotas.domain import clock
from iotas.runtime import open_runtime
from iotas.services.context import Actor, Context
from iotas.settings import Settings
from iotas.store import engine, migrate
from iotas.store.directory_schema import td_registrations
from iotas.store.store import WriteTx
from iotas.store.wot_schema import wot_bindings
from support import in_transaction

CTX = Context(Actor("tester"), "test")
FORMS = {"properties": {"on": {"type": "boolean", "forms": [{"href": "http://lamp/on"}]}}}


def td(td_id: str, **more: object) -> dict[str, object]:
    return {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": td_id,
        "title": td_id,
        "securityDefinitions": {"n": {"scheme": "nosec"}},
        "security": "n",
        **more,
    }


def _downgrade(conn: Connection) -> None:
    command.downgrade(migrate.alembic_config(conn), "0008")


async def test_0009_takes_directory_tds_as_registered(database_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", database_url=database_url)
    rt = await open_runtime(settings)
    try:
        # As the directory stored them before 0009: a urn TD without forms (its Thing id
        # derived), a TD with forms under a Thing id; then a native Thing with a model, a
        # native Thing with no description, and an adopted Thing.
        await rt.registry.put_description(
            CTX, "wot:bare-0123456789", td("urn:example:bare"), kind="thing"
        )
        await rt.registry.put_description(CTX, "acme:lamp-1", td("acme:lamp-1", **FORMS), kind="t")
        await rt.registry.create(
            CTX, {"id": "acme:pump-1", "kind": "pump", "description": {"@type": "saref:Pump"}}
        )
        await rt.registry.create(CTX, {"id": "acme:pump-2", "kind": "pump"})
        await rt.registry.put_description(
            CTX, "acme:thermo-1", td("urn:example:thermo", **FORMS), kind="t"
        )
        now = clock.now_us()

        def bind(tx: WriteTx) -> None:
            tx.conn.execute(
                wot_bindings.insert().values(
                    thing_id="acme:thermo-1", poll_seconds=30.0, created_us=now, updated_us=now
                )
            )

        await rt.store.write(bind)
        created = {
            t.id: clock.parse_rfc3339(t.created_at)
            for t in await rt.registry.select(None, limit=10, after_id=None)
        }
    finally:
        await rt.store.dispose()

    url = engine.database_url(database_url, settings.data_dir)
    await in_transaction(url, _downgrade)
    rt = await open_runtime(settings)  # migrates to the head again: 0009 runs
    try:
        rows = await rt.store.read(lambda conn: conn.execute(select(td_registrations)).all())
    finally:
        await rt.store.dispose()
    registered = {row.thing_id: row for row in rows}
    assert set(registered) == {"wot:bare-0123456789", "acme:lamp-1"}
    for thing_id, row in registered.items():
        assert row.created_us == created[thing_id] and row.expires_us is None
