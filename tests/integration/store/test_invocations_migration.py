"""Migration 0011 (invocations) goes down and up again on both backends; the journal's
invocation entries stay in the chain either way."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import Connection, inspect

from iotas.runtime import open_runtime
from iotas.services.context import Actor, Context
from iotas.settings import Settings
from iotas.store import engine, migrate
from support import in_transaction

CTX = Context(Actor("tester"), "test")


def _down_to_0010(conn: Connection) -> None:
    command.downgrade(migrate.alembic_config(conn), "0010")
    assert "invocations" not in inspect(conn).get_table_names()


async def test_0011_goes_down_and_up_again(database_url: str, tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", database_url=database_url)
    rt = await open_runtime(settings)
    try:
        model: dict[str, object] = {"actions": {"reboot": {}}}
        await rt.registry.create(CTX, {"id": "acme:a", "kind": "pump", "description": model})
        made = await rt.invocations.create(CTX, "acme:a", "reboot", None)
        assert (await rt.invocations.get(made.id)).id == made.id
    finally:
        await rt.store.dispose()

    await in_transaction(engine.database_url(database_url, settings.data_dir), _down_to_0010)
    rt = await open_runtime(settings)  # 0011 runs again
    try:
        assert await rt.invocations.list() == []
        verified = await rt.journal.verify()
        assert (verified.ok, verified.checked) == (True, 2), verified
        again = await rt.invocations.create(CTX, "acme:a", "reboot", None)
        assert [i.id for i in await rt.invocations.pending("acme:a")] == [again.id]
    finally:
        await rt.store.dispose()
