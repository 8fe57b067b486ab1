"""HTTP(S) forms: one bounded exchange, and long-poll and Server-Sent Events streams.

httpx's timeouts are per phase (connect, each read), so a server that drips a byte a second
never trips them: every exchange also runs under one total deadline. Bodies are read as a
stream up to a byte cap. Redirects are followed by hand, and only to the same scheme, host and
port: a TD's form must not send iotas, with the Thing's credentials, somewhere else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

from iotas.adapters.wot.errors import BadThingResponse, ThingRefused, ThingUnreachable
from iotas.adapters.wot.payloads import decode, excerpt
from iotas.adapters.wot.security import HttpAuth
from iotas.domain.td_model import Form

REDIRECTS = (301, 302, 303, 307, 308)
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# A Thing that answers a long-poll at once every time (it does not really hold the request)
# is asked at most this often, not in a tight loop.
LONGPOLL_MIN_SPACING = 0.25


class HttpForms:
    def __init__(
        self, *, timeout: float, max_bytes: int, max_redirects: int, hold_seconds: float
    ) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        # How long a long-poll or an event stream may stay silent before it is asked again.
        self.hold_seconds = hold_seconds
        self.http = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=400, max_keepalive_connections=200),
            trust_env=False,  # a proxy from the environment is not the Thing's network
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def exchange(
        self,
        form: Form,
        *,
        method: str,
        auth: HttpAuth,
        body: bytes | None = None,
    ) -> Any:
        """One request and its decoded answer, all within the deadline."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(form, method, auth, body, self.timeout)
        except TimeoutError:
            raise ThingUnreachable(
                f"{method} {form.href}: the Thing did not answer within {self.timeout:g} s"
            ) from None

    async def _exchange(
        self, form: Form, method: str, auth: HttpAuth, body: bytes | None, read_timeout: float
    ) -> Any:
        response = await self._open(form, method, auth, body, read_timeout)
        try:
            raw = await self._read(response)
        finally:
            await response.aclose()
        where = f"{response.request.method} {response.request.url}"
        if response.status_code >= 400:
            raise _refused(where, response.status_code, raw)
        return decode(raw, form.content_type, response.headers.get("content-type"), where)

    async def _open(
        self,
        form: Form,
        method: str,
        auth: HttpAuth,
        body: bytes | None,
        read_timeout: float | None,
        accept: str | None = None,
    ) -> httpx.Response:
        """Send the request and follow same-origin redirects; the answer's body is unread."""
        url = form.href
        origin = _origin(url)
        headers = {**auth.headers, "Accept-Encoding": "identity"}
        if accept:
            headers["Accept"] = accept
        if body is not None:
            headers["Content-Type"] = form.content_type
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        for _ in range(self.max_redirects + 1):
            try:
                request = self.http.build_request(
                    method,
                    url,
                    content=body,
                    headers=headers,
                    params=auth.query or None,
                    timeout=timeout,
                )
            except httpx.InvalidURL as exc:
                raise BadThingResponse(f"{url[:200]!r} is not a usable URL: {exc}") from None
            response = await self._send(request)
            if response.status_code not in REDIRECTS:
                return response
            await response.aclose()
            target = urljoin(url, response.headers.get("location", ""))
            if _origin(target) != origin:
                raise BadThingResponse(
                    f"{method} {url} redirected to {target[:200]}, another scheme, host or port: "
                    "refused (a form's requests, with the Thing's credentials, stay at its origin)"
                )
            if response.status_code == 303 or (
                response.status_code in (301, 302) and method == "POST"
            ):
                method, body = "GET", None
                headers.pop("Content-Type", None)
            url = target
        raise BadThingResponse(
            f"{form.href} redirected more than {self.max_redirects} times: refused"
        )

    async def _send(self, request: httpx.Request) -> httpx.Response:
        where = f"{request.method} {request.url}"
        try:
            try:
                return await self.http.send(request, stream=True)
            except httpx.RemoteProtocolError:
                # A kept-alive connection the Thing closed as we reused it: an idempotent
                # request is sent once more on a fresh one (as browsers do); a POST is not.
                if request.method not in IDEMPOTENT:
                    raise
                return await self.http.send(request, stream=True)
        except httpx.UnsupportedProtocol as exc:
            raise BadThingResponse(f"{where}: {exc}") from None
        except (httpx.TransportError, OSError) as exc:
            raise ThingUnreachable(f"{where}: {_reason(exc)}") from None

    async def _read(self, response: httpx.Response) -> bytes:
        where = f"{response.request.method} {response.request.url}"
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise BadThingResponse(
                f"{where} announced {declared} bytes, "
                f"more than the {self.max_bytes} bytes iotas reads"
            )
        body = bytearray()
        try:
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > self.max_bytes:
                    raise BadThingResponse(
                        f"{where} sent more than the {self.max_bytes} bytes iotas reads"
                    )
        except (httpx.TransportError, OSError) as exc:
            raise ThingUnreachable(f"{where}: {_reason(exc)}") from None
        return bytes(body)

    # -- streams -----------------------------------------------------------------------------

    async def longpoll(self, form: Form, method: str, auth: HttpAuth) -> AsyncIterator[Any]:
        """Each answer of a GET the Thing holds until something changes. A request the Thing
        holds longer than `hold_seconds`, or an empty answer (204), is asked again."""
        while True:
            started = time.monotonic()
            value = None
            try:
                async with asyncio.timeout(self.hold_seconds):
                    value = await self._exchange(form, method, auth, None, self.hold_seconds)
            except TimeoutError:
                continue  # nothing changed: ask again
            if value is not None:
                yield value
            spent = time.monotonic() - started
            if spent < LONGPOLL_MIN_SPACING:
                await asyncio.sleep(LONGPOLL_MIN_SPACING - spent)

    async def sse(self, form: Form, auth: HttpAuth) -> AsyncIterator[Any]:
        """The data of each Server-Sent Event (JSON where it parses, else text), until the
        Thing closes the stream or stays silent for `hold_seconds`. httpx-sse is not used: it
        reads lines without a bound, and a line that never ends would take all memory."""
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._open(
                    form, "GET", auth, None, self.timeout, accept="text/event-stream"
                )
                if response.status_code >= 400:
                    try:
                        raw = await self._read(response)
                    finally:
                        await response.aclose()
                    raise _refused(f"GET {response.request.url}", response.status_code, raw)
        except TimeoutError:
            raise ThingUnreachable(
                f"GET {form.href}: the Thing did not answer within {self.timeout:g} s"
            ) from None
        try:
            parser = SseParser(self.max_bytes, f"GET {form.href}")
            chunks = response.aiter_bytes()
            while True:
                try:
                    async with asyncio.timeout(self.hold_seconds):
                        chunk = await anext(chunks)
                except (TimeoutError, StopAsyncIteration):
                    return  # silent or closed: the caller opens it again
                except (httpx.TransportError, OSError) as exc:
                    raise ThingUnreachable(f"GET {form.href}: {_reason(exc)}") from None
                for data in parser.feed(chunk):
                    try:
                        yield orjson.loads(data)
                    except orjson.JSONDecodeError:
                        yield data
        finally:
            await response.aclose()


