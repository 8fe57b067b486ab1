"""The registry as a graph: the Things around one Thing, following typed edges.

Edges come from Things' links and their TDs' links (`domain.links`). A target that does not
exist (yet) is kept and reported as dangling: the registry is eventually consistent, and a
gateway may well be registered after the devices that name it.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Connection

from iotas.domain.errors import InvalidInput, NotFound
from iotas.domain.ids import check_thing_id
from iotas.domain.things import REL_RE
from iotas.store import graph_repo
from iotas.store.store import Store

Direction = Literal["out", "in", "both"]
MAX_DEPTH = 8
MAX_EDGES = 10_000


class Graph:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def around(
        self, root: str, *, rel: str | None, depth: int, direction: Direction
    ) -> dict[str, Any]:
        check_thing_id(root)
        if rel is not None and not REL_RE.match(rel):
            raise InvalidInput("rel must be a relation name like hosted-by", field="rel")
        if not 1 <= depth <= MAX_DEPTH:
            raise InvalidInput(f"depth must be between 1 and {MAX_DEPTH}", field="depth")
        return await self.store.read(lambda conn: _walk(conn, root, rel, depth, direction))


def _walk(
    conn: Connection, root: str, rel: str | None, depth: int, direction: Direction
) -> dict[str, Any]:
    if root not in graph_repo.kinds(conn, [root]):
        raise NotFound(f"there is no Thing {root!r}")
    seen = {root}
    frontier = [root]
    edges: dict[tuple[str, str, str], None] = {}
    truncated = False
    for _ in range(depth):
        found: list[tuple[str, str, str]] = []
        if direction in ("out", "both"):
            found += graph_repo.hop(conn, frontier, outgoing=True, rel=rel)
        if direction in ("in", "both"):
            found += graph_repo.hop(conn, frontier, outgoing=False, rel=rel)
        following: list[str] = []
        for edge in found:
            if edge in edges:
                continue
            if len(edges) >= MAX_EDGES:
                truncated = True
                break
            edges[edge] = None
            for node in (edge[0], edge[2]):
                if node not in seen:
                    seen.add(node)
                    following.append(node)
        if truncated or not following:
            break
        frontier = following
    existing = graph_repo.kinds(conn, sorted(seen))
    nodes = [
        {"id": node, "kind": existing.get(node), "dangling": node not in existing}
        for node in sorted(seen)
    ]
    return {
        "root": root,
        "nodes": nodes,
        "edges": [
            {"source": s, "rel": r, "target": t, "dangling": t not in existing} for s, r, t in edges
        ],
        "truncated": truncated,
    }
