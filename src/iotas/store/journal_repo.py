"""Reading the journal. Appending happens only through `Store.write()`."""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, and_, or_, select

from iotas.domain.journal import CREDENTIAL_ADDED, THING, Event
from iotas.store.schema import journal, journal_head


def _public(body: str, digest: str) -> dict[str, Any]:
    doc: dict[str, Any] = orjson.loads(body)
    doc["hash"] = digest
    return doc


def _of_thing(thing_id: str) -> ColumnElement[bool]:
    return and_(journal.c.kind == THING, journal.c.record_id == thing_id)


def after(
    conn: Connection,
    seq: int,
    limit: int,
    types: list[str] | None = None,
    namespaces: tuple[str, ...] | None = None,
    kinds: Collection[str] | None = (THING,),
) -> list[dict[str, Any]]:
    """Events after `seq`, of these kinds of record (all if None). Entries of other kinds
    than Things belong to no namespace: a reader limited to namespaces never sees them."""
    query = (
        select(journal.c.body, journal.c.hash)
        .where(journal.c.seq > seq)
        .order_by(journal.c.seq)
        .limit(limit)
    )
    if types:
        query = query.where(journal.c.type.in_(types))
    if kinds is not None:
        query = query.where(journal.c.kind.in_(kinds))
    if namespaces is not None:
        query = query.where(
            journal.c.kind == THING,
            or_(*(journal.c.record_id.startswith(f"{ns}:", autoescape=True) for ns in namespaces)),
        )
    return [_public(row.body, row.hash) for row in conn.execute(query)]


def of_thing(
    conn: Connection,
    thing_id: str,
    *,
    after_seq: int,
    since_us: int | None,
    until_us: int | None,
    limit: int,
) -> list[dict[str, Any]]:
    query = (
        select(journal.c.body, journal.c.hash)
        .where(_of_thing(thing_id), journal.c.seq > after_seq)
        .order_by(journal.c.seq)
        .limit(limit)
    )
    if since_us is not None:
        query = query.where(journal.c.ts_us >= since_us)
    if until_us is not None:
        query = query.where(journal.c.ts_us <= until_us)
    return [_public(row.body, row.hash) for row in conn.execute(query)]


def events_until(conn: Connection, thing_id: str, at_us: int) -> list[Event]:
    """Every event of the Thing up to and including the instant, in order, for a fold."""
    query = (
        select(journal.c.body)
        .where(_of_thing(thing_id), journal.c.ts_us <= at_us)
        .order_by(journal.c.seq)
    )
    return [Event.from_canonical(row.body) for row in conn.execute(query)]


def was_replaced(conn: Connection, thing_id: str, credential_id: str) -> bool:
    """Whether a renewal of the Thing replaced this credential (a `credential_added` event
    naming it in `replaces`). Renewals are rare; the Thing's index narrows the scan."""
    needle = f'%"replaces":"{credential_id}"%'
    query = (
        select(journal.c.seq)
        .where(
            _of_thing(thing_id),
            journal.c.type == CREDENTIAL_ADDED,
            journal.c.body.like(needle, escape="\\"),
        )
        .limit(1)
    )
    return conn.execute(query).first() is not None


def has_event(conn: Connection, thing_id: str, type_: str, since_us: int) -> bool:
    """Whether the Thing has an event of this type since the instant (its creation, say)."""
    query = (
        select(journal.c.seq)
        .where(_of_thing(thing_id), journal.c.type == type_, journal.c.ts_us >= since_us)
        .limit(1)
    )
    return conn.execute(query).first() is not None


def head(conn: Connection) -> tuple[int, str]:
    row = (conn.execute(select(journal_head.c.seq, journal_head.c.hash))).one()
    return row.seq, row.hash


def head_row(conn: Connection) -> tuple[int, str, int]:
    row = conn.execute(select(journal_head.c.seq, journal_head.c.hash, journal_head.c.ts_us)).one()
    return row.seq, row.hash, row.ts_us


def scan(
    conn: Connection, *, up_to: int | None = None, batch: int = 5000
) -> Iterator[tuple[int, str, str, str, str, str]]:
    """Every row (up to seq `up_to`) as (seq, kind, record_id, type, body, hash), in seq
    order, a batch at a time."""
    last = -1
    while True:
        rows = (
            conn.execute(
                select(
                    journal.c.seq,
                    journal.c.kind,
                    journal.c.record_id,
                    journal.c.type,
                    journal.c.body,
                    journal.c.hash,
                )
                .where(journal.c.seq > last)
                .where(journal.c.seq <= (up_to if up_to is not None else 2**62))
                .order_by(journal.c.seq)
                .limit(batch)
            )
        ).all()
        if not rows:
            return
        for row in rows:
            yield row.seq, row.kind, row.record_id, row.type, row.body, row.hash
        last = rows[-1].seq
