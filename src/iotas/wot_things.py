"""Managing adopted Web of Things Things through their own APIs: the WoT composition root.

For each adopted Thing a worker reads its properties through the TD's forms (polling every
`poll_interval`, jittered, and observing where the TD offers it), turns values into reported
state, journals the events it emits, and reconciles: every desired key that differs from
reported and names a writable property is written with `writeproperty`, retried with
backoff, each attempt's outcome journaled (`adapter_attempt`). A Thing that cannot be read is
marked disconnected (and, once silent for `expected_interval`, `unreachable`); a Thing that
changes on its own away from its desired state shows `drifted` and is put back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from iotas.adapters.wot.client import ThingSecrets, WotClient
from iotas.adapters.wot.errors import ThingUnreachable, WotError
from iotas.aio import cancel_and_wait
from iotas.api.runtime import Runtime
from iotas.domain import clock, td
from iotas.domain import journal as ev
from iotas.domain import td_model as ops
from iotas.domain.errors import InvalidInput, IotasError, NotFound
from iotas.domain.td_model import Interactions
from iotas.domain.things import Thing, check_not_quarantined
from iotas.services.context import Actor, Context
from iotas.services.wot import Adopted, Secrets, WotBindings, check_poll, parse_secrets
from iotas.store.wot_repo import Binding

log = logging.getLogger("iotas.wot")

ADAPTER = Actor("wot-adapter", role="system")
RETRY_FIRST = 1.0
RETRY_MAX = 60.0
OBSERVE_RETRY_MAX = 30.0
WATCH_BATCH = 1000


class WotThings:
    """Starts a worker per adopted Thing; `stop()` undoes `start()`."""

    def __init__(self, rt: Runtime, bindings: WotBindings, client: WotClient) -> None:
        self.rt = rt
        self.bindings = bindings
        self.client = client
        self.workers: dict[str, ThingWorker] = {}
        self._limit = asyncio.Semaphore(rt.settings.wot_concurrency)
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        head = await self.rt.journal.head_seq()
        for binding in await self.bindings.all():
            await self._start_worker(binding)
        self._watch = asyncio.create_task(self._watch_journal(head), name="iotas-wot-watch")
        if self.workers:
            log.info("wot: managing %d adopted Things", len(self.workers))

    async def stop(self) -> None:
        await cancel_and_wait([self._watch])
        await asyncio.gather(*(w.stop() for w in self.workers.values()))
        self.workers.clear()
        await self.client.aclose()

    # -- operations the API offers ----------------------------------------------------------

    async def adopt(self, ctx: Context, body: object) -> Adopted:
        """`{"td_url": ...}` or `{"td": {...}}`, with optional `id`, `poll_interval` and
        `credentials`: fetch the TD, register the Thing from it, start managing it."""
        if not isinstance(body, dict):
            raise InvalidInput('send {"td_url": "..."} or {"td": {...}}')
        unknown = sorted(set(body) - {"td_url", "td", "id", "poll_interval", "credentials"})
        if unknown:
            raise InvalidInput(f"unknown member(s) {', '.join(unknown)} in an adoption")
        td_url, doc = body.get("td_url"), body.get("td")
        if (td_url is None) == (doc is None):
            raise InvalidInput('give the TD by URL ("td_url") or inline ("td"), one of them')
        if td_url is not None:
            if not isinstance(td_url, str) or len(td_url) > 2048:
                raise InvalidInput("td_url must be an http(s) or coap URL", field="td_url")
            try:
                doc = await self.client.fetch_td(td_url)
            except WotError as exc:
                raise InvalidInput(f"could not fetch the TD from {td_url}: {exc}") from None
        thing_id = body.get("id")
        if thing_id is not None and not isinstance(thing_id, str):
            raise InvalidInput("id must be a Thing id such as acme:lamp-1", field="id")
        adopted = await self.bindings.adopt(
            ctx,
            doc,
            td_url=td_url,
            thing_id=thing_id,
            poll_seconds=check_poll(body.get("poll_interval")),
            secrets=parse_secrets(body.get("credentials")),
        )
        await self._start_worker(adopted.binding)
        return adopted

    async def release(self, ctx: Context, thing_id: str) -> None:
        await self.bindings.release(ctx, thing_id)
        worker = self.workers.pop(thing_id, None)
        if worker is not None:
            await worker.stop()

    async def invoke(self, ctx: Context, thing_id: str, name: str, value: Any) -> dict[str, Any]:
        thing = await self.rt.registry.get(thing_id)  # 404 if there is no such Thing
        check_not_quarantined(thing, f"invoking {name[:100]!r}")
        worker = self.workers.get(thing_id)
        if worker is None:
            raise InvalidInput(
                f"the Thing {thing_id!r} is not adopted: actions reach adopted WoT Things "
                "through their TD (invocations of native Things come with a later release)"
            )
        return await worker.invoke(ctx, name, value)

    def status(self, thing_id: str) -> dict[str, Any]:
        worker = self.workers.get(thing_id)
        return {} if worker is None else worker.status()

    # -- internals --------------------------------------------------------------------------

    async def _start_worker(self, binding: Binding) -> None:
        old = self.workers.pop(binding.thing_id, None)
        if old is not None:
            await old.stop()
        try:
            thing = await self.rt.registry.get(binding.thing_id)
            if thing.description is None:
                raise InvalidInput("the Thing has no TD")
            interactions = td.interactions(thing.description)
            secrets = self.bindings.secrets_of(binding)
        except (IotasError, ValueError) as exc:
            log.warning("wot: cannot manage %s: %s", binding.thing_id, exc)
            return
        worker = ThingWorker(self, binding, interactions, secrets)
        self.workers[binding.thing_id] = worker
        worker.start()

    async def _watch_journal(self, after: int) -> None:
        """Wake a Thing's reconciler when its desired or reported state changes (from any
        node: the journal is the source), and follow TD changes and deletions."""
        types = [ev.DESIRED_CHANGED, ev.REPORTED_CHANGED, ev.THING_UPDATED, ev.THING_DELETED]
        signal, journal = self.rt.signal, self.rt.journal
        while True:
            watched, seen = signal.watch(), signal.last_seq
            try:
                events = await journal.feed(after, WATCH_BATCH, types)
            except Exception:  # the database away for a moment: try again shortly
                log.exception("wot: reading the journal failed")
                await asyncio.sleep(1.0)
                continue
            if not events:
                after = max(after, seen)
                await signal.wait(1.0, watched)
                continue
            after = events[-1]["seq"]
            for event in events:
                worker = self.workers.get(event["thing_id"])
                if worker is None:
                    continue
                if event["type"] == ev.THING_DELETED:
                    self.workers.pop(event["thing_id"], None)
                    await worker.stop()
                elif event["type"] == ev.THING_UPDATED and "description" in (
                    event.get("patch") or {}
                ):
                    await self._start_worker(worker.binding)
                elif event["type"] != ev.THING_UPDATED:
                    worker.wake()

    async def exchange(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """One exchange with a Thing, within the node-wide concurrency limit."""
        async with self._limit:
            return await call()


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
        self._wake = asyncio.Event()
        self.reachable: bool | None = None
        self.last_error: str | None = None
        self.attempts = 0

    def start(self) -> None:
        name = self.thing_id
        self._tasks.append(asyncio.create_task(self._poll(), name=f"wot-poll {name}"))
        self._tasks.append(asyncio.create_task(self._reconcile(), name=f"wot-sync {name}"))
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
        self._wake.set()  # reconcile whatever is pending now

    async def stop(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks.clear()

    def wake(self) -> None:
        self._wake.set()

    def status(self) -> dict[str, Any]:
        return {
            "reachable": self.reachable,
            "last_error": self.last_error,
            "write_attempts": self.attempts,
        }

    # -- reading ----------------------------------------------------------------------------

    def _readable(self) -> list[str]:
        return [
            p.name
            for p in self.things.properties.values()
            if not p.write_only and p.forms_for(ops.READ_PROPERTY)
        ]

    async def _poll(self) -> None:
        period = self.binding.poll_seconds
        # Spread the first reads so a restart does not hit every Thing at once.
        await asyncio.sleep(random.uniform(0, min(period, 2.0)))
        retry = RETRY_FIRST
        while True:
            try:
                complete = await self.read_once()
            except Exception:  # a bug must not end the reads of this Thing for good
                log.exception("wot: reading %s failed", self.thing_id)
                complete = False
            if complete:
                retry = RETRY_FIRST
                await asyncio.sleep(period * random.uniform(0.8, 1.2))
            else:
                # Not every property could be read: try again soon (backing off), not a
                # whole poll interval later, which may be hours.
                await asyncio.sleep(min(period, retry) * random.uniform(0.8, 1.2))
                retry = min(retry * 2, RETRY_MAX)

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
        await self._report(values)
        # A Thing that answers, even with an error, is reachable; one that never does is not.
        answered = bool(values) or any(not _unreachable(e) for e in errors.values())
        await self._set_reachable(answered, None if answered else self.last_error)
        return not errors

    async def _report(self, values: dict[str, Any]) -> None:
        values = {k: v for k, v in values.items() if v is not None}
        if not values:
            return
        try:
            await self.rt.registry.patch_twin(self.ctx, self.thing_id, "reported", values)
            await self.rt.registry.touch([self.thing_id], clock.now_us())
        except InvalidInput as exc:  # a value iotas cannot store (NaN, too deep ...)
            self.last_error = f"a value could not be stored: {exc.detail}"
        except NotFound:
            pass

    async def _set_reachable(self, reachable: bool, why: str | None) -> None:
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

    async def _reconcile(self) -> None:
        delay = RETRY_FIRST
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                settled = await self.reconcile_once()
            except NotFound:
                return
            except Exception:  # a bug must not end reconciliation of this Thing for good
                log.exception("wot: reconciling %s failed", self.thing_id)
                settled = False
            if settled:
                delay = RETRY_FIRST
                continue
            # Something failed: try again after a backoff unless a change wakes us first.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay * random.uniform(0.8, 1.2))
            self._wake.set()
            delay = min(delay * 2, RETRY_MAX)

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

    async def invoke(self, ctx: Context, name: str, value: Any) -> dict[str, Any]:
        action = self.things.actions.get(name)
        if action is None or not action.forms_for(ops.INVOKE_ACTION):
            raise NotFound(f"the TD of {self.thing_id!r} offers no action {name[:100]!r}")
        try:
            output = await self.owner.exchange(
                lambda: self.owner.client.invoke_action(self.things, name, value, self.secrets)
            )
        except WotError as exc:
            await self._journal_attempt(
                ctx.cause or f"invoke {name}", "invokeaction", name, value, error=str(exc), ctx=ctx
            )
            return {"status": "failed", "error": str(exc)}
        await self._journal_attempt(
            ctx.cause or f"invoke {name}", "invokeaction", name, value, error=None, ctx=ctx
        )
        return {"status": "succeeded", "output": output}

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
