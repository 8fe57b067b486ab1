"""What iotas does with a message a Thing published, whatever carried it.

`DeviceMessages.handle` returns once what the message carries is committed (or once it is
refused, counted and logged); transports acknowledge the message only then. Both the MQTT
client transport (`adapter.py`) and the embedded broker use it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection
from typing import Any, Protocol

import orjson

from iotas.adapters.mqtt import topics
from iotas.adapters.mqtt.batcher import TelemetryBatcher
from iotas.controllers.periodic import Periodic
from iotas.domain import clock
from iotas.domain.errors import InvalidInput, IotasError, NotFound
from iotas.domain.telemetry import TelemetryRejected, parse_payload
from iotas.services.context import Actor, Context
from iotas.services.credentials import CredentialService
from iotas.services.registry import Registry
from iotas.services.stats import IngestStats
from iotas.services.telemetry import TelemetryService

log = logging.getLogger("iotas.mqtt")

MAX_PAYLOAD = 256 * 1024
# What a Thing sends whose order must hold even when an external broker hands iotas many
# messages at once: presence ("offline" then "online") and invocation results ("running"
# then "succeeded"). Reports and events are taken concurrently, as they come, so that they
# share commits: chaining each report's commit behind the one before made a backlog of one
# device's reports drain one commit at a time (a restart's queued stream took minutes).
ORDERED = frozenset({"presence", "actions"})


class Results(Protocol):
    """Where a device's invocation results go (`services.invocations.Invocations`)."""

    async def report(
        self, ctx: Context, thing_id: str, invocation_id: str, result: dict[str, Any]
    ) -> object: ...


