"""CoAP forms (RFC 7252) with aiocoap: one bounded request, and observation (RFC 7641).

Blockwise answers (RFC 7959) are assembled here, not by aiocoap, which has no size limit: the
blocks stop at the byte cap. The client context speaks plain UDP only (`coap://`); aiocoap's
default would also open TCP, TLS, WebSocket and OSCORE client transports iotas never uses.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiocoap
from aiocoap.optiontypes import BlockOption

from iotas.adapters.wot.errors import BadThingResponse, ThingRefused, ThingUnreachable
from iotas.adapters.wot.payloads import decode, excerpt
from iotas.domain.td_model import Form

_METHODS = {
    "GET": aiocoap.GET,
    "PUT": aiocoap.PUT,
    "POST": aiocoap.POST,
    "DELETE": aiocoap.DELETE,
    "FETCH": aiocoap.FETCH,
    "PATCH": aiocoap.PATCH,
}
# Default CoAP methods by operation (TD 1.1 CoAP binding).
COAP_METHODS = {
    "readproperty": "GET",
    "writeproperty": "PUT",
    "invokeaction": "POST",
    "observeproperty": "GET",
    "subscribeevent": "GET",
}
# CoAP Content-Format numbers (RFC 7252 section 12.3) of the types iotas reads and writes.
FORMATS = {"text/plain": 0, "application/json": 50, "application/td+json": 432}
NAMES = {number: name for name, number in FORMATS.items()}
BLOCK_EXPONENT = 6  # 1024-byte blocks, the largest CoAP has


class CoapForms:
    def __init__(self, *, timeout: float, max_bytes: int) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._context: aiocoap.Context | None = None
        self._lock = asyncio.Lock()

    async def _ctx(self) -> aiocoap.Context:
        async with self._lock:
            if self._context is None:
                transport = "udp6" if sys.platform == "linux" else "simple6"
                self._context = await aiocoap.Context.create_client_context(transports=[transport])
            return self._context

    async def aclose(self) -> None:
        if self._context is not None:
            await self._context.shutdown()
            self._context = None

    def _message(
        self, form: Form, method: str, body: bytes | None, *, block: int = 0, observe: bool = False
    ) -> aiocoap.Message:
        code = _METHODS.get(method.upper())
        if code is None:
            raise BadThingResponse(f"{form.href}: CoAP has no method {method!r}")
        try:
            message = aiocoap.Message(code=code, uri=form.href, payload=body or b"")
        except ValueError as exc:
            raise BadThingResponse(f"{form.href[:200]!r} is not a usable CoAP URL: {exc}") from None
        if body is not None:
            kind = form.content_type.split(";", 1)[0].strip().lower()
            message.opt.content_format = FORMATS.get(kind, FORMATS["application/json"])
        if block:
            message.opt.block2 = BlockOption.BlockwiseTuple(block, False, BLOCK_EXPONENT)
        if observe:
            message.opt.observe = 0
        return message

    async def exchange(self, form: Form, *, method: str, body: bytes | None = None) -> Any:
        where = f"{method} {form.href}"
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(form, method, body, where)
        except TimeoutError:
            raise ThingUnreachable(
                f"{where}: the Thing did not answer within {self.timeout:g} s"
            ) from None

    async def _exchange(self, form: Form, method: str, body: bytes | None, where: str) -> Any:
        context = await self._ctx()
        payload = b""
        block = 0
        while True:
            message = self._message(form, method, body, block=block)
            try:
                response = await context.request(message, handle_blockwise=False).response
            except aiocoap.error.Error as exc:
                raise ThingUnreachable(f"{where}: {exc or type(exc).__name__}") from None
            if not response.code.is_successful():
                raise _refused(where, response)
            payload += response.payload
            if len(payload) > self.max_bytes:
                raise BadThingResponse(
                    f"{where} sent more than the {self.max_bytes} bytes iotas reads"
                )
            more = response.opt.block2
            if more is None or not more.more:
                return self._decode(form, response, payload, where)
            # Ask for the next block at the size the Thing chose.
            block = len(payload) // (2 ** (more.size_exponent + 4))

    def _decode(self, form: Form, response: aiocoap.Message, payload: bytes, where: str) -> Any:
        received = NAMES.get(response.opt.content_format) if response.opt.content_format else None
        return decode(payload, form.content_type, received, where)

    async def observe(self, form: Form) -> AsyncIterator[Any]:
        """The first answer, then each notification, until cancelled or the Thing ends the
        observation. A notification too large for one block is read again in full."""
        where = f"observe {form.href}"
        context = await self._ctx()
        request = context.request(
            self._message(form, "GET", None, observe=True), handle_blockwise=False
        )
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    first = await request.response
            except TimeoutError:
                raise ThingUnreachable(
                    f"{where}: the Thing did not answer within {self.timeout:g} s"
                ) from None
            yield await self._notification(form, first, where)
            async for response in request.observation:
                yield await self._notification(form, response, where)
        except aiocoap.error.Error as exc:
            raise ThingUnreachable(f"{where}: {exc or type(exc).__name__}") from None
        finally:
            if not request.observation.cancelled:
                request.observation.cancel()

    async def _notification(self, form: Form, response: aiocoap.Message, where: str) -> Any:
        if not response.code.is_successful():
            raise _refused(where, response)
        if len(response.payload) > self.max_bytes:
            raise BadThingResponse(f"{where} sent more than the {self.max_bytes} bytes iotas reads")
        if response.opt.block2 is not None and response.opt.block2.more:
            return await self.exchange(form, method="GET")
        return self._decode(form, response, response.payload, where)


def _refused(where: str, response: aiocoap.Message) -> ThingRefused:
    text = excerpt(response.payload).strip()
    code = f"{response.code.dotted}"
    return ThingRefused(
        f"{where} answered {code} {response.code.name_printable}" + (f": {text}" if text else ""),
        status=code,
        excerpt=text,
    )
