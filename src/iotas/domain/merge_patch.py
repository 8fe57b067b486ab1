"""JSON merge patch (RFC 7396) and the helpers the twin needs around it."""

from __future__ import annotations

import math
from typing import Any

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

JSON = Any
JSONObject = dict[str, Any]


def apply(target: JSON, patch: JSON) -> JSON:
    """Return `target` with `patch` applied; neither argument is modified."""
    if not isinstance(patch, dict):
        return patch
    result: JSONObject = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply(result.get(key), value)
    return result


def effective(target: JSONObject, patch: JSONObject) -> JSONObject:
    """The part of `patch` that changes `target`: an empty dict when the patch is a no-op.

    Applying the result to `target` gives the same document as applying `patch`; this is what
    the journal records, so a report that changes nothing appends nothing.
    """
    out: JSONObject = {}
    for key, value in patch.items():
        present = key in target
        current = target.get(key)
        if value is None:
            if present:
                out[key] = None
        elif isinstance(value, dict):
            if isinstance(current, dict):
                sub = effective(current, value)
                if sub:
                    out[key] = sub
            else:
                # Replacing a scalar (or nothing) with an object: the object as it will stand.
                replacement = apply(None, value)
                if not present or not same(current, replacement):
                    out[key] = replacement
        elif not present or not same(current, value):
            out[key] = value
    return out


def diff(source: JSONObject, target: JSONObject) -> JSONObject:
    """The smallest merge patch that turns `source` into `target` (an empty dict when they are
    the same): how a whole new document, such as a replaced Thing Description, is journaled.
    `target` must hold no null members (a merge patch cannot write null)."""
    out: JSONObject = {}
    for key in source.keys() - target.keys():
        out[key] = None
    for key, value in target.items():
        if key not in source:
            out[key] = value
            continue
        current = source[key]
        if isinstance(value, dict) and isinstance(current, dict):
            sub = diff(current, value)
            if sub:
                out[key] = sub
        elif not same(current, value):
            out[key] = value
    return out


def same(a: JSON, b: JSON) -> bool:
    """JSON equality: `true` is not `1`, and `1` is `1.0`."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def check_json(value: JSON, where: str, *, max_depth: int = 32) -> None:
    """Raise ValueError naming the member when `value` is not plain, finite JSON."""
    _check(value, where, max_depth)


def _check(value: JSON, where: str, depth: int) -> None:
    if depth < 0:
        raise ValueError(f"{where} is nested too deeply")
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        # PostgreSQL's jsonb cannot hold U+0000; refuse it on every backend alike.
        if "\x00" in value:
            raise ValueError(f"{where} contains the character U+0000")
        return
    if isinstance(value, int):
        # Beyond 64 bits neither SQLite nor the canonical journal encoding can hold it.
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"{where} is an integer outside the 64-bit range")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is not a finite number")
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, f"{where}[{i}]", depth - 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"{where} has a key that is not a string")
            if "\x00" in key:
                raise ValueError(f"{where} has a key containing the character U+0000")
            _check(item, f"{where}.{key}", depth - 1)
        return
    raise ValueError(f"{where} is not a JSON value")
