"""The query language over Things: text -> AST (`parse`) and a pure evaluator (`matches`).

The store compiles the same AST to SQL (`iotas.store.query_sql`); both follow the semantics in
docs/query.md and must agree exactly. Positions in errors are 1-based character columns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from iotas.domain import clock
from iotas.domain.errors import InvalidInput
from iotas.domain.ids import THING_ID_RE
from iotas.domain.links import ANY_REL, edges
from iotas.domain.merge_patch import same
from iotas.domain.things import REL_RE

MAX_LENGTH = 4096
MAX_DEPTH = 32
MAX_LIST = 1000
# How far reachable() follows edges: a bound on the work of one query, not a limit anyone
# should meet (a site's containment tree is a handful of levels deep).
MAX_HOPS = 32
# Integers a double holds exactly; beyond this SQLite, PostgreSQL and Python would disagree.
MAX_INT = 2**53 - 1
# Far enough for any retention window, small enough that now() +- it stays a 64-bit integer.
MAX_DURATION_US = 100 * 366 * 86_400_000_000

FieldKind = Literal["string", "bool", "time", "document"]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """How a field is reached: `column` on the things table, `doc` in Thing.to_dict()."""

    kind: FieldKind
    column: str
    doc: tuple[str, ...]
    # Scalar leaves of this document are mirrored in the thing_fields index table.
    indexed: bool = False


# Adding a field is one entry here (e.g. `"last_seen": FieldSpec("time", "last_seen_us",
# ("last_seen_us",))`); the parser, evaluator and SQL compiler all read this table.
FIELDS: Mapping[str, FieldSpec] = {
    "id": FieldSpec("string", "id", ("id",)),
    "namespace": FieldSpec("string", "namespace", ("namespace",)),
    "kind": FieldSpec("string", "kind", ("kind",)),
    "attributes": FieldSpec("document", "attributes", ("attributes",), indexed=True),
    "labels": FieldSpec("document", "labels", ("labels",), indexed=True),
    "desired": FieldSpec("document", "desired", ("twin", "desired")),
    "reported": FieldSpec("document", "reported", ("twin", "reported")),
    "connected": FieldSpec("bool", "connected", ("connected",)),
    "last_seen": FieldSpec("time", "last_seen_us", ("last_seen",)),
}

Scalar = str | int | float | bool | None
Op = Literal["==", "!=", "<", "<=", ">", ">="]
ORDERING: frozenset[str] = frozenset({"<", "<=", ">", ">="})


@dataclass(frozen=True, slots=True)
class Now:
    """`now()` shifted by `offset_us`; resolved against the caller's `now_us`."""

    offset_us: int = 0


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    path: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Compare:
    field: Field
    op: Op
    value: Scalar | Now


@dataclass(frozen=True, slots=True)
class In:
    field: Field
    values: tuple[Scalar, ...]


@dataclass(frozen=True, slots=True)
class Glob:
    field: Field
    pattern: str


@dataclass(frozen=True, slots=True)
class Exists:
    field: Field


@dataclass(frozen=True, slots=True)
class Linked:
    """`linked(rel, id)`: Things with an edge `rel` to `id`; `reachable(rel, id)`
    (transitive): Things from which `id` is reached by following one or more `rel` edges,
    at most `MAX_HOPS`. The rel `"*"` is any relation."""

    rel: str
    target: str
    transitive: bool = False


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    operands: tuple[Node, ...]


Node = Compare | In | Glob | Exists | Linked | Not | And | Or


# --- lexer ---------------------------------------------------------------------------------

TokenKind = Literal["ident", "string", "number", "duration", "op", "punct", "minus", "plus", "end"]


@dataclass(frozen=True, slots=True)
class Token:
    kind: TokenKind
    text: str
    pos: int
    value: Any = None


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?([A-Za-z_][A-Za-z0-9_]*)?")
_DURATION_UNITS = {"ms": 1_000, "s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000}
_DURATION_UNITS["d"] = 24 * _DURATION_UNITS["h"]
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "~")
_PUNCT = "()[],."
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _error(pos: int, problem: str, expected: str, found: str) -> InvalidInput:
    return InvalidInput(
        f"{problem} at position {pos}: expected {expected}, found {found}", position=pos
    )


