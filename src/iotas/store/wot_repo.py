"""Reading and writing WoT bindings. Repositories never begin or commit."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update

from iotas.store.wot_schema import wot_bindings


@dataclass(frozen=True, slots=True)
class Binding:
    thing_id: str
    td_url: str | None
    poll_seconds: float
    sealed_secrets: str | None
    created_us: int
    updated_us: int


def get(conn: Connection, thing_id: str) -> Binding | None:
    row = conn.execute(select(wot_bindings).where(wot_bindings.c.thing_id == thing_id)).first()
    return None if row is None else Binding(**row._mapping)


def all_bindings(conn: Connection) -> list[Binding]:
    rows = conn.execute(select(wot_bindings).order_by(wot_bindings.c.thing_id))
    return [Binding(**row._mapping) for row in rows]


def upsert(conn: Connection, binding: Binding) -> None:
    values = {
        "td_url": binding.td_url,
        "poll_seconds": binding.poll_seconds,
        "sealed_secrets": binding.sealed_secrets,
        "updated_us": binding.updated_us,
    }
    done = conn.execute(
        update(wot_bindings).where(wot_bindings.c.thing_id == binding.thing_id).values(values)
    )
    if done.rowcount == 0:
        conn.execute(
            insert(wot_bindings).values(
                thing_id=binding.thing_id, created_us=binding.created_us, **values
            )
        )


def remove(conn: Connection, thing_id: str) -> bool:
    done = conn.execute(delete(wot_bindings).where(wot_bindings.c.thing_id == thing_id))
    return bool(done.rowcount)
