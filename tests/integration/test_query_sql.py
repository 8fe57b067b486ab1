"""The SQL compiled from a query selects exactly the Things the Python evaluator selects.

Runs on a SQLite file and on a throw-away PostgreSQL database (skipped when the server at
IOTAS_TEST_POSTGRES_URL is not reachable). The async engines live on a private event loop
so that hypothesis can drive them from plain test functions.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, event, func, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from iotas.domain.clock import parse_rfc3339, to_rfc3339
from iotas.domain.errors import InvalidInput
from iotas.domain.query import (
    MAX_HOPS,
    MAX_INT,
    And,
    Compare,
    Exists,
    Field,
    Glob,
    In,
    Linked,
    Node,
    Not,
    Or,
    matches,
    parse,
    to_text,
)
from iotas.domain.things import Thing
from iotas.domain.twin import Twin
from iotas.store import schema, things_repo
from iotas.store.dialects import named
from iotas.store.query_sql import compile_query
from iotas.store.schema import thing_fields, thing_links, things
from iotas.store.thing_fields import MAX_PATH, MAX_VALUE_BYTES, field_rows, replace_fields

T = TypeVar("T")
PG_URL = os.environ.get(
    "IOTAS_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
NOW_US = 1_700_000_000_000_000


class Database:
    """An async engine driven synchronously from a private loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, engine: AsyncEngine) -> None:
        self.loop = loop
        self.engine = engine
        self.dialect = engine.dialect.name

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def load(self, fleet: list[Thing]) -> None:
        async def load() -> None:
            async with self.engine.begin() as conn:
                await conn.execute(delete(thing_links))
                await conn.execute(delete(thing_fields))
                await conn.execute(delete(things))
                for thing in fleet:
                    # The repository's insert keeps every index table (fields, links) too.
                    await conn.run_sync(things_repo.insert_thing, thing)
                    if thing.last_seen is not None:  # written apart, as devices are heard
                        seen = parse_rfc3339(thing.last_seen)
                        await conn.run_sync(things_repo.touch, [thing.id], seen)

        self.run(load())

    def select(self, node: Node) -> set[str]:
        where = compile_query(node, dialect=named(self.dialect), now_us=NOW_US)

        async def select_ids() -> set[str]:
            async with self.engine.connect() as conn:
                return set((await conn.execute(select(things.c.id).where(where))).scalars())

        return self.run(select_ids())


def _engine(url: str, dumps: Callable[[Any], str]) -> AsyncEngine:
    engine = create_async_engine(url, json_serializer=dumps, json_deserializer=orjson.loads)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine.sync_engine, "connect")
        def _fast(dbapi_connection: Any, _record: Any) -> None:
            # A throw-away file: durability would only slow the property test down.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=MEMORY")
            cursor.execute("PRAGMA synchronous=OFF")
            cursor.close()

    return engine


def _orjson(value: Any) -> str:
    # What the production engines use (iotas.store.engine): UTF-8, no escapes.
    return orjson.dumps(value).decode()


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _open(loop: asyncio.AbstractEventLoop, url: str, dumps: Callable[[Any], str]) -> Database:
    engine = _engine(url, dumps)

    async def create() -> None:
        async with engine.begin() as conn:
            await conn.run_sync(schema.metadata.create_all)

    db = Database(loop, engine)
    db.run(create())
    return db


