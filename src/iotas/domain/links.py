"""A Thing's typed edges to other Things: its own `links` and those of its TD.

Edges are what the graph (`/graph`, `linked()`, `reachable()`) follows. A TD link counts when
its `href` names a Thing: a bare Thing id (`acme:gw-1`) or any URL whose path ends in
`/things/<thing id>` (this API's or a directory's). Its `rel` is kept when it is a plain
relation name (`hosted-by`; case folded); an IRI or a missing rel becomes `link`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from iotas.domain.ids import THING_ID_RE
from iotas.domain.things import REL_RE

DEFAULT_REL = "link"
Edge = tuple[str, str]


def edges(links: Any, description: Any) -> list[Edge]:
    """(rel, target) pairs, each once, in the order they appear."""
    out: dict[Edge, None] = {}
    if isinstance(links, list):
        for link in links:
            if isinstance(link, dict) and isinstance(link.get("rel"), str):
                target = link.get("target")
                if isinstance(target, str):
                    out[(link["rel"], target)] = None
    td_links = description.get("links") if isinstance(description, dict) else None
    if isinstance(td_links, list):
        for link in td_links:
            edge = td_edge(link)
            if edge is not None:
                out[edge] = None
    return list(out)


def td_edge(link: Any) -> Edge | None:
    if not isinstance(link, dict) or not isinstance(link.get("href"), str):
        return None
    target = thing_of_href(link["href"])
    if target is None:
        return None
    rel = link.get("rel")
    rel = rel.lower() if isinstance(rel, str) and REL_RE.match(rel.lower()) else DEFAULT_REL
    return rel, target


def thing_of_href(href: str) -> str | None:
    if THING_ID_RE.match(href):
        return href
    parts = urlsplit(href)
    if parts.scheme not in ("http", "https") or "/things/" not in parts.path:
        return None
    candidate = unquote(parts.path.rstrip("/").rsplit("/things/", 1)[1])
    return candidate if THING_ID_RE.match(candidate) else None
