"""Every TD iotas generates validates against the official TD 1.1 JSON Schema, whatever the
Thing holds; and parsing fills in the TD 1.1 defaults."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotas.domain import td
from iotas.domain.errors import InvalidInput
from iotas.domain.things import Thing
from iotas.domain.twin import Twin
from td_check import assert_valid_td

KEYS = st.text(min_size=1, max_size=12)
SCALARS = st.one_of(
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=6,
)
DOCS = st.dictionaries(KEYS, VALUES, max_size=5)


@settings(max_examples=150, deadline=None)
@given(
    desired=DOCS,
    reported=DOCS,
    title=st.one_of(st.none(), st.text(max_size=30)),
    name=st.from_regex(r"[a-z][a-z0-9._-]{0,20}[a-z0-9]", fullmatch=True),
)
def test_generated_tds_are_valid(
    desired: dict[str, Any], reported: dict[str, Any], title: str | None, name: str
) -> None:
    thing = Thing(
        id=f"acme:{name}",
        kind="pump",
        attributes={} if title is None else {"title": title, "description": "a pump"},
        links=[{"rel": "hosted-by", "target": "acme:gw-1"}],
        description={
            "@type": "saref:Pump",
            "actions": {"purge": {"input": {"type": "number"}}},
            "events": {"overheat": {"data": {"type": "string"}}},
            "properties": {"rpm": {"type": "integer", "readOnly": True}},
        },
        twin=Twin(desired=desired, reported=reported),
    )
    doc = td.native_td(
        thing,
        http_base="http://127.0.0.1:8080",
    )
    assert_valid_td(doc)
    td.validate_td(doc)
    assert set(doc["properties"]) == {"rpm", *desired, *reported}
    # Consumer forms only: iotas' HTTP API (the MQTT topics are the device's side).
    assert set(doc["actions"]) == {"purge"}
    kinds = ("properties", "events", "actions")
    forms = [f for kind in kinds for a in doc[kind].values() for f in a["forms"]]
    assert forms and all(f["href"].startswith("http://127.0.0.1:8080/api/v1/") for f in forms)
    assert doc["@context"][:2] == [td.TD_CONTEXT_V1, td.TD_CONTEXT]
    assert all(p["observable"] for p in doc["properties"].values())
    things = td.interactions(doc)
    for key in set(reported) - set(desired) - {"rpm"}:
        assert things.properties[key].read_only


def test_parsing_fills_in_defaults_and_resolves_hrefs() -> None:
    doc = {
        "@context": td.TD_CONTEXT,
        "title": "Lamp",
        "base": "http://192.0.2.1:8080/lamp/",
        "securityDefinitions": {"b": {"scheme": "basic"}, "t": {"scheme": "bearer"}},
        "security": "b",
        "properties": {
            "on": {"type": "boolean", "forms": [{"href": "properties/on"}]},
            "status": {"type": "string", "readOnly": True, "forms": [{"href": "status"}]},
        },
        "actions": {"toggle": {"forms": [{"href": "toggle", "security": "t"}]}},
        "events": {"hot": {"forms": [{"href": "events/hot"}]}},
    }
    things = td.interactions(td.validate_td(doc))
    on = things.properties["on"].forms[0]
    assert on.href == "http://192.0.2.1:8080/lamp/properties/on"
    assert on.op == ("readproperty", "writeproperty")
    assert on.http_method("readproperty") == "GET" and on.http_method("writeproperty") == "PUT"
    assert things.properties["status"].forms[0].op == ("readproperty",)
    toggle = things.actions["toggle"].forms[0]
    assert toggle.op == ("invokeaction",) and toggle.http_method("invokeaction") == "POST"
    assert [s.scheme for s in things.schemes_for(toggle)] == ["bearer"]
    assert [s.scheme for s in things.schemes_for(on)] == ["basic"]
    hot = things.events["hot"].forms[0]
    assert hot.op == ("subscribeevent", "unsubscribeevent") and hot.subprotocol == "longpoll"


@pytest.mark.parametrize(
    ("mutate", "pointer"),
    [
        (lambda d: d["properties"]["on"].pop("forms"), "/properties/on"),
        (lambda d: d["properties"]["on"]["forms"][0].update(op="fly"), "/properties/on/forms/0"),
        (lambda d: d.update(security=["missing"]), "/security"),
        (lambda d: d.update(id="not a uri"), "/id"),
        (lambda d: d.pop("title"), "/title"),
    ],
)
def test_invalid_tds_name_the_member(mutate: Any, pointer: str) -> None:
    doc: dict[str, Any] = {
        "@context": td.TD_CONTEXT,
        "title": "Lamp",
        "securityDefinitions": {"n": {"scheme": "nosec"}},
        "security": "n",
        "properties": {"on": {"type": "boolean", "forms": [{"href": "http://h/on"}]}},
    }
    mutate(doc)
    with pytest.raises(InvalidInput) as caught:
        td.validate_td(doc)
    assert caught.value.extra["field"].startswith(pointer), caught.value.detail
    assert pointer in caught.value.detail


def test_bounds() -> None:
    huge = {"@context": td.TD_CONTEXT, "title": "x" * (td.MAX_TD_BYTES + 1)}
    with pytest.raises(InvalidInput, match="at most"):
        td.validate_td(huge)
    deep: Any = "x"
    for _ in range(td.MAX_DEPTH + 2):
        deep = {"a": deep}
    with pytest.raises(InvalidInput, match="nest"):
        td.validate_td({"@context": td.TD_CONTEXT, "title": "t", "x": deep})
    with pytest.raises(InvalidInput, match="JSON object"):
        td.validate_td([])


def test_context_puts_td_1_0_first_and_declares_every_prefix() -> None:
    model = {
        "@context": [td.TD_CONTEXT, {"saref": "https://saref.etsi.org/core/"}],
        "@type": "saref:LightSwitch",
    }
    thing = Thing(id="acme:s-1", kind="switch", description=model)
    doc = td.native_td(thing, http_base="http://127.0.0.1:8080")
    assert doc["@context"] == [
        td.TD_CONTEXT_V1,
        td.TD_CONTEXT,
        {"htv": td.HTV, "saref": "https://saref.etsi.org/core/"},
    ]
    assert_valid_td(doc)


@pytest.mark.parametrize(
    ("schema", "value", "refused"),
    [
        ({"type": "integer", "maximum": 100}, 500, td.PropertyValueInvalid),
        ({"type": "integer"}, 1.5, td.PropertyValueInvalid),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}},
            {"a": 1},
            td.PropertyValueInvalid,
        ),
        ({"type": "string", "readOnly": True}, "x", td.PropertyReadOnly),
        ({"type": "string", "oneOf": []}, "x", None),  # wotpy's empty oneOf: no constraint
        ({"type": "string", "minLength": "many"}, 5, None),  # not JSON Schema: no constraint
        ({"type": "number", "observable": True, "forms": [{"href": "x"}]}, 2.5, None),
    ],
)
def test_writes_are_checked_against_the_data_schema(
    schema: dict[str, Any], value: Any, refused: type[Exception] | None
) -> None:
    if refused is None:
        td.check_property_write(schema, "p", value)
        return
    with pytest.raises(refused) as caught:
        td.check_property_write(schema, "p", value)
    if refused is td.PropertyValueInvalid:
        assert isinstance(caught.value, td.PropertyValueInvalid)
        # An RFC 6901 pointer into the value: "" is the whole value.
        assert caught.value.extra["field"] == ("/a" if isinstance(value, dict) else "")
