"""A Thing's typed edges to other Things: its own `links` and those of its TD.

Edges are what the graph (`/graph`, `linked()`, `reachable()`) follows. A TD link (TD 1.1
`{href, rel?, type?, anchor?}`) counts when its `href` names a Thing: a bare Thing id
(`acme:gw-1`) or any URL, absolute or relative, whose path ends in `/things/<thing id>`
(this API's or a directory's; percent-decoded). Its relation:

- no `rel`: `link`;
- a name (`hosted-by`, `controlledBy`) or an IRI, whose last segment (after the last `#`,
  else the last `/`) is taken: `https://example.org/rel#poweredBy` -> `poweredby`;
- lowercased, then kept only when it is a valid relation of a Thing's own links (`REL_RE`:
  a letter, then letters, digits and '-', at most 64), so that every edge can be asked for
  with `linked()`. A link whose rel is not (`proxy_to`, `über`, `rel with spaces`) is
  skipped: calling it `link` would invent a type the TD did not give.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from iotas.domain.ids import THING_ID_RE
from iotas.domain.things import REL_RE

DEFAULT_REL = "link"
ANY_REL = "*"
Edge = tuple[str, str]


def edges(links: Any, description: Any) -> list[Edge]:
    """(rel, target) pairs of a Thing's `links` and `description`, each once, in the order
    they appear. Takes the two fields rather than a Thing so that stored rows (migrations)
    and Thing documents (`query.matches`) give the same edges as Things."""
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
    """The edge of one TD link, or None when it names no Thing or has an unusable rel."""
    if not isinstance(link, dict) or not isinstance(link.get("href"), str):
        return None
    target = thing_of_href(link["href"])
    if target is None:
        return None
    rel = td_rel(link.get("rel", DEFAULT_REL))
    return None if rel is None else (rel, target)


def td_rel(value: Any) -> str | None:
    """A TD link's rel as an edge relation, or None when it cannot be one."""
    if not isinstance(value, str):
        return None
    name = value.rsplit("#", 1)[1] if "#" in value else value.rstrip("/").rsplit("/", 1)[-1]
    name = name.lower()
    return name if REL_RE.match(name) else None


def thing_of_href(href: str) -> str | None:
    """The Thing id an href names, or None."""
    if THING_ID_RE.match(href):
        return href
    path = urlsplit(href).path.rstrip("/")
    if "/things/" not in f"/{path}":
        return None
    candidate = unquote(f"/{path}".rsplit("/things/", 1)[1])
    return candidate if THING_ID_RE.match(candidate) else None
