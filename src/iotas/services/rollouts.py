"""Rollouts: the use cases (create, read, pause, resume, cancel) and the round the
controller runs (`services.rollout_engine`).

A rollout is made `scheduled`; when it is due (at once without `start_at`, in the same unit
that makes it) it starts: the Things its target matches are fixed, spread and cut into waves,
stored pending, and its first wave opens. Every later step is a unit of the engine.
"""

from __future__ import annotations

import builtins
import secrets
from collections.abc import Callable, Sequence
from typing import Any, Final

from sqlalchemy import Connection

from iotas.domain import clock
from iotas.domain import journal as ev
from iotas.domain import rollouts as ro
from iotas.domain.errors import InvalidInput, NotFound
from iotas.domain.query import parse as parse_query
from iotas.domain.rollouts import Snapshot, Spec, Status, ThingStatus, WaveCounts
from iotas.services import changes
from iotas.services.context import Context
from iotas.services.rollout_kinds import ChangeKinds
from iotas.store import rollouts_repo as repo
from iotas.store.query_sql import compile_query
from iotas.store.rollouts_repo import RolloutRow, ThingRow
from iotas.store.store import Store, WriteTx

MAX_PAGE: Final = 1000


def new_id(now_us: int) -> str:
    """`ro-` + the creation time in fixed-width hex + randomness: ids sort by creation."""
    return f"ro-{now_us:014x}{secrets.token_hex(4)}"


def spec_of(row: RolloutRow) -> Spec:
    return ro.spec_from_json(row.spec)


def snapshot(conn: Connection, row: RolloutRow, now_us: int) -> Snapshot:
    """What the rules see of the rollout now, read in one transaction (two statements; a
    third for the rate when it has one)."""
    spec = spec_of(row)
    counts = repo.counts(conn, row.id)
    sizes: list[int] = list(row.progress.get("sizes", []))
    waves = [
        WaveCounts(size, {status: n for (wave, status), n in counts.items() if wave == index})
        for index, size in enumerate(sizes)
    ]
    started = 0
    if spec.rate_per_minute is not None and row.status == Status.RUNNING:
        started = repo.started_since(conn, row.id, now_us - 60_000_000)
    return Snapshot(
        spec=spec,
        status=Status(row.status),
        now_us=now_us,
        waves=waves,
        opens=list(row.progress.get("opens", [])),
        started_last_minute=started,
        started=row.started_us is not None,
    )


def transition(
    tx: WriteTx, ctx: Context, row: RolloutRow, rule: ro.Rule, now_us: int
) -> RolloutRow:
    """Move the rollout by `rule` (journaled); a final status cancels its pending Things
    when cancelled, and ends its activity once nothing is in flight (the engine's)."""
    values: dict[str, Any] = {"status": rule.target.value, "updated_us": now_us}
    if rule.target in ro.FINAL:
        values["finished_us"] = now_us
        values["reason"] = rule.name
    if rule.target is Status.CANCELLED:
        repo.cancel_pending(tx.conn, row.id, now_us)
    repo.update_rollout(tx.conn, row.id, **values)
    patch = {"status": rule.target.value, "previous": row.status, "rule": rule.name}
    changes.record(tx, ctx, ev.ROLLOUT, row.id, ev.ROLLOUT_STATUS_CHANGED, patch)
    after = repo.get(tx.conn, row.id)
    assert after is not None
    return after


def start_in(tx: WriteTx, ctx: Context, row: RolloutRow, store: Store, now_us: int) -> RolloutRow:
    """Fix the target set, cut it into waves, open the first one and run."""
    spec = spec_of(row)
    where = compile_query(parse_query(spec.target), dialect=store.dialect, now_us=now_us)
    members = ro.spread(row.id, repo.matching_ids(tx.conn, where))
    sizes = ro.wave_sizes(spec.waves, len(members))
    waves = ro.assign_waves(sizes)
    repo.enroll(tx.conn, row.id, ((thing_id, waves[i], i) for i, thing_id in enumerate(members)))
    opens: list[int | None] = [None] * len(sizes)
    if opens:
        opens[0] = now_us
    progress = {"sizes": sizes, "opens": opens, "enrolled_us": now_us}
    repo.update_rollout(tx.conn, row.id, progress=progress, started_us=now_us)
    start = next(rule for rule in ro.RULES if rule.name == "start")
    after = transition(tx, ctx, row, start, now_us)
    if sizes:
        wave_started(tx, ctx, after, 0, sizes[0], now_us)
    return after


def wave_started(
    tx: WriteTx, ctx: Context, row: RolloutRow, wave: int, size: int, opens_us: int
) -> None:
    patch = {"wave": wave, "size": size, "opens": clock.to_rfc3339(opens_us)}
    changes.record(tx, ctx, ev.ROLLOUT, row.id, ev.ROLLOUT_WAVE_STARTED, patch)


