"""HTTP(S) forms: one bounded exchange at a time, and long-poll or SSE streams.

httpx's timeouts are per phase (connect, each read), so a server that drips a byte a second
never trips them: every exchange also runs under one total deadline. Bodies are read as a
stream up to a byte cap; redirects are followed by hand, and only to the same scheme, host and
port (a TD's form must not send iotas, with its credentials, somewhere else).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

from iotas.adapters.wot.errors import (
    BadThingResponse,
    NoUsableForm,
    ThingRefused,
    ThingUnreachable,
)
from iotas.domain.td_model import Form, SecurityScheme

REDIRECTS = (301, 302, 303, 307, 308)
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
# A long-poll request is held open by the Thing until something changes: it gets this long.
LONGPOLL_SECONDS = 60.0


def auth_for(
    schemes: tuple[SecurityScheme, ...], secrets: Any
) -> tuple[dict[str, str], dict[str, str]]:
    """Headers and query parameters that satisfy every scheme in force (TD security lists
    are conjunctive)."""
    headers: dict[str, str] = {}
    query: dict[str, str] = {}
    for scheme in schemes:
        kind = scheme.scheme
        if kind == "nosec":
            continue
        if kind == "basic":
            if secrets is None or not secrets.username or secrets.password is None:
                raise NoUsableForm(
                    f"the TD's {scheme.name!r} scheme is basic: adopt the Thing with a user "
                    "name and password"
                )
            pair = f"{secrets.username}:{secrets.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        elif kind in ("bearer", "apikey"):
            if secrets is None or not secrets.token:
                raise NoUsableForm(
                    f"the TD's {scheme.name!r} scheme is {kind}: adopt the Thing with a token"
                )
            name = scheme.key or "Authorization"
            value = secrets.token
            if kind == "bearer" and name.lower() == "authorization":
                value = f"Bearer {value}"
            if scheme.in_ == "query":
                query[name] = value
            elif scheme.in_ in ("header", "auto"):
                headers[name] = value
            else:
                raise NoUsableForm(f"the TD puts its {kind} credential in {scheme.in_!r}")
        else:
            raise NoUsableForm(
                f"the TD's security scheme {kind!r} ({scheme.name!r}) is not supported; "
                "iotas speaks nosec, basic, bearer and apikey"
            )
    return headers, query


def decode(body: bytes, content_type: str, where: str) -> Any:
    if not body:
        return None
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            excerpt = body[:80].decode(errors="replace")
            raise BadThingResponse(f"{where} promised JSON but sent {excerpt!r}") from None
    if kind.startswith("text/"):
        return body.decode(errors="replace")
    raise BadThingResponse(f"{where} sent {kind or 'an untyped body'}, which iotas cannot read")


class HttpForms:
    def __init__(self, *, timeout: float, max_bytes: int, max_redirects: int) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.http = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=400, max_keepalive_connections=200),
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def exchange(
        self,
        form: Form,
        *,
        method: str,
        body: Any = None,
        send_body: bool = False,
        headers: dict[str, str],
        query: dict[str, str],
        deadline: float | None = None,
    ) -> tuple[int, Any]:
        """One request and its decoded answer, within the deadline. Returns (status, value);
        raises ThingRefused for an error status."""
        seconds = self.timeout if deadline is None else deadline
        try:
            async with asyncio.timeout(seconds):
                return await self._follow(form, method, body, send_body, headers, query, seconds)
        except TimeoutError:
            raise ThingUnreachable(
                f"{method} {form.href} did not answer within {seconds:g} s"
            ) from None

    async def _follow(
        self,
        form: Form,
        method: str,
        body: Any,
        send_body: bool,
        headers: dict[str, str],
        query: dict[str, str],
        seconds: float,
    ) -> tuple[int, Any]:
        url = form.href
        origin = _origin(url)
        content = orjson.dumps(body) if send_body else None
        request_headers = dict(headers)
        if content is not None:
            request_headers["Content-Type"] = form.content_type
        for _ in range(self.max_redirects + 1):
            try:
                request = self.http.build_request(
                    method,
                    url,
                    content=content,
                    headers=request_headers,
                    params=query or None,
                    timeout=httpx.Timeout(seconds),
                )
                response = await self._send(request)
            except httpx.InvalidURL as exc:
                raise BadThingResponse(
                    f"the form's href {url!r} is not a usable URL: {exc}"
                ) from None
            except (httpx.TransportError, OSError) as exc:
                raise ThingUnreachable(f"{method} {url}: {_reason(exc)}") from None
            try:
                if response.status_code in REDIRECTS:
                    target = urljoin(url, response.headers.get("location", ""))
                    if _origin(target) != origin:
                        raise BadThingResponse(
                            f"{url} redirected to {target[:200]}, another host: refused"
                        )
                    url = target
                    continue
                raw = await self._read(response, url)
            finally:
                await response.aclose()
            content_type = response.headers.get("content-type", form.content_type)
            if response.status_code >= 400:
                excerpt = raw[:200].decode(errors="replace")
                raise ThingRefused(
                    f"{method} {url} answered {response.status_code}"
                    + (f": {excerpt}" if excerpt else ""),
                    status=response.status_code,
                    excerpt=excerpt,
                )
            return response.status_code, decode(raw, content_type, f"{method} {url}")
        raise BadThingResponse(f"{form.href} redirected more than {self.max_redirects} times")

    async def _send(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self.http.send(request, stream=True)
        except httpx.RemoteProtocolError:
            # A kept-alive connection the Thing closed as we reused it: an idempotent request
            # is sent once more on a fresh one (as browsers do); a POST is not.
            if request.method not in IDEMPOTENT:
                raise
            return await self.http.send(request, stream=True)

    async def _read(self, response: httpx.Response, url: str) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise BadThingResponse(f"{url} sent {declared} bytes, more than {self.max_bytes}")
        body = bytearray()
        try:
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > self.max_bytes:
                    raise BadThingResponse(f"{url} sent more than {self.max_bytes} bytes")
        except (httpx.TransportError, OSError) as exc:
            raise ThingUnreachable(f"{url}: {_reason(exc)}") from None
        return bytes(body)

    async def longpoll(
        self, form: Form, headers: dict[str, str], query: dict[str, str]
    ) -> AsyncIterator[Any]:
        """Each answer of a GET the Thing holds until something changes; an empty answer
        (204, or the Thing's own timeout) asks again."""
        while True:
            status, value = await self.exchange(
                form,
                method=form.http_method("observeproperty"),
                headers=headers,
                query=query,
                deadline=LONGPOLL_SECONDS,
            )
            if status != 204 and value is not None:
                yield value

    async def sse(
        self, form: Form, headers: dict[str, str], query: dict[str, str]
    ) -> AsyncIterator[Any]:
        """Data of each Server-Sent Event (JSON where it parses, else text)."""
        from httpx_sse import aconnect_sse

        try:
            async with aconnect_sse(
                self.http, "GET", form.href, headers=headers, params=query or None
            ) as source:
                if source.response.status_code >= 400:
                    raise ThingRefused(
                        f"GET {form.href} answered {source.response.status_code}",
                        status=source.response.status_code,
                    )
                async for event in source.aiter_sse():
                    if len(event.data) > self.max_bytes:
                        raise BadThingResponse(f"{form.href} sent an event over the size cap")
                    try:
                        yield orjson.loads(event.data)
                    except orjson.JSONDecodeError:
                        yield event.data
        except (httpx.TransportError, OSError) as exc:
            raise ThingUnreachable(f"GET {form.href}: {_reason(exc)}") from None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]
