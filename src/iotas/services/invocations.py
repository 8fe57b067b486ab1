"""Invocations of Things' actions: created, queued per Thing, delivered, reported, expired.

Each write is one unit of work that writes the invocation's row and journals it (kind
`invocation`: `invocation_created`, then `invocation_changed` for every move), so followers
of the journal (the MQTT dispatcher, the WoT worker, the event stream, `wait`) learn of it
from there. The rules (statuses, moves, ttl, input validation) are `domain.invocations`;
docs/commands.md tells the lifecycle.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Final

import orjson

from iotas.controllers.periodic import Periodic
from iotas.domain import clock
from iotas.domain import invocations as inv
from iotas.domain import journal as ev
from iotas.domain.errors import Conflict, InvalidInput, Locked, NotFound, TooManyRequests
from iotas.domain.ids import check_thing_id
from iotas.domain.invocations import Invocation, Status
from iotas.domain.merge_patch import JSON, JSONObject, check_json, same
from iotas.domain.td import action_affordance
from iotas.domain.things import Thing
from iotas.services import changes
from iotas.services.context import Actor, Context
from iotas.services.stats import IngestStats
from iotas.services.stream import JournalSignal
from iotas.store import invocations_repo as repo
from iotas.store.store import Store, WriteTx

log = logging.getLogger("iotas.invocations")

# At most this many invocations not final per Thing; more is 429 (decision "Invocations").
QUEUE_BOUND: Final = 1000
MAX_LIST: Final = 1000
MAX_INPUT_BYTES: Final = 64 * 1024
# The expiry sweep expires at most this many invocations per unit of work.
EXPIRE_BATCH: Final = 500
# How long `wait` sleeps at most between two reads when no commit of this node wakes it.
WAIT_POLL_S: Final = 1.0
# How often the cluster-wide sweep ends overdue invocations `expired` (pending() filters by
# time itself, so a sweep that has not run yet never lets one out).
EXPIRE_SECONDS: Final = 2.0
RESULT_CHANNEL: Final = "invocation_result"
# Who expires invocations in the journal.
_SWEEPER: Final = Actor("iotas:expiry", role="admin")


class Invocations:
    def __init__(
        self,
        store: Store,
        signal: JournalSignal,
        stats: IngestStats,
        *,
        queue_bound: int = QUEUE_BOUND,
    ) -> None:
        self.store = store
        self.signal = signal
        self.stats = stats
        self.queue_bound = queue_bound

    # -- operators -----------------------------------------------------------------------------

    async def create(
        self,
        ctx: Context,
        thing_id: str,
        action: str,
        input: JSON,
        *,
        ttl_s: float | None = None,
        idempotency_key: str | None = None,
    ) -> Invocation:
        """Queue an invocation of `action` on the Thing (checks: `create_in`). The same
        idempotency key on the same Thing within 24 h returns the invocation it made (409 if
        it was for another action or input)."""
        check_thing_id(thing_id)
        ctx.actor.must_see(thing_id)
        key = inv.check_key(idempotency_key)
        inv.ttl_us(ttl_s)

        def unit(tx: WriteTx) -> Invocation:
            if key is not None:
                since = tx.ts_us - inv.IDEMPOTENCY_S * 1_000_000
                earlier = repo.by_key(tx.conn, thing_id, key, since)
                if earlier is not None:
                    if earlier.action != action or not same(earlier.input, input):
                        raise Conflict(
                            f"the idempotency key {key[:200]!r} was used for another "
                            f"invocation ({earlier.id}: {earlier.action[:200]!r} with another "
                            "input) within 24 h",
                            field="idempotency_key",
                        )
                    return earlier
            return self.create_in(
                tx,
                ctx,
                tx.existing(thing_id),
                action,
                input,
                ttl_s=ttl_s,
                rollout_id=None,
                now_us=tx.ts_us,
                idempotency_key=key,
            )

        return await self.store.write(unit)

    def create_in(
        self,
        tx: WriteTx,
        ctx: Context,
        thing: Thing,
        action: str,
        input: JSON,
        *,
        ttl_s: float | None,
        rollout_id: str | None,
        now_us: int,
        idempotency_key: str | None = None,
    ) -> Invocation:
        """Inside the caller's unit of work: check and queue an invocation. Locked (423) for
        a quarantined Thing, NotFound for an action it does not declare, InvalidInput naming
        the member for an input its schema refuses, TooManyRequests when its queue is full."""
        if thing.quarantine is not None:
            raise Locked(
                f"{thing.id!r} is quarantined (since {thing.quarantine.get('since')}): it takes "
                "no actions until an operator releases it"
            )
        affordance = action_affordance(thing, action)
        if affordance is None:
            raise NotFound(
                f"the Thing {thing.id!r} has no action {action[:200]!r} (its TD or Thing Model "
                "declares the actions it has)"
            )
        _check_size(input, "input")
        inv.check_input(action, affordance, input)
        expires_us = now_us + inv.ttl_us(ttl_s)
        count = repo.open_count(tx.conn, thing.id)
        if count >= self.queue_bound:
            raise TooManyRequests(
                f"{thing.id!r} has {count} invocations not finished yet, the most one Thing "
                "may have: wait for some to finish (or expire), or cancel some",
                limit=self.queue_bound,
            )
        created = Invocation(
            id=inv.new_id(now_us),
            thing_id=thing.id,
            action=action,
            input=input,
            status=Status.QUEUED,
            created_us=now_us,
            updated_us=now_us,
            expires_us=expires_us,
            actor=ctx.actor.subject,
            idempotency_key=idempotency_key,
            rollout_id=rollout_id,
        )
        repo.add(tx.conn, created)
        changes.record(
            tx, ctx, ev.INVOCATION, created.id, ev.INVOCATION_CREATED, created.journaled()
        )
        return created

    async def get(self, invocation_id: str) -> Invocation:
        found = await self.store.read(lambda conn: repo.get(conn, invocation_id))
        if found is None:
            raise NotFound(f"there is no invocation {invocation_id[:64]!r}")
        return found

    async def many(self, ids: builtins.list[str]) -> dict[str, Invocation]:
        return await self.store.read(lambda conn: repo.many(conn, ids))

    async def list(
        self,
        *,
        thing_id: str | None = None,
        status: builtins.list[Status] | None = None,
        rollout_id: str | None = None,
        limit: int = 100,
        after: str | None = None,
        namespaces: Sequence[str] | None = None,
    ) -> builtins.list[Invocation]:
        """In id (creation) order, after the id `after`; of Things in `namespaces` (all if
        None)."""
        if not 1 <= limit <= MAX_LIST:
            raise InvalidInput(f"limit is from 1 to {MAX_LIST}", field="limit")
        return await self.store.read(
            lambda conn: repo.listed(
                conn,
                thing_id=thing_id,
                statuses=status,
                rollout_id=rollout_id,
                namespaces=namespaces,
                limit=limit,
                after=after,
            )
        )

    async def wait(self, invocation_id: str, timeout_s: float) -> Invocation:
        """The invocation once final, or as it is when `timeout_s` has passed. Wakes on every
        commit of this node (the journal signal) and reads at least every second for other
        nodes' commits."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        while True:
            watched = self.signal.watch()
            found = await self.get(invocation_id)
            left = deadline - time.monotonic()
            if found.final or left <= 0:
                return found
            await self.signal.wait(min(left, WAIT_POLL_S), watched)

    async def cancel(self, ctx: Context, invocation_id: str) -> Invocation:
        """Cancel an invocation not final yet (409 when it is). A device that already has it
        may still run it; its result is then counted and ignored."""

        def unit(tx: WriteTx) -> Invocation:
            found = repo.get(tx.conn, invocation_id)
            if found is None or not ctx.actor.sees(found.thing_id):
                raise NotFound(f"there is no invocation {invocation_id[:64]!r}")
            return _moved(tx, ctx, found, replace(found, status=Status.CANCELLED))

        return await self.store.write(unit)

    # -- delivery ------------------------------------------------------------------------------

    async def pending(self, thing_id: str) -> builtins.list[Invocation]:
        """What to send the Thing now: queued or delivered with no result yet, not expired
        (whether or not the sweep has run), in creation order."""
        now = clock.now_us()
        return await self.store.read(lambda conn: repo.pending(conn, thing_id, now))

    async def pending_things(self) -> builtins.list[str]:
        now = clock.now_us()
        return await self.store.read(lambda conn: repo.pending_things(conn, now))

    async def delivered(self, ctx: Context, ids: builtins.list[str]) -> None:
        """Record that these invocations were handed to their Thing (again, for a delivered
        one): delivered, one more attempt. Expired, final and unknown ones are left as they
        are (a delivery raced with their end)."""
        if not ids:
            return

        def unit(tx: WriteTx) -> None:
            for found in repo.many(tx.conn, ids).values():
                if found.status not in inv.PENDING or found.expires_us <= tx.ts_us:
                    continue
                after = replace(
                    found,
                    status=Status.DELIVERED,
                    delivered_us=found.delivered_us or tx.ts_us,
                    attempts=found.attempts + 1,
                )
                _moved(tx, ctx, found, after)

        await self.store.write(unit)

    async def report(
        self, ctx: Context, thing_id: str, invocation_id: str, result: object
    ) -> Invocation | None:
        """Apply a Thing's result (`{"status": running|succeeded|failed, "progress"?,
        "output"?, "error"?}`). Never raises for what a device sends: an unknown, another
        Thing's or final invocation, or a malformed result, is counted (`/api/v1/stats`,
        rejected by reason), logged once per reason per interval, and answered None."""
        try:
            parsed = inv.parse_result(result)
            _check_size(parsed.output, "output")
        except InvalidInput as exc:
            self._refused("invocation_result_malformed", exc.detail, thing_id)
            return None

        def unit(tx: WriteTx) -> Invocation | str:
            found = repo.get(tx.conn, invocation_id)
            if found is None:
                return "invocation_unknown"
            if found.thing_id != thing_id:
                return "invocation_other_thing"
            if not inv.can_move(found.status, parsed.status):
                return "invocation_final"
            after = inv.after_result(found, parsed, tx.ts_us)
            return _moved(tx, ctx, found, after)

        outcome = await self.store.write(unit)
        if isinstance(outcome, str):
            self._refused(outcome, f"invocation {invocation_id[:64]!r}", thing_id)
            return None
        self.stats.accept(RESULT_CHANNEL)
        return outcome

    async def expire_due(self, now_us: int) -> int:
        """End `expired` every queued or delivered invocation whose expiry has passed (a
        running one waits for its result). Returns how many."""
        ctx = Context(_SWEEPER, "ttl passed before the Thing took it")
        total = 0
        while True:

            def unit(tx: WriteTx) -> int:
                due = repo.due(tx.conn, now_us, EXPIRE_BATCH)
                for found in due:
                    _moved(tx, ctx, found, replace(found, status=Status.EXPIRED))
                return len(due)

            done = await self.store.write(unit)
            total += done
            if done < EXPIRE_BATCH:
                return total
            await asyncio.sleep(0)

    def expiry_controller(self, interval: float = EXPIRE_SECONDS) -> Periodic:
        """The sweep: once now, then every `interval` seconds; once per cluster."""
        return Periodic(
            "invocation-expiry",
            self.expire_due,
            interval=interval,
            log=log,
            done="expired %d invocations whose ttl passed",
            failed="expiring invocations failed",
            cluster_wide=True,
        )

    def _refused(self, reason: str, detail: str, thing_id: str) -> None:
        self.stats.reject(reason, detail, source=thing_id)


