"""Request bodies are declared once, as pydantic models: the check before the route runs
and the OpenAPI schema both come from the model, and the route gets the JSON as sent."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from iotas.api.app import create_app
from iotas.api.bodies import DECLARED, check
from iotas.api.dependencies import calls
from iotas.api.models import ClaimBody, MergePatch, Samples, ThingBody, TokenBody
from iotas.domain.errors import InvalidInput
from iotas.settings import Settings

WRITES = {"POST", "PUT", "PATCH"}


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings())


def test_every_write_route_declares_its_body_and_the_document_shows_it(app: FastAPI) -> None:
    spec = app.openapi()
    routes = [r for r in app.routes if isinstance(r, APIRoute) and r.methods & WRITES]
    assert len(routes) > 15
    for route in routes:
        declared = [DECLARED[c] for c in calls(route) if c in DECLARED]
        assert len(declared) == 1, (route.methods, route.path)
        for method in route.methods:
            operation = spec["paths"][route.path_format][method.lower()]
            content = operation["requestBody"]["content"]
            assert set(content) == set(declared[0].media_types), route.path
            name = declared[0].model.__name__
            assert {c["schema"]["$ref"] for c in content.values()} == {
                f"#/components/schemas/{name}"
            }
            assert name in spec["components"]["schemas"]
    token = spec["components"]["schemas"]["TokenBody"]
    assert token["additionalProperties"] is False
    assert token["required"] == ["subject", "role"]


def test_a_merge_patch_is_handed_on_exactly_as_sent() -> None:
    # null removes, absent leaves alone: nothing is added or turned into null.
    patch: dict[str, Any] = {"on": None, "level": {"max": None}}
    assert check(MergePatch, patch) is patch
    assert check(MergePatch, {}) == {}


def test_an_optional_member_left_out_stays_out() -> None:
    thing = {"id": "acme:p", "kind": "pump"}
    assert check(ThingBody, thing) is thing
    assert thing == {"id": "acme:p", "kind": "pump"}


@pytest.mark.parametrize(
    ("model", "data", "detail", "field"),
    [
        (
            TokenBody,
            {"subject": "x", "role": "x", "secret": 1},
            "unknown member(s) secret in a token",
            None,
        ),
        (
            ClaimBody,
            {"template": {"namespace": "a", "kind": "k", "x": 1}},
            "unknown member(s) x in template",
            "template",
        ),
        (TokenBody, {"subject": "x", "role": "root"}, "role: Input should be", "role"),
        (
            TokenBody,
            {"subject": 7, "role": "viewer"},
            "subject: Input should be a valid string",
            "subject",
        ),
        (TokenBody, [], "a token must be a JSON object", None),
        (TokenBody, {"subject": "x"}, 'a token needs role: "viewer" or "operator"', "role"),
        (MergePatch, [1], "a merge patch must be a JSON object", None),
        (
            ThingBody,
            {"id": "a:b", "kind": "k", "links": [{"rel": "r"}]},
            "a Thing needs links.0.target",
            "links.0.target",
        ),
    ],
)
def test_a_body_that_does_not_fit_is_a_400_naming_what(
    model: Any, data: Any, detail: str, field: str | None
) -> None:
    with pytest.raises(InvalidInput) as refused:
        check(model, data)
    assert refused.value.detail.startswith(detail), refused.value.detail
    assert refused.value.extra.get("field") == field


def test_telemetry_shape_is_left_to_the_rule_every_ingest_path_shares() -> None:
    # domain.telemetry refuses with a `reason` member a model check would not carry.
    assert check(Samples, 3) == 3
