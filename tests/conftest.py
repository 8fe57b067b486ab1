"""Shared fixtures: a fresh database per test on SQLite and PostgreSQL, and a live server.

PostgreSQL is the server at IOTAS_TEST_POSTGRES_URL (default: 127.0.0.1:5432 as `postgres`).
Each test gets a database of its own, created and dropped around it. Where the server is not
reachable the PostgreSQL half of the suite is skipped, except under CI=true, where that is an
error: CI must prove both backends.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import secrets
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from support import LiveServer, live_server

PG_URL = os.environ.get("IOTAS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI", "").lower() == "true"
T = TypeVar("T")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


# The real services CI must prove (.ci/run): a test that needs one carries its marker, set
# explicitly or here from the fixtures it uses, and the marker is written to the JUnit report
# as a `service` property, so a skipped or expected-to-fail test of a service is found by what
# it needs, not by its name.
SERVICES = ("postgres", "mosquitto", "wot_runtime")
_SERVICE_FIXTURES = {
    "pg_database": "postgres",
    "postgres_db": "postgres",
    "mosquitto": "mosquitto",
    "wotpy_lamp": "wot_runtime",
    "node_wot_lamp": "wot_runtime",
}
_SERVICE_PARAMS = {("database_url", "postgresql"): "postgres", ("iotas", "mosquitto"): "mosquitto"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = item.fixturenames if isinstance(item, pytest.Function) else []
        found = {mark for name, mark in _SERVICE_FIXTURES.items() if name in fixtures}
        callspec = getattr(item, "callspec", None)
        if callspec is not None:
            found |= {
                mark
                for (name, value), mark in _SERVICE_PARAMS.items()
                if callspec.params.get(name) == value
            }
        for mark in found:
            item.add_marker(mark)
        for service in SERVICES:
            if item.get_closest_marker(service) is not None:
                item.user_properties.append(("service", service))


def _pg_admin_dsn() -> str:
    return PG_URL.replace("postgresql+asyncpg://", "postgresql://")


async def _pg_available() -> str | None:
    try:
        conn = await asyncpg.connect(_pg_admin_dsn(), timeout=3)
    except (OSError, asyncpg.PostgresError) as exc:
        return f"PostgreSQL at {PG_URL} is not reachable: {exc}"
    await conn.close()
    return None


async def _pg_execute(statement: str) -> None:
    admin = await asyncpg.connect(_pg_admin_dsn())
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from synchronous fixture code, on a private loop."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture
def pg_database() -> Iterator[str]:
    """A new, empty PostgreSQL database; yields its URL."""
    problem = run_sync(_pg_available())
    if problem:
        if IN_CI:
            pytest.fail(f"CI requires PostgreSQL: {problem}")
        pytest.skip(problem)
    name = f"iotas_t_{secrets.token_hex(6)}"
    run_sync(_pg_execute(f'CREATE DATABASE "{name}"'))
    base = _pg_admin_dsn().rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        run_sync(_pg_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on a SQLite file and on a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'iotas.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[LiveServer]:
    """The real API over loopback HTTP, on the backend of `database_url`."""
    async with live_server(database_url, tmp_path / "data") as (live, _app):
        yield live