def cancel_open_in(tx: WriteTx, ctx: Context, thing_id: str, why: str) -> int:
    """Inside a unit that deletes or quarantines the Thing: cancel each of its invocations
    not final (journaled with `why` as the cause), so none reaches it after (nor a later
    Thing of the same id, nor the device once released). Returns how many."""
    ctx = replace(ctx, cause=why)
    found = repo.open_of(tx.conn, thing_id)
    for invocation in found:
        _moved(tx, ctx, invocation, replace(invocation, status=Status.CANCELLED))
    return len(found)


def _moved(tx: WriteTx, ctx: Context, before: Invocation, after: Invocation) -> Invocation:
    """Write a move of the invocation and journal it (Conflict if the table refuses it)."""
    inv.check_move(before.id, before.status, after.status)
    after = replace(after, updated_us=tx.ts_us)
    repo.save(tx.conn, after)
    patch: JSONObject = inv.changed_patch(before, after)
    changes.record(tx, ctx, ev.INVOCATION, after.id, ev.INVOCATION_CHANGED, patch)
    return after


def _check_size(value: JSON, what: str) -> None:
    """Plain JSON (what both databases and the journal hold) of at most MAX_INPUT_BYTES."""
    try:
        check_json(value, f"the {what}")
        size = len(orjson.dumps(value))
    except (ValueError, TypeError) as exc:
        raise InvalidInput(str(exc), field=f"/{what}") from None
    if size > MAX_INPUT_BYTES:
        raise InvalidInput(
            f"the {what} is {size} bytes of JSON; at most {MAX_INPUT_BYTES}", field=f"/{what}"
        )
