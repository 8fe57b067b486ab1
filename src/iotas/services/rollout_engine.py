"""The round that drives every active rollout, and the cluster-wide controller that runs it.

A round, per rollout: read the refs of its Things in flight that may have moved, ask the
change kind how they went (one call for all of them), then one unit of work that records the
outcomes and the timeouts, applies the first status rule that fires (`domain.rollouts.RULES`),
opens the next wave when its gate passed, enrols Things that joined a continuous rollout, and
starts the Things that may start now (at most `BATCH`; the round comes back at once for
more). A Thing is marked in flight with its ref in the unit that starts its change, so after
a crash it is neither started twice nor skipped.

The controller runs a round every `TICK_S`, and at once when woken: by a command, or by the
journal, which it follows for the events of the kinds' refs (an invocation that ended), so a
completion advances its rollout without waiting for the tick. Refs seen in the journal are
observed on the next round; every in-flight ref is observed every `SWEEP_S` anyway (at start,
and for refs moved by another node before this one followed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Final

from iotas.aio import cancel_and_wait
from iotas.controllers.clock import SYSTEM_CLOCK, Clock
from iotas.controllers.periodic import Periodic
from iotas.domain import rollouts as ro
from iotas.domain.errors import IotasError
from iotas.domain.query import parse as parse_query
from iotas.domain.rollouts import Status, ThingStatus
from iotas.services.context import Actor, Context
from iotas.services.follow import follow
from iotas.services.journal import JournalService
from iotas.services.rollout_kinds import ChangeKind, Outcome, Skip, error_of
from iotas.services.rollouts import Rollouts, snapshot, spec_of, start_in, transition, wave_started
from iotas.services.stream import JournalSignal
from iotas.store import rollouts_repo as repo
from iotas.store import things_repo
from iotas.store.query_sql import compile_query
from iotas.store.rollouts_repo import RolloutRow
from iotas.store.store import WriteTx

log = logging.getLogger("iotas.rollouts")

NAME: Final = "rollouts"
TICK_S: Final = 1.0
SWEEP_S: Final = 5.0
# Things started in one unit of work (one transaction; on SQLite the writer runs on the event
# loop, so a unit is kept short: 250 starts of the action kind are about a tenth of a second).
BATCH: Final = 250
# Refs asked of a change kind (and looked up) at once: well under the databases' limits on
# the parameters of one statement.
OBSERVE_CHUNK: Final = 2000
# How often a continuous rollout looks for Things that joined its target.
ENROLL_EVERY_S: Final = 2.0


@dataclass(slots=True)
class Step:
    """What one unit did to one rollout."""

    changed: int = 0
    more: bool = False
    stop: list[str] = field(default_factory=list)


class RolloutEngine:
    def __init__(
        self,
        rollouts: Rollouts,
        journal: JournalService,
        signal: JournalSignal,
        *,
        clock: Clock = SYSTEM_CLOCK,
        tick: float = TICK_S,
    ) -> None:
        self.rollouts = rollouts
        self.store = rollouts.store
        self.kinds = rollouts.kinds
        self.journal = journal
        self.signal = signal
        self.clock = clock
        self.tick = tick
        self.moved: set[str] = set()  # refs the journal said moved, not yet observed
        self._swept_us: dict[str, int] = {}

    async def run_once(self, now_us: int) -> int:
        """One round over every active rollout; how many Things changed."""
        rows = await self.store.read(repo.active)
        moved, self.moved = self.moved, set()
        total = 0
        for row in rows:
            try:
                total += await self.advance(row, now_us, moved)
            except Exception:
                log.exception("rollout %s: a round failed", row.id)
        return total

    async def advance(self, row: RolloutRow, now_us: int, moved: set[str]) -> int:
        """Rounds of one rollout until it has nothing more to start now."""
        kind = self.kinds.get(spec_of(row).change_type)
        outcomes = await self._observe(row, kind, now_us, moved)
        ctx = Context(Actor(f"rollout:{row.id}", role="operator"), f"rollout {row.name}")
        total = 0
        while True:
            step = await self.store.write(
                partial(self._unit, ctx=ctx, rollout_id=row.id, kind=kind, outcomes=outcomes)
            )
            outcomes = {}
            total += step.changed
            if step.stop:
                await kind.stop(ctx, step.stop)
            if not step.more:
                return total

    async def _observe(
        self, row: RolloutRow, kind: ChangeKind, now_us: int, moved: set[str]
    ) -> dict[str, Outcome]:
        """The outcomes of the rollout's Things that ended, by Thing id."""
        sweep = kind.journal_kind is None or now_us - self._swept_us.get(row.id, 0) >= round(
            SWEEP_S * 1e6
        )
        if sweep:
            self._swept_us[row.id] = now_us
            flying = await self.store.read(lambda conn: repo.in_flight(conn, row.id))
        else:
            refs = sorted(moved)
            flying = []
            for start in range(0, len(refs), OBSERVE_CHUNK):
                chunk = refs[start : start + OBSERVE_CHUNK]
                found = await self.store.read(partial(repo.by_refs, refs=chunk))
                flying += [t for t in found if t.rollout_id == row.id]
        things = {t.ref: t.thing_id for t in flying if t.ref is not None}
        if not things:
            return {}
        refs = list(things)
        seen: dict[str, Outcome] = {}
        for start in range(0, len(refs), OBSERVE_CHUNK):
            seen |= await kind.observe(refs[start : start + OBSERVE_CHUNK])
        return {
            things[ref]: outcome
            for ref, outcome in seen.items()
            if outcome.state != "pending" and ref in things
        }

    def _unit(
        self,
        tx: WriteTx,
        *,
        ctx: Context,
        rollout_id: str,
        kind: ChangeKind,
        outcomes: dict[str, Outcome],
    ) -> Step:
        now_us = max(tx.ts_us, self.clock.now_us())
        step = Step()
        row = repo.get(tx.conn, rollout_id)
        if row is None or not row.active:
            return step
        step.changed += self._record(tx, row, outcomes, now_us, step)
        scheduled = row.status == Status.SCHEDULED
        if scheduled and ro.decide(snapshot(tx.conn, row, now_us)) is not None:  # due
            row = start_in(tx, ctx, row, self.store, now_us)
        if row.status == Status.RUNNING and row.spec.get("continuous"):
            row = self._enroll(tx, ctx, row, now_us)
        # The counts are read once per unit; a status change alters them only by a cancel.
        snap = snapshot(tx.conn, row, now_us)
        rule = ro.decide(snap)
        if rule is not None and rule.name != "start":
            row = transition(tx, ctx, row, rule, now_us)
            if rule.target is Status.CANCELLED:
                snap = snapshot(tx.conn, row, now_us)
            else:
                snap = replace(snap, status=rule.target)
        row, snap = self._open_waves(tx, ctx, row, snap)
        step.changed += self._start(tx, ctx, row, snap, kind, now_us, step)
        if Status(row.status) in ro.FINAL and not repo.any_in_flight(tx.conn, row.id):
            repo.update_rollout(tx.conn, row.id, active=False, updated_us=now_us)
        return step

    def _record(
        self,
        tx: WriteTx,
        row: RolloutRow,
        outcomes: dict[str, Outcome],
        now_us: int,
        step: Step,
    ) -> int:
        """Outcomes observed (by Thing id), and Things past their timeout: failed, and their
        change stopped."""
        done = [(thing_id, _status(o), o.detail) for thing_id, o in outcomes.items()]
        timeout_us = round(spec_of(row).timeout_s * 1_000_000)
        late = {"code": "timeout", "message": f"no outcome within {timeout_us / 1e6:g} s"}
        for flying in repo.started_before(tx.conn, row.id, now_us - timeout_us):
            if flying.thing_id not in outcomes:
                done.append((flying.thing_id, ThingStatus.FAILED.value, late))
                if flying.ref is not None:
                    step.stop.append(flying.ref)
        repo.finish(tx.conn, row.id, done, now_us)
        return len(done)

    def _enroll(self, tx: WriteTx, ctx: Context, row: RolloutRow, now_us: int) -> RolloutRow:
        """Things that joined a continuous rollout's target join its last wave."""
        progress = dict(row.progress)
        if now_us - int(progress.get("enrolled_us", 0)) < ENROLL_EVERY_S * 1e6:
            return row
        spec = spec_of(row)
        where = compile_query(parse_query(spec.target), dialect=self.store.dialect, now_us=now_us)
        joined = repo.matching_ids(tx.conn, where, outside=row.id)
        progress["enrolled_us"] = now_us
        if joined:
            first_wave = not progress.get("sizes")  # the target was empty when it started
            sizes = list(progress.get("sizes", [])) or [0]
            opens = list(progress.get("opens", [])) or [now_us]
            wave = len(sizes) - 1
            first = repo.last_position(tx.conn, row.id) + 1
            members = ro.spread(row.id, joined)
            repo.enroll(tx.conn, row.id, ((t, wave, first + i) for i, t in enumerate(members)))
            sizes[wave] += len(members)
            progress.update(sizes=sizes, opens=opens)
            if first_wave:
                wave_started(tx, ctx, row, 0, len(members), now_us)
        repo.update_rollout(tx.conn, row.id, progress=progress)
        after = repo.get(tx.conn, row.id)
        assert after is not None
        return after

    def _open_waves(
        self, tx: WriteTx, ctx: Context, row: RolloutRow, snap: ro.Snapshot
    ) -> tuple[RolloutRow, ro.Snapshot]:
        if snap.status is not Status.RUNNING:
            return row, snap
        opened = ro.next_openings(snap)
        if not opened:
            return row, snap
        opens = list(snap.opens)
        for wave, at in opened:
            opens[wave] = at
            wave_started(tx, ctx, row, wave, snap.waves[wave].size, at)
        progress = {**row.progress, "opens": opens}
        repo.update_rollout(tx.conn, row.id, progress=progress)
        after = repo.get(tx.conn, row.id)
        assert after is not None
        return after, replace(snap, opens=opens)

    def _start(
        self,
        tx: WriteTx,
        ctx: Context,
        row: RolloutRow,
        snap: ro.Snapshot,
        kind: ChangeKind,
        now_us: int,
        step: Step,
    ) -> int:
        room, waves = ro.admissible(snap)
        if room <= 0:
            return 0
        ids = repo.pending(tx.conn, row.id, waves, min(room, BATCH))
        found = things_repo.get_many(tx.conn, ids)
        started: list[tuple[str, str]] = []
        ended: list[tuple[str, str, dict[str, Any] | None]] = []
        for thing_id in ids:
            thing = found.get(thing_id)
            if thing is None:
                gone = {"code": "not-found", "message": "the Thing was deleted before its turn"}
                ended.append((thing_id, ThingStatus.CANCELLED.value, gone))
                continue
            try:
                started.append((thing_id, kind.start_in(tx, ctx, row, thing, now_us)))
            except Skip:
                break  # not now: the rest wait for a later round
            except IotasError as exc:
                ended.append((thing_id, ThingStatus.FAILED.value, error_of(exc)))
        else:
            step.more = len(ids) == BATCH and room > BATCH
        repo.mark_started(tx.conn, row.id, started, now_us)
        repo.finish(tx.conn, row.id, ended, now_us, from_status=ThingStatus.PENDING.value)
        return len(started) + len(ended)

    # -- the controller ------------------------------------------------------------------------

    def controller(self) -> RolloutController:
        return RolloutController(self)


