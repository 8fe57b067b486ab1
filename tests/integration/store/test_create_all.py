"""Things created many at a time (`Registry.create_all`) are stored exactly as one at a
time, journaled one event each, on both backends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from iotas.domain.errors import Conflict
from iotas.domain.things import Thing
from iotas.runtime import Runtime
from iotas.services.context import Actor, Context
from iotas.store.schema import thing_fields, thing_links, things

CTX = Context(Actor("tester"), "test")


def _body(thing_id: str) -> dict[str, Any]:
    return {
        "id": thing_id,
        "kind": "pump",
        "attributes": {"site": "s-1", "depth": 2.5, "tags": ["a", "b"], "ok": True},
        "labels": {"tier": "edge"},
        "links": [{"rel": "hosted-by", "target": "acme:gw"}],
    }


def _stored(conn: Connection, thing_id: str) -> tuple[Any, ...]:
    row = conn.execute(select(things).where(things.c.id == thing_id)).one()._asdict()
    row.pop("id")
    for stamp in ("created_at", "updated_at"):
        row.pop(stamp)
    fields = conn.execute(
        select(thing_fields.c.path, thing_fields.c.value, thing_fields.c.num)
        .where(thing_fields.c.thing_id == thing_id)
        .order_by(thing_fields.c.path, thing_fields.c.value)
    ).all()
    links = conn.execute(
        select(thing_links.c.rel, thing_links.c.target).where(thing_links.c.thing_id == thing_id)
    ).all()
    return row, [tuple(f) for f in fields], [tuple(link) for link in links]


async def test_created_many_at_a_time_as_one_at_a_time(rt: Runtime) -> None:
    one = await rt.registry.create(CTX, _body("acme:one"))
    head = await rt.journal.head_seq()
    results = await rt.registry.create_all(
        CTX, [_body("acme:many-1"), _body("acme:one"), _body("acme:many-2")], page=1
    )
    assert isinstance(results[0], Thing) and isinstance(results[2], Thing)
    assert isinstance(results[1], Conflict)
    assert results[0].record() == one.record()
    assert await rt.journal.head_seq() == head + 2
    stored = await rt.store.read(
        lambda conn: [_stored(conn, i) for i in ("acme:one", "acme:many-1", "acme:many-2")]
    )
    assert stored[1] == stored[0] and stored[2] == stored[0]
    assert (await rt.registry.get("acme:many-2")).record() == results[2].record()
