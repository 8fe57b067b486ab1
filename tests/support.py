"""Helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import inspect
import random
import secrets
import socket
import sqlite3
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from iotas.settings import Settings
from iotas.store import engine

# Ports handed out below Linux's ephemeral range (32768-60999): a port the kernel picks with
# bind(0) comes from that range, and so does the source port of every outgoing connection, so a
# port freed here could be taken by some client's connect() before the server under test binds
# it (CI once failed on exactly that). Handing each port out once per run avoids our own repeats.
_PORT_RANGE = range(20000, 32000)
_handed_out: set[int] = set()


def free_port() -> int:
    for _ in range(200):
        port = random.choice(_PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port in 20000-32000 on 127.0.0.1")


@dataclass
class LiveServer:
    url: str
    token: str
    settings: Settings
    client: httpx.AsyncClient

    def anonymous(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10)


def server_settings(database_url: str, data_dir: Path, token: str, **overrides: Any) -> Settings:
    """A test server's settings on a free port, with `Settings` overrides."""
    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        port=free_port(),
        admin_token=token,
        log_level="warning",
        # Tests walk every route anonymously from one address: no rate limit on failures
        # here (tests/integration/store/test_auth_limits.py tests it).
        auth_failure_burst=1e9,
    )
    return replace(settings, **overrides)


async def serving(config: uvicorn.Config) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    """Start a uvicorn server in this loop; return once it serves (its error if it failed)."""
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(1000):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not server.started:
        task.result()
        raise RuntimeError("the test server did not start")
    return server, task


@asynccontextmanager
async def live_server(
    database_url: str, data_dir: Path, **overrides: Any
) -> AsyncIterator[tuple[LiveServer, Any]]:
    """The real API over loopback HTTP on `database_url`, with `Settings` overrides; yields the
    server and its ASGI app (for a test that plays a device through the runtime)."""
    from iotas.api.app import create_app

    token = "iotas_test_" + secrets.token_urlsafe(24)
    settings = server_settings(database_url, data_dir, token, **overrides)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    uv, task = await serving(config)
    url = f"http://127.0.0.1:{settings.port}"
    try:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10
        ) as client:
            yield LiveServer(url, token, settings, client), app
    finally:
        uv.should_exit = True
        await task


async def execute_raw(url: str, statement: str) -> list[tuple[Any, ...]]:
    """Run SQL straight on the database, as someone tampering with it would."""
    if url.startswith("sqlite"):

        def run() -> list[tuple[Any, ...]]:
            conn = sqlite3.connect(url.split("///", 1)[1])
            try:
                rows = conn.execute(statement).fetchall()
                conn.commit()
                return rows
            finally:
                conn.close()

        return await asyncio.to_thread(run)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        return [tuple(r) for r in await conn.fetch(statement)]
    finally:
        await conn.close()


# A Thing Model with two actions, for the tests of invocations.
LAMP_MODEL: dict[str, Any] = {
    "actions": {
        "dim": {
            "input": {
                "type": "object",
                "properties": {"level": {"type": "integer", "minimum": 0, "maximum": 100}},
                "required": ["level"],
            }
        },
        "reboot": {},
    }
}


async def in_transaction(url: str, unit: Callable[[Connection], None]) -> None:
    """Run `unit` in one transaction on a synchronous connection to the database at `url`
    (a full iotas URL): what migration tests use to run Alembic below the head."""
    if url.startswith("sqlite"):
        sync = engine.sqlite_engine(url)
        with sync.connect() as conn, conn.begin():
            unit(conn)
        sync.dispose()
        return
    async_engine = create_async_engine(url)
    async with async_engine.begin() as async_conn:
        await async_conn.run_sync(unit)
    await async_engine.dispose()


@asynccontextmanager
async def https_server(
    database_url: str, data_dir: Path, token: str, **overrides: Any
) -> AsyncIterator[tuple[str, Path]]:
    """iotas over HTTPS (client certificates asked for), with `Settings` overrides; yields
    its URL and the CA certificate file."""
    from iotas.api.app import create_app
    from iotas.server import https_options

    settings = server_settings(database_url, data_dir, token, tls=True, **overrides)
    options = https_options(settings)
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=settings.port, log_level="warning", **options
    )
    server, task = await serving(config)
    try:
        yield f"https://127.0.0.1:{settings.port}", Path(options["ssl_ca_certs"])
    finally:
        server.should_exit = True
        await task


def cert_files(tmp: Path, name: str, cert: str, key: str) -> tuple[str, str]:
    """A device's certificate and key written to files (what ssl loads them from)."""
    (tmp / f"{name}.crt").write_text(cert)
    (tmp / f"{name}.key").write_text(key)
    return str(tmp / f"{name}.crt"), str(tmp / f"{name}.key")


def tls_client(url: str, ca: Path, cert: tuple[str, str] | None) -> httpx.AsyncClient:
    """An HTTPS client that trusts `ca` and presents `cert` (a device), or none."""
    context = ssl.create_default_context(cafile=str(ca))
    if cert is not None:
        context.load_cert_chain(*cert)
    return httpx.AsyncClient(base_url=url, verify=context, timeout=10)


async def eventually(
    check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.05
) -> Any:
    """Poll `check` (a function or a coroutine function) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)
