"""Leases on PostgreSQL: session advisory locks (`pg_try_advisory_lock`) on one connection of
their own, kept open for as long as the node runs. When the node dies its connection goes and
PostgreSQL lets the lock go with it, so another node's next try gets it (`iotas.store.leases`
says what a lease is)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import asyncpg  # no stubs (ignore_missing_imports in pyproject); four calls of it here

log = logging.getLogger("iotas.leases")

# Advisory lock keys are one 64-bit space per database; ours are tagged so they are unlikely
# to meet an application's own keys on a shared database.
_KEY_PREFIX = b"iotas-controller:"


def lock_key(name: str) -> int:
    digest = hashlib.blake2b(_KEY_PREFIX + name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class AdvisoryLeases:
    """Session advisory locks on a connection of their own (opened at the first try, and
    again after it is lost: every lease taken on a lost connection is lost with it)."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: Any = None  # asyncpg.Connection
        self._lock = asyncio.Lock()  # one query at a time on the one connection

    async def _connection(self) -> Any:
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._dsn, timeout=5)
        return self._conn

    async def try_take(self, name: str) -> bool:
        async with self._lock:
            try:
                conn = await self._connection()
                taken: bool = await conn.fetchval(
                    "SELECT pg_try_advisory_lock($1)", lock_key(name), timeout=5
                )
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("could not try the lease %s: %s", name, exc)
                await self._drop()
                return False
            return taken

    async def still_held(self) -> bool:
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                return False
            try:
                await self._conn.fetchval("SELECT 1", timeout=5)
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                log.warning("the lease connection is lost: %s", exc)
                await self._drop()
                return False
            return True

    async def give_up(self, name: str) -> None:
        async with self._lock:
            if self._conn is None or self._conn.is_closed():
                return
            try:
                await self._conn.fetchval(
                    "SELECT pg_advisory_unlock($1)", lock_key(name), timeout=5
                )
            except (OSError, asyncpg.PostgresError, TimeoutError):
                await self._drop()  # closing the session lets every lock of it go

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            try:
                await asyncio.wait_for(conn.close(), 5)
            except (OSError, asyncpg.PostgresError, TimeoutError):
                conn.terminate()