def _tokens(text: str) -> Iterator[Token]:
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t\r\n":
            i += 1
        if i >= n:
            yield Token("end", "", n + 1)
            return
        c, pos = text[i], i + 1
        if c == '"':
            value, end = _string(text, i)
            yield Token("string", text[i:end], pos, value)
            i = end
        elif c.isascii() and c.isdigit():
            match = _NUMBER.match(text, i)
            assert match is not None
            yield _number(match[0], pos)
            i = match.end()
        elif ident := _IDENT.match(text, i):
            yield Token("ident", ident[0], pos)
            i = ident.end()
        elif op := next((o for o in _OPERATORS if text.startswith(o, i)), None):
            yield Token("op", op, pos)
            i += len(op)
        elif c in _PUNCT:
            yield Token("punct", c, pos)
            i += 1
        elif c in "+-":
            yield Token("minus" if c == "-" else "plus", c, pos)
            i += 1
        elif c in "=!":
            raise _error(pos, "unknown operator", f"'{c}='", _show(c))
        else:
            raise _error(pos, "unexpected character", "a field, value or operator", _show(c))


def _show(text: str) -> str:
    return json.dumps(text[:40], ensure_ascii=True)


def _string(text: str, start: int) -> tuple[str, int]:
    """Decode the JSON string starting at `start`; returns (value, index after it)."""
    out: list[str] = []
    i = start + 1
    while i < len(text):
        c = text[i]
        if c == '"':
            return _check_string("".join(out), start + 1), i + 1
        if c == "\\":
            esc = text[i + 1 : i + 2]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                i += 2
                continue
            digits = text[i + 2 : i + 6]
            if (
                esc == "u"
                and len(digits) == 4
                and all(d in "0123456789abcdefABCDEF" for d in digits)
            ):
                out.append(chr(int(digits, 16)))
                i += 6
                continue
            raise _error(
                i + 1,
                "invalid escape in string",
                'one of \\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX',
                _show(text[i : i + 6]),
            )
        if c < " ":
            raise _error(i + 1, "control character in string", "\\n, \\t or \\uXXXX", _show(c))
        out.append(c)
        i += 1
    raise _error(start + 1, "unterminated string", "a closing '\"'", "end of query")


def _check_string(value: str, pos: int) -> str:
    # Pairs of \uXXXX escapes spell one character outside the BMP, as in JSON.
    try:
        value = value.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        raise _error(pos, "invalid string", "valid Unicode", "a lone surrogate") from None
    if "\x00" in value:
        raise _error(pos, "invalid string", "no U+0000 (databases cannot store it)", "\\u0000")
    return value


def _number(text: str, pos: int) -> Token:
    match = _NUMBER.fullmatch(text)
    assert match is not None
    suffix = match[3]
    if suffix is not None:
        digits = text[: -len(suffix)]
        if suffix not in _DURATION_UNITS or not digits.isdigit():
            raise _error(
                pos,
                "invalid number",
                "a number or a duration like 500ms, 10s, 5m, 1h, 7d",
                _show(text),
            )
        significant = digits.lstrip("0") or "0"
        us = int(significant) * _DURATION_UNITS[suffix] if len(significant) <= 20 else -1
        if not 0 <= us <= MAX_DURATION_US:
            raise _error(pos, "duration too long", "at most 36600d", _show(text))
        return Token("duration", text, pos, us)
    if match[1] is None and match[2] is None:
        significant = text.lstrip("0") or "0"
        value: int | float = int(significant) if len(significant) <= 20 else MAX_INT + 1
        if value > MAX_INT:
            raise _error(pos, "integer out of range", f"at most {MAX_INT}", _show(text))
    else:
        value = float(text)
        if value in (float("inf"), float("-inf")):
            raise _error(pos, "number out of range", "a finite number", _show(text))
    return Token("number", text, pos, value)


# --- parser --------------------------------------------------------------------------------

_COMPARISON_OPS = ("==", "!=", "<", "<=", ">", ">=")
_FUNCTIONS = ("exists", "linked", "reachable")


def parse(text: str) -> Node:
    """Parse a query; raises InvalidInput naming the position and what was expected."""
    if not isinstance(text, str):
        raise InvalidInput("a query must be a string")
    if len(text) > MAX_LENGTH:
        raise _error(
            MAX_LENGTH + 1,
            "query too long",
            f"at most {MAX_LENGTH} characters",
            f"{len(text)} characters",
        )
    return _Parser(text).query()


