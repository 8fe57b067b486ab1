"""One adopted WoT Thing, managed through its TD's forms: reads (polled, jittered, and observed
where the TD offers it), events it emits, and reconciliation of desired state with
`writeproperty`, each attempt journaled. `WotThings` (things.py) runs one per adopted Thing on
the node that holds the WoT reconciler's lease."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from iotas.adapters.wot.actions import ActionRunner
from iotas.adapters.wot.client import ThingSecrets
from iotas.adapters.wot.errors import ThingUnreachable, WotError
from iotas.aio import cancel_and_wait
from iotas.controllers.periodic import Periodic
from iotas.domain import clock
from iotas.domain import td_model as ops
from iotas.domain.errors import InvalidInput, IotasError, NotFound
from iotas.domain.invocations import Invocation
from iotas.domain.td_model import Interactions
from iotas.domain.things import Thing
from iotas.services.context import Actor, Context
from iotas.services.wot import Secrets
from iotas.store.wot_repo import Binding

if TYPE_CHECKING:
    from iotas.adapters.wot.things import WotThings

log = logging.getLogger("iotas.wot")

ADAPTER = Actor("wot-adapter", role="system")
RETRY_FIRST = 1.0
RETRY_MAX = 60.0
OBSERVE_RETRY_MAX = 30.0
# A settled Thing is looked at again this often even when no change wakes its writer.
SETTLED_RECHECK = 3600.0


class ThingWorker:
    def __init__(
        self,
        owner: WotThings,
        binding: Binding,
        interactions: Interactions,
        secrets: Secrets | None,
    ) -> None:
        self.owner = owner
        self.rt = owner.rt
        self.binding = binding
        self.thing_id = binding.thing_id
        self.things = interactions
        self.secrets = (
            None
            if secrets is None
            else ThingSecrets(
                username=secrets.username, password=secrets.password, token=secrets.token
            )
        )
        self.ctx = Context(ADAPTER, f"wot adapter: {self.thing_id}")
        self._tasks: list[asyncio.Task[None]] = []
        self._poll_delay = RETRY_FIRST
        self._poll_retry = RETRY_FIRST
        self._write_delay = RETRY_FIRST
        self._write_retry = RETRY_FIRST
        period = binding.poll_seconds
        self.reads = Periodic(
            f"wot-poll {self.thing_id}",
            self._poll_once,
            interval=lambda: self._poll_delay,
            # Spread the first reads so a restart does not hit every Thing at once.
            first_delay=random.uniform(0, min(period, 2.0)),
            log=log,
        )
        self.writes = Periodic(
            f"wot-sync {self.thing_id}",
            self._reconcile_round,
            interval=lambda: self._write_delay,
            log=log,
        )
        self.reachable: bool | None = None
        self.last_error: str | None = None
        self.attempts = 0
        self.actions = ActionRunner(
            self.thing_id,
            interactions,
            self.rt.invocations,
            self._invoke,
            self.ctx,
            on_unreachable=self._unreachable_now,
        )

    def start(self) -> None:
        name = self.thing_id
        # The first round of writes runs now: whatever is pending is reconciled at once.
        self._tasks.append(asyncio.create_task(self.reads.run(), name=self.reads.name))
        self._tasks.append(asyncio.create_task(self.writes.run(), name=self.writes.name))
        # What is pending runs now: invocations queued while no node managed the Thing.
        self._tasks.append(asyncio.create_task(self.actions.rounds.run(), name=f"wot-act {name}"))
        for prop in self.things.properties.values():
            if prop.observable and prop.forms_for(ops.OBSERVE_PROPERTY):
                self._tasks.append(
                    asyncio.create_task(self._observe(prop.name), name=f"wot-observe {name}")
                )
        for event in self.things.events.values():
            if event.forms_for(ops.SUBSCRIBE_EVENT):
                self._tasks.append(
                    asyncio.create_task(self._subscribe(event.name), name=f"wot-event {name}")
                )

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()

    def wake(self) -> None:
        """Reconcile now (desired or reported state changed)."""
        self.writes.wake()

    def wake_actions(self) -> None:
        """Run the pending invocations now (one was created)."""
        self.actions.wake()

    def status(self) -> dict[str, Any]:
        return {
            "reachable": self.reachable,
            "last_error": self.last_error,
            "write_attempts": self.attempts,
            "invocations_run": self.actions.invoked,
        }

    # -- reading ----------------------------------------------------------------------------

    def _readable(self) -> list[str]:
        return [
            p.name
            for p in self.things.properties.values()
            if not p.write_only and p.forms_for(ops.READ_PROPERTY)
        ]

    async def _poll_once(self, _now_us: int) -> int:
        """One round of reads; the next comes a poll interval later (jittered) when every
        property was read, else soon, backing off: not a whole interval later, which may be
        hours."""
        period = self.binding.poll_seconds
        try:
            complete = await self.read_once()
        except Exception:  # a bug must not end the reads of this Thing for good
            log.exception("wot: reading %s failed", self.thing_id)
            complete = False
        if complete:
            self._poll_retry = RETRY_FIRST
            self._poll_delay = period * random.uniform(0.8, 1.2)
        else:
            self._poll_delay = min(period, self._poll_retry) * random.uniform(0.8, 1.2)
            self._poll_retry = min(self._poll_retry * 2, RETRY_MAX)
        return 0

    async def read_once(self) -> bool:
        """Read every readable property; True when all of them were read."""
        names = self._readable()
        if not names:
            return True
        results: dict[str, Any] = await self.owner.exchange(
            lambda: self.owner.client.read_all(self.things, names, self.secrets)
        )
        values = {n: v for n, v in results.items() if not isinstance(v, Exception)}
        errors = {n: v for n, v in results.items() if isinstance(v, Exception)}
        if errors:
            first = next(iter(errors.items()))
            self.last_error = f"reading {first[0]}: {first[1]}"
        # A Thing that answers, even with an error, is reachable; one that never does is not.
        answered = bool(values) or any(not _unreachable(e) for e in errors.values())
        await self._report(values, answered=answered)
        await self._set_reachable(answered, None if answered else self.last_error)
        return not errors

    async def _report(self, values: dict[str, Any], *, answered: bool = False) -> None:
        """Values read: reported, `last_seen` and (the Thing answered, and was not known to)
        its presence, in one transaction."""
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return
        presence = None
        if answered and self.reachable is not True:
            presence = Context(ADAPTER, "wot adapter: the Thing answers")
        try:
            await self.rt.registry.record_read(
                self.ctx, self.thing_id, values, seen_us=clock.now_us(), presence=presence
            )
        except InvalidInput as exc:  # a value iotas cannot store (NaN, too deep ...)
            self.last_error = f"a value could not be stored: {exc.detail}"
            return
        except NotFound:
            return
        if presence is not None:
            self.reachable = True

    async def _set_reachable(self, reachable: bool, why: str | None) -> None:
        if reachable and self.actions.retrying:
            self.actions.wake()  # it answers again: what waits for it need not wait longer
        if reachable == self.reachable:
            return
        self.reachable = reachable
        if not reachable:
            log.info("wot: %s is unreachable: %s", self.thing_id, why)
        with contextlib.suppress(NotFound):
            ctx = Context(ADAPTER, why or "wot adapter: the Thing answers")
            await self.rt.registry.set_connected(ctx, self.thing_id, reachable)

    async def _observe(self, name: str) -> None:
        await self._follow(
            lambda: self.owner.client.observe_property(self.things, name, self.secrets),
            lambda value: self._report({name: value}),
        )

    async def _subscribe(self, name: str) -> None:
        async def record(data: Any) -> None:
            with contextlib.suppress(IotasError):
                await self.rt.registry.record_event(self.ctx, self.thing_id, name, data)

        await self._follow(
            lambda: self.owner.client.subscribe_event(self.things, name, self.secrets), record
        )

    async def _follow(
        self, stream: Callable[[], AsyncIterator[Any]], handle: Callable[[Any], Awaitable[None]]
    ) -> None:
        """Consume a stream of values, reopening it with backoff when it ends or fails."""
        delay = RETRY_FIRST
        while True:
            try:
                async for value in stream():
                    delay = RETRY_FIRST
                    await handle(value)
            except WotError as exc:
                self.last_error = str(exc)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, OBSERVE_RETRY_MAX)

    # -- writing ----------------------------------------------------------------------------

    async def _reconcile_round(self, _now_us: int) -> int:
        """One round of writes; the next when a change wakes it, or (a write failed) after a
        backoff, or after `SETTLED_RECHECK` in any case."""
        try:
            settled = await self.reconcile_once()
        except NotFound:  # deleted: its deletion stops this worker
            settled = True
        except Exception:  # a bug must not end reconciliation of this Thing for good
            log.exception("wot: reconciling %s failed", self.thing_id)
            settled = False
        if settled:
            self._write_retry = RETRY_FIRST
            self._write_delay = SETTLED_RECHECK
        else:
            self._write_delay = self._write_retry * random.uniform(0.8, 1.2)
            self._write_retry = min(self._write_retry * 2, RETRY_MAX)
        return 0

    async def reconcile_once(self) -> bool:
        """Write every desired key that differs from reported and is a writable property.
        Returns False when a write failed (retry later)."""
        thing = await self.rt.registry.get(self.thing_id)
        if thing.quarantine is not None:
            return True  # hands off a quarantined Thing: nothing is written to it
        writes = self._writes(thing)
        if not writes:
            return True
        results = await asyncio.gather(*(self._write(name, value, thing) for name, value in writes))
        return all(results)

    def _writes(self, thing: Thing) -> list[tuple[str, Any]]:
        out = []
        for name in thing.twin.delta:
            prop = self.things.properties.get(name)
            if prop is None or prop.read_only or not prop.forms_for(ops.WRITE_PROPERTY):
                continue  # nothing to write it to: it stays pending, and says so in the delta
            out.append((name, thing.twin.desired[name]))
        return out

    async def _write(self, name: str, value: Any, thing: Thing) -> bool:
        self.attempts += 1
        cause = f"reconcile desired {name} (twin version {thing.twin.version})"
        try:
            await self.owner.exchange(
                lambda: self.owner.client.write_property(self.things, name, value, self.secrets)
            )
        except WotError as exc:
            self.last_error = f"writing {name}: {exc}"
            await self._journal_attempt(cause, "writeproperty", name, value, error=str(exc))
            await self._set_reachable(not _unreachable(exc), self.last_error)
            return False
        # What the Thing now holds is what it reports: read it back where it can be read.
        reported = value
        prop = self.things.properties[name]
        if not prop.write_only and prop.forms_for(ops.READ_PROPERTY):
            try:
                reported = await self.owner.exchange(
                    lambda: self.owner.client.read_property(self.things, name, self.secrets)
                )
            except WotError as exc:
                self.last_error = f"reading {name} back: {exc}"
                await self._journal_attempt(cause, "writeproperty", name, value, error=None)
                return False
        attempt = _attempt("writeproperty", name, value, None)
        try:
            await self.rt.registry.record_write(
                Context(ADAPTER, cause),
                self.thing_id,
                attempt,
                reported={} if reported is None else {name: reported},
                reporter=self.ctx,
                seen_us=clock.now_us(),
            )
        except InvalidInput as exc:  # a value iotas cannot store (NaN, too deep ...)
            self.last_error = f"a value could not be stored: {exc.detail}"
            return False
        await self._set_reachable(True, None)
        return True

    async def _invoke(self, invocation: Invocation) -> Any:
        """One attempt at an invocation, journaled as an `adapter_attempt` like writes."""
        name, value = invocation.action, invocation.input
        cause = f"invocation {invocation.id}"
        try:
            output = await self.owner.exchange(
                lambda: self.owner.client.invoke_action(self.things, name, value, self.secrets)
            )
        except WotError as exc:
            await self._journal_attempt(cause, "invokeaction", name, value, error=str(exc))
            raise
        await self._journal_attempt(cause, "invokeaction", name, value, error=None)
        return output

    async def _unreachable_now(self, why: str) -> None:
        self.last_error = why
        await self._set_reachable(False, why)

    async def _journal_attempt(
        self,
        cause: str,
        op: str,
        name: str,
        value: Any,
        *,
        error: str | None,
        ctx: Context | None = None,
    ) -> None:
        record = _attempt(op, name, value, error)
        actor = (ctx or self.ctx).actor
        with contextlib.suppress(IotasError):
            await self.rt.registry.record_attempt(Context(actor, cause), self.thing_id, record)


def _attempt(op: str, name: str, value: Any, error: str | None) -> dict[str, Any]:
    return {
        "op": op,
        "name": name,
        "value": value,
        "outcome": "failed" if error else "succeeded",
        "error": error,
    }


def _unreachable(exc: BaseException) -> bool:
    return isinstance(exc, ThingUnreachable)
