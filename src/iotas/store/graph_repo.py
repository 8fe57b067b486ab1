"""Reading the edge table: one hop at a time, in either direction, in bounded batches."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from iotas.store.schema import thing_links, things

# Bound parameters per IN list: well under SQLite's 32,766 and PostgreSQL's 65,535.
CHUNK = 5000


def hop(
    conn: Connection,
    ids: Sequence[str],
    *,
    outgoing: bool,
    rel: str | None,
    limit: int | None = None,
) -> list[tuple[str, str, str]]:
    """(source, rel, target) of the edges leaving (outgoing) or entering `ids`: every one, or
    the first `limit` in (source, rel, target) order, so a hub with a million edges costs
    what the caller can show, not a million rows."""
    side = thing_links.c.thing_id if outgoing else thing_links.c.target
    out: list[tuple[str, str, str]] = []
    for start in range(0, len(ids), CHUNK):
        query = select(thing_links.c.thing_id, thing_links.c.rel, thing_links.c.target).where(
            side.in_(ids[start : start + CHUNK])
        )
        if rel is not None:
            query = query.where(thing_links.c.rel == rel)
        if limit is not None:
            query = query.order_by(
                thing_links.c.thing_id, thing_links.c.rel, thing_links.c.target
            ).limit(limit - len(out))
        out.extend((r.thing_id, r.rel, r.target) for r in conn.execute(query))
        if limit is not None and len(out) >= limit:
            break
    return out


def kinds(conn: Connection, ids: Sequence[str]) -> dict[str, str]:
    """The kind of each of `ids` that exists."""
    found: dict[str, str] = {}
    for start in range(0, len(ids), CHUNK):
        query = select(things.c.id, things.c.kind).where(
            things.c.id.in_(ids[start : start + CHUNK])
        )
        found.update((r.id, r.kind) for r in conn.execute(query))
    return found
