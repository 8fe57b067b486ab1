"""The Thing Description Directory's reads: pages by offset, as WoT Discovery defines them."""

from __future__ import annotations

from sqlalchemy import Connection, func, select

from iotas.domain.things import Thing
from iotas.store.schema import things
from iotas.store.things_repo import _from_row


def page_by_offset(
    conn: Connection, offset: int, limit: int, namespaces: tuple[str, ...] | None = None
) -> list[Thing]:
    query = select(things).order_by(things.c.id).offset(offset).limit(limit)
    if namespaces is not None:
        query = query.where(things.c.namespace.in_(namespaces))
    return [_from_row(row) for row in conn.execute(query)]


def count(conn: Connection, namespaces: tuple[str, ...] | None = None) -> int:
    query = select(func.count()).select_from(things)
    if namespaces is not None:
        query = query.where(things.c.namespace.in_(namespaces))
    return int(conn.execute(query).scalar_one())


def find_by_td_id(conn: Connection, td_id: str) -> Thing | None:
    """The Thing whose stored TD has this `id`, whatever the Thing's own id (an adopted Thing
    may have been given one). A scan of the JSON: the directory uses it only after the derived
    id (`thing_id_for_uri`) missed."""
    query = select(things).where(things.c.description["id"].as_string() == td_id).limit(1)
    row = conn.execute(query).first()
    return None if row is None else _from_row(row)
