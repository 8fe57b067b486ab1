"""The W3C WoT Thing Description Directory over the registry: one store, not two copies.

A TD is a Thing's `description`. A TD whose `id` is a Thing id (`acme:lamp-1`, a valid URI
whose scheme is the namespace) is that Thing; a TD named by another URI (`urn:dev:ops:...`)
belongs to the Thing id derived from it (`domain.ids.thing_id_for_uri`), so the directory
finds it again by the same URI.

A TD registered through the directory (PUT, POST, PATCH) is validated as a TD and served
back as registered, with WoT Discovery's registration information beside it (a row of
`td_registrations`); a registration past its expiry is hidden at once and deleted by
`purge_expired`. A native Thing (created through /api/v1/things) is served the TD that iotas
generates for it; its description is a model, changed through the Things API, not here.
"""

from __future__ import annotations

import asyncio
import logging
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

from iotas.controllers.periodic import Periodic
from iotas.domain import clock, merge_patch, td
from iotas.domain import journal as ev
from iotas.domain import registration as reg
from iotas.domain.errors import Conflict, InvalidInput, NotFound
from iotas.domain.ids import thing_id_for_uri
from iotas.domain.merge_patch import JSONObject
from iotas.domain.things import KIND_RE, Thing
from iotas.services.changes import change
from iotas.services.context import Actor, Context
from iotas.services.invocations import cancel_open_in
from iotas.services.registry import Registry
from iotas.store import directory_repo
from iotas.store.directory_repo import Entry
from iotas.store.store import Store, WriteTx

log = logging.getLogger("iotas.directory")

DEFAULT_KIND = "thing"
MAX_QUERY_CHARS = 1024
# A search stops at whichever comes first; the caller is told to narrow the query.
MAX_RESULTS = 10_000
SEARCH_SECONDS = 5.0
REGEX_SECONDS = 0.05
SEARCH_PAGE = 200
# Expired registrations: deleted this many per transaction, at most this many transactions
# a round (the rest wait for the next round; until then they are hidden anyway).
PURGE_BATCH = 200
PURGE_ROUNDS = 10
PURGE_SECONDS = 60.0
SWEEPER = Actor("tdd", role="system")
_EXPIRY = Context(SWEEPER, "its directory registration expired")
_KIND_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where this iotas is reached, for the forms of generated TDs."""

    http_base: str


def served(entry: Entry, where: Endpoints, now_us: int, *, enriched: bool = True) -> JSONObject:
    """The TD the directory serves for an entry: a registered TD as registered (an Enriched
    TD, its registration information added, unless `enriched` is false), a third-party TD
    as given, a native Thing's generated TD."""
    thing, registration = entry
    doc = td.served_td(
        thing,
        http_base=where.http_base,
        registered=registration is not None,
    )
    if registration is not None and enriched:
        return reg.enriched(doc, registration, now_us)
    return doc