@pytest.fixture(scope="module")
def sqlite_db(
    loop: asyncio.AbstractEventLoop, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    path = tmp_path_factory.mktemp("query") / "q.db"
    db = _open(loop, f"sqlite+aiosqlite:///{path}", _orjson)
    yield db
    db.run(db.engine.dispose())


@pytest.fixture(scope="module")
def postgres_db(loop: asyncio.AbstractEventLoop) -> Iterator[Database]:
    url = make_url(PG_URL).set(drivername="postgresql+asyncpg")
    admin_dsn = url.set(drivername="postgresql", database="postgres").render_as_string(False)

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(admin_dsn, timeout=3)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    name = f"iotas_q_{secrets.token_hex(6)}"
    try:
        loop.run_until_complete(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL at {PG_URL} is not reachable: {exc}")
    db = _open(loop, url.set(database=name).render_as_string(False), _orjson)
    try:
        yield db
    finally:
        db.run(db.engine.dispose())
        loop.run_until_complete(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> Database:
    name = "sqlite_db" if request.param == "sqlite" else "postgres_db"
    database: Database = request.getfixturevalue(name)
    return database


# --- random Things and queries over the same small vocabulary, so that queries hit ---------

KEYS = ["a", "b", "site", "x.y", "é", 'q"k', "", "sp ace", "0", "back\\slash"]
STRINGS = st.one_of(
    st.sampled_from(
        ["", "a", "b", "A", "é", "ab*", "a?c", "[x]", "%_", "plant-7", "z\n", "a\\b", "😀"]
    ),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=3),
)
NUMBERS = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0.5, -1.5, 2.0, -0.0, 1e300, MAX_INT, -MAX_INT, MAX_INT - 0.5]),
    st.floats(-1e6, 1e6).map(lambda f: round(f, 3)),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, STRINGS)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=3,
)
DOCUMENTS = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=3)
LABELS = st.dictionaries(st.sampled_from(["tier", "app.k/n", "a"]), STRINGS, max_size=2)
RELS = ["hosted-by", "feeds"]
TARGETS = ["acme:gw-1", "beta:gw-2"]
LINKS = st.lists(
    st.builds(
        lambda r, t: {"rel": r, "target": t}, st.sampled_from(RELS), st.sampled_from(TARGETS)
    ),
    max_size=2,
)
# TD links: hrefs that name a Thing or do not, rels that are kept, folded, dropped or absent.
TD_LINKS = st.lists(
    st.builds(
        lambda href, rel: {"href": href} if rel is None else {"href": href, "rel": rel},
        st.sampled_from(
            ["acme:gw-1", "https://d.example/things/beta%3Agw-2", "/things/x", "https://doc"]
        ),
        st.sampled_from([None, "hosted-by", "Feeds", "https://r.example/rel#feeds", "x_y"]),
    ),
    max_size=2,
)
DESCRIPTIONS = st.one_of(st.none(), st.builds(lambda links: {"links": links}, TD_LINKS))
IDS = ["acme:pump-1", "acme:pump-2", "acme:valve_1", "beta:pump-1", "beta:x[1]", "beta:a%_b"]


@st.composite
def fleets(draw: st.DrawFn) -> list[Thing]:
    ids = draw(st.lists(st.sampled_from(IDS), unique=True, max_size=5))
    return [
        Thing(
            id=thing_id,
            kind=draw(st.sampled_from(["pump", "valve", "Pump"])),
            attributes=draw(DOCUMENTS),
            labels=draw(LABELS),
            links=draw(LINKS),
            description=draw(DESCRIPTIONS),
            twin=Twin(desired=draw(DOCUMENTS), reported=draw(DOCUMENTS)),
        )
        for thing_id in ids
    ]


@st.composite
def fields(draw: st.DrawFn) -> Field:
    name = draw(st.sampled_from(["id", "namespace", "kind", "attributes", "labels", "desired"]))
    if name in ("id", "namespace", "kind"):
        return Field(name)
    if name == "labels":
        return Field(name, (draw(st.sampled_from(["tier", "app.k/n", "a"])),))
    return Field(name, tuple(draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=2))))


PATTERNS = st.one_of(
    st.sampled_from(["*", "", "a*", "*a", "?", "acme:*", "*[1]", "*%_*", "a?c", "*\\*", "P*"]),
    STRINGS,
)
LEAVES = st.one_of(
    st.builds(Compare, fields(), st.sampled_from(["==", "!="]), SCALARS),
    st.builds(Compare, fields(), st.sampled_from(["<", "<=", ">", ">="]), NUMBERS | STRINGS),
    st.builds(In, fields(), st.lists(SCALARS, max_size=3).map(tuple)),
    st.builds(Glob, fields(), PATTERNS),
    st.builds(Exists, fields()),
    st.builds(Linked, st.sampled_from([*RELS, "link", "*"]), st.sampled_from(TARGETS)),
)
QUERIES = st.recursive(
    LEAVES,
    lambda inner: st.one_of(
        st.builds(Not, inner),
        st.builds(And, st.lists(inner, min_size=2, max_size=3).map(tuple)),
        st.builds(Or, st.lists(inner, min_size=2, max_size=3).map(tuple)),
    ),
    max_leaves=4,
)


