"""Snapshots: inserted once, read; never updated or deleted (there is no function for it)."""

from __future__ import annotations

from sqlalchemy import Connection, insert, select

from iotas.store.schema import snapshots


def insert_snapshot(
    conn: Connection, sha256: str, thing_id: str, created_us: int, body: str
) -> None:
    conn.execute(
        insert(snapshots).values(sha256=sha256, thing_id=thing_id, created_us=created_us, body=body)
    )


def get(conn: Connection, sha256: str) -> tuple[str, str] | None:
    """(thing_id, body) of a snapshot."""
    row = conn.execute(
        select(snapshots.c.thing_id, snapshots.c.body).where(snapshots.c.sha256 == sha256)
    ).first()
    return None if row is None else (row.thing_id, row.body)


def of_thing(conn: Connection, thing_id: str, limit: int) -> list[tuple[str, int]]:
    """(sha256, created_us) of the Thing's snapshots, newest first."""
    rows = conn.execute(
        select(snapshots.c.sha256, snapshots.c.created_us)
        .where(snapshots.c.thing_id == thing_id)
        .order_by(snapshots.c.created_us.desc())
        .limit(limit)
    )
    return [(r.sha256, r.created_us) for r in rows]