def _describe(token: Token) -> str:
    if token.kind == "end":
        return "end of query"
    if token.kind == "ident" and token.text in ("AND", "OR", "NOT", "IN", "TRUE", "FALSE", "NULL"):
        return f"'{token.text}' (keywords are lowercase)"
    return _show(token.text) if token.kind == "string" else f"'{token.text[:40]}'"


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.token = next(self.tokens)
        self.depth = 0

    def advance(self) -> Token:
        token = self.token
        self.token = next(self.tokens)
        return token

    def at(self, kind: TokenKind, text: str | None = None) -> bool:
        return self.token.kind == kind and (text is None or self.token.text == text)

    def expect(self, kind: TokenKind, text: str, what: str) -> Token:
        if not self.at(kind, text):
            raise self.fail(what)
        return self.advance()

    def fail(self, expected: str, problem: str = "invalid query") -> InvalidInput:
        return _error(self.token.pos, problem, expected, _describe(self.token))

    def query(self) -> Node:
        node = self.or_expr()
        if not self.at("end"):
            raise self.fail("'and', 'or' or end of query")
        return node

    def or_expr(self) -> Node:
        operands = [self.and_expr()]
        while self.at("ident", "or"):
            self.advance()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self) -> Node:
        operands = [self.unary()]
        while self.at("ident", "and"):
            self.advance()
            operands.append(self.unary())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(
                f"at most {MAX_DEPTH} levels of parentheses and 'not'", "query nested too deeply"
            )

    def unary(self) -> Node:
        if self.at("ident", "not"):
            self.nest()
            self.advance()
            node: Node = Not(self.unary())
            self.depth -= 1
            return node
        if self.at("punct", "("):
            self.nest()
            self.advance()
            node = self.or_expr()
            self.expect("punct", ")", "')', 'and' or 'or'")
            self.depth -= 1
            return node
        return self.predicate()

    def predicate(self) -> Node:
        if not self.at("ident"):
            raise self.fail("a field (like kind or attributes.site), 'not', '(' or a function")
        name = self.advance()
        if self.at("punct", "("):
            return self.call(name)
        field = self.field_rest(name)
        token = self.token
        if self.at("ident", "in"):
            _check_kind(field, self.advance(), ("string", "bool", "document"), "in")
            return In(field, self.list_of())
        if self.at("op", "~"):
            _check_kind(field, self.advance(), ("string", "document"), "~")
            return Glob(field, self.string('a quoted glob pattern like "acme:pump-*"'))
        if token.kind != "op" or token.text not in _COMPARISON_OPS:
            raise self.fail("an operator (==, !=, <, <=, >, >=, in, ~)")
        self.advance()
        op: Op = token.text  # type: ignore[assignment]
        return Compare(field, op, self.operand(field, op))

    def field_rest(self, name: Token) -> Field:
        spec = FIELDS.get(name.text)
        if spec is None:
            known = ", ".join(
                f"{key}.<path>" if s.kind == "document" else key for key, s in FIELDS.items()
            )
            raise _error(name.pos, "unknown field", f"one of {known}", _describe(name))
        path: list[str] = []
        while self.at("punct", "."):
            if spec.kind != "document":
                raise self.fail(f"an operator; {name.text} has no sub-fields")
            self.advance()
            if self.token.kind not in ("ident", "string"):
                raise self.fail('a key (a name, or a quoted string like "my.key")')
            segment = self.advance()
            path.append(segment.value if segment.kind == "string" else segment.text)
        if spec.kind == "document" and not path:
            raise self.fail(f"'.' and a key after {name.text} (like {name.text}.site)")
        return Field(name.text, tuple(path))

    def call(self, name: Token) -> Node:
        if name.text not in _FUNCTIONS:
            raise _error(
                name.pos,
                "unknown function",
                " or ".join(f"{f}(...)" for f in _FUNCTIONS),
                _describe(name),
            )
        self.advance()
        if name.text == "exists":
            if not self.at("ident"):
                raise self.fail("a field, like exists(desired.setpoint)")
            node: Node = Exists(self.field_rest(self.advance()))
        else:
            token = self.token
            rel = self.string('a relation name in quotes, like "hosted-by", or "*"')
            if rel != ANY_REL and not REL_RE.match(rel):
                raise _error(
                    token.pos,
                    "invalid relation",
                    "lowercase letters, digits and '-' starting with a letter, or \"*\"",
                    _describe(token),
                )
            self.expect("punct", ",", "','")
            token = self.token
            target = self.string('a Thing id in quotes, like "acme:gw-1"')
            if not THING_ID_RE.match(target):
                raise _error(token.pos, "invalid Thing id", "'namespace:name'", _describe(token))
            node = Linked(rel, target, transitive=name.text == "reachable")
        self.expect("punct", ")", "')'")
        return node

    def string(self, what: str) -> str:
        if not self.at("string"):
            raise self.fail(what)
        value: str = self.advance().value
        return value

    def list_of(self) -> tuple[Scalar, ...]:
        self.expect("punct", "[", "'[' to start a list")
        items: list[Scalar] = []
        if self.at("punct", "]"):
            self.advance()
            return ()
        while True:
            if len(items) == MAX_LIST:
                raise self.fail(f"at most {MAX_LIST} items in a list", "list too long")
            items.append(self.literal("a string, number, true, false or null"))
            if self.at("punct", "]"):
                self.advance()
                return tuple(items)
            self.expect("punct", ",", "',' or ']'")

    def operand(self, field: Field, op: str) -> Scalar | Now:
        token = self.token
        spec = FIELDS[field.name]
        if self.at("ident", "now"):
            value = self.now()
            if spec.kind != "time":
                raise _error(
                    token.pos,
                    "now() compares only with time fields",
                    f"a value {field.name} can hold",
                    "now()",
                )
            return value
        if token.kind == "duration":
            raise self.fail("a value; a duration only appears in now() - <duration>")
        if spec.kind == "time":
            raise self.fail("now(), now() - <duration> or now() + <duration>")
        value_ = self.literal("a string, number, true, false or null")
        if op in ORDERING and (value_ is None or isinstance(value_, bool)):
            raise _error(
                token.pos,
                "invalid comparison",
                f"a number or a string after {op}",
                _describe(token),
            )
        return value_

    def now(self) -> Now:
        self.advance()
        self.expect("punct", "(", "'(' after now")
        self.expect("punct", ")", "')': now() takes no arguments")
        if not (self.at("minus") or self.at("plus")):
            return Now()
        sign = -1 if self.advance().kind == "minus" else 1
        if not self.at("duration"):
            raise self.fail("a duration like 500ms, 10s, 5m, 1h or 7d")
        us: int = self.advance().value
        return Now(sign * us)

    def literal(self, what: str) -> Scalar:
        token = self.token
        if token.kind in ("string", "number"):
            self.advance()
            value: Scalar = token.value
            return value
        if token.kind == "minus":
            self.advance()
            if not self.at("number"):
                raise self.fail("a number after '-'")
            number: int | float = self.advance().value
            return -number
        if token.kind == "ident" and token.text in _CONSTANTS:
            self.advance()
            return _CONSTANTS[token.text]
        raise self.fail(what)


