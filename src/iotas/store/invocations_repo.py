"""Invocations: rows of the `invocations` table as `domain.invocations.Invocation`. Input
and output are any JSON value, kept as JSON text (schema.py says why)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, false, func, insert, or_, select, update

from iotas.domain.invocations import OPEN, PENDING, Invocation, Status
from iotas.store.schema import invocations

_T = invocations.c
_PENDING = [s.value for s in PENDING]
_OPEN = [s.value for s in OPEN]
# `status IN (...)` as ORs of fixed parameters: an IN list is expanded at every execution.
_IS_PENDING = or_(*(_T.status == status for status in _PENDING))
_IS_OPEN = or_(*(_T.status == status for status in _OPEN))
_CHANGING = ("status", "updated_us", "delivered_us", "output", "error", "progress", "attempts")

# Built once: these run for every invocation, and building a statement costs more than
# executing a cached one.
_INSERT = insert(invocations)
_SAVE = (
    update(invocations)
    .where(_T.id == bindparam("b_id"))
    .values({name: bindparam(f"b_{name}") for name in _CHANGING})
)
_GET = select(invocations).where(_T.id == bindparam("id"))
_MANY = select(invocations).where(_T.id.in_(bindparam("ids", expanding=True)))
_OPEN_COUNT = (
    select(func.count())
    .select_from(invocations)
    .where(_T.thing_id == bindparam("thing_id"), _IS_OPEN)
)
# The expiry is checked on the rows (at most the queue bound of them), not in SQL: with it
# in the WHERE clause SQLite searched the fleet-wide (status, expires_us) index instead of
# the Thing's.
_PENDING_OF = (
    select(invocations).where(_T.thing_id == bindparam("thing_id"), _IS_PENDING).order_by(_T.id)
)


def _row(row: Any) -> Invocation:
    return Invocation(
        id=row.id,
        thing_id=row.thing_id,
        action=row.action,
        input=orjson.loads(row.input),
        status=Status(row.status),
        created_us=int(row.created_us),
        updated_us=int(row.updated_us),
        expires_us=int(row.expires_us),
        actor=row.actor,
        delivered_us=row.delivered_us,
        output=None if row.output is None else orjson.loads(row.output),
        error=row.error,
        progress=row.progress,
        idempotency_key=row.idempotency_key,
        rollout_id=row.rollout_id,
        attempts=int(row.attempts),
    )


def _values(inv: Invocation) -> dict[str, Any]:
    return {
        "id": inv.id,
        "thing_id": inv.thing_id,
        "action": inv.action,
        "input": orjson.dumps(inv.input).decode(),
        "status": inv.status.value,
        "created_us": inv.created_us,
        "updated_us": inv.updated_us,
        "expires_us": inv.expires_us,
        "delivered_us": inv.delivered_us,
        "output": None if inv.output is None else orjson.dumps(inv.output).decode(),
        "error": inv.error,
        "progress": inv.progress,
        "idempotency_key": inv.idempotency_key,
        "rollout_id": inv.rollout_id,
        "attempts": inv.attempts,
        "actor": inv.actor,
    }


def add(conn: Connection, inv: Invocation) -> None:
    conn.execute(_INSERT, _values(inv))


def save(conn: Connection, inv: Invocation) -> None:
    """Write what can change after creation."""
    values = _values(inv)
    conn.execute(_SAVE, {"b_id": inv.id, **{f"b_{k}": values[k] for k in _CHANGING}})


def get(conn: Connection, invocation_id: str) -> Invocation | None:
    row = conn.execute(_GET, {"id": invocation_id}).first()
    return None if row is None else _row(row)


def many(conn: Connection, ids: Sequence[str]) -> dict[str, Invocation]:
    out: dict[str, Invocation] = {}
    for start in range(0, len(ids), 500):
        rows = conn.execute(_MANY, {"ids": list(ids[start : start + 500])})
        out.update((row.id, _row(row)) for row in rows)
    return out


def listed(
    conn: Connection,
    *,
    thing_id: str | None,
    statuses: Sequence[Status] | None,
    rollout_id: str | None,
    namespaces: Sequence[str] | None,
    limit: int,
    after: str | None,
) -> list[Invocation]:
    """Invocations in id (creation) order, after the id `after`."""
    query = select(invocations).order_by(_T.id).limit(limit)
    if thing_id is not None:
        query = query.where(_T.thing_id == thing_id)
    if statuses:
        query = query.where(_T.status.in_([s.value for s in statuses]))
    if rollout_id is not None:
        query = query.where(_T.rollout_id == rollout_id)
    if namespaces is not None:
        query = query.where(
            or_(false(), *(_T.thing_id.startswith(f"{ns}:", autoescape=True) for ns in namespaces))
        )
    if after is not None:
        query = query.where(_T.id > after)
    return [_row(row) for row in conn.execute(query)]


def pending(conn: Connection, thing_id: str, now_us: int) -> list[Invocation]:
    """What the Thing is still to be sent: queued or delivered, not expired, oldest first."""
    rows = conn.execute(_PENDING_OF, {"thing_id": thing_id})
    return [_row(row) for row in rows if row.expires_us > now_us]


def pending_things(conn: Connection, now_us: int) -> list[str]:
    rows = conn.execute(
        select(_T.thing_id)
        .where(_T.status.in_(_PENDING), _T.expires_us > now_us)
        .distinct()
        .order_by(_T.thing_id)
    )
    return [row.thing_id for row in rows]


def open_count(conn: Connection, thing_id: str) -> int:
    """How many of the Thing's invocations are not final (its queue bound counts these)."""
    return int(conn.execute(_OPEN_COUNT, {"thing_id": thing_id}).scalar_one())


def open_of(conn: Connection, thing_id: str) -> list[Invocation]:
    """The Thing's invocations that are not final, oldest first."""
    rows = conn.execute(
        select(invocations).where(_T.thing_id == thing_id, _T.status.in_(_OPEN)).order_by(_T.id)
    )
    return [_row(row) for row in rows]


def by_key(conn: Connection, thing_id: str, key: str, since_us: int) -> Invocation | None:
    """The Thing's latest invocation with this idempotency key created after `since_us`."""
    row = conn.execute(
        select(invocations)
        .where(_T.thing_id == thing_id, _T.idempotency_key == key, _T.created_us > since_us)
        .order_by(_T.id.desc())
        .limit(1)
    ).first()
    return None if row is None else _row(row)


def due(conn: Connection, now_us: int, limit: int) -> list[Invocation]:
    """Pending invocations whose expiry has passed, oldest expiry first."""
    rows = conn.execute(
        select(invocations)
        .where(_T.status.in_(_PENDING), _T.expires_us <= now_us)
        .order_by(_T.expires_us)
        .limit(limit)
    )
    return [_row(row) for row in rows]
