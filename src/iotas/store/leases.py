"""Leases: which node of a cluster runs a controller that must run once per cluster.

On PostgreSQL a lease is a session advisory lock (`pg_try_advisory_lock`) on one connection of
its own, kept open for as long as the node runs: when the node dies its connection goes, and
PostgreSQL lets the lock go with it, so another node's next try gets it. Advisory locks are
scoped to a database, so nodes on different databases never contend. On SQLite there is one
node (the data file is locked), and it always leads."""

from __future__ import annotations

from typing import Protocol

from iotas.store.dialects.postgresql_leases import AdvisoryLeases
from iotas.store.store import PostgresStore, Store


class Leases(Protocol):
    async def try_take(self, name: str) -> bool:
        """Take the lease `name` if no one holds it; True when this node holds it now."""
        ...

    async def still_held(self) -> bool:
        """Whether the leases this node took are still its own (the connection is alive)."""
        ...

    async def give_up(self, name: str) -> None: ...

    async def close(self) -> None: ...


class LocalLeases:
    """One node, no one to share with: every lease is this node's."""

    async def try_take(self, name: str) -> bool:
        return True

    async def still_held(self) -> bool:
        return True

    async def give_up(self, name: str) -> None:
        return None

    async def close(self) -> None:
        return None


def leases_for(store: Store) -> Leases:
    if isinstance(store, PostgresStore):
        url = store.engine.url.set(drivername="postgresql")
        return AdvisoryLeases(url.render_as_string(hide_password=False))
    return LocalLeases()