class Directory:
    def __init__(
        self, registry: Registry, store: Store, now: Callable[[], int] = clock.now_us
    ) -> None:
        self.registry = registry
        self.store = store
        self.now = now

    # -- reading ---------------------------------------------------------------------------

    async def entry(self, td_id: str, actor: Actor | None = None) -> Entry:
        """The Thing whose TD has this id and its registration (404 if none, if expired, or
        if it is outside the `actor`'s namespaces): the Thing of the derived id, or, for a
        Thing given its own id when it was adopted, the one whose TD carries it."""
        found = await self.store.read(lambda conn: _find(conn, td_id))
        if found is None or (found[1] is not None and found[1].expired(self.now())):
            raise NotFound(f"the directory has no Thing Description {td_id[:200]!r}")
        if actor is not None:
            actor.must_see(found[0].id)
        return found

    async def thing(self, td_id: str, actor: Actor | None = None) -> Thing:
        return (await self.entry(td_id, actor))[0]

    async def entry_of(self, thing_id: str) -> Entry:
        """The entry of a Thing by its Thing id (404 if it is gone or expired)."""
        found = await self.store.read(lambda conn: directory_repo.entry(conn, thing_id))
        if found is None or (found[1] is not None and found[1].expired(self.now())):
            raise NotFound(f"there is no Thing {thing_id!r}")
        return found

    async def page(
        self, offset: int, limit: int, namespaces: tuple[str, ...] | None = None
    ) -> tuple[list[Entry], int]:
        now = self.now()

        def unit(conn: Any) -> tuple[list[Entry], int]:
            return (
                directory_repo.page_by_offset(conn, offset, limit, now, namespaces),
                directory_repo.count(conn, now, namespaces),
            )

        return await self.store.read(unit)

    # -- writing ---------------------------------------------------------------------------

    async def put(self, ctx: Context, td_id: str, body: object) -> tuple[Thing, bool]:
        """Register or replace the TD `td_id`; returns the Thing and whether it was created."""
        doc = _td_object(body)
        given = doc.get("id")
        if given is not None and given != td_id:
            raise InvalidInput(
                f"the TD's id {str(given)[:200]!r} differs from the id in the URL {td_id[:200]!r}",
                field="/id",
            )
        return await self._register(ctx, thing_id_for_uri(td_id), {**doc, "id": td_id}, None)

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
        """Merge-patch the registered TD (with its client-assigned `registration` members,
        so `{}` renews a `ttl`) and validate the result as a TD."""
        if not isinstance(patch, dict):
            raise InvalidInput("a TD patch must be a JSON object (RFC 7396 merge patch)")
        if "id" in patch and patch["id"] != td_id:
            raise InvalidInput("a patch cannot change the TD's id", field="/id")
        thing, registration = await self.entry(td_id, ctx.actor)
        if registration is None and not td.has_own_forms(thing.description):
            raise _native(thing.id)
        requested = reg.Requested() if registration is None else registration.requested()
        current = reg.with_requested(thing.description or {"id": td_id}, requested)
        doc = merge_patch.apply(current, patch)
        updated, _ = await self._register(ctx, thing.id, doc, thing)
        return updated

    async def delete(self, ctx: Context, td_id: str) -> None:
        thing = await self.thing(td_id, ctx.actor)
        await self.registry.delete(ctx, thing.id)

    async def _register(
        self, ctx: Context, thing_id: str, doc: JSONObject, known: Thing | None
    ) -> tuple[Thing, bool]:
        """Validate `doc` as a TD and store it as registered, with its registration."""
        now = self.now()
        doc, requested = reg.split(doc, now)
        td.validate_td(doc)

        def registering(tx: WriteTx, before: Thing | None, after: Thing) -> None:
            previous = None if before is None else directory_repo.get(tx.conn, thing_id)
            if previous is not None and previous.expired(now):
                raise _Expired  # undone; the caller deletes it and registers anew
            native = before is not None and not td.has_own_forms(before.description)
            if native and previous is None:
                raise _native(thing_id)
            directory_repo.put(tx.conn, thing_id, reg.registered(previous, requested, tx.ts_us))

        kind = known.kind if known is not None else kind_of(doc)
        try:
            return await self.registry.put_description(
                ctx, thing_id, doc, kind=kind, registering=registering
            )
        except _Expired:
            if known is not None:  # a patch of what expired meanwhile: it is gone
                raise NotFound(f"the directory has no Thing Description {thing_id!r}") from None
        # An expired registration is gone already: its Thing is deleted first, so registering
        # the id again is a creation.
        await self._purge([thing_id], now)
        return await self.registry.put_description(
            ctx, thing_id, doc, kind=kind_of(doc), registering=registering
        )

    # -- expiry ----------------------------------------------------------------------------

    async def purge_expired(self, now_us: int) -> int:
        """Delete the Things of registrations expired at `now_us` (each journaled as a
        deletion by `tdd`), in bounded transactions; how many were deleted."""
        total = 0
        for _ in range(PURGE_ROUNDS):
            ids = await self.store.read(
                lambda conn: directory_repo.expired_ids(conn, now_us, PURGE_BATCH)
            )
            if not ids:
                break
            total += await self._purge(ids, now_us)
            if len(ids) < PURGE_BATCH:
                break
            await asyncio.sleep(0)  # a turn of the loop for the writes queued meanwhile
        return total

    async def _purge(self, thing_ids: list[str], now_us: int) -> int:
        return await self.store.write(lambda tx: _purge_in(tx, thing_ids, now_us))

    def purge_controller(self, interval: float = PURGE_SECONDS) -> Periodic:
        """Once now, then every `interval` seconds; once per cluster."""
        return Periodic(
            "tdd-expiry",
            lambda _now_us: self.purge_expired(self.now()),
            interval=interval,
            log=log,
            done="purged %d expired TD registrations",
            failed="purging expired TD registrations failed",
            cluster_wide=True,
        )

    async def run_purge(self, interval: float = PURGE_SECONDS) -> None:
        """Run until cancelled: once now, then every `interval` seconds."""
        await self.purge_controller(interval).run()

    # -- search ----------------------------------------------------------------------------

    async def search_jsonpath(
        self,
        query: str,
        render: Callable[[Entry], JSONObject],
        *,
        namespaces: tuple[str, ...] | None = None,
    ) -> list[Any]:
        """RFC 9535 JSONPath over the array of every TD the directory serves (so
        `$[?@.title == 'Lamp']` selects whole TDs, as WoT Discovery's examples do): the
        matched values. Bounded: the query's length, each regular expression's time, the
        total time and the number of results; evaluation runs off the event loop."""
        compiled = compile_jsonpath(query)
        deadline = time.monotonic() + SEARCH_SECONDS
        now = self.now()
        docs: list[JSONObject] = []

        def page(after_id: str | None) -> Callable[[Any], list[Entry]]:
            return lambda conn: directory_repo.page_after(
                conn, after_id, SEARCH_PAGE, now, namespaces
            )

        entries = await self.store.read(page(None))
        while entries:
            docs.extend(render(e) for e in entries)
            entries = await self.store.read(page(entries[-1][0].id))
            if time.monotonic() > deadline:
                raise _too_slow()
        return await asyncio.to_thread(_evaluate, compiled, docs, deadline)


def _find(conn: Any, td_id: str) -> Entry | None:
    entry = directory_repo.entry(conn, thing_id_for_uri(td_id))
    if entry is not None and td_id in (entry[0].id, td_id_of(entry[0])):
        return entry
    # Not there, or a (40-bit) hash collision: look for the TD's id itself.
    thing = directory_repo.find_by_td_id(conn, td_id)
    return None if thing is None else directory_repo.entry(conn, thing.id)


def _native(thing_id: str) -> Conflict:
    return Conflict(
        f"{thing_id!r} is a native Thing: its TD is generated from it; change its "
        f"description (a model) with PATCH /api/v1/things/{thing_id}"
    )


class _Expired(Exception):
    """A write found the registration it replaces expired."""


def _purge_in(tx: WriteTx, thing_ids: list[str], now_us: int) -> int:
    """Inside a unit: delete the Things whose registration is (still) expired."""
    purged = 0
    for thing_id in thing_ids:
        registration = directory_repo.get(tx.conn, thing_id)
        before = tx.thing(thing_id)
        if registration is None or before is None or not registration.expired(now_us):
            continue  # renewed or deleted since it was found
        cancel_open_in(tx, _EXPIRY, thing_id, f"the Thing {thing_id} was deleted")
        change(tx, _EXPIRY, before, thing_id, ev.THING_DELETED, before=before.to_dict())
        purged += 1
    return purged


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