_CONSTANTS: dict[str, Scalar] = {"true": True, "false": False, "null": None}


def _check_kind(field: Field, token: Token, kinds: tuple[FieldKind, ...], op: str) -> None:
    kind = FIELDS[field.name].kind
    if kind not in kinds:
        raise _error(
            token.pos,
            f"'{op}' does not apply to the {kind} field {field.name}",
            _USABLE[kind],
            _describe(token),
        )


_USABLE: dict[FieldKind, str] = {
    "string": "a string operator",
    "document": "a value operator",
    "bool": "== or != with true or false",
    "time": "==, !=, <, <=, > or >= with now() - <duration>",
}


# --- evaluator -----------------------------------------------------------------------------


class _Missing:
    pass


MISSING = _Missing()


def matches(node: Node, doc: Mapping[str, Any], *, now_us: int) -> bool:
    """Whether the Thing document (Thing.to_dict()) satisfies the query at instant `now_us`.

    One document shows its own edges but no other Thing's: linked() is answered from them
    (as the edge table would be), reachable() raises InvalidInput; callers that only have
    documents (the event stream) refuse such queries up front with `transitive`.
    """
    if isinstance(node, And):
        return all(matches(item, doc, now_us=now_us) for item in node.operands)
    if isinstance(node, Or):
        return any(matches(item, doc, now_us=now_us) for item in node.operands)
    if isinstance(node, Not):
        return not matches(node.operand, doc, now_us=now_us)
    if isinstance(node, Linked):
        if node.transitive:
            # One document cannot tell what is reachable from it; callers refuse such
            # queries where only documents are at hand (see `transitive`).
            raise InvalidInput("reachable() needs the whole graph: it cannot filter a stream")
        found = edges(doc.get("links"), doc.get("description"))
        if node.rel == ANY_REL:
            return any(target == node.target for _, target in found)
        return (node.rel, node.target) in found
    value = lookup(node.field, doc)
    if isinstance(node, Exists):
        return value is not MISSING
    if isinstance(node, In):
        return any(equal(value, item) for item in node.values)
    if isinstance(node, Glob):
        return isinstance(value, str) and glob_match(node.pattern, value)
    operand = now_us + node.value.offset_us if isinstance(node.value, Now) else node.value
    if node.op == "==":
        return equal(value, operand)
    if node.op == "!=":
        return not equal(value, operand)
    return ordered(value, node.op, operand)


