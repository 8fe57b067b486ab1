"""The actions of a native Thing's TD: the model's actions, each with the one form a WoT
consumer invokes through (the input in, the output out, 202 with the invocation described
as an additional response), a Thing-level `queryallactions` form, and a TD that stays valid
TD 1.1; the invocation schema describes what the API answers."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from iotas.domain import td, td_actions
from iotas.domain.invocations import Status
from iotas.domain.things import Thing
from td_check import assert_valid_td
from unit.domain.test_invocations import _queued

BASE = "http://127.0.0.1:8080"
MODEL: dict[str, Any] = {
    "actions": {
        "dim": {
            "title": "Dim",
            "input": {"type": "object", "properties": {"level": {"type": "integer"}}},
            "output": {"type": "object", "properties": {"level": {"type": "integer"}}},
            "idempotent": True,
            # What a model may say that the generated TD sets itself or cannot promise:
            "synchronous": True,
            "uriVariables": {"x": {"type": "string"}},
            "forms": [{"href": "mqtt://device/dim"}],
        },
        "reboot": {},
        "a/b c": {"description": "a name that needs escaping"},
    }
}


def _td(model: dict[str, Any] | None = MODEL, thing_id: str = "acme:lamp-1") -> dict[str, Any]:
    doc = td.native_td(Thing(id=thing_id, kind="lamp", description=model), http_base=BASE)
    assert_valid_td(doc)
    td.validate_td(doc)
    return doc


def test_each_model_action_with_its_invoke_form() -> None:
    doc = _td()
    api = f"{BASE}/api/v1/things/acme:lamp-1"
    dim = doc["actions"]["dim"]
    assert dim["input"] == MODEL["actions"]["dim"]["input"]
    assert dim["output"] == MODEL["actions"]["dim"]["output"]
    assert dim["title"] == "Dim" and dim["idempotent"] is True
    assert "synchronous" not in dim and "uriVariables" not in dim
    [form] = dim["forms"]
    assert form["href"] == f"{api}/actions/dim/invoke"
    assert form["op"] == ["invokeaction"] and form["htv:methodName"] == "POST"
    assert form["contentType"] == "application/json"
    accepted, failed = form["additionalResponses"]
    assert accepted == {
        "success": True,
        "contentType": "application/json",
        "schema": "invocation",
        "htv:statusCodeValue": 202,
    }
    assert failed["success"] is False and failed["contentType"] == "application/problem+json"
    # Every schema an additional response names is defined.
    assert {accepted["schema"], failed["schema"]} <= set(doc["schemaDefinitions"])
    assert doc["actions"]["reboot"]["forms"][0]["href"] == f"{api}/actions/reboot/invoke"
    escaped = doc["actions"]["a/b c"]["forms"][0]["href"]
    assert escaped == f"{api}/actions/a%2Fb%20c/invoke"
    assert {"href": f"{api}/invocations", "op": ["queryallactions"]}.items() <= doc["forms"][
        -1
    ].items()
    # Parsed as iotas parses any TD: the invoke form is a POST.
    parsed = td.interactions(doc).actions["dim"].forms[0]
    assert parsed.op == ("invokeaction",) and parsed.http_method("invokeaction") == "POST"


@pytest.mark.parametrize("model", [None, {}, {"actions": {}}, {"actions": {"x": "not one"}}])
def test_no_actions_no_action_members(model: dict[str, Any] | None) -> None:
    doc = _td(model)
    assert "actions" not in doc and "schemaDefinitions" not in doc
    assert [f["op"] for f in doc["forms"]] == [["readallproperties"]]


def test_the_invocation_schema_describes_what_the_api_answers() -> None:
    schema = td_actions.INVOCATION_SCHEMA
    assert set(schema["properties"]["status"]["enum"]) == {s.value for s in Status}
    queued = _queued()
    variants = [
        queued,
        replace(queued, status=Status.RUNNING, delivered_us=1_700_000_001_000_000, progress=50.0),
        replace(queued, status=Status.SUCCEEDED, output=[1, "two"], progress=100.0, attempts=2),
        replace(queued, status=Status.FAILED, error={"code": "hot", "message": "too hot"}),
        replace(queued, status=Status.QUEUED, rollout_id="rol-1", input=None),
    ]
    for invocation in variants:
        assert td.data_violation(schema, invocation.as_json()) is None, invocation
    assert td.data_violation(schema, {**queued.as_json(), "status": "done"}) is not None
    assert set(schema["properties"]) == set(queued.as_json())