def _status(outcome: Outcome) -> str:
    return {
        "succeeded": ThingStatus.SUCCEEDED,
        "failed": ThingStatus.FAILED,
        "cancelled": ThingStatus.CANCELLED,
    }[outcome.state].value


class RolloutController:
    """Cluster-wide: the rounds (`Periodic`), woken by commands and by the journal."""

    name = NAME
    cluster_wide = True

    def __init__(self, engine: RolloutEngine) -> None:
        self.engine = engine
        self.periodic = Periodic(
            NAME,
            engine.run_once,
            interval=engine.tick,
            log=log,
            failed="a round of the rollouts failed",
            clock=engine.clock,
        )

    def wake(self) -> None:
        self.periodic.wake()

    async def run(self) -> None:
        rollouts = self.engine.rollouts
        rollouts.poke.append(self.wake)
        follower = asyncio.create_task(self._follow(), name="iotas-rollouts-follow")
        try:
            await self.periodic.run()
        finally:
            with contextlib.suppress(ValueError):
                rollouts.poke.remove(self.wake)
            await cancel_and_wait([follower])

    async def _follow(self) -> None:
        """Refs of the kinds' journal kinds that moved: observed in the next round, now."""
        every = (self.engine.kinds.get(name).journal_kind for name in self.engine.kinds.names())
        kinds = {kind for kind in every if kind is not None}
        if not kinds:
            return
        engine = self.engine
        after = await engine.journal.head_seq()
        async for events in follow(engine.journal, engine.signal, after, kinds=kinds):
            refs = {str(e.get("record_id")) for e in events}
            if refs:
                engine.moved |= refs
                self.wake()
