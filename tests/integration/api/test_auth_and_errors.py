"""Every route but /healthz and /.well-known/wot needs a token; malformed input is a 4xx
problem+json, never a 500."""

from __future__ import annotations

import re
from typing import Any

import pytest

from support import LiveServer


def _is_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    return body


async def test_health_needs_no_token(server: LiveServer) -> None:
    async with server.anonymous() as anon:
        response = await anon.get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


# Liveness, and WoT Discovery's introduction (the directory's own TD: docs/decisions.md 19).
PUBLIC = {"/healthz", "/.well-known/wot"}


async def test_every_route_in_the_openapi_document_refuses_anonymous_callers(
    server: LiveServer,
) -> None:
    spec = (await server.client.get("/api/v1/openapi.json")).json()
    checked = 0
    async with server.anonymous() as anon:
        for path, methods in spec["paths"].items():
            if path in PUBLIC:
                continue
            concrete = re.sub(r"\{[^}]+\}", "acme:x", path)
            for method in methods:
                for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic x"}):
                    response = await anon.request(
                        method.upper(), concrete, headers=headers, json={}
                    )
                    if method.upper() == "HEAD":  # the headers of the problem, no body
                        assert response.status_code == 401 and response.content == b""
                        assert response.headers["content-type"] == "application/problem+json"
                    else:
                        _is_problem(response, 401)
                    assert response.headers["www-authenticate"].startswith("Bearer")
                checked += 1
    assert checked >= 10


async def test_openapi_is_served_and_declares_bearer_auth(server: LiveServer) -> None:
    spec = (await server.client.get("/api/v1/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert "/api/v1/things/{thing_id}/twin/desired" in spec["paths"]
    assert any(s.get("scheme") == "bearer" for s in spec["components"]["securitySchemes"].values())


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("POST", "/api/v1/things", {"content": b"{not json"}, 400),
        ("POST", "/api/v1/things", {"json": [1, 2]}, 400),
        ("POST", "/api/v1/things", {"json": {"id": "bad id", "kind": "p"}}, 400),
        ("POST", "/api/v1/things", {"json": {"id": "acme:a"}}, 400),
        ("POST", "/api/v1/things", {"json": {"id": "acme:a", "kind": "p", "x": 1}}, 400),
        (
            "POST",
            "/api/v1/things",
            {"content": b"", "headers": {"content-type": "application/json"}},
            400,
        ),
        (
            "POST",
            "/api/v1/things",
            {"content": b"id=1", "headers": {"content-type": "text/plain"}},
            415,
        ),
        (
            "POST",
            "/api/v1/things",
            {"content": b'{"id":"acme:a","kind":"p","attributes":{"n":NaN}}'},
            400,
        ),
        ("POST", "/api/v1/things", {"content": b"[" * 100_000}, 400),
        (
            "POST",
            "/api/v1/things",
            {"json": {"id": "acme:a", "kind": "p", "attributes": {"n": "a\u0000"}}},
            400,
        ),
        ("POST", "/api/v1/things", {"content": b" " * (1024 * 1024 + 10)}, 400),
        ("GET", "/api/v1/things/not-an-id", {}, 400),
        ("GET", "/api/v1/things/acme:missing", {}, 404),
        ("GET", "/api/v1/things?q=kind%20%3D%3D", {}, 400),
        ("GET", "/api/v1/things?cursor=garbage!!", {}, 400),
        ("GET", "/api/v1/things?cursor=eyJzZXEiOjF9", {}, 400),
        ("GET", "/api/v1/things?limit=0", {}, 400),
        ("GET", "/api/v1/things?limit=abc", {}, 400),
        ("GET", "/api/v1/things/acme:a?at=yesterday", {}, 400),
        ("GET", "/api/v1/things/acme:a?at=2026-01-01T00:00:00", {}, 400),
        ("GET", "/api/v1/journal?after=-1", {}, 400),
        ("GET", "/api/v1/journal?cursor=%00", {}, 400),
        ("GET", "/api/v1/things/acme:a/history?since=x", {}, 400),
        ("GET", "/api/v1/events?types=nope", {}, 400),
        ("GET", "/api/v1/events?q=(", {}, 400),
        ("GET", "/api/v1/events", {"headers": {"Last-Event-ID": "abc"}}, 400),
        ("PATCH", "/api/v1/things/acme:missing", {"json": {"kind": "x"}}, 404),
        ("DELETE", "/api/v1/things/acme:missing", {}, 404),
        ("GET", "/api/v1/nowhere", {}, 404),
        ("PUT", "/api/v1/things", {}, 405),
    ],
)
async def test_malformed_input_is_a_4xx_problem(
    server: LiveServer, method: str, path: str, kwargs: dict[str, Any], status: int
) -> None:
    response = await server.client.request(method, path, **kwargs)
    _is_problem(response, status)


async def test_malformed_patches_and_versions(server: LiveServer) -> None:
    c = server.client
    assert (await c.post("/api/v1/things", json={"id": "acme:a", "kind": "p"})).status_code == 201
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("PATCH", "/api/v1/things/acme:a", {"json": {"id": "acme:b"}}),
        ("PATCH", "/api/v1/things/acme:a", {"json": {"kind": None}}),
        ("PATCH", "/api/v1/things/acme:a", {"json": {"labels": {"k": 5}}}),
        ("PATCH", "/api/v1/things/acme:a", {"json": {"links": "acme:b"}}),
        ("PATCH", "/api/v1/things/acme:a", {"json": "x"}),
        ("PATCH", "/api/v1/things/acme:a/twin/desired", {"json": [1]}),
        (
            "PATCH",
            "/api/v1/things/acme:a/twin/desired",
            {"json": {"a": 1}, "headers": {"If-Match": "v1"}},
        ),
        ("PATCH", "/api/v1/things/acme:a/twin/reported", {"content": b'{"a": Infinity}'}),
        (
            "POST",
            "/api/v1/things",
            {"json": {"id": "acme:c", "kind": "p"}, "headers": {"X-Iotas-Cause": "x" * 600}},
        ),
    ]
    for method, path, kwargs in cases:
        _is_problem(await c.request(method, path, **kwargs), 400)
    twin = (await c.get("/api/v1/things/acme:a/twin")).json()
    assert twin["version"] == 0
