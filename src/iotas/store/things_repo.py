"""Reading and writing Thing rows. Repositories never begin or commit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, delete, insert, select, update
from sqlalchemy.engine import Row

from iotas.domain import clock
from iotas.domain.links import edges
from iotas.domain.things import Thing
from iotas.domain.twin import Twin
from iotas.store import dialects
from iotas.store.schema import TWIN_COLUMNS, thing_fields, thing_links, things
from iotas.store.thing_fields import field_rows, replace_fields


def _from_row(row: Row[Any]) -> Thing:
    return _thing(row._mapping)


def _thing(m: Mapping[Any, Any]) -> Thing:
    """A Thing from its columns by name, JSON ones already decoded."""
    return Thing(
        id=m["id"],
        kind=m["kind"],
        attributes=m["attributes"],
        labels=m["labels"],
        links=m["links"],
        description=m["description"],
        revision=m["revision"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        connected=bool(m["connected"]),
        last_seen=None if m["last_seen_us"] is None else clock.to_rfc3339(m["last_seen_us"]),
        quarantine=m["quarantine"],
        twin=Twin(
            desired=m["desired"],
            reported=m["reported"],
            desired_meta=m["desired_meta"],
            reported_meta=m["reported_meta"],
            version=m["twin_version"],
            pending_since=m["pending_since"],
            drifted_since=m["drifted_since"],
        ),
    )


def _to_row(thing: Thing) -> dict[str, Any]:
    twin = thing.twin
    return {
        "id": thing.id,
        "namespace": thing.namespace,
        "kind": thing.kind,
        "attributes": thing.attributes,
        "labels": thing.labels,
        "links": thing.links,
        "description": thing.description,
        "desired": twin.desired,
        "reported": twin.reported,
        "desired_meta": twin.desired_meta,
        "reported_meta": twin.reported_meta,
        "twin_version": twin.version,
        "revision": thing.revision,
        "pending_since": twin.pending_since,
        "drifted_since": twin.drifted_since,
        "created_at": thing.created_at,
        "updated_at": thing.updated_at,
        "connected": thing.connected,
        "quarantine": thing.quarantine,
    }


# Built once: these run on every twin change, and building a statement costs more than
# executing a cached one.
_GET = select(things).where(things.c.id == bindparam("thing_id"))
_UPDATE_TWIN = (
    update(things)
    .where(things.c.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in TWIN_COLUMNS})
)


def get(conn: Connection, thing_id: str) -> Thing | None:
    direct = dialects.of(conn).get_thing
    if direct is not None:
        return direct(conn, thing_id)
    row = conn.execute(_GET, {"thing_id": thing_id}).first()
    return None if row is None else _from_row(row)


def get_many(conn: Connection, ids: list[str]) -> dict[str, Thing]:
    if not ids:
        return {}
    rows = conn.execute(select(things).where(things.c.id.in_(ids)))
    return {row.id: _from_row(row) for row in rows}


def insert_thing(conn: Connection, thing: Thing) -> None:
    conn.execute(insert(things).values(_to_row(thing)))
    replace_fields(conn, thing.id, thing.attributes, thing.labels, fresh=True)
    _replace_links(conn, thing, fresh=True)


def insert_new_things(conn: Connection, candidates: Sequence[Thing]) -> set[str]:
    """`insert_thing` for many Things, leaving out those whose id is taken: a statement per
    table, not per Thing (on PostgreSQL an executemany is still one execution per row on the
    server). Returns the ids inserted."""
    dialect = dialects.of(conn)
    inserted = dialect.insert_new(conn, things, [_to_row(thing) for thing in candidates])
    new = [t for t in candidates if t.id in inserted]
    fields = [r for t in new for r in field_rows(t.id, t.attributes, t.labels)]
    dialect.insert_rows(conn, thing_fields, fields)
    links = [
        {"thing_id": t.id, "rel": rel, "target": target}
        for t in new
        for rel, target in edges(t.links, t.description)
    ]
    dialect.insert_rows(conn, thing_links, links)
    return inserted


def _replace_links(conn: Connection, thing: Thing, *, fresh: bool = False) -> None:
    if not fresh:
        conn.execute(delete(thing_links).where(thing_links.c.thing_id == thing.id))
    rows = [
        {"thing_id": thing.id, "rel": rel, "target": target}
        for rel, target in edges(thing.links, thing.description)
    ]
    if rows:
        conn.execute(insert(thing_links), rows)


def update_thing(conn: Connection, before: Thing, after: Thing) -> None:
    row = _to_row(after)
    if (
        before.record() == after.record()
        and before.connected == after.connected
        and before.quarantine == after.quarantine
    ):
        direct = dialects.of(conn).update_twin
        if direct is not None:
            direct(conn, row)
            return
        conn.execute(_UPDATE_TWIN, {f"b_{name}": row[name] for name in ("id", *TWIN_COLUMNS)})
        return
    del row["id"]
    conn.execute(update(things).where(things.c.id == after.id).values(row))
    if before.attributes != after.attributes or before.labels != after.labels:
        replace_fields(conn, after.id, after.attributes, after.labels)
    if before.links != after.links or before.description != after.description:
        _replace_links(conn, after)


def delete_thing(conn: Connection, thing_id: str) -> None:
    # thing_fields rows go with it (ON DELETE CASCADE; every SQLite connection has foreign_keys=ON).
    conn.execute(delete(things).where(things.c.id == thing_id))


# One Thing heard from (a WoT read or write, a presence change): built once, not per call,
# where building the statement cost more than running it.
_TOUCH_ONE = (
    update(things)
    .where(things.c.id == bindparam("b_id"))
    .where((things.c.last_seen_us.is_(None)) | (things.c.last_seen_us < bindparam("b_seen")))
    .values(last_seen_us=bindparam("b_seen"))
)


def touch(conn: Connection, thing_ids: list[str], seen_us: int) -> None:
    """Move `last_seen` forward (never back) for the given Things."""
    if not thing_ids:
        return
    if len(thing_ids) == 1:
        conn.execute(_TOUCH_ONE, {"b_id": thing_ids[0], "b_seen": seen_us})
        return
    conn.execute(
        update(things)
        .where(things.c.id.in_(thing_ids))
        .where((things.c.last_seen_us.is_(None)) | (things.c.last_seen_us < seen_us))
        .values(last_seen_us=seen_us)
    )


def page(
    conn: Connection,
    where: ColumnElement[bool] | None,
    after_id: str | None,
    limit: int,
    namespaces: tuple[str, ...] | None = None,
) -> list[Thing]:
    query = select(things).order_by(things.c.id).limit(limit)
    if where is not None:
        query = query.where(where)
    if namespaces is not None:
        query = query.where(things.c.namespace.in_(namespaces))
    if after_id is not None:
        query = query.where(things.c.id > after_id)
    direct = dialects.of(conn).select_things
    if direct is not None:
        return direct(conn, query)
    return [_from_row(row) for row in conn.execute(query)]