def _expected(fleet: list[Thing], node: Node) -> set[str]:
    return {t.id for t in fleet if matches(node, t.to_dict(), now_us=NOW_US)}


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(fleet=fleets(), queries=st.lists(QUERIES, min_size=1, max_size=5))
def test_sql_selects_what_the_evaluator_selects(
    db: Database, fleet: list[Thing], queries: list[Node]
) -> None:
    db.load(fleet)
    for node in queries:
        node = parse(to_text(node))
        assert db.select(node) == _expected(fleet, node), to_text(node)


# --- fixed cases ---------------------------------------------------------------------------

FLEET = [
    Thing(
        id="acme:pump-1",
        kind="pump",
        attributes={"site": "plant-7", "floor": 3, "é": {"ß": "x"}, "my.key": 1.0, "n": None},
        labels={"tier": "edge", "app.kubernetes.io/name": "p"},
        links=[{"rel": "hosted-by", "target": "acme:gw-1"}],
        twin=Twin(desired={"setpoint": 20}, reported={"firmware": "2.1.0"}),
    ),
    Thing(
        id="acme:pump-2",
        kind="pump",
        attributes={"site": "plant-8", "floor": -2, "x": "'; DROP TABLE things; --"},
        labels={"tier": "core"},
        twin=Twin(reported={"firmware": "2.0.0"}),
    ),
    Thing(id="acme:valve-1", kind="valve", attributes={"site": "plant-7", "floor": "3"}),
]

CASES = [
    ('kind == "pump" and attributes.site == "plant-7" and reported.firmware != "2.1.0"', []),
    ('reported.firmware != "2.1.0"', ["acme:pump-2", "acme:valve-1"]),
    ('labels.tier in ["edge", "core"] and not exists(desired.setpoint)', ["acme:pump-2"]),
    ('linked("hosted-by", "acme:gw-1")', ["acme:pump-1"]),
    ('id ~ "acme:pump-*"', ["acme:pump-1", "acme:pump-2"]),
    (
        '(attributes.floor >= 3 or attributes.floor < -1) and namespace == "acme"',
        ["acme:pump-1", "acme:pump-2"],
    ),
    ('attributes."é"."ß" == "x"', ["acme:pump-1"]),
    ('attributes."my.key" == 1', ["acme:pump-1"]),
    ('labels."app.kubernetes.io/name" ~ "?"', ["acme:pump-1"]),
    ("attributes.n == null", ["acme:pump-1"]),
    ("attributes.n != null", ["acme:pump-2", "acme:valve-1"]),
    ('attributes.x == "\'; DROP TABLE things; --"', ["acme:pump-2"]),
    ('attributes.x != "\'; DROP TABLE things; --"', ["acme:pump-1", "acme:valve-1"]),
    ('attributes."\'; DROP TABLE things; --" == 1', []),
    ('kind == "\\"); DROP TABLE things; --"', []),
    ('attributes.x ~ "*DROP*"', ["acme:pump-2"]),
]


@pytest.mark.parametrize(("query", "expected"), CASES)
def test_fixed_queries(db: Database, query: str, expected: list[str]) -> None:
    db.load(FLEET)
    node = parse(query)
    assert sorted(db.select(node)) == expected
    assert sorted(_expected(FLEET, node)) == expected


def test_injection_attempts_leave_the_tables_alone(db: Database) -> None:
    db.load(FLEET)
    for query, _ in CASES:
        db.select(parse(query))

    async def count() -> int:
        async with db.engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(things))).scalar_one())

    assert db.run(count()) == len(FLEET)


