"""Rollouts and their Things: plain functions over a Connection. Every function that the
controller runs each round works on sets of Things (one statement), never one per Thing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, case, func, insert, literal, select, update
from sqlalchemy.sql.elements import ColumnElement

from iotas.domain.rollouts import ThingStatus
from iotas.store import dialects
from iotas.store.schema import rollout_things, rollouts, things

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RolloutRow:
    id: str
    name: str
    spec: dict[str, Any]
    status: str
    reason: str | None
    progress: dict[str, Any]
    active: bool
    created_us: int
    updated_us: int
    started_us: int | None
    finished_us: int | None
    actor: str


@dataclass(frozen=True, slots=True)
class ThingRow:
    rollout_id: str
    thing_id: str
    wave: int
    position: int
    status: str
    ref: str | None
    started_us: int | None
    finished_us: int | None
    outcome: dict[str, Any] | None


def _rollout(row: Any) -> RolloutRow:
    return RolloutRow(
        row.id,
        row.name,
        dict(row.spec),
        row.status,
        row.reason,
        dict(row.progress),
        bool(row.active),
        int(row.created_us),
        int(row.updated_us),
        row.started_us,
        row.finished_us,
        row.actor,
    )


def _thing(row: Any) -> ThingRow:
    return ThingRow(
        row.rollout_id,
        row.thing_id,
        int(row.wave),
        int(row.position),
        row.status,
        row.ref,
        row.started_us,
        row.finished_us,
        None if row.outcome is None else dict(row.outcome),
    )


def add(conn: Connection, row: RolloutRow) -> None:
    conn.execute(
        insert(rollouts).values(
            id=row.id,
            name=row.name,
            spec=row.spec,
            status=row.status,
            reason=row.reason,
            progress=row.progress,
            active=row.active,
            created_us=row.created_us,
            updated_us=row.updated_us,
            started_us=row.started_us,
            finished_us=row.finished_us,
            actor=row.actor,
        )
    )


def get(conn: Connection, rollout_id: str) -> RolloutRow | None:
    row = conn.execute(select(rollouts).where(rollouts.c.id == rollout_id)).first()
    return None if row is None else _rollout(row)


def page(
    conn: Connection, statuses: Sequence[str] | None, after_id: str | None, limit: int
) -> list[RolloutRow]:
    """Newest first (ids are time-ordered), before `after_id`."""
    query = select(rollouts).order_by(rollouts.c.id.desc()).limit(limit)
    if statuses:
        query = query.where(rollouts.c.status.in_(statuses))
    if after_id is not None:
        query = query.where(rollouts.c.id < after_id)
    return [_rollout(row) for row in conn.execute(query)]


def active(conn: Connection) -> list[RolloutRow]:
    """The rollouts the controller drives, oldest first."""
    query = select(rollouts).where(rollouts.c.active.is_(True)).order_by(rollouts.c.id)
    return [_rollout(row) for row in conn.execute(query)]


def update_rollout(conn: Connection, rollout_id: str, **values: Any) -> None:
    conn.execute(update(rollouts).where(rollouts.c.id == rollout_id).values(**values))


def enroll(conn: Connection, rollout_id: str, members: Iterable[tuple[str, int, int]]) -> int:
    """Add Things (thing_id, wave, position) to the rollout, pending."""
    rows = [
        {
            "rollout_id": rollout_id,
            "thing_id": thing_id,
            "wave": wave,
            "position": position,
            "status": ThingStatus.PENDING.value,
        }
        for thing_id, wave, position in members
    ]
    if rows:
        conn.execute(insert(rollout_things), rows)
    return len(rows)


def matching_ids(
    conn: Connection, where: ColumnElement[bool], *, outside: str | None = None
) -> list[str]:
    """Ids of the Things `where` selects (not yet in rollout `outside`, if given)."""
    query = select(things.c.id).where(where).order_by(things.c.id)
    if outside is not None:
        enrolled = select(rollout_things.c.thing_id).where(rollout_things.c.rollout_id == outside)
        query = query.where(things.c.id.not_in(enrolled))
    return list(conn.scalars(query))


def last_position(conn: Connection, rollout_id: str) -> int:
    query = select(func.max(rollout_things.c.position)).where(
        rollout_things.c.rollout_id == rollout_id
    )
    value = conn.scalar(query)
    return -1 if value is None else int(value)


def counts(conn: Connection, rollout_id: str) -> dict[tuple[int, str], int]:
    """Things per (wave, status)."""
    query = (
        select(rollout_things.c.wave, rollout_things.c.status, func.count())
        .where(rollout_things.c.rollout_id == rollout_id)
        .group_by(rollout_things.c.wave, rollout_things.c.status)
    )
    return {(int(wave), status): int(n) for wave, status, n in conn.execute(query)}


def counts_of(
    conn: Connection, rollout_ids: Sequence[str]
) -> dict[str, dict[tuple[int, str], int]]:
    """`counts` of several rollouts in one statement."""
    found: dict[str, dict[tuple[int, str], int]] = {rollout_id: {} for rollout_id in rollout_ids}
    if not rollout_ids:
        return found
    query = (
        select(
            rollout_things.c.rollout_id,
            rollout_things.c.wave,
            rollout_things.c.status,
            func.count(),
        )
        .where(rollout_things.c.rollout_id.in_(list(rollout_ids)))
        .group_by(rollout_things.c.rollout_id, rollout_things.c.wave, rollout_things.c.status)
    )
    for rollout_id, wave, status, n in conn.execute(query):
        found[rollout_id][(int(wave), status)] = int(n)
    return found


def started_since(conn: Connection, rollout_id: str, since_us: int) -> int:
    query = select(func.count()).where(
        rollout_things.c.rollout_id == rollout_id, rollout_things.c.started_us > since_us
    )
    return int(conn.scalar(query) or 0)


def pending(conn: Connection, rollout_id: str, waves: Sequence[int], limit: int) -> list[str]:
    """Pending Things of these waves, in rollout order (lowest wave first)."""
    query = (
        select(rollout_things.c.thing_id)
        .where(
            rollout_things.c.rollout_id == rollout_id,
            rollout_things.c.status == ThingStatus.PENDING.value,
            rollout_things.c.wave.in_(waves),
        )
        .order_by(rollout_things.c.wave, rollout_things.c.position)
        .limit(limit)
    )
    return list(conn.scalars(query))


def in_flight(conn: Connection, rollout_id: str) -> list[ThingRow]:
    return of_status(conn, rollout_id, ThingStatus.IN_FLIGHT.value, None, None)


def of_status(
    conn: Connection, rollout_id: str, status: str | None, after: int | None, limit: int | None
) -> list[ThingRow]:
    """The rollout's Things (of `status`, if given) in rollout order, after `after`."""
    query = (
        select(rollout_things)
        .where(rollout_things.c.rollout_id == rollout_id)
        .order_by(rollout_things.c.position)
    )
    if status is not None:
        query = query.where(rollout_things.c.status == status)
    if after is not None:
        query = query.where(rollout_things.c.position > after)
    if limit is not None:
        query = query.limit(limit)
    return [_thing(row) for row in conn.execute(query)]


