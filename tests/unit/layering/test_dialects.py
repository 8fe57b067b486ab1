"""What differs between SQLite and PostgreSQL stays in `iotas.store.dialects`: nothing else
branches on a dialect's name, imports a driver or a dialect's SQL constructs, or writes the
raw SQL that only one database understands (decision 57)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from iotas.store import dialects

SRC = Path(__file__).resolve().parents[3] / "src" / "iotas"
DIALECTS = SRC / "store" / "dialects"
# Migrations are history: each describes the schema as it was, and keeps its own branches.
MIGRATIONS = SRC / "store" / "migrations"
# `schema.py` maps the document type per dialect (JSON, JSONB); that is a type, not a branch.
ALLOWED = {
    SRC / "store" / "schema.py": {"sqlalchemy.dialects.postgresql"},
}
SIGNS = {
    "a branch on a dialect's name": re.compile(r"dialect\.name|dialect\s*[!=]=\s*\""),
    "sqlalchemy.dialects.sqlite": re.compile(r"sqlalchemy\.dialects\.sqlite"),
    "sqlalchemy.dialects.postgresql": re.compile(r"sqlalchemy\.dialects\.postgresql"),
    "the sqlite3 driver": re.compile(r"^\s*import sqlite3|^\s*from sqlite3", re.MULTILINE),
    "a pragma": re.compile(r"PRAGMA "),
    "a PostgreSQL function of its own": re.compile(r"\bpg_[a-z_]+\(|\bunnest\(|\bctid\b"),
    "json_each": re.compile(r"json_each\("),
}


def _sources() -> list[Path]:
    return [
        path
        for path in sorted(SRC.rglob("*.py"))
        if not path.is_relative_to(DIALECTS) and not path.is_relative_to(MIGRATIONS)
    ]


def test_dialect_differences_live_in_the_dialect_modules() -> None:
    found = []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        for what, sign in SIGNS.items():
            if what in ALLOWED.get(path, set()):
                continue
            if sign.search(text):
                found.append(f"{path.relative_to(SRC)}: {what}")
    assert found == []


def test_each_database_iotas_runs_on_has_a_dialect() -> None:
    assert dialects.named("sqlite").stages_telemetry is True
    assert dialects.named("postgresql").stages_telemetry is False
    assert dialects.named("sqlite").get_thing is not None
    assert dialects.named("postgresql").get_thing is None  # the portable statement serves
    with pytest.raises(ValueError, match="does not run on 'mysql'"):
        dialects.named("mysql")
