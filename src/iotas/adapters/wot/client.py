"""`WotClient`: operations on a Thing (read, write, invoke, observe, subscribe) through the
forms of its TD, whatever protocol they use.

For an operation the client picks a form whose `op` includes it, preferring HTTP(S), then
CoAP, then MQTT, and applies the TD's security schemes with the Thing's secrets. Every
exchange is bounded in time and size (see `http_forms`); nothing here can hang its caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from iotas.adapters.wot.coap_forms import COAP_METHODS, CoapForms
from iotas.adapters.wot.errors import BadThingResponse, NoUsableForm, WotError
from iotas.adapters.wot.http_forms import HttpForms, auth_for
from iotas.adapters.wot.mqtt_forms import MqttForms
from iotas.domain import td_model as ops
from iotas.domain.td_model import Form, Interactions

PREFERENCE = ("https", "http", "coaps", "coap", "mqtts", "mqtt")
HTTP = ("http", "https")
COAP = ("coap", "coaps")
MQTT = ("mqtt", "mqtts")
TD_SCHEMES = ("http", "https", "coap", "coaps")


@dataclass(frozen=True, slots=True)
class ThingSecrets:
    username: str | None = None
    password: str | None = None
    token: str | None = None


class WotClient:
    def __init__(
        self, *, timeout: float = 5.0, max_response_bytes: int = 1_048_576, max_redirects: int = 3
    ) -> None:
        self.timeout = timeout
        self.http = HttpForms(
            timeout=timeout, max_bytes=max_response_bytes, max_redirects=max_redirects
        )
        self.coap = CoapForms(timeout=timeout, max_bytes=max_response_bytes)
        self.mqtt = MqttForms(timeout=timeout, max_bytes=max_response_bytes)

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.coap.aclose()

    async def fetch_td(self, url: str) -> dict[str, Any]:
        """GET a TD by URL (http, https or coap), bounded; a JSON object or WotError."""
        scheme = url.split(":", 1)[0].lower()
        if scheme not in TD_SCHEMES:
            raise NoUsableForm(f"fetch a TD over http, https or coap, not {scheme!r}")
        form = Form(href=url, op=(ops.READ_PROPERTY,), content_type="application/json")
        if scheme in HTTP:
            _, doc = await self.http.exchange(form, method="GET", headers={}, query={})
        else:
            doc = await self.coap.exchange(form, method="GET")
        if not isinstance(doc, dict):
            raise BadThingResponse(f"{url} did not answer a JSON object (a TD)")
        return doc

    # -- operations ---------------------------------------------------------------------

    async def read_property(
        self, things: Interactions, name: str, secrets: ThingSecrets | None = None
    ) -> Any:
        form = self._form(things, "properties", name, ops.READ_PROPERTY, (*HTTP, *COAP))
        return await self._call(things, form, ops.READ_PROPERTY, secrets)

    async def read_all(
        self, things: Interactions, names: list[str], secrets: ThingSecrets | None = None
    ) -> dict[str, Any]:
        """Each property's value, or the exception that reading it raised."""
        results = await asyncio.gather(
            *(self.read_property(things, n, secrets) for n in names), return_exceptions=True
        )
        out: dict[str, Any] = {}
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancellation goes through
            out[name] = result
        return out

    async def write_property(
        self, things: Interactions, name: str, value: Any, secrets: ThingSecrets | None = None
    ) -> None:
        form = self._form(things, "properties", name, ops.WRITE_PROPERTY, PREFERENCE)
        await self._call(things, form, ops.WRITE_PROPERTY, secrets, body=value, send_body=True)

    async def invoke_action(
        self,
        things: Interactions,
        name: str,
        input: Any = None,
        secrets: ThingSecrets | None = None,
    ) -> Any:
        form = self._form(things, "actions", name, ops.INVOKE_ACTION, PREFERENCE)
        # Always a body, `null` when there is no input: wotpy answers 500 to an empty one.
        return await self._call(
            things, form, ops.INVOKE_ACTION, secrets, body=input, send_body=True
        )

    async def observe_property(
        self, things: Interactions, name: str, secrets: ThingSecrets | None = None
    ) -> AsyncIterator[Any]:
        form = self._form(things, "properties", name, ops.OBSERVE_PROPERTY, PREFERENCE)
        async for value in self._stream(things, form, secrets):
            yield value

    async def subscribe_event(
        self, things: Interactions, name: str, secrets: ThingSecrets | None = None
    ) -> AsyncIterator[Any]:
        form = self._form(things, "events", name, ops.SUBSCRIBE_EVENT, PREFERENCE)
        async for value in self._stream(things, form, secrets):
            yield value

    # -- plumbing -----------------------------------------------------------------------

    def _form(
        self, things: Interactions, kind: str, name: str, op: str, schemes: tuple[str, ...]
    ) -> Form:
        affordance = getattr(things, kind).get(name)
        if affordance is None:
            raise NoUsableForm(
                f"the TD has no {kind[:-1] if kind != 'properties' else 'property'} {name!r}"
            )
        candidates = [f for f in affordance.forms_for(op) if f.scheme in schemes]
        if not candidates:
            offered = sorted({f.scheme for f in affordance.forms_for(op)}) or ["none"]
            raise NoUsableForm(
                f"no form of {name!r} offers {op} over a protocol iotas speaks "
                f"(offered: {', '.join(offered)})"
            )
        # By protocol, then JSON before other encodings (node-wot offers CBOR forms too).
        best: Form = min(
            candidates,
            key=lambda f: (PREFERENCE.index(f.scheme), not f.content_type.endswith("json")),
        )
        return best

    async def _call(
        self,
        things: Interactions,
        form: Form,
        op: str,
        secrets: ThingSecrets | None,
        *,
        body: Any = None,
        send_body: bool = False,
    ) -> Any:
        if form.scheme in HTTP:
            headers, query = auth_for(things.schemes_for(form), secrets)
            method = form.http_method(op)
            _, value = await self.http.exchange(
                form, method=method, body=body, send_body=send_body, headers=headers, query=query
            )
            return value
        if form.scheme in COAP:
            method = form.method or COAP_METHODS.get(op, "GET")
            return await self.coap.exchange(form, method=method, body=body, send_body=send_body)
        if form.scheme in MQTT and op in (ops.WRITE_PROPERTY, ops.INVOKE_ACTION):
            await self.mqtt.publish(form, body, secrets)
            return None
        raise NoUsableForm(f"iotas cannot {op} over {form.scheme}")

    async def _stream(
        self, things: Interactions, form: Form, secrets: ThingSecrets | None
    ) -> AsyncIterator[Any]:
        if form.scheme in HTTP:
            headers, query = auth_for(things.schemes_for(form), secrets)
            if form.subprotocol == "sse":
                stream = self.http.sse(form, headers, query)
            else:
                stream = self.http.longpoll(form, headers, query)
        elif form.scheme in COAP:
            stream = self.coap.observe(form)
        elif form.scheme in MQTT:
            stream = self.mqtt.subscribe(form, secrets)
        else:  # pragma: no cover - _form only returns the schemes above
            raise WotError(f"cannot observe over {form.scheme}")
        async for value in stream:
            yield value