def started_before(conn: Connection, rollout_id: str, before_us: int) -> list[ThingRow]:
    """Things in flight since `before_us` or earlier (past their timeout)."""
    query = select(rollout_things).where(
        rollout_things.c.rollout_id == rollout_id,
        rollout_things.c.started_us <= before_us,
        rollout_things.c.status == ThingStatus.IN_FLIGHT.value,
    )
    return [_thing(row) for row in conn.execute(query)]


def any_in_flight(conn: Connection, rollout_id: str) -> bool:
    query = select(rollout_things.c.thing_id).where(
        rollout_things.c.rollout_id == rollout_id,
        rollout_things.c.status == ThingStatus.IN_FLIGHT.value,
    )
    return conn.execute(query.limit(1)).first() is not None


def by_refs(conn: Connection, refs: Sequence[str]) -> list[ThingRow]:
    """The in-flight Things whose change has one of these refs (any rollout)."""
    if not refs:
        return []
    query = select(rollout_things).where(
        rollout_things.c.ref.in_(refs),
        rollout_things.c.status == ThingStatus.IN_FLIGHT.value,
    )
    return [_thing(row) for row in conn.execute(query)]


# Where an executemany costs a round trip per row (PostgreSQL), statements over many Things
# set each one's values with a CASE on its id, one statement per `CHUNK`; elsewhere (SQLite,
# in process) the executemany of one cached statement is cheaper than compiling the CASE.
CHUNK = 500
_WHERE_THING = (rollout_things.c.rollout_id == bindparam("r_id")) & (
    rollout_things.c.thing_id == bindparam("t_id")
)