class DeviceMessages:
    def __init__(
        self,
        *,
        registry: Registry,
        telemetry: TelemetryService,
        stats: IngestStats,
        max_payload: int = MAX_PAYLOAD,
        credentials: CredentialService | None = None,
        results: Results | None = None,
    ) -> None:
        self.credentials = credentials
        self.results = results
        # How an answer gets back to a device (the transport's non-retained QoS 1 publish);
        # set by the transport once it can publish.
        self.reply: Callable[[str, bytes], None] | None = None
        self.registry = registry
        self.telemetry = telemetry
        self.stats = stats
        self.max_payload = max_payload
        self._batcher = TelemetryBatcher(self._ingest)
        self._seen: set[str] = set()
        # Per Thing, its latest ORDERED message: each waits for the one before.
        self._last: dict[str, asyncio.Future[None]] = {}

    async def handle(self, topic: str, payload: bytes, *, sender: str | None = None) -> None:
        """Take one message. `sender` is the authenticated client (None: trusted transport)."""
        route = self._route(topic, payload, sender)
        if route is None:
            return
        if route.channel == "telemetry":
            batch = self._join_batch(route, payload)
            if batch is not None:
                await asyncio.shield(batch)
        elif route.channel in ORDERED:
            await self._in_order(route, payload)
        else:
            await self._counted(route, payload)

    async def _counted(self, route: topics.Route, payload: bytes) -> None:
        try:
            await self._dispatch(route, payload)
        except (InvalidInput, NotFound) as exc:
            self._refused(route, exc)
        else:
            self._accepted(route)
        # Anything else (the database is down) propagates: the transport must not acknowledge.

    def take(self, topic: str, payload: bytes) -> asyncio.Future[Any] | None:
        """`handle` for a trusted transport, without a coroutine for telemetry (nearly every
        message; a Task each cost a sixth of the ingest path). None when the message is done
        with (refused and counted); otherwise a future that completes once what it carries is
        committed, or fails (do not acknowledge then). Telemetry messages of one batch share
        their batch's future, so a transport can acknowledge them together."""
        route = self._route(topic, payload, None)
        if route is None:
            return None
        if route.channel in ORDERED:
            return self._in_order(route, payload)
        if route.channel != "telemetry":
            return asyncio.ensure_future(self._counted(route, payload))
        return self._join_batch(route, payload)

    def _in_order(self, route: topics.Route, payload: bytes) -> asyncio.Future[None]:
        """Take a message after the Thing's previous ORDERED one is done: a device's
        "offline" then "online", an invocation's "running" then "succeeded" are applied in the
        order it sent them, never the other way round (each commits on its own, so two taken
        at once could commit in either order)."""
        thing_id = route.thing_id
        previous = self._last.get(thing_id)
        task = asyncio.ensure_future(self._after(previous, route, payload))
        self._last[thing_id] = task
        task.add_done_callback(lambda done: self._forget(thing_id, done))
        return task

    async def _after(
        self, previous: asyncio.Future[None] | None, route: topics.Route, payload: bytes
    ) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        await self._counted(route, payload)

    def _forget(self, thing_id: str, done: asyncio.Future[None]) -> None:
        if self._last.get(thing_id) is done:
            del self._last[thing_id]

    def _join_batch(
        self, route: topics.Route, payload: bytes
    ) -> asyncio.Future[Collection[str]] | None:
        """Check a telemetry payload and put its samples in the batch being collected: the
        batch's future, or None when the payload was refused (and counted). The batch counts
        its messages once it is committed (`_ingest`)."""
        try:
            samples = parse_payload(payload, clock.now_us())
        except InvalidInput as exc:
            self._refused(route, exc)
            return None
        return self._batcher.join(route.thing_id, samples)

    def _route(self, topic: str, payload: bytes, sender: str | None) -> topics.Route | None:
        """The message's route, or None when it is refused (and counted) before any work."""
        try:
            route = topics.parse(topic)
        except InvalidInput as exc:
            self.stats.reject("bad_topic", exc.detail, source=sender or topic[:200])
            return None
        if sender is not None and sender != route.thing_id:
            self.stats.reject("not_own_topic", f"{sender!r} published on {topic!r}", source=sender)
            return None
        if len(payload) > self.max_payload:
            self.stats.reject(
                "too_large",
                f"{len(payload)} bytes, at most {self.max_payload}",
                source=route.thing_id,
            )
            return None
        return route

    def _refused(self, route: topics.Route, exc: InvalidInput | NotFound) -> None:
        source = route.thing_id
        if isinstance(exc, TelemetryRejected):
            self.stats.reject(exc.reason, exc.detail, source=source)
        elif isinstance(exc, NotFound):
            self._unknown(source)
        else:
            reason = "bad_result" if route.channel == "actions" else f"bad_{route.channel}"
            self.stats.reject(reason, exc.detail, source=source)

    def _unknown(self, thing_id: str) -> None:
        self.stats.reject("unknown_thing", f"no Thing {thing_id!r} is registered", source=thing_id)

    def _accepted(self, route: topics.Route) -> None:
        self.stats.accept(route.channel)
        self._seen.add(route.thing_id)

    async def _dispatch(self, route: topics.Route, payload: bytes) -> None:
        ctx = Context(Actor(route.thing_id, role="device"), f"mqtt {route.channel}")
        if route.channel == "reported":
            patch = _json_object(payload, "a reported patch")
            await self.registry.patch_twin(ctx, route.thing_id, "reported", patch)
        elif route.channel == "presence":
            state = payload.decode("utf-8", "replace").strip().strip('"')
            if state not in ("online", "offline"):
                raise InvalidInput(f'presence is "online" or "offline", not {state[:40]!r}')
            await self.registry.set_connected(ctx, route.thing_id, state == "online")
        elif route.channel == "events":
            assert route.name is not None
            await self.registry.record_event(ctx, route.thing_id, route.name, _json(payload))
        elif route.channel == "renew":
            await self._renew(ctx, route.thing_id, payload)
        elif route.channel == "actions":
            await self._result(ctx, route, payload)

    async def _result(self, ctx: Context, route: topics.Route, payload: bytes) -> None:
        """An invocation's result: the service applies it, or counts and logs why not (an
        unknown, another Thing's or finished invocation; a malformed result)."""
        if self.results is None:
            raise InvalidInput("invocation results are not taken over this transport")
        assert route.invocation is not None
        await self.results.report(
            ctx, route.thing_id, route.invocation, _json_object(payload, "a result")
        )

    async def _renew(self, ctx: Context, thing_id: str, payload: bytes) -> None:
        """A device renews its certificate (`{"serial", "csr"?}`): the answer, or an error
        document, goes to `things/{id}/certificate`. A refused renewal is counted as bad
        input, never retried: the request itself is what is wrong."""
        if self.credentials is None or self.reply is None:
            raise InvalidInput("certificate renewal is not available over this transport")
        try:
            answer = await self.credentials.renew(ctx, thing_id, _json_object(payload, "a renewal"))
        except IotasError as exc:
            error = {"error": exc.title, "status": exc.status, "detail": exc.detail}
            self.reply(topics.certificate(thing_id), orjson.dumps(error))
            raise InvalidInput(exc.detail) from None
        self.reply(topics.certificate(thing_id), orjson.dumps(answer))

    async def _ingest(self, batch: list[tuple[str, list[Any]]]) -> frozenset[str]:
        unknown = (await self.telemetry.ingest(batch)).unknown
        # Counted here, once per batch: per message, a callback each cost more than the count.
        refused = 0
        if unknown:
            for thing_id, _ in batch:
                if thing_id in unknown:
                    refused += 1
                    self._unknown(thing_id)
        self.stats.accept("telemetry", len(batch) - refused)
        return unknown

    async def touch_seen_once(self) -> int:
        """Move last_seen for Things heard from on channels other than telemetry since the
        last round (telemetry ingest moves it itself); the runtime runs this once a second."""
        if not self._seen:
            return 0
        seen, self._seen = sorted(self._seen), set()
        await self.registry.touch(seen, clock.now_us())
        return len(seen)

    def seen_controller(self) -> Periodic:
        return Periodic(
            "mqtt-last-seen",
            lambda _now_us: self.touch_seen_once(),
            interval=1.0,
            first_delay=1.0,
            log=log,
            failed="moving last_seen of Things heard from failed",
        )

    async def drain(self) -> None:
        await self._batcher.drain()


def _json(payload: bytes) -> Any:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"the payload is not JSON: {exc}") from None


def _json_object(payload: bytes, what: str) -> dict[str, Any]:
    value = _json(payload)
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a JSON object")
    return value
