"""`WotClient`: operations on a Thing (read, write, invoke, observe, subscribe) through the
forms of its TD, whatever protocol they use.

For an operation the client picks a form whose `op` includes it, preferring HTTP(S), then
CoAP, then MQTT (and JSON before other encodings), and applies the TD's security schemes with
the Thing's secrets. Every exchange is bounded in time (one total deadline, `timeout`) and size
(`max_response_bytes`); nothing here can hang its caller. Streams (observe, subscribe) run
until cancelled: they reopen themselves after a failure, with backoff, and give up with the
last error after `stream_retries` failures in a row.

Close a stream you stop early with `contextlib.aclosing`, or cancel the task reading it: either
closes its connection at once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

from iotas.adapters.wot.coap_forms import COAP_METHODS, CoapForms
from iotas.adapters.wot.errors import BadThingResponse, NoUsableForm, ThingUnreachable, WotError
from iotas.adapters.wot.http_forms import HttpForms
from iotas.adapters.wot.mqtt_forms import MqttForms
from iotas.adapters.wot.payloads import encode
from iotas.adapters.wot.security import (
    ThingSecrets,
    coap_check,
    http_auth,
    mqtt_credentials,
)
from iotas.domain import td_model as ops
from iotas.domain.td_model import (
    ActionAffordance,
    EventAffordance,
    Form,
    Interactions,
    PropertyAffordance,
)

__all__ = ["ThingSecrets", "WotClient"]

HTTP = ("https", "http")
COAP = ("coap",)  # coaps (DTLS) is not spoken yet
MQTT = ("mqtt", "mqtts")
PREFERENCE = (*HTTP, *COAP, *MQTT)
TD_SCHEMES = ("http", "https", "coap")
# Where a stream's backoff starts and stops growing, in seconds.
RETRY_FIRST = 0.5
RETRY_CAP = 10.0


class WotClient:
    def __init__(
        self,
        *,
        timeout: float = 5.0,
        max_response_bytes: int = 1_048_576,
        max_redirects: int = 3,
        hold_seconds: float = 60.0,
        stream_retries: int = 3,
    ) -> None:
        """`timeout` bounds each exchange as a whole; `hold_seconds` is how long a long-poll
        or event stream may stay silent before it is asked again; `stream_retries` is how many
        failures in a row a stream survives."""
        self.timeout = timeout
        self.stream_retries = stream_retries
        self.http = HttpForms(
            timeout=timeout,
            max_bytes=max_response_bytes,
            max_redirects=max_redirects,
            hold_seconds=hold_seconds,
        )
        self.coap = CoapForms(timeout=timeout, max_bytes=max_response_bytes)
        self.mqtt = MqttForms(timeout=timeout, max_bytes=max_response_bytes)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.coap.aclose()

    async def fetch_td(self, url: str) -> dict[str, Any]:
        """GET a TD by URL (http, https or coap), bounded; a JSON object or a WotError."""
        scheme = url.split(":", 1)[0].lower()
        if scheme not in TD_SCHEMES:
            raise NoUsableForm(f"fetch a TD over http, https or coap, not {scheme!r} ({url[:200]})")
        form = Form(href=url, op=(ops.READ_PROPERTY,), content_type="application/td+json")
        if scheme in HTTP:
            doc = await self.http.exchange(form, method="GET", auth=http_auth((), None))
        else:
            doc = await self.coap.exchange(form, method="GET")
        if not isinstance(doc, dict):
            raise BadThingResponse(f"{url} did not answer a JSON object (a TD)")
        return doc

    # -- operations ---------------------------------------------------------------------------

    async def read_property(
        self, things: Interactions, name: str, secrets: ThingSecrets | None = None
    ) -> Any:
        form = _form(things, "property", name, ops.READ_PROPERTY)
        return await self._call(things, form, ops.READ_PROPERTY, secrets, None)

    async def read_all(
        self, things: Interactions, names: list[str], secrets: ThingSecrets | None = None
    ) -> dict[str, Any]:
        """Each property's value, or the WotError that reading it raised; read concurrently,
        each within the deadline."""
        results = await asyncio.gather(
            *(self.read_property(things, n, secrets) for n in names), return_exceptions=True
        )
        out: dict[str, Any] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, WotError):
                raise result  # a bug or a cancellation is not a Thing's answer
            out[name] = result
        return out

    async def write_property(
        self, things: Interactions, name: str, value: Any, secrets: ThingSecrets | None = None
    ) -> None:
        form = _form(things, "property", name, ops.WRITE_PROPERTY)
        await self._call(
            things, form, ops.WRITE_PROPERTY, secrets, encode(value, form.content_type)
        )

    async def invoke_action(
        self,
        things: Interactions,
        name: str,
        input: Any = None,
        secrets: ThingSecrets | None = None,
    ) -> Any:
        form = _form(things, "action", name, ops.INVOKE_ACTION)
        # Always a body, `null` when there is no input: wotpy answers 500 to an empty one.
        return await self._call(
            things, form, ops.INVOKE_ACTION, secrets, encode(input, form.content_type)
        )

    def observe_property(
        self, things: Interactions, name: str, secrets: ThingSecrets | None = None
    ) -> AsyncIterator[Any]:
        form = _form(things, "property", name, ops.OBSERVE_PROPERTY)
        return self._resilient(lambda: self._stream(things, form, ops.OBSERVE_PROPERTY, secrets))

    def subscribe_event(
        self, things: Interactions, name: str, secrets: ThingSecrets | None = None
    ) -> AsyncIterator[Any]:
        form = _form(things, "event", name, ops.SUBSCRIBE_EVENT)
        return self._resilient(lambda: self._stream(things, form, ops.SUBSCRIBE_EVENT, secrets))

    # -- plumbing -----------------------------------------------------------------------------

    async def _call(
        self,
        things: Interactions,
        form: Form,
        op: str,
        secrets: ThingSecrets | None,
        body: bytes | None,
    ) -> Any:
        schemes = things.schemes_for(form)
        if form.scheme in HTTP:
            auth = http_auth(schemes, secrets)
            return await self.http.exchange(form, method=form.http_method(op), auth=auth, body=body)
        if form.scheme in COAP:
            coap_check(schemes)
            method = form.method or COAP_METHODS.get(op, "GET")
            return await self.coap.exchange(form, method=method, body=body)
        credentials = mqtt_credentials(schemes, secrets)
        if op == ops.READ_PROPERTY:
            return await self.mqtt.read(form, credentials)
        await self.mqtt.publish(form, body or b"null", credentials)
        return None

    def _stream(
        self, things: Interactions, form: Form, op: str, secrets: ThingSecrets | None
    ) -> AsyncIterator[Any]:
        schemes = things.schemes_for(form)
        if form.scheme in HTTP:
            auth = http_auth(schemes, secrets)
            if form.subprotocol == "sse":
                return self.http.sse(form, auth)
            return self.http.longpoll(form, form.http_method(op), auth)
        if form.scheme in COAP:
            coap_check(schemes)
            return self.coap.observe(form)
        return self.mqtt.subscribe(form, mqtt_credentials(schemes, secrets))

    async def _resilient(self, open_stream: Callable[[], AsyncIterator[Any]]) -> AsyncIterator[Any]:
        """The values of a stream, reopened when it ends or cannot be reached, with backoff.
        After `stream_retries` unreachable attempts in a row the last error is raised; other
        errors (a refusal, a bad answer, missing credentials) are raised at once, since asking
        again would get the same."""
        failures = 0
        quiet = 0  # times in a row the stream ended without a value
        while True:
            stream = open_stream()
            try:
                async for value in stream:
                    failures = quiet = 0
                    yield value
                quiet += 1
            except ThingUnreachable:
                failures += 1
                if failures > self.stream_retries:
                    raise
            finally:
                await stream.aclose()  # type: ignore[attr-defined]  # our streams are generators
            attempt = failures + quiet
            ceiling = min(RETRY_CAP, RETRY_FIRST * 2 ** min(attempt - 1, 10))
            await asyncio.sleep(random.uniform(ceiling / 2, ceiling))


def _form(things: Interactions, kind: str, name: str, op: str) -> Form:
    """The form to use for `op`: by protocol, then JSON before other encodings (node-wot
    offers CBOR forms beside its JSON ones)."""
    affordance: PropertyAffordance | ActionAffordance | EventAffordance | None
    if kind == "property":
        affordance = things.properties.get(name)
    elif kind == "action":
        affordance = things.actions.get(name)
    else:
        affordance = things.events.get(name)
    if affordance is None:
        raise NoUsableForm(f"the TD has no {kind} {name!r}")
    offered = affordance.forms_for(op)
    candidates = [f for f in offered if f.scheme in PREFERENCE]
    if not candidates:
        schemes = sorted({f.scheme for f in offered})
        raise NoUsableForm(
            f"no form of the {kind} {name!r} offers {op} over a protocol iotas speaks "
            f"({', '.join(PREFERENCE)}); the TD offers "
            + (", ".join(schemes) if schemes else "no form for it")
        )
    return min(
        candidates,
        key=lambda f: (PREFERENCE.index(f.scheme), not f.content_type.lower().endswith("json")),
    )
