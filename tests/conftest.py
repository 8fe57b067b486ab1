"""Shared fixtures: a fresh database per test on SQLite and PostgreSQL, and a live server.

PostgreSQL is the server at IOTAS_TEST_POSTGRES_URL (default: 127.0.0.1:5432 as `postgres`).
Each test gets a database of its own, created and dropped around it. Where the server is not
reachable the PostgreSQL half of the suite is skipped, except under CI=true, where that is an
error: CI must prove both backends.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
import uvicorn

from iotas.settings import Settings

PG_URL = os.environ.get("IOTAS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _pg_admin_dsn() -> str:
    return PG_URL.replace("postgresql+asyncpg://", "postgresql://")


async def _pg_available() -> str | None:
    try:
        conn = await asyncpg.connect(_pg_admin_dsn(), timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL at {PG_URL} is not reachable: {exc}"
    await conn.close()
    return None


@pytest.fixture
async def pg_database() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database; yields its SQLAlchemy URL."""
    problem = await _pg_available()
    if problem:
        if IN_CI:
            pytest.fail(f"CI requires PostgreSQL: {problem}")
        pytest.skip(problem)
    name = f"iotas_t_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(_pg_admin_dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = _pg_admin_dsn().rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(_pg_admin_dsn())
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """Each test using this runs twice: on a SQLite file and on a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'iotas.db'}"
    else:
        yield request.getfixturevalue("pg_database")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class LiveServer:
    url: str
    token: str
    settings: Settings
    client: httpx.AsyncClient

    def anonymous(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10)


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    """The real API over loopback HTTP, on the backend of `database_url`."""
    from iotas.api.app import create_app

    token = "iotas_test_" + secrets.token_urlsafe(24)
    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        port=free_port(),
        admin_token=token,
        log_level="warning",
    )
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=settings.port, log_level="warning"
    )
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve())
    for _ in range(500):
        if uv.started or task.done():
            break
        await asyncio.sleep(0.01)
    if not uv.started:
        task.result()
        raise RuntimeError("the test server did not start")
    url = f"http://127.0.0.1:{settings.port}"
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    ) as client:
        yield LiveServer(url, token, settings, client)
    uv.should_exit = True
    await task