class Rollouts:
    def __init__(self, store: Store, kinds: ChangeKinds) -> None:
        self.store = store
        self.kinds = kinds
        # Set by the controller: run a round now (a rollout made, paused, resumed...).
        self.poke: list[Callable[[], None]] = []

    def _woken(self) -> None:
        for wake in self.poke:
            wake()

    async def create(self, ctx: Context, body: object) -> dict[str, Any]:
        spec = ro.parse_spec(body, self.kinds.validate)
        now = clock.now_us()
        row = RolloutRow(
            id=new_id(now),
            name=spec.name,
            spec=spec.as_json(),
            status=Status.SCHEDULED.value,
            reason=None,
            progress={"sizes": [], "opens": []},
            active=True,
            created_us=now,
            updated_us=now,
            started_us=None,
            finished_us=None,
            actor=ctx.actor.subject,
        )
        store = self.store

        def unit(tx: WriteTx) -> RolloutRow:
            repo.add(tx.conn, row)
            created = {
                "id": row.id,
                "name": spec.name,
                "target": spec.target,
                "change": spec.change,
            }
            changes.record(tx, ctx, ev.ROLLOUT, row.id, ev.ROLLOUT_CREATED, created)
            if spec.start_at_us is None or spec.start_at_us <= tx.ts_us:
                return start_in(tx, ctx, row, store, tx.ts_us)
            return row

        made = await self.store.write(unit)
        self._woken()
        return await self._view(made)

    async def get(self, rollout_id: str) -> dict[str, Any]:
        return await self._view(await self._row(rollout_id))

    async def _row(self, rollout_id: str) -> RolloutRow:
        row = await self.store.read(lambda conn: repo.get(conn, rollout_id))
        if row is None:
            raise NotFound(f"there is no rollout {rollout_id[:64]!r}")
        return row

    async def list(
        self, *, statuses: Sequence[str] | None = None, limit: int = 100, after: str | None = None
    ) -> builtins.list[dict[str, Any]]:
        for status in statuses or ():
            if status not in Status.__members__.values():
                raise InvalidInput(
                    f"status must be one of {', '.join(Status)}; got {status[:40]!r}",
                    field="status",
                )

        def read(conn: Connection) -> builtins.list[dict[str, Any]]:
            rows = repo.page(conn, statuses, after, min(max(limit, 1), MAX_PAGE))
            counts = repo.counts_of(conn, [row.id for row in rows])
            return [view(row, counts[row.id]) for row in rows]

        return await self.store.read(read)

    async def things(
        self,
        rollout_id: str,
        *,
        status: str | None = None,
        limit: int = 100,
        after: int | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """The rollout's Things (of `status`) in rollout order; `after` is a position."""
        if status is not None and status not in ThingStatus.__members__.values():
            raise InvalidInput(
                f"status must be one of {', '.join(ThingStatus)}; got {status[:40]!r}",
                field="status",
            )
        await self._row(rollout_id)
        rows = await self.store.read(
            lambda conn: repo.of_status(
                conn, rollout_id, status, after, min(max(limit, 1), MAX_PAGE)
            )
        )
        return [thing_view(row) for row in rows]

    async def pause(self, ctx: Context, rollout_id: str) -> dict[str, Any]:
        return await self._command(ctx, rollout_id, "pause")

    async def resume(self, ctx: Context, rollout_id: str) -> dict[str, Any]:
        return await self._command(ctx, rollout_id, "resume")

    async def cancel(self, ctx: Context, rollout_id: str) -> dict[str, Any]:
        """Cancel: pending Things are cancelled; changes in flight are stopped where their
        kind still can (queued invocations are cancelled), the others finish and are
        recorded."""
        return await self._command(ctx, rollout_id, "cancel")

    async def _command(self, ctx: Context, rollout_id: str, command: str) -> dict[str, Any]:
        def unit(tx: WriteTx) -> tuple[RolloutRow, list[str]]:
            row = repo.get(tx.conn, rollout_id)
            if row is None:
                raise NotFound(f"there is no rollout {rollout_id[:64]!r}")
            rule = ro.commanded(snapshot(tx.conn, row, tx.ts_us), command)
            after = transition(tx, ctx, row, rule, tx.ts_us)
            refs: list[str] = []
            if rule.target is Status.CANCELLED:
                refs = [t.ref for t in repo.in_flight(tx.conn, row.id) if t.ref is not None]
            return after, refs

        row, refs = await self.store.write(unit)
        if refs:
            await self.kinds.get(spec_of(row).change_type).stop(ctx, refs)
        self._woken()
        return await self._view(row)

    async def _view(self, row: RolloutRow) -> dict[str, Any]:
        counts = await self.store.read(lambda conn: repo.counts(conn, row.id))
        return view(row, counts)


def _counts(counts: dict[str, int]) -> dict[str, int]:
    return {status.value: counts.get(status.value, 0) for status in ThingStatus}


def view(row: RolloutRow, counts: dict[tuple[int, str], int]) -> dict[str, Any]:
    """The API's form of a rollout, with its counts per status and per wave."""
    total: dict[str, int] = {}
    for (_wave, status), n in counts.items():
        total[status] = total.get(status, 0) + n
    sizes: list[int] = row.progress.get("sizes", [])
    opens: list[int | None] = row.progress.get("opens", [])
    waves = [
        {
            "wave": index,
            "size": size,
            "opens": None if opens[index] is None else clock.to_rfc3339(opens[index] or 0),
            "counts": _counts({s: n for (w, s), n in counts.items() if w == index}),
        }
        for index, size in enumerate(sizes)
    ]
    return {
        "id": row.id,
        "name": row.name,
        "status": row.status,
        "reason": row.reason,
        "spec": row.spec,
        "created": clock.to_rfc3339(row.created_us),
        "updated": clock.to_rfc3339(row.updated_us),
        "started": None if row.started_us is None else clock.to_rfc3339(row.started_us),
        "finished": None if row.finished_us is None else clock.to_rfc3339(row.finished_us),
        "created_by": row.actor,
        "total": sum(total.values()),
        "counts": _counts(total),
        "waves": waves,
    }


def thing_view(row: ThingRow) -> dict[str, Any]:
    return {
        "thing": row.thing_id,
        "wave": row.wave,
        "position": row.position,
        "status": row.status,
        "ref": row.ref,
        "started": None if row.started_us is None else clock.to_rfc3339(row.started_us),
        "finished": None if row.finished_us is None else clock.to_rfc3339(row.finished_us),
        "outcome": row.outcome,
    }
