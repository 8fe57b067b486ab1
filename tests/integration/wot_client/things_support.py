"""Things that misbehave, on 127.0.0.1, for the WoT protocol client tests: a raw HTTP server whose
every route is a fault (drip, hang, huge body, redirects, lies about JSON) or a plain Thing
(property, action, long-poll, SSE, basic and bearer auth), and helpers to describe them as
td_model values by hand."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import pytest

from iotas.adapters.wot.client import WotClient
from iotas.domain.td_model import (
    ActionAffordance,
    EventAffordance,
    Form,
    Interactions,
    PropertyAffordance,
    SecurityScheme,
)
from support import free_port

IN_CI = os.environ.get("CI", "").lower() == "true"
TIMEOUT = 1.0  # the client's deadline in these tests: every bound is checked against it
USER, PASSWORD, TOKEN = "lamp-admin", "s3cret:with colon", "t0k-42"


# -- describing Things by hand ------------------------------------------------------------


def form(href: str, *op: str, **kw: Any) -> Form:
    return Form(href=href, op=op, **kw)


def interactions(
    *,
    properties: dict[str, tuple[Form, ...]] | None = None,
    actions: dict[str, tuple[Form, ...]] | None = None,
    events: dict[str, tuple[Form, ...]] | None = None,
    security: tuple[str, ...] = ("nosec_sc",),
    definitions: tuple[SecurityScheme, ...] = (),
) -> Interactions:
    defs = {"nosec_sc": SecurityScheme("nosec_sc", "nosec")}
    defs.update({d.name: d for d in definitions})
    return Interactions(
        id="urn:test:thing",
        title="Test Thing",
        base=None,
        security=security,
        security_definitions=defs,
        properties={
            n: PropertyAffordance(n, {"type": "integer", "oneOf": []}, f, observable=True)
            for n, f in (properties or {}).items()
        },
        actions={n: ActionAffordance(n, None, None, f) for n, f in (actions or {}).items()},
        events={n: EventAffordance(n, None, f) for n, f in (events or {}).items()},
    )


@pytest.fixture
async def client() -> AsyncIterator[WotClient]:
    wot = WotClient(timeout=TIMEOUT, max_response_bytes=4096, hold_seconds=2.0)
    try:
        yield wot
    finally:
        await wot.aclose()


# -- a hostile HTTP Thing -----------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Writer = asyncio.StreamWriter
Handler = Callable[[Request, Writer], Awaitable[None]]


def answer(
    status: int, body: bytes = b"", content_type: str = "application/json", **headers: str
) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}", "Connection: close"]
    if body:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class HostileThing:
    port: int
    value: Any = 1
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    received: list[Request] = field(default_factory=list)
    sse_events: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    open_connections: int = 0

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def set(self, value: Any) -> None:
        self.value = value
        self.changed.set()
        self.changed = asyncio.Event()

    async def route(self, req: Request, out: Writer) -> None:
        path = req.path.split("?", 1)[0]
        auth = req.headers.get("authorization", "")
        if path == "/json":
            out.write(answer(200, orjson.dumps({"v": 1})))
        elif path == "/property":
            if req.method == "PUT":
                self.set(orjson.loads(req.body))
                out.write(answer(204))
            else:
                out.write(answer(200, orjson.dumps(self.value)))
        elif path == "/readonly" and req.method == "PUT":
            await asyncio.sleep(3600)  # wotpy's fault: never answers
        elif path == "/action":
            if not req.body:
                out.write(answer(500, b"Internal Server Error", "text/plain"))
            else:
                out.write(answer(200, orjson.dumps({"got": orjson.loads(req.body)})))
        elif path == "/text":
            out.write(answer(200, b"warm white", "text/plain"))
        elif path == "/html":
            out.write(answer(200, b"<html>login</html>", "text/html"))
        elif path == "/empty":
            out.write(answer(204))
        elif path == "/error":
            out.write(answer(500, b"boom: the lamp is on fire" + b"!" * 1000, "text/plain"))
        elif path == "/drip":
            out.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
            for _ in range(1000):
                out.write(b"1")
                await out.drain()
                await asyncio.sleep(0.2)
        elif path == "/hang":
            await asyncio.sleep(3600)
        elif path == "/huge-declared":
            out.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n[")
        elif path == "/huge":
            out.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n[")
            for _ in range(1000):  # 64 MB if nobody stops reading
                out.write(b"1," * 32768)
                await out.drain()
        elif path == "/redirect-away":
            out.write(answer(302, Location=self.url("/json", host="127.0.0.2")))
        elif path == "/redirect-scheme":
            out.write(answer(307, Location=f"https://127.0.0.1:{self.port}/json"))
        elif path == "/redirect-same":
            out.write(answer(302, Location="/json"))
        elif path == "/redirect-loop":
            out.write(answer(302, Location="/redirect-loop"))
        elif path == "/basic":
            expected = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            ok = auth == f"Basic {expected}"
            out.write(answer(200, b"true") if ok else answer(401, b"who are you", "text/plain"))
        elif path == "/bearer":
            ok = auth == f"Bearer {TOKEN}"
            out.write(answer(200, b"true") if ok else answer(401, b"no token", "text/plain"))
        elif path == "/x-token":
            ok = req.headers.get("x-token") == TOKEN and not auth
            out.write(answer(200, b"true") if ok else answer(403, b"bad token", "text/plain"))
        elif path == "/longpoll":
            changed = self.changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):  # the Thing's own hold: then an empty answer
                    await changed.wait()
                    out.write(answer(200, orjson.dumps(self.value)))
                    return
            out.write(answer(204))
        elif path == "/sse":
            out.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Cache-Control: no-cache\r\n\r\n: hello\n\n"
            )
            await out.drain()
            while True:
                out.write(await self.sse_events.get())
                await out.drain()
        elif path == "/sse-endless-line":
            out.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\ndata: ")
            for _ in range(1000):
                out.write(b"x" * 1024)
                await out.drain()
                await asyncio.sleep(0.001)
        else:
            out.write(answer(404, b"no such route", "text/plain"))

    async def serve(self, reader: asyncio.StreamReader, writer: Writer) -> None:
        self.open_connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            req = Request(method, path, headers, body)
            self.received.append(req)
            await self.route(req, writer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client gave up on us: that is the point of most routes
        finally:
            self.open_connections -= 1
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@pytest.fixture
async def hostile() -> AsyncIterator[HostileThing]:
    thing = HostileThing(free_port())
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: Writer) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await thing.serve(reader, writer)
        except asyncio.CancelledError:
            pass  # the fixture is closing: asyncio's stream callback must not see a cancel
        finally:
            tasks.discard(task)

    server = await asyncio.start_server(serve, "127.0.0.1", thing.port)
    try:
        yield thing
    finally:
        server.close()
        for task in list(tasks):
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.wait_closed()


# -- Mosquitto ----------------------------------------------------------------------------

MOSQUITTO = ("127.0.0.1", 1883)


@pytest.fixture
def mosquitto() -> str:
    """The Mosquitto at 127.0.0.1:1883 (skipped without it, except under CI=true)."""
    try:
        socket.create_connection(MOSQUITTO, timeout=1).close()
    except OSError:
        if IN_CI:
            pytest.fail("CI requires Mosquitto at 127.0.0.1:1883")
        pytest.skip("Mosquitto is not running at 127.0.0.1:1883")
    return f"mqtt://{MOSQUITTO[0]}:{MOSQUITTO[1]}"


T = TypeVar("T")


def closing(stream: AsyncIterator[T]) -> contextlib.aclosing[AsyncGenerator[T, None]]:
    """`contextlib.aclosing` for the client's streams: async generators, typed as iterators."""
    assert isinstance(stream, AsyncGenerator)
    return contextlib.aclosing(stream)