def test_largest_queries_run(db: Database) -> None:
    db.load(FLEET)
    ors = 'id<""or ' * 511 + 'id<""'
    assert len(ors) <= 4096
    assert db.select(parse(ors)) == set()
    values = ",".join(str(i - 3) for i in range(1000))
    assert db.select(parse(f"attributes.floor in [{values}]")) == {"acme:pump-1", "acme:pump-2"}
    assert db.select(parse(f"reported.firmware in [{values}]")) == set()
    nested = "(" * 16 + "not " * 16 + 'kind == "pump"' + ")" * 16
    assert db.select(parse(nested)) == {"acme:pump-1", "acme:pump-2"}


def test_replace_fields_rewrites_a_things_rows(db: Database) -> None:
    db.load(FLEET)

    async def rewrite_and_read() -> list[tuple[str, str]]:
        async with db.engine.begin() as conn:
            await conn.run_sync(replace_fields, "acme:pump-1", {"site": "plant-9"}, {})
            rows = await conn.execute(
                select(thing_fields.c.path, thing_fields.c.value).where(
                    thing_fields.c.thing_id == "acme:pump-1"
                )
            )
            return [(r.path, r.value) for r in rows]

    assert db.run(rewrite_and_read()) == [("attributes.site", '"plant-9"')]
    assert db.select(parse('attributes.site == "plant-9"')) == {"acme:pump-1"}


def _linked_thing(thing_id: str, *edges: tuple[str, str], td_links: Any = None) -> Thing:
    return Thing(
        id=thing_id,
        kind="node",
        links=[{"rel": rel, "target": target} for rel, target in edges],
        description=None if td_links is None else {"links": td_links},
    )


GRAPH = [
    # site <- gw-1 <- pump-1 <- sensor-1, a cycle a <-> b, and a dangling edge to acme:ghost.
    _linked_thing("acme:site"),
    _linked_thing("acme:gw-1", ("part-of", "acme:site")),
    _linked_thing("acme:pump-1", ("part-of", "acme:gw-1"), ("controls", "acme:valve")),
    # A TD link naming a Thing by its API URL is an edge too.
    _linked_thing(
        "acme:sensor-1",
        td_links=[{"rel": "part-of", "href": "http://h:8080/api/v1/things/acme:pump-1"}],
    ),
    _linked_thing("acme:a", ("part-of", "acme:b")),
    _linked_thing("acme:b", ("part-of", "acme:a"), ("part-of", "acme:ghost")),
]


def test_linked_and_reachable_follow_edges_of_links_and_tds(db: Database) -> None:
    db.load(GRAPH)
    cases = {
        'linked("part-of", "acme:gw-1")': {"acme:pump-1"},
        'linked("part-of", "acme:pump-1")': {"acme:sensor-1"},
        'reachable("part-of", "acme:site")': {"acme:gw-1", "acme:pump-1", "acme:sensor-1"},
        'reachable("part-of", "acme:pump-1")': {"acme:sensor-1"},
        'reachable("controls", "acme:valve")': {"acme:pump-1"},
        # A cycle ends; the start is reachable from itself through it.
        'reachable("part-of", "acme:a")': {"acme:a", "acme:b"},
        'reachable("part-of", "acme:ghost")': {"acme:a", "acme:b"},
        'reachable("part-of", "acme:nobody")': set(),
        'kind == "node" and not reachable("part-of", "acme:site")': {
            "acme:site",
            "acme:a",
            "acme:b",
        },
        # "*" is any relation.
        'linked("*", "acme:pump-1")': {"acme:sensor-1"},
        'linked("*", "acme:valve")': {"acme:pump-1"},
        'reachable("*", "acme:site")': {"acme:gw-1", "acme:pump-1", "acme:sensor-1"},
        'reachable("*", "acme:valve")': {"acme:pump-1", "acme:sensor-1"},
        'reachable("*", "acme:ghost")': {"acme:a", "acme:b"},
        # Two walks in one statement (each its own recursive CTE).
        'reachable("part-of", "acme:site") and reachable("*", "acme:valve")': {
            "acme:pump-1",
            "acme:sensor-1",
        },
    }
    for query, expected in cases.items():
        assert db.select(parse(query)) == expected, query
    # The document evaluator agrees on linked() (TD links included) and refuses reachable().
    sensor = GRAPH[3].to_dict()
    assert matches(parse('linked("part-of", "acme:pump-1")'), sensor, now_us=NOW_US)
    with pytest.raises(InvalidInput):
        matches(parse('reachable("part-of", "acme:site")'), sensor, now_us=NOW_US)


