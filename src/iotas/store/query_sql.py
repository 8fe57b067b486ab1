"""Compile a query AST to a SQLAlchemy boolean over `things`, for SQLite and PostgreSQL.

Every literal and every JSON key is a bound parameter; no user text reaches the SQL text.

Every expression built here is two-valued (true or false, never SQL NULL), so `not` is a
plain NOT and `!=` on a missing field is true, as in the Python evaluator
(`iotas.domain.query.matches`), which this must agree with exactly.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    and_,
    exists,
    false,
    literal,
    literal_column,
    not_,
    or_,
    select,
    true,
)

from iotas.domain.links import ANY_REL
from iotas.domain.query import (
    FIELDS,
    MAX_HOPS,
    And,
    Compare,
    Exists,
    FieldKind,
    FieldSpec,
    Glob,
    In,
    Linked,
    Node,
    Not,
    Now,
    Or,
    Scalar,
)
from iotas.store.dialects import Dialect, DocumentSql
from iotas.store.dialects.base import two_valued
from iotas.store.schema import thing_fields, thing_links, things
from iotas.store.thing_fields import canonical, index_path


def compile_query(
    node: Node, *, dialect: Dialect, now_us: int, namespaces: tuple[str, ...] | None = None
) -> ColumnElement[bool]:
    """The WHERE clause selecting the Things that `matches(node, thing, now_us=now_us)`.
    With `namespaces` (a limited token's), graph walks neither start from nor pass through
    edges of Things outside them, as `/graph` does not."""
    return _Compiler(dialect.documents, now_us, namespaces).node(node)


class _Compiler:
    def __init__(
        self, documents: DocumentSql, now_us: int, namespaces: tuple[str, ...] | None = None
    ) -> None:
        self.documents = documents
        self.now_us = now_us
        self.namespaces = namespaces
        # Index lookups to write as a correlated EXISTS rather than `id IN (...)`.
        self.probes: set[int] = set()
        # reachable() calls so far: each names its recursive CTE apart (one statement).
        self.walks = 0

    def node(self, node: Node) -> ColumnElement[bool]:
        if isinstance(node, And):
            self.choose_driver(node)
            return and_(*(self.node(item) for item in node.operands))
        if isinstance(node, Or):
            return or_(*(self.node(item) for item in node.operands))
        if isinstance(node, Not):
            return not_(self.node(node.operand))
        if isinstance(node, Linked):
            self.walks += node.transitive
            name = f"reachable_{self.walks}"
            ids = linked_ids(
                node.rel,
                node.target,
                transitive=node.transitive,
                name=name,
                namespaces=self.namespaces,
            )
            return things.c.id.in_(ids)
        spec = FIELDS[node.field.name]
        if spec.kind == "document":
            return self.document(spec, node)
        return self.column(spec, node)

    def choose_driver(self, node: And) -> None:
        """Let one index lookup of a conjunction drive; the others probe per candidate row.

        `id IN (subquery)` materialises the subquery: cheap for a selective lookup, slow for
        one that matches half the fleet. The planners cannot tell which is selective (the
        statistics are per path and value), so the likeliest one drives: an equality before
        a list before a range, the first written on a tie. The rest become EXISTS probes on
        the (thing_id, path) primary key.
        """
        ranked = sorted(
            (lookup[2], i)
            for i, item in enumerate(node.operands)
            if (lookup := _index_lookup(item)) is not None
        )
        self.probes.update(id(node.operands[i]) for _, i in ranked[1:])

    def column(self, spec: FieldSpec, node: Compare | In | Glob | Exists) -> ColumnElement[bool]:
        col = things.c[spec.column]
        if isinstance(node, Exists):
            return col.is_not(None) if col.nullable else true()
        expr: ColumnElement[bool]
        if isinstance(node, In):
            values = [v for v in node.values if _holds(spec.kind, v)]
            if not values:
                return false()
            expr = col.in_(values)
        elif isinstance(node, Glob):
            expr = self.documents.column_glob(col, node.pattern)
        else:
            value = self.resolve(node.value)
            if not _holds(spec.kind, value):
                return true() if node.op == "!=" else false()
            if node.op in ("==", "!="):
                expr = col == value
            elif isinstance(value, str):
                expr = self.documents.column_order(col, node.op, value)
            else:
                expr = col.op(node.op, is_comparison=True)(literal(value))
        if col.nullable:
            expr = two_valued(expr)
        return not_(expr) if isinstance(node, Compare) and node.op == "!=" else expr

    def document(self, spec: FieldSpec, node: Compare | In | Glob | Exists) -> ColumnElement[bool]:
        col = things.c[spec.column]
        path = node.field.path
        docs = self.documents
        if isinstance(node, Exists):
            return docs.exists(col, path)
        if isinstance(node, Glob):
            return docs.glob(col, path, node.pattern)
        if isinstance(node, In) and not node.values:
            return false()
        negated = isinstance(node, Compare) and node.op == "!="
        if isinstance(node, Compare) and negated:
            lookup = _index_lookup(Compare(node.field, "==", node.value))
        else:
            lookup = _index_lookup(node)
        if lookup is not None:
            index_path, condition, _ = lookup
            expr = _indexed(index_path, condition, probe=id(node) in self.probes)
        elif isinstance(node, In):
            return docs.one_of(col, path, node.values)
        else:
            value = node.value
            assert not isinstance(value, Now), "the parser allows now() only on time fields"
            if node.op in ("==", "!="):
                expr = docs.equals(col, path, value)
            else:
                assert isinstance(value, int | float | str) and not isinstance(value, bool)
                expr = docs.order(col, path, node.op, value)
        return not_(expr) if negated else expr

    def resolve(self, value: Scalar | Now) -> Scalar:
        return self.now_us + value.offset_us if isinstance(value, Now) else value


def _index_lookup(node: Node) -> tuple[str, ColumnElement[bool], int] | None:
    """(path, condition on thing_fields, rank) when the index answers `node` exactly.

    It does when the leaf's path and every literal pass the same tests `field_rows` applies
    (`index_path`, `canonical`): then every Thing that can match has its row. Strings
    compared with < or > are not answered here: `value` holds JSON text, which does not sort
    like the strings.
    """
    if not isinstance(node, Compare | In):
        return None
    spec = FIELDS[node.field.name]
    path = index_path(node.field.name, node.field.path) if spec.indexed else None
    if path is None:
        return None
    if isinstance(node, In):
        texts = [canonical(v) for v in node.values]
        if not texts or None in texts:
            return None
        return path, thing_fields.c.value.in_(texts), 1
    value = node.value
    if node.op == "==":
        text = canonical(value)
        return None if text is None else (path, thing_fields.c.value == text, 0)
    if node.op == "!=" or value is None or isinstance(value, str | bool | Now):
        return None
    return path, thing_fields.c.num.op(node.op, is_comparison=True)(literal(float(value))), 2


def _holds(kind: FieldKind, value: Any) -> bool:
    """Whether a column of this kind can equal the value at all."""
    if kind == "string":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    return isinstance(value, int) and not isinstance(value, bool)


def _indexed(path: str, condition: ColumnElement[bool], *, probe: bool) -> ColumnElement[bool]:
    # Two-valued either way: things.id and thing_fields.thing_id are never NULL.
    rows = select(thing_fields.c.thing_id).where(thing_fields.c.path == path, condition)
    if probe:
        return exists(rows.where(thing_fields.c.thing_id == things.c.id))
    return things.c.id.in_(rows)


def linked_ids(
    rel: str,
    target: str,
    *,
    transitive: bool,
    name: str = "reachable",
    namespaces: tuple[str, ...] | None = None,
) -> Select[Any]:
    """Ids of the Things with an edge `rel` (any, for "*") to `target`, or (transitive) from
    which `target` is reached along such edges in at most MAX_HOPS steps.

    The recursive query uses UNION, which drops rows already found, so a cycle ends it even
    without the bound; the bound caps the number of steps (one join each) that a long chain
    costs. The rows carry their step, so a Thing found at several depths has several rows
    (at most MAX_HOPS each): the IN (...) around this does not mind.
    """

    def about(query: Select[Any]) -> Select[Any]:
        if namespaces is not None:
            query = query.where(
                or_(
                    *(
                        thing_links.c.thing_id.startswith(f"{ns}:", autoescape=True)
                        for ns in namespaces
                    )
                )
            )
        return query if rel == ANY_REL else query.where(thing_links.c.rel == literal(rel))

    direct = about(
        select(thing_links.c.thing_id.label("id")).where(thing_links.c.target == literal(target))
    )
    if not transitive:
        return direct
    # Constants of ours, written into the SQL: typed alike in both terms on PostgreSQL.
    one = literal_column("1", Integer)
    found = direct.add_columns(one.label("hops")).cte(name, recursive=True)
    step = about(
        select(thing_links.c.thing_id, found.c.hops + one)
        .join(found, thing_links.c.target == found.c.id)
        .where(found.c.hops < literal_column(str(MAX_HOPS), Integer))
    )
    found = found.union(step)
    return select(found.c.id)