def lookup(field: Field, doc: Mapping[str, Any]) -> Any:
    """The field's value in the document, or MISSING."""
    spec = FIELDS[field.name]
    current: Any = doc
    for key in (*spec.doc, *field.path):
        if not isinstance(current, Mapping) or key not in current:
            return MISSING
        current = current[key]
    if spec.kind == "document":
        return current
    if current is None:
        return MISSING
    if spec.kind == "time" and isinstance(current, str):
        return clock.parse_rfc3339(current)
    return current


def equal(value: Any, literal: Scalar) -> bool:
    """`==`: JSON equality with a scalar; objects, arrays and missing values equal nothing."""
    if value is MISSING or isinstance(value, dict | list):
        return False
    return same(value, literal)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def ordered(value: Any, op: str, literal: Scalar) -> bool:
    """`<`, `<=`, `>`, `>=`: two numbers, or two strings by code point; anything else is false."""
    if _is_number(value) and _is_number(literal):
        pass
    elif not (isinstance(value, str) and isinstance(literal, str)):
        return False
    if op == "<":
        return bool(value < literal)
    if op == "<=":
        return bool(value <= literal)
    if op == ">":
        return bool(value > literal)
    return bool(value >= literal)


def glob_match(pattern: str, text: str) -> bool:
    """Anchored glob: `*` is any run of characters, `?` one character.

    Written out rather than translated to a regex: backtracking to the last `*` only keeps a
    hostile pattern at O(len(pattern) * len(text)).
    """
    p = t = 0
    star, mark = -1, 0
    while t < len(text):
        if p < len(pattern) and pattern[p] == "*":
            star, mark = p, t
            p += 1
        elif p < len(pattern) and pattern[p] in ("?", text[t]):
            p += 1
            t += 1
        elif star >= 0:
            p, mark = star + 1, mark + 1
            t = mark
        else:
            return False
    return all(c == "*" for c in pattern[p:])


def transitive(node: Node) -> bool:
    """Whether the query uses reachable(), which only the database can evaluate."""
    if isinstance(node, And | Or):
        return any(transitive(item) for item in node.operands)
    if isinstance(node, Not):
        return transitive(node.operand)
    return isinstance(node, Linked) and node.transitive


# --- printing ------------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def to_text(node: Node) -> str:
    """Query text that parses back to `node` (used to store and show saved queries)."""
    if isinstance(node, And | Or):
        word = " and " if isinstance(node, And) else " or "
        return word.join(_grouped(item, node) for item in node.operands)
    if isinstance(node, Not):
        return f"not {_grouped(node.operand, node)}"
    if isinstance(node, Linked):
        name = "reachable" if node.transitive else "linked"
        return f"{name}({_literal(node.rel)}, {_literal(node.target)})"
    if isinstance(node, Exists):
        return f"exists({_field(node.field)})"
    if isinstance(node, In):
        return f"{_field(node.field)} in [{', '.join(_literal(v) for v in node.values)}]"
    if isinstance(node, Glob):
        return f"{_field(node.field)} ~ {_literal(node.pattern)}"
    return f"{_field(node.field)} {node.op} {_operand(node.value)}"


def _grouped(item: Node, parent: Node) -> str:
    # `not` binds tighter than `and`, which binds tighter than `or`.
    needs = isinstance(item, Or) or (isinstance(item, And) and not isinstance(parent, Or))
    text = to_text(item)
    return f"({text})" if needs else text


def _field(field: Field) -> str:
    keys = (k if _PLAIN_KEY.fullmatch(k) else _literal(k) for k in field.path)
    return ".".join((field.name, *keys))


def _literal(value: Scalar) -> str:
    return json.dumps(value, ensure_ascii=False)


def _operand(value: Scalar | Now) -> str:
    if not isinstance(value, Now):
        return _literal(value)
    if value.offset_us == 0:
        return "now()"
    sign = "-" if value.offset_us < 0 else "+"
    return f"now() {sign} {abs(value.offset_us) // 1000}ms"
