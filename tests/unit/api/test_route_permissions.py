"""Every route declares the permission it needs where it is defined (`security.requires`):
a route added without one fails here, rather than being open to every role."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

from iotas.api.app import OPENAPI_URL, create_app
from iotas.api.openapi import PUBLIC_PATHS
from iotas.api.security import Permission, Requirement, requirement_of
from iotas.api.swagger import DOCS
from iotas.settings import Settings


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return create_app(Settings())


def _declared(app: FastAPI) -> dict[tuple[str, str], Requirement]:
    found: dict[tuple[str, str], Requirement] = {}
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        requirement = requirement_of(route)
        assert requirement is not None, f"{route.methods} {route.path} declares no permission"
        for method in route.methods:
            found[(method, route.path)] = requirement
    return found


def test_every_route_declares_a_permission(app: FastAPI) -> None:
    declared = _declared(app)
    assert len(declared) > 60
    public = {path for (_, path), r in declared.items() if r.permission is Permission.PUBLIC}
    # The OpenAPI document's public operations are the routes that say they are public.
    assert public == PUBLIC_PATHS | {DOCS}
    assert {p for (_, p), r in declared.items() if r.permission is Permission.CLAIM} == {
        "/api/v1/provision"
    }


def test_a_route_without_a_permission_is_found() -> None:
    bare = FastAPI()

    @bare.get("/open")
    async def _open() -> None:
        return None

    route = next(r for r in bare.routes if isinstance(r, APIRoute))
    assert requirement_of(route) is None
    with pytest.raises(AssertionError, match="/open declares no permission"):
        _declared(bare)


def test_the_routes_a_device_and_a_limited_token_reach(app: FastAPI) -> None:
    declared = _declared(app)
    # docs/security.md: a device certificate reaches these routes, on its own id only.
    assert {k for k, r in declared.items() if r.device} == {
        ("GET", "/api/v1/things/{thing_id}/invocations"),
        ("POST", "/api/v1/things/{thing_id}/invocations/{invocation_id}/result"),
        ("GET", "/api/v1/things/{thing_id}/twin"),
        ("PATCH", "/api/v1/things/{thing_id}/twin/reported"),
        ("POST", "/api/v1/things/{thing_id}/telemetry"),
        ("POST", "/api/v1/things/{thing_id}/credentials/renew"),
    }
    # About the whole installation: refused to a namespace-limited token.
    assert {p for (_, p), r in declared.items() if r.installation} == {
        "/api/v1/claims",
        "/api/v1/claims/{claim_id}",
        "/api/v1/tokens",
        "/api/v1/tokens/{token_id}",
        "/api/v1/broker/credentials",
        "/api/v1/ca/server-certificates",
        "/api/v1/journal/head",
        "/api/v1/journal/verify",
        "/api/v1/stats",
        "/metrics",
        # A rollout's target is a query over every namespace (docs/commands.md).
        "/api/v1/rollouts",
        "/api/v1/rollouts/{rollout_id}",
        "/api/v1/rollouts/{rollout_id}/things",
        "/api/v1/rollouts/{rollout_id}/pause",
        "/api/v1/rollouts/{rollout_id}/resume",
        "/api/v1/rollouts/{rollout_id}/cancel",
    }


def test_only_the_documents_are_served_outside_fastapi_routes(app: FastAPI) -> None:
    # Plain Starlette routes carry no dependencies: only the OpenAPI document may be one.
    plain = {r.path for r in app.routes if isinstance(r, Route) and not isinstance(r, APIRoute)}
    assert plain == {OPENAPI_URL}
