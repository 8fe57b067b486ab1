"""Reading and writing WoT bindings. Repositories never begin or commit."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from iotas.store.wot_schema import wot_bindings


@dataclass(frozen=True, slots=True)
class Binding:
    thing_id: str
    td_url: str | None
    poll_seconds: float
    sealed_secrets: str | None
    created_us: int
    updated_us: int


# Built once: an adoption runs them in its write transaction (thousands in a row when a
# fleet is adopted), where building a statement cost more than running it.
_GET = select(wot_bindings).where(wot_bindings.c.thing_id == bindparam("b_thing_id"))
_FIELDS = ("td_url", "poll_seconds", "sealed_secrets", "updated_us")
_UPDATE = (
    update(wot_bindings)
    .where(wot_bindings.c.thing_id == bindparam("b_thing_id"))
    .values({name: bindparam(f"b_{name}") for name in _FIELDS})
)
_INSERT = insert(wot_bindings)


def get(conn: Connection, thing_id: str) -> Binding | None:
    row = conn.execute(_GET, {"b_thing_id": thing_id}).first()
    return None if row is None else Binding(**row._mapping)


def all_bindings(conn: Connection) -> list[Binding]:
    rows = conn.execute(select(wot_bindings).order_by(wot_bindings.c.thing_id))
    return [Binding(**row._mapping) for row in rows]


def upsert(conn: Connection, binding: Binding, *, fresh: bool = False) -> None:
    """Insert or update the binding; `fresh`: its Thing was created in this transaction, so
    there is none to update (bindings go with their Thing)."""
    if not fresh:
        done = conn.execute(
            _UPDATE,
            {"b_thing_id": binding.thing_id, **{f"b_{n}": getattr(binding, n) for n in _FIELDS}},
        )
        if done.rowcount:
            return
    conn.execute(
        _INSERT,
        {
            "thing_id": binding.thing_id,
            "created_us": binding.created_us,
            **{name: getattr(binding, name) for name in _FIELDS},
        },
    )


def remove(conn: Connection, thing_id: str) -> bool:
    done = conn.execute(delete(wot_bindings).where(wot_bindings.c.thing_id == thing_id))
    return bool(done.rowcount)
