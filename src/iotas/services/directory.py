"""The W3C WoT Thing Description Directory over the registry: one store, not two copies.

A TD is a Thing's `description`. A TD whose `id` is a Thing id (`acme:lamp-1`, a valid URI
whose scheme is the namespace) is that Thing; a TD named by another URI (`urn:dev:ops:...`)
belongs to the Thing id derived from it (`domain.ids.thing_id_for_uri`), so the directory
finds it again by the same URI. Native Things with no forms of their own are served the TD
that iotas generates for them.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import regex
from iregexp_check import check
from jsonpath_rfc9535 import JSONPathEnvironment, JSONPathError, JSONPathQuery
from jsonpath_rfc9535.function_extensions._pattern import map_re
from jsonpath_rfc9535.function_extensions.match import Match
from jsonpath_rfc9535.function_extensions.search import Search

from iotas.domain import merge_patch
from iotas.domain.errors import InvalidInput, NotFound
from iotas.domain.ids import thing_id_for_uri
from iotas.domain.merge_patch import JSONObject
from iotas.domain.things import KIND_RE, Thing
from iotas.services.context import Actor, Context
from iotas.services.registry import Registry, check_description
from iotas.store import directory_repo
from iotas.store.store import Store

DEFAULT_KIND = "thing"
MAX_QUERY_CHARS = 1024
# A search stops at whichever comes first; the caller is told to narrow the query.
MAX_RESULTS = 10_000
SEARCH_SECONDS = 5.0
REGEX_SECONDS = 0.05
SEARCH_PAGE = 200
_KIND_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where this iotas is reached, for the forms of generated TDs."""

    http_base: str
    mqtt_base: str | None


class Directory:
    def __init__(self, registry: Registry, store: Store) -> None:
        self.registry = registry
        self.store = store

    # -- reading ---------------------------------------------------------------------------

    async def thing(self, td_id: str, actor: Actor | None = None) -> Thing:
        """The Thing whose TD has this id (404 if none, or if it is outside the `actor`'s
        namespaces): the Thing of the derived id, or, for a Thing given its own id when it
        was adopted, the one whose TD carries it."""
        thing = await self._find(td_id)
        if actor is not None:
            actor.must_see(thing.id)
        return thing

    async def _find(self, td_id: str) -> Thing:
        found = await self.registry.get_many([thing_id_for_uri(td_id)])
        thing = next(iter(found.values()), None)
        if thing is not None and td_id in (thing.id, td_id_of(thing)):
            return thing
        # Not there, or a (40-bit) hash collision: look for the TD's id itself.
        thing = await self.store.read(lambda conn: directory_repo.find_by_td_id(conn, td_id))
        if thing is None:
            raise NotFound(f"the directory has no Thing Description {td_id[:200]!r}")
        return thing

    async def page(
        self, offset: int, limit: int, namespaces: tuple[str, ...] | None = None
    ) -> tuple[list[Thing], int]:
        def unit(conn: Any) -> tuple[list[Thing], int]:
            return (
                directory_repo.page_by_offset(conn, offset, limit, namespaces),
                directory_repo.count(conn, namespaces),
            )

        return await self.store.read(unit)

    # -- writing ---------------------------------------------------------------------------

    async def put(self, ctx: Context, td_id: str, body: object) -> tuple[Thing, bool]:
        """Create or replace the TD `td_id`; returns the Thing and whether it was created."""
        doc = _td_object(body)
        given = doc.get("id")
        if given is not None and given != td_id:
            raise InvalidInput(
                f"the TD's id {str(given)[:200]!r} differs from the id in the URL {td_id[:200]!r}",
                field="/id",
            )
        doc = {**doc, "id": td_id}
        thing_id = thing_id_for_uri(td_id)
        check_description(thing_id, doc)
        return await self.registry.put_description(ctx, thing_id, doc, kind=kind_of(doc))

    async def create_anonymous(self, ctx: Context, body: object) -> Thing:
        """Register a TD without an id: the directory names it `urn:uuid:<v4>`."""
        doc = _td_object(body)
        if "id" in doc:
            raise InvalidInput(
                "this TD has an id: register it with PUT /tdd/things/{id}; POST /tdd/things "
                "is for anonymous TDs",
                field="/id",
            )
        thing, _ = await self.put(ctx, f"urn:uuid:{uuid.uuid4()}", doc)
        return thing

    async def patch(self, ctx: Context, td_id: str, patch: object) -> Thing:
        """Merge-patch the stored TD (a native Thing's model TD) and validate the result."""
        if not isinstance(patch, dict):
            raise InvalidInput("a TD patch must be a JSON object (RFC 7396 merge patch)")
        if "id" in patch and patch["id"] != td_id:
            raise InvalidInput("a patch cannot change the TD's id", field="/id")
        thing = await self.thing(td_id, ctx.actor)
        current = thing.description or {"id": td_id}
        doc = merge_patch.apply(current, patch)
        check_description(thing.id, doc)
        updated, _ = await self.registry.put_description(ctx, thing.id, doc, kind=thing.kind)
        return updated

    async def delete(self, ctx: Context, td_id: str) -> None:
        thing = await self.thing(td_id, ctx.actor)
        await self.registry.delete(ctx, thing.id)

    # -- search ----------------------------------------------------------------------------

    async def search_jsonpath(
        self,
        query: str,
        render: Callable[[Thing], JSONObject],
        *,
        namespaces: tuple[str, ...] | None = None,
    ) -> list[Any]:
        """RFC 9535 JSONPath over the array of every TD the directory serves (so
        `$[?@.title == 'Lamp']` selects whole TDs, as WoT Discovery's examples do): the
        matched values. Bounded: the query's length, each regular expression's time, the
        total time and the number of results; evaluation runs off the event loop."""
        compiled = compile_jsonpath(query)
        deadline = time.monotonic() + SEARCH_SECONDS
        docs: list[JSONObject] = []
        after_id: str | None = None
        while things := await self.registry.select(
            None, limit=SEARCH_PAGE, after_id=after_id, namespaces=namespaces
        ):
            docs.extend(render(t) for t in things)
            after_id = things[-1].id
            if time.monotonic() > deadline:
                raise _too_slow()
        return await asyncio.to_thread(_evaluate, compiled, docs, deadline)


