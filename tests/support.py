"""Helpers the tests share (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx

from iotas.settings import Settings


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