def test_reachable_follows_at_most_max_hops(db: Database) -> None:
    # A chain c0 <- c1 <- ... <- c40: c(i) reaches c0 in i hops. A cycle on top adds rows at
    # every depth; the bound still ends it.
    chain = [_linked_thing("acme:c0")] + [
        _linked_thing(f"acme:c{i}", ("next", f"acme:c{i - 1}")) for i in range(1, 41)
    ]
    chain[0] = _linked_thing("acme:c0", ("loop", "acme:c40"))
    db.load(chain)
    within = {f"acme:c{i}" for i in range(1, MAX_HOPS + 1)}
    assert db.select(parse('reachable("next", "acme:c0")')) == within
    assert db.select(parse('reachable("next", "acme:c8")')) == {f"acme:c{i}" for i in range(9, 41)}
    # Along any relation the chain closes into a cycle of 41 Things; each reaches c0 within
    # 32 hops only if it is at most 32 hops down the chain (c0 itself: 1 + 40 hops, too far).
    assert db.select(parse('reachable("*", "acme:c0")')) == within
    assert db.select(parse('reachable("*", "acme:c40")')) == {
        "acme:c0",
        *(f"acme:c{i}" for i in range(1, MAX_HOPS)),
    }


def test_sqlite_attribute_filters_use_the_index(sqlite_db: Database) -> None:
    sqlite_db.load(FLEET)
    for query, index in [
        ('attributes.site == "plant-7"', "ix_thing_fields_path_value"),
        ('labels.tier in ["edge", "core"]', "ix_thing_fields_path_value"),
        ("attributes.floor >= 3", "ix_thing_fields_path_num"),
        ('linked("hosted-by", "acme:gw-1")', "ix_thing_links_rel_target"),
        ('reachable("hosted-by", "acme:gw-1")', "ix_thing_links_rel_target"),
        ('linked("*", "acme:gw-1")', "ix_thing_links_target"),
        ('reachable("*", "acme:gw-1")', "ix_thing_links_target"),
    ]:
        statement = select(things.c.id).where(
            compile_query(parse(query), dialect=named("sqlite"), now_us=NOW_US)
        )
        # Inlined only to ask for the plan: the literals here are our own.
        sql = str(statement.compile(sqlite_db.engine, compile_kwargs={"literal_binds": True}))

        async def plan(sql: str = sql) -> str:
            async with sqlite_db.engine.connect() as conn:
                rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql)
                return "\n".join(str(row[-1]) for row in rows)

        assert index in sqlite_db.run(plan()), query


def test_sqlite_with_an_ascii_escaping_serializer(
    loop: asyncio.AbstractEventLoop, tmp_path: Path
) -> None:
    # SQLite JSON paths match keys as written in the stored text; `json.dumps` escapes "é".
    db = _open(loop, f"sqlite+aiosqlite:///{tmp_path / 'ascii.db'}", json.dumps)
    try:
        db.load(FLEET)
        for query in ('desired."é" == 1', 'attributes."é"."ß" == "x"', 'attributes."é" != 1'):
            node = parse(query)
            assert db.select(node) == _expected(FLEET, node), query
    finally:
        db.run(db.engine.dispose())


# --- the index rows ------------------------------------------------------------------------


