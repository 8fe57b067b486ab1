"""The WoT adapter: managing adopted Web of Things Things through their own APIs.

For each adopted Thing a worker (worker.py) reads its properties through the TD's forms
(polling every `poll_interval`, jittered, and observing where the TD offers it), turns values
into reported state, journals the events it emits, and reconciles: every desired key that
differs from reported and names a writable property is written with `writeproperty`, retried
with backoff, each attempt's outcome journaled (`adapter_attempt`). A Thing that cannot be
read is marked disconnected (and, once silent for `expected_interval`, `unreachable`); a
Thing that changes on its own away from its desired state shows `drifted` and is put back.

Invocations of its actions are queued like any Thing's (services/invocations.py); the worker
runs them in order through the TD's action forms, retrying while the Thing is unreachable
until they expire (actions.py).

The workers run on one node of a cluster at a time: the one holding the lease of the
`wot-reconciler` controller. Any node adopts and releases."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from iotas.adapters.wot.client import WotClient
from iotas.adapters.wot.errors import WotError
from iotas.adapters.wot.worker import ThingWorker
from iotas.controllers.supervisor import Controllers, Loop
from iotas.domain import journal as ev
from iotas.domain import td
from iotas.domain.errors import InvalidInput, IotasError
from iotas.domain.things import Thing
from iotas.services.bundle import Services
from iotas.services.context import Context
from iotas.services.follow import follow
from iotas.services.secret_box import SecretBox
from iotas.services.wot import Adopted, WotBindings, check_poll, parse_secrets
from iotas.store.wot_repo import Binding

log = logging.getLogger("iotas.wot")

RECONCILER = "wot-reconciler"
WATCH_BATCH = 1000
# How often the leader compares its workers with the bindings anyway: adoptions and releases
# on any node are journaled (and resync at once), this only catches what a failed round missed.
RESYNC_SECONDS = 10.0
WATCHED = [
    ev.INVOCATION_CREATED,
    ev.DESIRED_CHANGED,
    ev.REPORTED_CHANGED,
    ev.THING_CREATED,
    ev.THING_UPDATED,
    ev.THING_DELETED,
    ev.WOT_ADOPTED,
    ev.WOT_RELEASED,
]
WATCHED_KINDS = (ev.THING, ev.WOT_BINDING, ev.INVOCATION)


def setup(services: Services, controllers: Controllers) -> WotThings:
    settings = services.settings
    bindings = WotBindings(
        services.store,
        services.registry,
        SecretBox.open(settings.data_dir, settings.secret_key),
    )
    return WotThings(services, bindings, WotClient(timeout=settings.wot_timeout), controllers)


class WotThings:
    """Runs a worker per adopted Thing while this node leads; `stop()` undoes `start()`."""

    name = "wot"

    def __init__(
        self,
        rt: Services,
        bindings: WotBindings,
        client: WotClient,
        controllers: Controllers | None = None,
    ) -> None:
        self.rt = rt
        self.bindings = bindings
        self.client = client
        self.controllers = controllers
        self.workers: dict[str, ThingWorker] = {}
        self.leading = False
        self._limit = asyncio.Semaphore(rt.settings.wot_concurrency)

    async def start(self) -> None:
        if self.controllers is None:
            raise RuntimeError("WotThings needs the node's controllers to start")
        await self.controllers.start(Loop(RECONCILER, self.lead, cluster_wide=True))

    async def stop(self) -> None:
        if self.controllers is not None:
            await self.controllers.stop(RECONCILER)
        await self._stop_workers()
        await self.client.aclose()

    def health(self) -> dict[str, Any]:
        return {"leading": self.leading, "managed": len(self.workers)}

    async def lead(self) -> None:
        """The reconciler, on the node holding its lease: a worker for every adopted Thing,
        woken by the journal, until cancelled (the lease lost, or the node stopping)."""
        head = await self.rt.journal.head_seq()
        try:
            self.leading = True
            await self._sync()
            if self.workers:
                log.info("wot: managing %d adopted Things", len(self.workers))
            await self._watch_journal(head)
        finally:
            self.leading = False
            await self._stop_workers()

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
        if self.leading:
            await self._start_worker(adopted.binding, adopted.thing)
        # else the node that leads starts it (it follows adoptions through the journal)
        return adopted

    async def release(self, ctx: Context, thing_id: str) -> None:
        await self.bindings.release(ctx, thing_id)
        worker = self.workers.pop(thing_id, None)
        if worker is not None:
            await worker.stop()

    def status(self, thing_id: str) -> dict[str, Any]:
        worker = self.workers.get(thing_id)
        return {} if worker is None else worker.status()

    # -- internals --------------------------------------------------------------------------

    async def _start_worker(self, binding: Binding, thing: Thing | None = None) -> None:
        old = self.workers.pop(binding.thing_id, None)
        if old is not None:
            await old.stop()
        worker = await self._worker(binding, thing)
        if worker is not None:
            self.workers[binding.thing_id] = worker
            worker.start()

    async def _worker(self, binding: Binding, thing: Thing | None = None) -> ThingWorker | None:
        """A worker for the bound Thing (as given, else read now)."""
        try:
            if thing is None:
                thing = await self.rt.registry.get(binding.thing_id)
            if thing.description is None:
                raise InvalidInput("the Thing has no TD")
            interactions = td.interactions(thing.description)
            secrets = self.bindings.secrets_of(binding)
        except (IotasError, ValueError) as exc:
            log.warning("wot: cannot manage %s: %s", binding.thing_id, exc)
            return None
        return ThingWorker(self, binding, interactions, secrets)

    async def _watch_journal(self, after: int) -> None:
        """Wake a Thing's reconciler when its desired or reported state changes (from any
        node: the journal is the source), follow TD changes and deletions, and pick up
        adoptions and releases made elsewhere."""
        synced = time.monotonic()
        while True:
            try:
                async for events in follow(
                    self.rt.journal,
                    self.rt.signal,
                    after,
                    kinds=WATCHED_KINDS,
                    types=WATCHED,
                    batch=WATCH_BATCH,
                ):
                    if events:
                        after = events[-1]["seq"]
                    if await self._apply(events) or time.monotonic() - synced >= RESYNC_SECONDS:
                        await self._sync()
                        synced = time.monotonic()
            except Exception:  # the database away for a moment: try again shortly
                log.exception("wot: following the journal failed")
                await asyncio.sleep(1.0)

    async def _apply(self, events: list[dict[str, Any]]) -> bool:
        """Act on a batch of journal events; True when a Thing this node does not manage may
        have been adopted (a resync is due)."""
        resync = False
        for event in events:
            kind = event["type"]
            if kind == ev.INVOCATION_CREATED:
                worker = self.workers.get((event.get("patch") or {}).get("thing", ""))
                if worker is not None:
                    worker.wake_actions()
                continue
            # A Thing's events name it as `thing_id`; a binding's, as its `record_id`.
            thing_id: str = event["thing_id"] if "thing_id" in event else event["record_id"]
            if kind in (ev.WOT_ADOPTED, ev.WOT_RELEASED):
                # A binding came or went, on this node or another. A resync reads every
                # binding, so only when it has something to do: one adopted here has its
                # worker already (10,000 adoptions would otherwise read 10,000 bindings
                # again and again), and a resync keeps a worker it has.
                resync = resync or (thing_id in self.workers) == (kind == ev.WOT_RELEASED)
                continue
            described = "description" in (event.get("patch") or {})
            worker = self.workers.get(thing_id)
            if worker is None:
                resync = resync or kind == ev.THING_CREATED or described
            elif kind == ev.THING_DELETED:
                self.workers.pop(thing_id, None)
                await worker.stop()
            elif kind == ev.THING_UPDATED and described:
                await self._start_worker(worker.binding)
            elif kind in (ev.DESIRED_CHANGED, ev.REPORTED_CHANGED):
                worker.wake()
        return resync

    async def _sync(self) -> None:
        """A worker for every binding, none for a Thing no longer adopted."""
        bindings = {b.thing_id: b for b in await self.bindings.all()}
        for thing_id in [t for t in self.workers if t not in bindings]:
            worker = self.workers.pop(thing_id)
            await worker.stop()
        for thing_id, binding in bindings.items():
            if thing_id not in self.workers:
                await self._start_worker(binding)

    async def _stop_workers(self) -> None:
        workers, self.workers = self.workers, {}
        await asyncio.gather(*(w.stop() for w in workers.values()))

    async def exchange(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """One exchange with a Thing, within the node-wide concurrency limit."""
        async with self._limit:
            return await call()
