"""The fast TD validator (jsonschema-rs) says yes or no as the reference one (jsonschema) does:
`validate_td` accepts on the fast one's word, so where they disagreed a TD the reference
refuses would be adopted (decision 67)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from iotas.domain import td

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["nosec", "readproperty", "http://x/y", "nosec_sc", "en", "bad lang"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=5,
)


def base_td() -> dict[str, Any]:
    return {
        "@context": ["https://www.w3.org/2022/wot/td/v1.1", {"@language": "en"}],
        "@type": "Thermostat",
        "id": "urn:dev:t-1",
        "title": "Thermostat",
        "titles": {"en": "Thermostat", "de": "Thermostat"},
        "securityDefinitions": {
            "nosec_sc": {"scheme": "nosec"},
            "basic_sc": {"scheme": "basic", "in": "header"},
        },
        "security": ["nosec_sc"],
        "version": {"instance": "1.0"},
        "created": "2026-01-01T00:00:00Z",
        "properties": {
            "setpoint": {
                "type": "number",
                "minimum": 5,
                "unit": "°C",
                "forms": [{"href": "http://127.0.0.1/t/setpoint", "op": ["readproperty"]}],
            },
        },
        "actions": {
            "reset": {
                "input": {"type": "object", "properties": {"hard": {"type": "boolean"}}},
                "forms": [{"href": "http://127.0.0.1/t/reset", "htv:methodName": "POST"}],
            }
        },
        "events": {"alarm": {"data": {"type": "string"}, "forms": [{"href": "/t/alarm"}]}},
        "links": [{"href": "http://127.0.0.1/other", "rel": "collection"}],
    }


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for key, value in doc.items():
            out += paths(value, (*prefix, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            out += paths(value, (*prefix, i))
    return out


PATHS = paths(base_td())


def reference_valid(doc: Any) -> bool:
    return not any(True for _ in td._validator().iter_errors(doc))


def test_the_base_td_is_valid_for_both() -> None:
    doc = base_td()
    assert reference_valid(doc)
    assert td._fast_validator().is_valid(doc)


@settings(max_examples=400, deadline=None)
@given(
    where=st.sampled_from(PATHS),
    value=VALUES,
    remove=st.booleans(),
    extra=st.tuples(st.sampled_from(PATHS), VALUES) | st.none(),
)
def test_both_validators_agree_on_changed_tds(
    where: tuple[Any, ...], value: Any, remove: bool, extra: tuple[tuple[Any, ...], Any] | None
) -> None:
    doc = base_td()
    for path, new in [(where, value), *([extra] if extra else [])]:
        changed = set_at(doc, path, new, remove=remove and path == where)
        if changed is not None:
            doc = changed
    assert td._fast_validator().is_valid(doc) == reference_valid(doc), doc


def set_at(doc: Any, path: tuple[Any, ...], value: Any, *, remove: bool) -> Any:
    out = copy.deepcopy(doc)
    parent = out
    for key in path[:-1]:
        if not has(parent, key):
            return None  # an earlier change removed the way there
        parent = parent[key]
    last = path[-1]
    if isinstance(parent, dict):
        if remove:
            parent.pop(last, None)
        else:
            parent[last] = value
    elif isinstance(parent, list) and has(parent, last):
        if remove:
            del parent[last]
        else:
            parent[last] = value
    else:
        return None
    return out


def has(parent: Any, key: Any) -> bool:
    if isinstance(parent, dict):
        return key in parent
    return isinstance(parent, list) and isinstance(key, int) and key < len(parent)
