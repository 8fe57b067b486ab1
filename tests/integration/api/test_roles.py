"""Operator tokens and roles: a viewer reads, an operator also changes desired state and
invokes actions, an admin does everything; tokens expire and are revoked. Every route of the
OpenAPI document is walked with every role."""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from support import LiveServer

PUBLIC = {"/healthz", "/.well-known/wot"}
# Authenticated by a claim token, not an operator's: see test_claims.py.
PUBLIC |= {"/api/v1/provision"}


async def make_token(server: LiveServer, role: str, **extra: Any) -> str:
    response = await server.client.post(
        "/api/v1/tokens", json={"subject": f"test-{role}", "role": role, **extra}
    )
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    token: str = response.json()["token"]
    return token


# What each role may do, as docs/security.md states it (written here from the docs, not taken
# from api/security.py, so that a change of the implementation's tables cannot pass unseen):
# a viewer reads everything but these; an operator also makes these changes; an admin does all.
ADMIN_ONLY_READS = {
    "/api/v1/tokens",
    "/api/v1/claims",
    "/api/v1/claims/{claim_id}",
    "/api/v1/broker/credentials",
    "/api/v1/ca/server-certificates",
}
OPERATOR_CHANGES = {
    ("PATCH", "/api/v1/things/{thing_id}/twin/desired"),
    ("PATCH", "/api/v1/twins/desired"),
    ("PUT", "/api/v1/things/{thing_id}/properties/{name}"),
    ("POST", "/api/v1/things/{thing_id}/actions/{name}"),
    ("POST", "/api/v1/things/{thing_id}/actions/{name}/invoke"),
    ("POST", "/api/v1/invocations/{invocation_id}/cancel"),
    ("POST", "/api/v1/things/{thing_id}/invocations/{invocation_id}/result"),
    ("POST", "/api/v1/rollouts"),
    ("POST", "/api/v1/rollouts/{rollout_id}/pause"),
    ("POST", "/api/v1/rollouts/{rollout_id}/resume"),
    ("POST", "/api/v1/rollouts/{rollout_id}/cancel"),
}


def allowed(role: str, template: str, method: str) -> bool:
    if role == "admin":
        return True
    if method in ("GET", "HEAD") and template not in ADMIN_ONLY_READS:
        return True
    return role == "operator" and (method, template) in OPERATOR_CHANGES


async def status_of(client: httpx.AsyncClient, method: str, path: str) -> int:
    # Streams (SSE) answer their status at once and then never end: read the status only.
    # Long polls answer when there is something to say, or when the wait asked for is over.
    headers = {"Prefer": "wait=0"}
    async with client.stream(method, path, json={}, timeout=10, headers=headers) as response:
        return response.status_code


async def test_every_route_with_every_role(server: LiveServer) -> None:
    spec = (await server.client.get("/api/v1/openapi.json")).json()
    await server.client.post("/api/v1/things", json={"id": "acme:x", "kind": "k"})
    checked = 0
    for role in ("viewer", "operator", "admin"):
        token = await make_token(server, role)
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            for template, methods in spec["paths"].items():
                if template in PUBLIC:
                    continue
                path = re.sub(r"\{[^}]+\}", "acme:x", template)
                for method in methods:
                    if role == "admin" and method.upper() == "DELETE":
                        continue  # an admin may delete; the walk must not remove acme:x
                    status = await status_of(client, method.upper(), path)
                    expected_forbidden = not allowed(role, template, method.upper())
                    assert (status == 403) == expected_forbidden, (role, method, template, status)
                    assert status not in (401, 500), (role, method, template, status)
                    checked += 1
    assert checked > 60


async def test_tokens_are_made_listed_expire_and_are_revoked(server: LiveServer) -> None:
    c = server.client
    viewer = await make_token(server, "viewer")
    listed = (await c.get("/api/v1/tokens")).json()["items"]
    assert {"admin", "test-viewer"} <= {t["subject"] for t in listed}
    assert "token" not in str(listed) and viewer not in str(listed)
    async with server.anonymous() as anon:
        as_viewer = {"Authorization": f"Bearer {viewer}"}
        assert (await anon.get("/api/v1/things", headers=as_viewer)).status_code == 200
        refused = await anon.post(
            "/api/v1/things", json={"id": "acme:v", "kind": "k"}, headers=as_viewer
        )
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        # Revoked: refused at once on this node.
        token_id = next(t["id"] for t in listed if t["subject"] == "test-viewer")
        assert (await c.delete(f"/api/v1/tokens/{token_id}")).status_code == 204
        assert (await anon.get("/api/v1/things", headers=as_viewer)).status_code == 401
        assert (await c.delete("/api/v1/tokens/nope")).status_code == 404
        # Expired: refused.
        soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
        short = await make_token(server, "viewer", expires=soon)
        await asyncio.sleep(1.5)
        expired = await anon.get("/api/v1/things", headers={"Authorization": f"Bearer {short}"})
        assert expired.status_code == 401
    body: object  # JSON bodies of every shape, right and wrong
    for body in (
        {"subject": "x", "role": "root"},
        {"subject": "", "role": "viewer"},
        {"subject": "x", "role": "viewer", "expires": "2001-01-01T00:00:00Z"},
        {"subject": "x", "role": "viewer", "expires": "soon"},
        {"subject": "x", "role": "viewer", "namespaces": []},
        {"subject": "x", "role": "viewer", "namespaces": "acme"},
        {"subject": "x", "role": "viewer", "namespaces": ["Acme!"]},
        {"subject": "x", "role": "viewer", "secret": "mine"},
        [],
    ):
        response = await c.post("/api/v1/tokens", json=body)
        assert response.status_code == 400, (body, response.text)


