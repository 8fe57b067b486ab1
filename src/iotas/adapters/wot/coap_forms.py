"""CoAP forms (RFC 7252) with aiocoap: one bounded request, and observation (RFC 7641)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiocoap
import orjson

from iotas.adapters.wot.errors import BadThingResponse, ThingRefused, ThingUnreachable
from iotas.adapters.wot.http_forms import decode
from iotas.domain.td_model import Form

_METHODS = {"GET": aiocoap.GET, "PUT": aiocoap.PUT, "POST": aiocoap.POST, "DELETE": aiocoap.DELETE}
# Default CoAP methods by operation (TD 1.1 CoAP binding).
COAP_METHODS = {
    "readproperty": "GET",
    "writeproperty": "PUT",
    "invokeaction": "POST",
    "observeproperty": "GET",
    "subscribeevent": "GET",
}
JSON_FORMAT = 50  # the CoAP Content-Format number of application/json


class CoapForms:
    def __init__(self, *, timeout: float, max_bytes: int) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._context: aiocoap.Context | None = None
        self._lock = asyncio.Lock()

    async def _ctx(self) -> aiocoap.Context:
        async with self._lock:
            if self._context is None:
                self._context = await aiocoap.Context.create_client_context()
            return self._context

    async def aclose(self) -> None:
        if self._context is not None:
            await self._context.shutdown()
            self._context = None

    def _message(self, form: Form, method: str, body: Any, send_body: bool, observe: bool) -> Any:
        code = _METHODS.get(method.upper())
        if code is None:
            raise BadThingResponse(f"CoAP has no method {method!r}")
        message = aiocoap.Message(code=code, uri=form.href)
        if send_body:
            message.payload = orjson.dumps(body)
            message.opt.content_format = JSON_FORMAT
        if observe:
            message.opt.observe = 0
        return message

    async def exchange(
        self, form: Form, *, method: str, body: Any = None, send_body: bool = False
    ) -> Any:
        context = await self._ctx()
        message = self._message(form, method, body, send_body, observe=False)
        try:
            async with asyncio.timeout(self.timeout):
                response = await context.request(message).response
        except TimeoutError:
            raise ThingUnreachable(
                f"{method} {form.href} did not answer within {self.timeout:g} s"
            ) from None
        except aiocoap.error.Error as exc:
            raise ThingUnreachable(f"{method} {form.href}: {exc}") from None
        return self._value(response, form, method)

    def _value(self, response: Any, form: Form, method: str) -> Any:
        if not response.code.is_successful():
            excerpt = response.payload[:200].decode(errors="replace")
            raise ThingRefused(
                f"{method} {form.href} answered {response.code}",
                status=str(response.code),
                excerpt=excerpt,
            )
        if len(response.payload) > self.max_bytes:
            raise BadThingResponse(f"{form.href} sent more than {self.max_bytes} bytes")
        content_type = form.content_type
        if response.opt.content_format == JSON_FORMAT:
            content_type = "application/json"
        return decode(response.payload, content_type, f"{method} {form.href}")

    async def observe(self, form: Form) -> AsyncIterator[Any]:
        context = await self._ctx()
        request = context.request(self._message(form, "GET", None, False, observe=True))
        try:
            async with asyncio.timeout(self.timeout):
                first = await request.response
            yield self._value(first, form, "GET")
            async for response in request.observation:
                yield self._value(response, form, "GET")
        except TimeoutError:
            raise ThingUnreachable(f"observing {form.href}: no answer") from None
        except aiocoap.error.Error as exc:
            raise ThingUnreachable(f"observing {form.href}: {exc}") from None
        finally:
            if not request.observation.cancelled:
                request.observation.cancel()
