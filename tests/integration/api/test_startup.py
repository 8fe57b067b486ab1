"""First start: migrations, and an admin token that is shown once and stored only as a hash."""

from __future__ import annotations

import asyncio
import hashlib
import stat
from pathlib import Path

import httpx
import pytest
import uvicorn
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from iotas.api.app import create_app
from iotas.settings import Settings
from iotas.store import engine
from iotas.store.schema import metadata
from support import execute_raw, free_port


async def _serve_once(settings: Settings) -> None:
    uv = uvicorn.Server(
        uvicorn.Config(create_app(settings), port=settings.port, log_level="warning")
    )
    task = asyncio.create_task(uv.serve())
    while not uv.started:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    uv.should_exit = True
    await task


async def test_first_start_creates_a_private_admin_token(
    database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path / "d", database_url=database_url, port=free_port())
    await _serve_once(settings)
    token = settings.admin_token_path.read_text().strip()
    assert token.startswith("iotas_")
    assert stat.S_IMODE(settings.admin_token_path.stat().st_mode) == 0o600
    assert token in capsys.readouterr().out

    await _serve_once(settings)
    assert token not in capsys.readouterr().out

    uv = uvicorn.Server(
        uvicorn.Config(create_app(settings), port=settings.port, log_level="warning")
    )
    task = asyncio.create_task(uv.serve())
    while not uv.started:
        await asyncio.sleep(0.01)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.port}") as client:
            ok = await client.get("/api/v1/things", headers={"Authorization": f"Bearer {token}"})
            assert ok.status_code == 200
    finally:
        uv.should_exit = True
        await task

    rows = await execute_raw(database_url, "SELECT token_hash FROM tokens")
    assert rows and all(token not in row[0] for row in rows)
    assert any(row[0] == hashlib.sha256(token.encode()).hexdigest() for row in rows)


async def test_migrations_create_exactly_the_schema(database_url: str, tmp_path: Path) -> None:
    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn)
        return list(compare_metadata(context, metadata))

    url = engine.database_url(database_url, tmp_path)
    for _ in range(2):  # a second start finds nothing to do
        store = await engine.open_store(url, on_commit=lambda _seq, _types: None)
        await store.dispose()
    store = await engine.open_store(url, on_commit=lambda _seq, _types: None)
    try:
        assert await store.read(diff) == []
    finally:
        await store.dispose()