async def _others_thing(server: LiveServer) -> str:
    """acme:x and other:y, which links to it, each with history, and a snapshot of other:y;
    returns the snapshot's sha256."""
    c = server.client
    await c.post("/api/v1/things", json={"id": "acme:x", "kind": "k"})
    await c.post(
        "/api/v1/things",
        json={"id": "other:y", "kind": "k", "links": [{"rel": "feeds", "target": "acme:x"}]},
    )
    for thing in ("acme:x", "other:y"):
        await c.patch(f"/api/v1/things/{thing}/twin/desired", json={"on": True})
    taken = await c.post("/api/v1/things/other:y/snapshots", json={})
    return str(taken.json()["sha256"])


async def _stream_text(client: httpx.AsyncClient, path: str, seconds: float = 1.0) -> str:
    chunks: list[str] = []
    async with client.stream("GET", path, timeout=10) as response:
        assert response.status_code == 200, path

        async def read() -> None:
            async for chunk in response.aiter_text():
                chunks.append(chunk)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(read(), seconds)
    return "".join(chunks)


async def test_a_namespace_limited_token_sees_nothing_of_other_namespaces(
    server: LiveServer,
) -> None:
    spec = (await server.client.get("/api/v1/openapi.json")).json()
    digest = await _others_thing(server)
    checked = 0
    for role in ("viewer", "operator", "admin"):
        token = await make_token(server, role, namespaces=["acme"])
        async with httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            for template, methods in spec["paths"].items():
                if template in PUBLIC:
                    continue
                named = "{" in template
                path = re.sub(r"\{[^}]+\}", "other:y", template)
                unused = re.sub(r"\{[^}]+\}", "other:never-made", template)
                for method in methods:
                    if method.upper() in ("GET", "HEAD") and not named:
                        continue  # lists and streams: their contents are checked below
                    status = await status_of(client, method.upper(), path)
                    assert status >= 400 and status not in (401, 500), (role, method, path, status)
                    if named:
                        # docs/security.md: another namespace's Thing is answered exactly as
                        # an unused id, so nothing tells whether it exists; on the Things
                        # routes that answer is 404, whatever the role, and so it is on the
                        # directory's for a role that may not write there (decision 51).
                        alike = await status_of(client, method.upper(), unused)
                        assert status == alike, (role, method, template, status, alike)
                        if "{thing_id}" in template or (
                            "{td_id}" in template and not allowed(role, template, method.upper())
                        ):
                            assert status == 404, (role, method, template, status)
                    checked += 1
            # Lists, feeds and streams hold acme's Things and nothing of other's.
            for path in (
                "/api/v1/things",
                "/api/v1/things?q=kind%20%3D%3D%20%22k%22",
                "/api/v1/journal",
                "/api/v1/adoptions",
                "/tdd/things",
                "/tdd/search/jsonpath?query=%24%5B%2A%5D.id",
                "/api/v1/things/acme:x/graph?direction=both&depth=3",
                "/api/v1/things/acme:x/history",
            ):
                response = await client.get(path)
                assert response.status_code == 200, (path, response.text)
                assert "other:y" not in response.text and "other" not in response.text, path
            assert "acme:x" in (await client.get("/api/v1/journal")).text
            for stream in ("/api/v1/events?after=0", "/tdd/events"):
                text = await _stream_text(client, stream)
                assert "other" not in text, stream
            assert "acme:x" in await _stream_text(client, "/api/v1/events?after=0")
            assert (await client.get(f"/api/v1/snapshots/{digest}")).status_code == 404
            for path in (
                "/api/v1/tokens",
                "/api/v1/journal/head",
                "/api/v1/journal/verify",
                "/api/v1/stats",
                "/metrics",
                "/api/v1/claims",
                "/api/v1/broker/credentials",
            ):
                assert (await client.get(path)).status_code == 403, path
            bulk = await client.patch(
                "/api/v1/twins/desired", params={"q": 'kind == "k"'}, json={"on": False}
            )
            if role != "viewer":
                assert bulk.json() == {"matched": 1, "changed": 1}, role
                await server.client.patch("/api/v1/things/acme:x/twin/desired", json={"on": True})
            made = await client.post("/api/v1/things", json={"id": "other:z", "kind": "k"})
            assert made.status_code == 403, role
    assert checked > 60
    other = (await server.client.get("/api/v1/things/other:y")).json()
    assert other["twin"]["desired"] == {"on": True}  # nothing of it was changed
    assert (await server.client.get("/api/v1/things/other:z")).status_code == 404


async def test_a_limited_token_cannot_walk_another_namespace_through_queries(
    server: LiveServer,
) -> None:
    c = server.client
    await c.post("/api/v1/things", json={"id": "other:secret", "kind": "k"})
    hub_links = [{"rel": "feeds", "target": "other:secret"}]
    await c.post("/api/v1/things", json={"id": "other:hub", "kind": "k", "links": hub_links})
    own_links = [{"rel": "feeds", "target": "other:hub"}]
    await c.post("/api/v1/things", json={"id": "acme:a", "kind": "k", "links": own_links})
    query = {"q": 'reachable("*", "other:secret")'}
    everyone = (await c.get("/api/v1/things", params=query)).json()["items"]
    assert {t["id"] for t in everyone} == {"acme:a", "other:hub"}
    token = await make_token(server, "viewer", namespaces=["acme"])
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}
    ) as limited:
        # acme:a reaches other:secret only through other:hub, which the token does not see.
        assert (await limited.get("/api/v1/things", params=query)).json()["items"] == []
        # Its own edge, to an id elsewhere, is its own data.
        direct = {"q": 'linked("feeds", "other:hub")'}
        found = (await limited.get("/api/v1/things", params=direct)).json()["items"]
        assert [t["id"] for t in found] == ["acme:a"]
