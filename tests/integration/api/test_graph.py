"""The graph through the API: edges of links and TDs, depth, direction, dangling targets;
the bound on its size; the migration that fills the edge table from existing Things."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import Connection, insert, select
from sqlalchemy.ext.asyncio import create_async_engine

from iotas.domain.things import Thing
from iotas.services.context import Actor, Context
from iotas.services.graph import Graph
from iotas.services.registry import Registry
from iotas.store.engine import database_url as store_url
from iotas.store.engine import open_store, sqlite_engine
from iotas.store.migrate import alembic_config
from iotas.store.schema import thing_links, things
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
    assert graph["nodes"] == [
        {"id": "acme:gw-1", "kind": None, "exists": False, "dangling": True},
        {"id": "acme:pump-1", "kind": "n", "exists": True, "dangling": False},
    ]
    assert graph["root"] == "acme:pump-1"
    assert graph["truncated"] is False
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
    for params in (
        {"depth": 0},
        {"depth": 9},
        {"depth": "x"},
        {"direction": "up"},
        {"rel": "Not A Rel"},
        {"rel": "**"},
    ):
        response = await c.get("/api/v1/things/acme:x/graph", params=params)
        assert response.status_code == 400, params
        assert response.headers["content-type"] == "application/problem+json"
    assert (await c.get("/api/v1/things/acme:nope/graph")).status_code == 404
    assert (await c.get("/api/v1/things/nope/graph")).status_code == 400
    # A relation no edge has, and "*" (any), are fine.
    assert (await c.get("/api/v1/things/acme:x/graph", params={"rel": "z"})).status_code == 200
    assert (await c.get("/api/v1/things/acme:x/graph", params={"rel": "*"})).status_code == 200
    stream = await c.get("/api/v1/events", params={"q": 'reachable("a", "acme:x")'})
    assert stream.status_code == 400


async def test_graph_in_both_directions_with_td_links_and_a_cycle(server: LiveServer) -> None:
    c = server.client
    # site <- gw (TD link by directory URL, IRI rel) <- pump -> gw (a cycle: gw -> pump too).
    await create(server, "acme:site")
    td = {
        "links": [
            {
                "rel": "https://example.org/rels#partOf",
                "href": "https://d.example/things/acme:site",
            },
            {"href": "acme:pump"},
            {"rel": "service-doc", "href": "https://docs.example/gw"},
        ]
    }
    await create(server, "acme:gw", description=td)
    await create(server, "acme:pump", links=[link("hosted-by", "acme:gw")])
    both = (
        await c.get("/api/v1/things/acme:site/graph", params={"direction": "both", "depth": 8})
    ).json()
    assert [(e["source"], e["rel"], e["target"]) for e in both["edges"]] == [
        ("acme:gw", "link", "acme:pump"),
        ("acme:gw", "partof", "acme:site"),
        ("acme:pump", "hosted-by", "acme:gw"),
    ]
    assert [n["id"] for n in both["nodes"]] == ["acme:gw", "acme:pump", "acme:site"]
    assert all(n["exists"] for n in both["nodes"])
    # Out of the site there is nothing; into it, one hop reaches only the gateway.
    out = (await c.get("/api/v1/things/acme:site/graph", params={"depth": 8})).json()
    assert out["edges"] == [] and [n["id"] for n in out["nodes"]] == ["acme:site"]
    into = (await c.get("/api/v1/things/acme:site/graph", params={"direction": "in"})).json()
    assert [(e["source"], e["target"]) for e in into["edges"]] == [("acme:gw", "acme:site")]
    # Only one relation, any number of hops.
    hosted = (
        await c.get("/api/v1/things/acme:pump/graph", params={"rel": "hosted-by", "depth": 8})
    ).json()
    assert [(e["source"], e["target"]) for e in hosted["edges"]] == [("acme:pump", "acme:gw")]
    # The transitive query follows the same edges.
    found = await c.get("/api/v1/things", params={"q": 'reachable("*", "acme:site")'})
    assert [t["id"] for t in found.json()["items"]] == ["acme:gw", "acme:pump"]
    # Deleting a Thing takes its edges along; edges to it stay, dangling.
    assert (await c.delete("/api/v1/things/acme:gw")).status_code == 204
    after = (await c.get("/api/v1/things/acme:pump/graph")).json()
    assert after["edges"] == [
        {"source": "acme:pump", "rel": "hosted-by", "target": "acme:gw", "dangling": True}
    ]
    gone = await c.get("/api/v1/things", params={"q": 'linked("*", "acme:site")'})
    assert gone.json()["items"] == []


CTX = Context(Actor("test"))


async def test_the_graph_stops_at_its_edge_bound(database_url: str, tmp_path: Path) -> None:
    store = await open_store(store_url(database_url, tmp_path), on_commit=lambda _seq, _types: None)
    try:
        registry = Registry(store)
        # A hub with 5 spokes, each with 1 leaf: 10 edges in all.
        await registry.create(CTX, {"id": "acme:hub", "kind": "n"})
        for i in range(5):
            await registry.create(
                CTX, {"id": f"acme:s{i}", "kind": "n", "links": [link("on", "acme:hub")]}
            )
            await registry.create(
                CTX, {"id": f"acme:l{i}", "kind": "n", "links": [link("on", f"acme:s{i}")]}
            )
        whole = await Graph(store).around("acme:hub", rel=None, depth=2, direction="in")
        assert len(whole["edges"]) == 10 and whole["truncated"] is False
        cut = await Graph(store, max_edges=7).around("acme:hub", rel=None, depth=2, direction="in")
        assert len(cut["edges"]) == 7 and cut["truncated"] is True
        # Every node of a kept edge is listed, and nothing else.
        ends = {e["source"] for e in cut["edges"]} | {e["target"] for e in cut["edges"]}
        assert {n["id"] for n in cut["nodes"]} == ends
        exact = await Graph(store, max_edges=5).around(
            "acme:hub", rel=None, depth=1, direction="in"
        )
        assert len(exact["edges"]) == 5 and exact["truncated"] is False
    finally:
        await store.dispose()


def _row(thing: Thing) -> dict[str, Any]:
    return {
        "id": thing.id,
        "namespace": thing.namespace,
        "kind": thing.kind,
        "attributes": {},
        "labels": {},
        "links": thing.links,
        "description": thing.description,
        "desired": {},
        "reported": {},
        "desired_meta": {},
        "reported_meta": {},
        "twin_version": 0,
        "revision": 1,
        "created_at": "2026-11-28T00:00:00.000000Z",
        "updated_at": "2026-11-28T00:00:00.000000Z",
    }


async def test_the_migration_fills_the_edge_table_from_existing_things(
    database_url: str, tmp_path: Path
) -> None:
    before = [
        Thing("acme:a", "n", links=[link("hosted-by", "acme:gw"), link("part-of", "acme:b")]),
        Thing(
            "acme:b",
            "n",
            description={"links": [{"href": "/things/acme:a"}, {"href": "https://doc"}]},
        ),
        Thing("acme:c", "n"),
    ]

    def migrate(conn: Connection) -> set[tuple[str, str, str]]:
        command.upgrade(alembic_config(conn), "0003")
        conn.execute(insert(things), [_row(t) for t in before])
        command.upgrade(alembic_config(conn), "head")
        return {(r.thing_id, r.rel, r.target) for r in conn.execute(select(thing_links))}

    url = store_url(database_url, tmp_path)
    if url.startswith("sqlite"):
        engine = sqlite_engine(url)
        with engine.begin() as conn:
            rows = migrate(conn)
        engine.dispose()
    else:
        async_engine = create_async_engine(url)
        async with async_engine.begin() as aconn:
            rows = await aconn.run_sync(migrate)
        await async_engine.dispose()
    assert rows == {
        ("acme:a", "hosted-by", "acme:gw"),
        ("acme:a", "part-of", "acme:b"),
        ("acme:b", "link", "acme:a"),
    }
