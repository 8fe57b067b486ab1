"""The Thing Description Directory's reads and its registration rows.

A directory entry is a Thing with its registration (None for a native or adopted Thing);
a registration past its expiry is left out of every read here (lazily, before the sweep
deletes it), so pages, counts and searches agree.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, func, or_, select

from iotas.domain.registration import Registration
from iotas.domain.things import Thing
from iotas.store import dialects
from iotas.store.directory_schema import td_registrations as regs
from iotas.store.schema import things
from iotas.store.things_repo import _from_row

Entry = tuple[Thing, Registration | None]


def _live(now_us: int) -> ColumnElement[bool]:
    return or_(regs.c.expires_us.is_(None), regs.c.expires_us > now_us)


def _joined() -> Select[Any]:
    return select(
        things, regs.c.created_us, regs.c.modified_us, regs.c.expires_us, regs.c.ttl
    ).select_from(things.outerjoin(regs, regs.c.thing_id == things.c.id))


def _entries(now_us: int, namespaces: tuple[str, ...] | None) -> Select[Any]:
    query = _joined().where(_live(now_us))
    if namespaces is not None:
        query = query.where(things.c.namespace.in_(namespaces))
    return query


def _entry(row: Any) -> Entry:
    m = row._mapping
    if m["created_us"] is None:
        return _from_row(row), None
    return _from_row(row), Registration(
        created_us=m["created_us"],
        modified_us=m["modified_us"],
        expires_us=m["expires_us"],
        ttl=m["ttl"],
    )


def entry(conn: Connection, thing_id: str) -> Entry | None:
    """The Thing and its registration, expired or not (None if there is no such Thing)."""
    row = conn.execute(_joined().where(things.c.id == thing_id)).first()
    return None if row is None else _entry(row)


def page_by_offset(
    conn: Connection,
    offset: int,
    limit: int,
    now_us: int,
    namespaces: tuple[str, ...] | None = None,
) -> list[Entry]:
    query = _entries(now_us, namespaces).order_by(things.c.id).offset(offset).limit(limit)
    return [_entry(row) for row in conn.execute(query)]


def page_after(
    conn: Connection,
    after_id: str | None,
    limit: int,
    now_us: int,
    namespaces: tuple[str, ...] | None = None,
) -> list[Entry]:
    query = _entries(now_us, namespaces).order_by(things.c.id).limit(limit)
    if after_id is not None:
        query = query.where(things.c.id > after_id)
    return [_entry(row) for row in conn.execute(query)]


def count(conn: Connection, now_us: int, namespaces: tuple[str, ...] | None = None) -> int:
    query = (
        select(func.count())
        .select_from(things.outerjoin(regs, regs.c.thing_id == things.c.id))
        .where(_live(now_us))
    )
    if namespaces is not None:
        query = query.where(things.c.namespace.in_(namespaces))
    return int(conn.execute(query).scalar_one())


def get(conn: Connection, thing_id: str) -> Registration | None:
    row = conn.execute(select(regs).where(regs.c.thing_id == thing_id)).first()
    if row is None:
        return None
    return Registration(
        created_us=row.created_us,
        modified_us=row.modified_us,
        expires_us=row.expires_us,
        ttl=row.ttl,
    )


def put(conn: Connection, thing_id: str, registration: Registration) -> None:
    """Insert or replace the registration: one statement (an upsert on both backends)."""
    values = {
        "created_us": registration.created_us,
        "modified_us": registration.modified_us,
        "expires_us": registration.expires_us,
        "ttl": registration.ttl,
    }
    upsert = dialects.of(conn).upsert
    conn.execute(upsert(regs, {"thing_id": thing_id, **values}, [regs.c.thing_id], values))


def expired_ids(conn: Connection, now_us: int, limit: int) -> list[str]:
    """Up to `limit` Things whose registration expired at or before `now_us`, oldest first."""
    query = (
        select(regs.c.thing_id)
        .where(regs.c.expires_us <= now_us)
        .order_by(regs.c.expires_us)
        .limit(limit)
    )
    return [row[0] for row in conn.execute(query)]


def find_by_td_id(conn: Connection, td_id: str) -> Thing | None:
    """The Thing whose stored TD has this `id`, whatever the Thing's own id (an adopted Thing
    may have been given one). A scan of the JSON: the directory uses it only after the derived
    id (`thing_id_for_uri`) missed."""
    query = select(things).where(things.c.description["id"].as_string() == td_id).limit(1)
    row = conn.execute(query).first()
    return None if row is None else _from_row(row)
