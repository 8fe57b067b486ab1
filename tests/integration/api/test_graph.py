"""The graph through the API: edges of links and TDs, depth, direction, dangling targets."""

from __future__ import annotations

from typing import Any

from support import LiveServer


async def create(server: LiveServer, thing_id: str, **body: Any) -> None:
    response = await server.client.post(
        "/api/v1/things", json={"id": thing_id, "kind": "n", **body}
    )
    assert response.status_code == 201, response.text


def link(rel: str, target: str) -> dict[str, str]:
    return {"rel": rel, "target": target}


async def test_graph_follows_edges_and_reports_dangling_ones(server: LiveServer) -> None:
    c = server.client
    # The pump names a gateway nobody has registered yet: kept, and dangling.
    await create(server, "acme:pump-1", links=[link("hosted-by", "acme:gw-1")])
    await create(server, "acme:sensor-1", links=[link("part-of", "acme:pump-1")])
    graph = (await c.get("/api/v1/things/acme:pump-1/graph")).json()
    assert graph["edges"] == [
        {"source": "acme:pump-1", "rel": "hosted-by", "target": "acme:gw-1", "dangling": True}
    ]
    assert {n["id"]: n["dangling"] for n in graph["nodes"]} == {
        "acme:pump-1": False,
        "acme:gw-1": True,
    }
    # Registered later: no longer dangling; a query finds the pump by its edge.
    await create(server, "acme:gw-1", links=[link("located-in", "acme:site-1")])
    graph = (await c.get("/api/v1/things/acme:pump-1/graph", params={"depth": 2})).json()
    assert {(e["source"], e["target"], e["dangling"]) for e in graph["edges"]} == {
        ("acme:pump-1", "acme:gw-1", False),
        ("acme:gw-1", "acme:site-1", True),
    }
    linked = await c.get("/api/v1/things", params={"q": 'linked("hosted-by", "acme:gw-1")'})
    assert [t["id"] for t in linked.json()["items"]] == ["acme:pump-1"]

    # Incoming edges, one relation, and the transitive query.
    incoming = (
        await c.get(
            "/api/v1/things/acme:gw-1/graph",
            params={"direction": "in", "depth": 3, "rel": "part-of"},
        )
    ).json()
    assert incoming["edges"] == []
    incoming = (
        await c.get("/api/v1/things/acme:gw-1/graph", params={"direction": "in", "depth": 3})
    ).json()
    assert {(e["source"], e["rel"]) for e in incoming["edges"]} == {
        ("acme:pump-1", "hosted-by"),
        ("acme:sensor-1", "part-of"),
    }
    reach = await c.get("/api/v1/things", params={"q": 'reachable("part-of", "acme:pump-1")'})
    assert [t["id"] for t in reach.json()["items"]] == ["acme:sensor-1"]

    # Links removed by a patch leave the graph; a TD's links are edges too.
    await c.patch("/api/v1/things/acme:pump-1", json={"links": []})
    assert (await c.get("/api/v1/things/acme:pump-1/graph")).json()["edges"] == []
    td = {"links": [{"rel": "hosted-by", "href": "acme:gw-1"}]}
    await c.patch("/api/v1/things/acme:pump-1", json={"description": td})
    edges = (await c.get("/api/v1/things/acme:pump-1/graph")).json()["edges"]
    assert [(e["rel"], e["target"]) for e in edges] == [("hosted-by", "acme:gw-1")]


async def test_graph_refuses_bad_input(server: LiveServer) -> None:
    c = server.client
    await create(server, "acme:x")
    for params in ({"depth": 0}, {"depth": 99}, {"direction": "up"}, {"rel": "Not A Rel"}):
        response = await c.get("/api/v1/things/acme:x/graph", params=params)
        assert response.status_code == 400, params
        assert response.headers["content-type"] == "application/problem+json"
    assert (await c.get("/api/v1/things/acme:nope/graph")).status_code == 404
    stream = await c.get("/api/v1/events", params={"q": 'reachable("a", "acme:x")'})
    assert stream.status_code == 400