def test_field_rows() -> None:
    rows = field_rows(
        "acme:a",
        {
            "site": "plant-7",
            "n": 42.0,
            "f": 1.5,
            "big": 10**400,
            "on": True,
            "nothing": None,
            "loc": {"city": "Oslo", "my.key": 1, "deep": {"x": 1}},
            "list": [1, 2],
            "long": "x" * MAX_VALUE_BYTES,
            "k" * MAX_PATH: 1,
        },
        {"tier": "edge", "app.kubernetes.io/name": "x"},
    )
    assert [(r["path"], r["value"], r["num"]) for r in rows] == [
        ("attributes.site", '"plant-7"', None),
        ("attributes.n", "42", 42.0),
        ("attributes.f", "1.5", 1.5),
        ("attributes.on", "true", None),
        ("attributes.nothing", "null", None),
        ("attributes.loc.city", '"Oslo"', None),
        ("attributes.loc.deep.x", "1", 1.0),
        ("labels.tier", '"edge"', None),
    ]
    assert all(r["thing_id"] == "acme:a" for r in rows)


# --- the shape of the SQL ------------------------------------------------------------------

DIALECTS = {
    "sqlite": sqlite.dialect(),
    "postgresql": make_url("postgresql+asyncpg://").get_dialect()(),
}


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
def test_no_user_text_reaches_the_sql(dialect: str) -> None:
    mark = "Zq9"
    query = " or ".join(
        [
            f'attributes.{mark} == "{mark}"',
            f'attributes."{mark}.x" != "{mark}"',
            f'reported."{mark}\\"" ~ "{mark}*"',
            f'desired."é{mark}".b in ["{mark}", 1, true, null]',
            f'labels.{mark} in ["{mark}"]',
            f'kind < "{mark}" or id ~ "{mark}?"',
            f"exists(reported.{mark}) or attributes.{mark} >= 1",
            f'reported.{mark} > "{mark}"',
            # Relations are lowercase: "zq9-rel" stands for the mark there.
            f'linked("zq9-rel", "zq9:{mark}")',
            f'reachable("zq9-rel", "zq9:{mark}") or reachable("*", "zq9:{mark}")',
        ]
    )
    where = compile_query(parse(query), dialect=named(dialect), now_us=NOW_US)
    sql = str(select(things.c.id).where(where).compile(dialect=DIALECTS[dialect]))
    assert mark not in sql
    assert "zq9-rel" not in sql


def test_a_conjunction_has_one_driving_index_lookup() -> None:
    node = parse('labels.tier in ["edge"] and attributes.floor > 2 and attributes.site == "x"')
    sql = str(
        compile_query(node, dialect=named("sqlite"), now_us=NOW_US).compile(
            dialect=DIALECTS["sqlite"]
        )
    )
    assert sql.count("things.id IN (SELECT") == 1
    assert sql.count("EXISTS (SELECT") == 2
    driver = sql.index("things.id IN (SELECT")
    assert "thing_fields.value = ?" in sql[driver : sql.index(")", driver)]


# --- presence columns: connected (bool) and last_seen (time), as query.FIELDS declares them ----

HOUR = 3_600_000_000
PRESENCE_FLEET = [
    Thing(id="acme:a", kind="k", connected=True, last_seen=to_rfc3339(NOW_US - 1)),
    Thing(id="acme:b", kind="k", connected=False, last_seen=to_rfc3339(NOW_US - 2 * HOUR)),
    Thing(id="acme:c", kind="k", connected=False),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("connected == true", ["acme:a"]),
        ("connected == false", ["acme:b", "acme:c"]),
        ("connected != true", ["acme:b", "acme:c"]),
        ('connected == "yes"', []),
        ("connected in [false, 1]", ["acme:b", "acme:c"]),
        ("connected < 1", []),
        ("last_seen < now() - 1h", ["acme:b"]),
        ("last_seen >= now() - 1h", ["acme:a"]),
        ("last_seen != now()", ["acme:a", "acme:b", "acme:c"]),
        ("not exists(last_seen)", ["acme:c"]),
        ("connected == false and last_seen < now() - 1h", ["acme:b"]),
    ],
)
def test_presence_fields(db: Database, text: str, expected: list[str]) -> None:
    db.load(PRESENCE_FLEET)
    node = parse(text)
    assert sorted(_expected(PRESENCE_FLEET, node)) == expected
    assert sorted(db.select(node)) == expected