def _chunks(rows: Sequence[T], size: int = CHUNK) -> Iterable[Sequence[T]]:
    return (rows[start : start + size] for start in range(0, len(rows), size))


def _by_id(values: dict[str, Any], type_: Any = None) -> Any:
    """A CASE giving each Thing of `values` its value."""
    whens = {k: v if type_ is None else literal(v, type_=type_) for k, v in values.items()}
    return case(whens, value=rollout_things.c.thing_id)


def mark_started(
    conn: Connection, rollout_id: str, started: Sequence[tuple[str, str]], now_us: int
) -> None:
    """These pending Things (thing_id, ref) are in flight from now."""
    if not started:
        return
    in_flight = ThingStatus.IN_FLIGHT.value
    if not dialects.of(conn).round_trips:
        conn.execute(
            update(rollout_things)
            .where(_WHERE_THING)
            .values(status=in_flight, ref=bindparam("ref"), started_us=now_us),
            [{"r_id": rollout_id, "t_id": thing_id, "ref": ref} for thing_id, ref in started],
        )
        return
    for chunk in _chunks(started):
        refs = dict(chunk)
        conn.execute(
            update(rollout_things)
            .where(
                rollout_things.c.rollout_id == rollout_id,
                rollout_things.c.thing_id.in_(list(refs)),
            )
            .values(status=in_flight, ref=_by_id(refs), started_us=now_us)
        )


def finish(
    conn: Connection,
    rollout_id: str,
    done: Sequence[tuple[str, str, dict[str, Any] | None]],
    now_us: int,
    *,
    from_status: str = ThingStatus.IN_FLIGHT.value,
) -> None:
    """Move Things (thing_id, status, outcome) that are still `from_status` to their end."""
    if not done:
        return
    if not dialects.of(conn).round_trips:
        conn.execute(
            update(rollout_things)
            .where(_WHERE_THING & (rollout_things.c.status == from_status))
            .values(status=bindparam("st"), outcome=bindparam("out"), finished_us=now_us),
            [
                {"r_id": rollout_id, "t_id": thing_id, "st": status, "out": outcome}
                for thing_id, status, outcome in done
            ],
        )
        return
    for chunk in _chunks(done):
        conn.execute(
            update(rollout_things)
            .where(
                rollout_things.c.rollout_id == rollout_id,
                rollout_things.c.thing_id.in_([thing_id for thing_id, _s, _o in chunk]),
                rollout_things.c.status == from_status,
            )
            .values(
                status=_by_id({thing_id: status for thing_id, status, _o in chunk}),
                outcome=_by_id(
                    {thing_id: out for thing_id, _s, out in chunk}, rollout_things.c.outcome.type
                ),
                finished_us=now_us,
            )
        )


def cancel_pending(conn: Connection, rollout_id: str, now_us: int) -> int:
    result = conn.execute(
        update(rollout_things)
        .where(
            rollout_things.c.rollout_id == rollout_id,
            rollout_things.c.status == ThingStatus.PENDING.value,
        )
        .values(status=ThingStatus.CANCELLED.value, finished_us=now_us)
    )
    return int(result.rowcount)
