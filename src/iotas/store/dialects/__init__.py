"""What differs between SQLite and PostgreSQL: one module per dialect, each filling in the
capabilities of `Dialect` (see its fields); the rest of iotas asks those, never a name.

`of(conn)` is the one place where SQLAlchemy's name of a database picks a module.
"""

from __future__ import annotations

from sqlalchemy import Connection

from iotas.store.dialects import postgresql, sqlite
from iotas.store.dialects.base import Dialect, DocumentSql

__all__ = ["Dialect", "DocumentSql", "named", "of"]

_BY_NAME = {d.name: d for d in (sqlite.DIALECT, postgresql.DIALECT)}


def named(name: str) -> Dialect:
    """The dialect SQLAlchemy calls `name`."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"iotas does not run on {name!r}") from None


def of(conn: Connection) -> Dialect:
    """The dialect of a connection."""
    return named(conn.dialect.name)
