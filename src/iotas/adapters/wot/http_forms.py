"""HTTP(S) forms: one bounded exchange, and long-poll and Server-Sent Events streams.

aiohttp, not httpx: measured on this machine, httpx's client served 550-800 requests/s at 100
concurrent requests to one local Thing server (its pool scans every connection per request),
aiohttp's 8,000-10,000 (docs/decisions.md 28), and a fleet's worth of Things is reached
through this one client. Per-phase timeouts alone let a server that drips a byte a second go
on for ever: every exchange also runs under one total deadline. Bodies are read as a
stream up to a byte cap. Redirects are followed by hand, and only to the same scheme, host and
port: a TD's form must not send iotas, with the Thing's credentials, somewhere else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
import orjson
from yarl import URL

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
        self._session: aiohttp.ClientSession | None = None

    @property
    def http(self) -> aiohttp.ClientSession:
        # Made on first use: a session belongs to the event loop it was made on.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=200, limit_per_host=0),
                # Answers are read as the bytes sent (Accept-Encoding: identity), so the byte
                # cap counts what arrives, and a "zip bomb" is no concern.
                auto_decompress=False,
                trust_env=False,  # a proxy from the environment is not the Thing's network
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

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
            response.release()
        where = f"{response.method} {response.url}"
        if response.status >= 400:
            raise _refused(where, response.status, raw)
        return decode(raw, form.content_type, response.headers.get("content-type"), where)

    async def _open(
        self,
        form: Form,
        method: str,
        auth: HttpAuth,
        body: bytes | None,
        read_timeout: float | None,
        accept: str | None = None,
    ) -> aiohttp.ClientResponse:
        """Send the request and follow same-origin redirects; the answer's body is unread."""
        url = form.href
        origin = _origin(url)
        headers = {**auth.headers, "Accept-Encoding": "identity"}
        if accept:
            headers["Accept"] = accept
        if body is not None:
            headers["Content-Type"] = form.content_type
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.timeout, sock_read=read_timeout
        )
        for _ in range(self.max_redirects + 1):
            try:
                # A form's href is a URI, sent as written (not quoted again).
                target_url = URL(url, encoded=True)
                if auth.query:
                    target_url = target_url.update_query(auth.query)
            except (ValueError, TypeError) as exc:
                raise BadThingResponse(f"{url[:200]!r} is not a usable URL: {exc}") from None
            response = await self._send(method, target_url, body, headers, timeout)
            if response.status not in REDIRECTS:
                return response
            response.release()
            target = urljoin(url, response.headers.get("location", ""))
            if _origin(target) != origin:
                raise BadThingResponse(
                    f"{method} {url} redirected to {target[:200]}, another scheme, host or port: "
                    "refused (a form's requests, with the Thing's credentials, stay at its origin)"
                )
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = "GET", None
                headers.pop("Content-Type", None)
            url = target
        raise BadThingResponse(
            f"{form.href} redirected more than {self.max_redirects} times: refused"
        )

    async def _send(
        self,
        method: str,
        url: URL,
        body: bytes | None,
        headers: dict[str, str],
        phases: aiohttp.ClientTimeout,
    ) -> aiohttp.ClientResponse:
        where = f"{method} {url}"

        async def send() -> aiohttp.ClientResponse:
            return await self.http.request(
                method,
                url,
                data=body,
                headers=headers,
                allow_redirects=False,
                timeout=phases,
            )

        try:
            try:
                return await send()
            except aiohttp.ServerDisconnectedError:
                # A kept-alive connection the Thing closed as we reused it: an idempotent
                # request is sent once more on a fresh one (as browsers do); a POST is not.
                if method not in IDEMPOTENT:
                    raise
                return await send()
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
            raise BadThingResponse(f"{where}: not an HTTP URL iotas can use ({exc})") from None
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise ThingUnreachable(f"{where}: {_reason(exc)}") from None

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        where = f"{response.method} {response.url}"
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise BadThingResponse(
                f"{where} announced {declared} bytes, "
                f"more than the {self.max_bytes} bytes iotas reads"
            )
        body = bytearray()
        try:
            async for chunk in response.content.iter_any():
                body += chunk
                if len(body) > self.max_bytes:
                    raise BadThingResponse(
                        f"{where} sent more than the {self.max_bytes} bytes iotas reads"
                    )
        except (aiohttp.ClientError, OSError) as exc:
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
                if response.status >= 400:
                    try:
                        raw = await self._read(response)
                    finally:
                        response.release()
                    raise _refused(f"GET {response.url}", response.status, raw)
        except TimeoutError:
            raise ThingUnreachable(
                f"GET {form.href}: the Thing did not answer within {self.timeout:g} s"
            ) from None
        try:
            parser = SseParser(self.max_bytes, f"GET {form.href}")
            chunks = response.content.iter_any()
            while True:
                try:
                    async with asyncio.timeout(self.hold_seconds):
                        chunk = await anext(chunks)
                except (TimeoutError, StopAsyncIteration):
                    return  # silent or closed: the caller opens it again
                except (aiohttp.ClientError, OSError) as exc:
                    raise ThingUnreachable(f"GET {form.href}: {_reason(exc)}") from None
                for data in parser.feed(chunk):
                    try:
                        yield orjson.loads(data)
                    except orjson.JSONDecodeError:
                        yield data
        finally:
            response.release()


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
