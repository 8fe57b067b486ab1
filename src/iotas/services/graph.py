"""The registry as a graph: the Things around one Thing, following typed edges.

Edges come from Things' links and their TDs' links (`domain.links`). A target that does not
exist (yet) is kept and reported as dangling: the registry is eventually consistent, and a
gateway may well be registered after the devices that name it.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Connection

from iotas.domain.errors import InvalidInput, NotFound
from iotas.domain.ids import check_thing_id, namespace_of
from iotas.domain.links import ANY_REL
from iotas.domain.things import REL_RE
from iotas.store import graph_repo
from iotas.store.store import Store

Direction = Literal["out", "in", "both"]
MAX_DEPTH = 8
MAX_EDGES = 10_000


class Graph:
    def __init__(self, store: Store, *, max_edges: int = MAX_EDGES) -> None:
        self.store = store
        self.max_edges = max_edges

    async def around(
        self,
        root: str,
        *,
        rel: str | None,
        depth: int,
        direction: Direction,
        namespaces: tuple[str, ...] | None = None,
    ) -> dict[str, Any]:
        """The Things within `depth` hops of `root` along edges of `rel` (any when None or
        "*"), out of it, into it or both; at most `max_edges` edges (then `truncated`). With
        `namespaces`, the walk neither shows nor passes through a Thing outside them."""
        check_thing_id(root)
        if rel == ANY_REL:
            rel = None
        if rel is not None and not REL_RE.match(rel):
            raise InvalidInput(
                'rel must be a relation name like hosted-by (or "*" for any)', field="rel"
            )
        if not 1 <= depth <= MAX_DEPTH:
            raise InvalidInput(f"depth must be between 1 and {MAX_DEPTH}", field="depth")
        if direction not in ("out", "in", "both"):
            raise InvalidInput("direction must be out, in or both", field="direction")
        return await self.store.read(
            lambda conn: _walk(conn, root, rel, depth, direction, self.max_edges, namespaces)
        )


def _walk(
    conn: Connection,
    root: str,
    rel: str | None,
    depth: int,
    direction: Direction,
    limit: int,
    namespaces: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    if root not in graph_repo.kinds(conn, [root]):
        raise NotFound(f"there is no Thing {root!r}")
    seen = {root}
    frontier = [root]
    edges: dict[tuple[str, str, str], None] = {}
    truncated = False
    for _ in range(depth):
        found: list[tuple[str, str, str]] = []
        # Read at most one edge past the limit per direction: enough to know it was hit.
        for outgoing in (True, False):
            if direction == "both" or (direction == "out") == outgoing:
                rows = graph_repo.hop(conn, frontier, outgoing=outgoing, rel=rel, limit=limit + 1)
                truncated |= len(rows) > limit
                found += rows
        following: list[str] = []
        # Sorted, so that which edges a truncated answer keeps does not depend on the plan.
        for edge in sorted(found):
            if edge in edges:
                continue
            if namespaces is not None and not (
                namespace_of(edge[0]) in namespaces and namespace_of(edge[2]) in namespaces
            ):
                continue
            if len(edges) >= limit:
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
        {
            "id": node,
            "kind": existing.get(node),
            "exists": node in existing,
            "dangling": node not in existing,
        }
        for node in sorted(seen)
    ]
    return {
        "root": root,
        "nodes": nodes,
        "edges": [
            {"source": s, "rel": r, "target": t, "dangling": t not in existing}
            for s, r, t in sorted(edges)
        ],
        "truncated": truncated,
    }
