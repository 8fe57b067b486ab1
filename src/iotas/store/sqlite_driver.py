"""The sqlite3 connection under a SQLAlchemy one, for the few statements that run for every
change: SQLAlchemy's per-statement work cost more there than SQLite's own."""

from __future__ import annotations

import sqlite3

from sqlalchemy import Connection


def sqlite_connection(conn: Connection) -> sqlite3.Connection:
    raw = conn.connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    return raw