class SseParser:
    """The `data` of each event in a text/event-stream, with every line and event bounded."""

    def __init__(self, max_bytes: int, where: str) -> None:
        self.max_bytes = max_bytes
        self.where = where
        self.pending = b""
        self.data: list[bytes] = []
        self.size = 0

    def feed(self, chunk: bytes) -> list[str]:
        self.pending += chunk
        events: list[str] = []
        while True:
            cut = min(
                (i for i in (self.pending.find(b"\n"), self.pending.find(b"\r")) if i >= 0),
                default=-1,
            )
            if cut < 0:
                break
            line = self.pending[:cut]
            skip = 2 if self.pending[cut : cut + 2] == b"\r\n" else 1
            self.pending = self.pending[cut + skip :]
            event = self._line(line)
            if event is not None:
                events.append(event)
        if len(self.pending) > self.max_bytes:
            raise BadThingResponse(f"{self.where} sent a line over {self.max_bytes} bytes")
        return events

    def _line(self, line: bytes) -> str | None:
        if not line:  # a blank line dispatches the event
            data, self.data, self.size = self.data, [], 0
            return b"\n".join(data).decode(errors="replace") if data else None
        field, _, value = line.partition(b":")
        if field == b"data":
            value = value[1:] if value.startswith(b" ") else value
            self.data.append(value)
            self.size += len(value)
            if self.size > self.max_bytes:
                raise BadThingResponse(f"{self.where} sent an event over {self.max_bytes} bytes")
        return None


def _refused(where: str, status: int, raw: bytes) -> ThingRefused:
    text = excerpt(raw).strip()
    return ThingRefused(
        f"{where} answered {status}" + (f": {text}" if text else ""), status=status, excerpt=text
    )


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    port = port or {"http": 80, "https": 443}.get(parts.scheme.lower())
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]