def td_id_of(thing: Thing) -> str:
    description = thing.description or {}
    given = description.get("id")
    return given if isinstance(given, str) else thing.id


def kind_of(doc: JSONObject) -> str:
    """A Thing kind from the TD's first semantic type (`saref:LightSwitch` ->
    `saref-LightSwitch`), else `thing`."""
    types = doc.get("@type")
    first = types[0] if isinstance(types, list) and types else types
    if isinstance(first, str):
        kind = _KIND_CHARS.sub("-", first).strip("-._")[:64]
        if KIND_RE.match(kind):
            return kind
    return DEFAULT_KIND


def _td_object(body: object) -> JSONObject:
    if not isinstance(body, dict):
        raise InvalidInput("a Thing Description must be a JSON object")
    return body


class _BoundedMatch(Match):
    """The standard `match`, with a time limit on each regular expression (the library's
    own calls `regex` without one, and a pathological pattern could run for minutes)."""

    def __call__(self, string: str, pattern: object) -> bool:
        if not isinstance(pattern, str) or not check(pattern):
            return False
        try:
            return bool(regex.fullmatch(map_re(pattern), string, timeout=REGEX_SECONDS))
        except (TypeError, regex.error):
            return False


class _BoundedSearch(Search):
    def __call__(self, string: str, pattern: object) -> bool:
        if not isinstance(pattern, str) or not check(pattern):
            return False
        try:
            return bool(
                regex.search(map_re(pattern), string, regex.VERSION1, timeout=REGEX_SECONDS)
            )
        except (TypeError, regex.error):
            return False


class _Env(JSONPathEnvironment):
    def setup_function_extensions(self) -> None:
        super().setup_function_extensions()
        self.function_extensions["match"] = _BoundedMatch()
        self.function_extensions["search"] = _BoundedSearch()


_ENV = _Env()


def compile_jsonpath(query: str) -> JSONPathQuery:
    if not query.strip():
        raise InvalidInput("give a JSONPath query, such as $[?@.title == 'Lamp']", field="query")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(
            f"the JSONPath query is longer than {MAX_QUERY_CHARS} characters", field="query"
        )
    try:
        return _ENV.compile(query)
    except JSONPathError as exc:
        raise InvalidInput(
            f"the JSONPath query is not valid RFC 9535: {exc}", field="query"
        ) from None
    except RecursionError:
        raise InvalidInput("the JSONPath query nests too deeply", field="query") from None


def _evaluate(compiled: JSONPathQuery, docs: list[JSONObject], deadline: float) -> list[Any]:
    results: list[Any] = []
    for value in _values(compiled, docs):
        results.append(value)
        if len(results) > MAX_RESULTS:
            raise InvalidInput(
                f"the JSONPath query matches more than {MAX_RESULTS} values: narrow it",
                field="query",
            )
        if time.monotonic() > deadline:
            raise _too_slow()
    return results


def _too_slow() -> InvalidInput:
    return InvalidInput(
        f"the JSONPath query took longer than {SEARCH_SECONDS:g} s: narrow it", field="query"
    )


def _values(compiled: JSONPathQuery, docs: list[JSONObject]) -> Iterator[Any]:
    try:
        for node in compiled.finditer(docs):
            yield node.value
    except TimeoutError:
        raise InvalidInput(
            "a regular expression in the JSONPath query took too long", field="query"
        ) from None
