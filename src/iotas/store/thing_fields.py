"""The `thing_fields` index: one row per scalar leaf of a Thing's attributes and labels.

Equality and numeric range filters on `attributes.*` and `labels.*` look up this table through
its (path, value) and (path, num) indexes instead of scanning JSON. A leaf is indexed only
when `index_path` and `canonical` accept it; the query compiler asks the same two functions,
so a filter uses the index exactly when every Thing that could match has its row here.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Connection, delete, insert

from iotas.store.schema import thing_fields

# The width of the `path` column.
MAX_PATH = 300
# Keeps a (path, value) index entry under PostgreSQL's btree limit of 2704 bytes.
MAX_VALUE_BYTES = 1024
INDEXED_ROOTS = ("attributes", "labels")


def index_path(root: str, keys: Sequence[str]) -> str | None:
    """The `path` of a leaf, or None when it cannot be indexed.

    Paths join keys with '.', so a key that contains '.' would be ambiguous: such leaves
    are left to the JSON fallback.
    """
    if not keys or any("." in key for key in keys):
        return None
    path = ".".join((root, *keys))
    return path if len(path) <= MAX_PATH else None


def canonical(value: Any) -> str | None:
    """The `value` column for a scalar, or None when it is not indexed.

    JSON-equal scalars get the same text (42 and 42.0 both give "42"; true never gives "1"),
    so equality on this column is `merge_patch.same`.
    """
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    try:
        if isinstance(value, int):
            text = str(value)
        elif isinstance(value, float):
            if not math.isfinite(value):
                return None
            text = str(int(value)) if value.is_integer() else repr(value)
        elif isinstance(value, str):
            text = json.dumps(value, ensure_ascii=False)
            if len(text.encode()) > MAX_VALUE_BYTES:
                return None
        else:
            return None
    except (ValueError, UnicodeEncodeError):
        # Integers too long to print, or strings no database can store.
        return None
    return text


def number(value: Any) -> float | None:
    """The `num` column: the value as a double, for numbers only."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _leaves(value: Any, keys: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "." not in key:
                yield from _leaves(item, (*keys, key))
    elif not isinstance(value, list) and keys:
        yield keys, value


def field_rows(thing_id: str, attributes: Any, labels: Any) -> list[dict[str, Any]]:
    """The thing_fields rows for one Thing."""
    rows: list[dict[str, Any]] = []
    for root, document in zip(INDEXED_ROOTS, (attributes, labels), strict=True):
        for keys, leaf in _leaves(document, ()):
            path = index_path(root, keys)
            text = canonical(leaf)
            if path is None or text is None:
                continue
            num = number(leaf)
            if num is None and isinstance(leaf, int | float) and not isinstance(leaf, bool):
                # Beyond the range of a double: a row without `num` would make range filters
                # silently miss it, so there is no row at all.
                continue
            rows.append({"thing_id": thing_id, "path": path, "value": text, "num": num})
    return rows


def replace_fields(
    conn: Connection, thing_id: str, attributes: Any, labels: Any, *, fresh: bool = False
) -> None:
    """Rewrite one Thing's rows; the caller owns the transaction. `fresh`: the Thing was
    inserted in this transaction, so it has no rows to delete (one statement fewer for
    every Thing created)."""
    if not fresh:
        conn.execute(delete(thing_fields).where(thing_fields.c.thing_id == thing_id))
    rows = field_rows(thing_id, attributes, labels)
    if rows:
        conn.execute(insert(thing_fields), rows)
