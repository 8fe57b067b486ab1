"""Reading and writing Thing rows. Repositories never begin or commit."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, delete, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from iotas.domain.things import Thing
from iotas.domain.twin import Twin
from iotas.store.schema import things
from iotas.store.thing_fields import replace_fields


def _from_row(row: Row[Any]) -> Thing:
    m = row._mapping
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
        twin=Twin(
            desired=m["desired"],
            reported=m["reported"],
            desired_meta=m["desired_meta"],
            reported_meta=m["reported_meta"],
            version=m["twin_version"],
            pending_since=m["pending_since"],
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
        "created_at": thing.created_at,
        "updated_at": thing.updated_at,
    }


async def get(conn: AsyncConnection, thing_id: str) -> Thing | None:
    row = (await conn.execute(select(things).where(things.c.id == thing_id))).first()
    return None if row is None else _from_row(row)


async def get_many(conn: AsyncConnection, ids: list[str]) -> dict[str, Thing]:
    if not ids:
        return {}
    rows = await conn.execute(select(things).where(things.c.id.in_(ids)))
    return {row.id: _from_row(row) for row in rows}


async def insert_thing(conn: AsyncConnection, thing: Thing) -> None:
    await conn.execute(insert(things).values(_to_row(thing)))
    await replace_fields(conn, thing.id, thing.attributes, thing.labels)


async def update_thing(conn: AsyncConnection, before: Thing, after: Thing) -> None:
    row = _to_row(after)
    del row["id"]
    await conn.execute(update(things).where(things.c.id == after.id).values(row))
    if before.attributes != after.attributes or before.labels != after.labels:
        await replace_fields(conn, after.id, after.attributes, after.labels)


async def delete_thing(conn: AsyncConnection, thing_id: str) -> None:
    # thing_fields rows go with it (ON DELETE CASCADE; SQLite has foreign_keys=ON).
    await conn.execute(delete(things).where(things.c.id == thing_id))


async def page(
    conn: AsyncConnection, where: ColumnElement[bool] | None, after_id: str | None, limit: int
) -> list[Thing]:
    query = select(things).order_by(things.c.id).limit(limit)
    if where is not None:
        query = query.where(where)
    if after_id is not None:
        query = query.where(things.c.id > after_id)
    return [_from_row(row) for row in await conn.execute(query)]
