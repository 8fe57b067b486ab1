from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from iotas.domain import query
from iotas.domain.errors import InvalidInput
from iotas.domain.query import (
    And,
    Compare,
    Exists,
    Field,
    Glob,
    In,
    Linked,
    Node,
    Not,
    Now,
    Or,
    glob_match,
    matches,
    parse,
    to_text,
    transitive,
)
from iotas.domain.things import Thing
from iotas.domain.twin import Twin

KIND = Field("kind")
SITE = Field("attributes", ("site",))
FLOOR = Field("attributes", ("floor",))
HOUR = 3_600_000_000


def cmp(field: Field, op: str, value: Any) -> Compare:
    return Compare(field, op, value)  # type: ignore[arg-type]


# --- parsing -------------------------------------------------------------------------------

PARSED: list[tuple[str, Node]] = [
    ('kind == "pump"', cmp(KIND, "==", "pump")),
    ('id != "acme:a"', cmp(Field("id"), "!=", "acme:a")),
    ('namespace < "b"', cmp(Field("namespace"), "<", "b")),
    ("attributes.floor <= 3", cmp(FLOOR, "<=", 3)),
    ("attributes.floor > -1", cmp(FLOOR, ">", -1)),
    ("attributes.floor >= - 2.5", cmp(FLOOR, ">=", -2.5)),
    ("attributes.floor == 1e3", cmp(FLOOR, "==", 1000.0)),
    ("attributes.floor == 1.5E-2", cmp(FLOOR, "==", 0.015)),
    ("attributes.floor == 007", cmp(FLOOR, "==", 7)),
    ("attributes.on == true", cmp(Field("attributes", ("on",)), "==", True)),
    ("attributes.on == false", cmp(Field("attributes", ("on",)), "==", False)),
    ("desired.setpoint == null", cmp(Field("desired", ("setpoint",)), "==", None)),
    ('reported.fw != "2.1.0"', cmp(Field("reported", ("fw",)), "!=", "2.1.0")),
    ('labels.tier == "edge"', cmp(Field("labels", ("tier",)), "==", "edge")),
    ("attributes.loc.city == 1", cmp(Field("attributes", ("loc", "city")), "==", 1)),
    ('attributes."my.key" == 1', cmp(Field("attributes", ("my.key",)), "==", 1)),
    ('attributes."" == 1', cmp(Field("attributes", ("",)), "==", 1)),
    ("attributes.and.or.not == 1", cmp(Field("attributes", ("and", "or", "not")), "==", 1)),
    ("attributes.a-b_c == 1", cmp(Field("attributes", ("a-b_c",)), "==", 1)),
    ('kind == "a\\"b\\\\c\\/\\n\\t\\u00e9"', cmp(KIND, "==", 'a"b\\c/\n\té')),
    ('kind == "\\ud83d\\ude00"', cmp(KIND, "==", "\U0001f600")),
    ('kind == "ünï"', cmp(KIND, "==", "ünï")),
    ('labels.tier in ["edge", "core"]', In(Field("labels", ("tier",)), ("edge", "core"))),
    ("attributes.x in []", In(Field("attributes", ("x",)), ())),
    ("attributes.x in [1, -2, true, null]", In(Field("attributes", ("x",)), (1, -2, True, None))),
    ('id ~ "acme:pump-*"', Glob(Field("id"), "acme:pump-*")),
    ("exists(desired.setpoint)", Exists(Field("desired", ("setpoint",)))),
    ("exists(kind)", Exists(KIND)),
    ('linked("hosted-by", "acme:gw-1")', Linked("hosted-by", "acme:gw-1")),
    ('linked("*", "acme:gw-1")', Linked("*", "acme:gw-1")),
    ('reachable("part-of", "acme:site")', Linked("part-of", "acme:site", transitive=True)),
    ('reachable("*", "acme:site")', Linked("*", "acme:site", transitive=True)),
    ('not kind == "a"', Not(cmp(KIND, "==", "a"))),
    ('not not kind == "a"', Not(Not(cmp(KIND, "==", "a")))),
    ('((kind == "a"))', cmp(KIND, "==", "a")),
    ('\t kind\n==\r"a" ', cmp(KIND, "==", "a")),
    ('kind=="a"and kind=="b"', And((cmp(KIND, "==", "a"), cmp(KIND, "==", "b")))),
]


@pytest.mark.parametrize(("text", "node"), PARSED)
def test_parse(text: str, node: Node) -> None:
    assert parse(text) == node


def test_precedence_not_over_and_over_or() -> None:
    a, b, c, d = (cmp(KIND, "==", x) for x in "abcd")
    text = 'kind == "a" or not kind == "b" and kind == "c" or kind == "d"'
    assert parse(text) == Or((a, And((Not(b), c)), d))
    assert parse('(kind == "a" or kind == "b") and kind == "c"') == And((Or((a, b)), c))
    assert parse('not (kind == "a" and kind == "b")') == Not(And((a, b)))


def test_and_and_or_are_flat() -> None:
    node = parse(" and ".join(f'kind == "{i}"' for i in range(100)))
    assert isinstance(node, And)
    assert len(node.operands) == 100


def test_examples_from_the_brief_parse() -> None:
    for text in [
        'kind == "pump" and attributes.site == "plant-7" and reported.firmware != "2.1.0"',
        'labels.tier in ["edge", "core"] and not exists(desired.setpoint)',
        'linked("hosted-by", "acme:gw-1")',
        'id ~ "acme:pump-*"',
        '(attributes.floor >= 3 or attributes.floor < -1) and namespace == "acme"',
    ]:
        assert to_text(parse(text)) == text


# --- errors --------------------------------------------------------------------------------

ERRORS: list[tuple[str, int, str]] = [
    ("", 1, "expected a field"),
    ("   ", 4, "found end of query"),
    ("kind", 5, "expected an operator (==, !=, <, <=, >, >=, in, ~), found end of query"),
    ('kind = "x"', 6, "expected '=='"),
    ('kind ! "x"', 6, "expected '!='"),
    ("kind ==", 8, "expected a string, number, true, false or null"),
    ('kind == "x" kind', 13, "expected 'and', 'or' or end of query, found 'kind'"),
    ('kind == "x" AND kind == "y"', 13, "keywords are lowercase"),
    ('kind == "x" )', 13, "found ')'"),
    ('(kind == "x"', 13, "expected ')', 'and' or 'or'"),
    ('foo == "x"', 1, "unknown field at position 1: expected one of id, namespace, kind"),
    ("attributes == 1", 12, "expected '.' and a key after attributes"),
    ("attributes. == 1", 13, "expected a key"),
    ("attributes.1 == 1", 12, "expected a key"),
    ("attributes.1a == 1", 12, "invalid number"),
    ("kind.x == 1", 5, "kind has no sub-fields"),
    ('"kind" == 1', 1, "expected a field"),
    ("1 == kind", 1, "expected a field"),
    ("kind == 1x", 9, "invalid number"),
    ("kind == 1.5h", 9, "invalid number"),
    ("kind == 1e", 9, "invalid number"),
    ("kind == 9007199254740992", 9, "integer out of range"),
    ("kind == 1e400", 9, "number out of range"),
    ('kind == -"a"', 10, "expected a number after '-'"),
    ('kind == "abc', 9, "unterminated string"),
    ('kind == "a\\q"', 11, "invalid escape in string"),
    ('kind == "\\u12"', 10, "invalid escape in string"),
    ('kind == "a\nb"', 11, "control character in string"),
    ('kind == "\\u0000"', 9, "U+0000"),
    ('kind == "\\ud800"', 9, "lone surrogate"),
    ("kind == @", 9, "unexpected character"),
    ("kïnd == 1", 2, "unexpected character"),
    ("kind == now()", 9, "now() compares only with time fields"),
    ("kind == 5m", 9, "a duration only appears in now()"),
    ("attributes.a < true", 16, "expected a number or a string after <"),
    ("attributes.a >= null", 17, "expected a number or a string after >="),
    ("attributes.a < [1]", 16, "expected a string, number"),
    ("attributes.a in 1", 17, "expected '[' to start a list"),
    ("attributes.a in [1,]", 20, "expected a string, number"),
    ("attributes.a in [1 2]", 20, "expected ',' or ']'"),
    ("attributes.a in [[1]]", 18, "expected a string, number"),
    ("attributes.a in [now()]", 18, "expected a string, number"),
    ("kind ~ 1", 8, 'expected a quoted glob pattern like "acme:pump-*"'),
    ("frob(kind)", 1, "unknown function at position 1: expected exists(...) or linked(...)"),
    ("now() == 1", 1, "unknown function"),
    ("exists(1)", 8, "expected a field"),
    ("exists(kind", 12, "expected ')'"),
    ("exists(attributes)", 18, "expected '.' and a key"),
    ('linked("a")', 11, "expected ','"),
    ('linked("a", 1)', 13, "a Thing id in quotes"),
    ("linked(a, 1)", 8, "a relation name in quotes"),
    ('linked("Hosted-By", "acme:gw-1")', 8, "invalid relation at position 8: expected lowercase"),
    ('linked("hosted by", "acme:gw-1")', 8, "invalid relation"),
    ('linked("", "acme:gw-1")', 8, "invalid relation"),
    ('linked("**", "acme:gw-1")', 8, "invalid relation"),
    ('linked("a", "gw-1")', 13, "invalid Thing id at position 13: expected 'namespace:name'"),
    ('reachable("a", "acme:")', 16, "invalid Thing id"),
    ('reachable("a", "*")', 16, "invalid Thing id"),
    ('reachable("a" "acme:x")', 15, "expected ','"),
    ('reachable("a", "acme:x"', 24, "expected ')'"),
    ("not", 4, "expected a field"),
    ("kind == true and", 17, "expected a field"),
]


@pytest.mark.parametrize(("text", "position", "message"), ERRORS)
def test_errors_name_the_position_and_what_was_expected(
    text: str, position: int, message: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(text)
    assert caught.value.extra["position"] == position
    assert f"at position {position}: expected " in caught.value.detail
    assert message in caught.value.detail


def test_limits() -> None:
    longest = 'kind == "' + "a" * (query.MAX_LENGTH - 10) + '"'
    assert len(longest) == query.MAX_LENGTH
    parse(longest)
    with pytest.raises(InvalidInput, match="query too long at position 4097") as caught:
        parse(longest + " ")
    assert caught.value.extra["position"] == 4097

    deep = "(" * 32 + 'kind == "a"' + ")" * 32
    parse(deep)
    with pytest.raises(InvalidInput, match="nested too deeply at position 33"):
        parse("(" + deep + ")")
    parse("not " * 32 + 'kind == "a"')
    with pytest.raises(InvalidInput, match="nested too deeply at position 129"):
        parse("not " * 33 + 'kind == "a"')

    items = ",".join(["1"] * 1000)
    assert len(parse(f"attributes.a in [{items}]").values) == 1000  # type: ignore[union-attr]
    with pytest.raises(InvalidInput, match="list too long"):
        parse(f"attributes.a in [{items},1]")


def test_raw_surrogates_are_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="lone surrogate"):
        parse('kind == "\ud800"')
    with pytest.raises(InvalidInput, match="unexpected character"):
        parse("\ud800")


def test_non_string_query_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        parse(None)  # type: ignore[arg-type]


_FRAGMENTS = [
    "kind",
    "id",
    "attributes",
    "labels",
    "desired",
    "reported",
    ".",
    "a",
    '"x"',
    '"',
    "\\",
    "==",
    "!=",
    "<",
    "<=",
    ">",
    ">=",
    "~",
    "=",
    "!",
    "in",
    "[",
    "]",
    ",",
    "(",
    ")",
    "and",
    "or",
    "not",
    "exists",
    "linked",
    "now",
    "now()",
    "-",
    "+",
    "1",
    "1.5",
    "1e9",
    "5m",
    "10ms",
    "99999999999999999999",
    "true",
    "false",
    "null",
    " ",
    "\\u",
    "\\ud800",
    "é",
    "\x00",
]


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_fuzz_arbitrary_text_raises_only_invalid_input(text: str) -> None:
    try:
        parse(text)
    except InvalidInput as exc:
        assert isinstance(exc.extra.get("position"), int)


@settings(max_examples=700, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), max_size=30))
def test_fuzz_token_soup_raises_only_invalid_input(parts: list[str]) -> None:
    text = " ".join(parts) if len(parts) % 2 else "".join(parts)
    try:
        node = parse(text)
    except InvalidInput as exc:
        assert 1 <= exc.extra["position"] <= len(text) + 1
    else:
        assert parse(to_text(node)) == node
        matches(node, SAMPLE.to_dict(), now_us=0)


# --- printing round trip -------------------------------------------------------------------

KEYS = st.sampled_from(["a", "site", "my.key", "", "and", "é", 'q"k', "x-y", "0"])
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-query.MAX_INT, query.MAX_INT),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=5),
)


@st.composite
def fields(draw: st.DrawFn) -> Field:
    # Bool and time fields take only some operators and literals; their rules have own tests.
    name = draw(
        st.sampled_from(
            sorted(n for n, spec in query.FIELDS.items() if spec.kind in ("string", "document"))
        )
    )
    if query.FIELDS[name].kind != "document":
        return Field(name)
    return Field(name, tuple(draw(st.lists(KEYS, min_size=1, max_size=3))))


def leaves() -> st.SearchStrategy[Node]:
    comparable = SCALARS.filter(lambda v: v is not None and not isinstance(v, bool))
    return st.one_of(
        st.builds(Compare, fields(), st.sampled_from(["==", "!="]), SCALARS),
        st.builds(Compare, fields(), st.sampled_from(["<", "<=", ">", ">="]), comparable),
        st.builds(In, fields(), st.lists(SCALARS, max_size=3).map(tuple)),
        st.builds(Glob, fields(), st.text(max_size=4).filter(lambda s: "\x00" not in s)),
        st.builds(Exists, fields()),
        st.builds(
            Linked,
            st.sampled_from(["*", "hosted-by", "a"]),
            st.sampled_from(["acme:gw-1", "a:B.c_"]),
            st.booleans(),
        ),
    )


def trees() -> st.SearchStrategy[Node]:
    return st.recursive(
        leaves(),
        lambda inner: st.one_of(
            st.builds(Not, inner),
            st.builds(And, st.lists(inner, min_size=2, max_size=3).map(tuple)),
            st.builds(Or, st.lists(inner, min_size=2, max_size=3).map(tuple)),
        ),
        max_leaves=8,
    )


@settings(max_examples=300, deadline=None)
@given(trees())
def test_to_text_parses_back_to_the_same_tree(node: Node) -> None:
    assert parse(to_text(node)) == node


# --- evaluation ----------------------------------------------------------------------------

SAMPLE = Thing(
    id="acme:pump-17",
    kind="pump",
    attributes={
        "site": "plant-7",
        "floor": 3,
        "ratio": 0.5,
        "on": True,
        "nothing": None,
        "tags": ["a", "b"],
        "loc": {"city": "Oslo", "dotted.key": 1},
        "my.key": "dot",
        "big": 42.0,
        "name": "Pump [7]*",
    },
    labels={"tier": "edge"},
    links=[{"rel": "hosted-by", "target": "acme:gw-1"}],
    description={
        "links": [
            {"rel": "https://www.w3.org/2019/wot/td#controlledBy", "href": "/things/acme:ctl-1"},
            {"href": "https://registry.example/api/v1/things/acme%3Adoc"},
            {"rel": "proxy_to", "href": "acme:proxy"},
        ]
    },
    twin=Twin(desired={"setpoint": 20}, reported={"firmware": "2.0.0"}),
)

TRUTH: list[tuple[str, bool]] = [
    ('kind == "pump"', True),
    ('kind != "pump"', False),
    ('namespace == "acme"', True),
    ('id ~ "acme:pump-*"', True),
    ('id ~ "acme:pump-?"', False),
    ('id ~ "acme:pump-??"', True),
    ('id ~ "ACME:*"', False),
    ('id ~ "acme"', False),
    ('attributes.site == "plant-7"', True),
    ("attributes.floor == 3.0", True),
    ("attributes.big == 42", True),
    ("attributes.on == 1", False),
    ("attributes.on == true", True),
    ("attributes.floor == true", False),
    ('attributes.floor == "3"', False),
    ("attributes.nothing == null", True),
    ("attributes.missing == null", False),
    ("attributes.missing != null", True),
    ('reported.firmware != "2.1.0"', True),
    ('reported.version != "2.1.0"', True),
    ("exists(attributes.nothing)", True),
    ("exists(attributes.missing)", False),
    ("exists(attributes.site.deeper)", False),
    ("exists(attributes.tags)", True),
    ('exists(attributes.tags."0")', False),
    ('attributes.tags == "a"', False),
    ('attributes.tags != "a"', True),
    ('attributes.loc == "Oslo"', False),
    ('attributes.loc.city == "Oslo"', True),
    ('attributes.loc."dotted.key" == 1', True),
    ('attributes."my.key" == "dot"', True),
    ("attributes.floor > 2.5", True),
    ("attributes.floor >= 3", True),
    ("attributes.floor < 3", False),
    ("attributes.ratio <= 0.5", True),
    ('attributes.floor < "4"', False),
    ('attributes.site < "plant-8"', True),
    ('attributes.site > "plant-7"', False),
    ('attributes.site > "Plant-7"', True),
    ("attributes.site < 5", False),
    ("attributes.on > 0", False),
    ("attributes.missing < 5", False),
    ("not attributes.missing < 5", True),
    ('labels.tier in ["edge", "core"]', True),
    ('labels.tier in ["core"]', False),
    ("labels.tier in []", False),
    ('attributes.floor in ["3", 3.0]', True),
    ('attributes.name ~ "Pump [7]\\\\*"', False),
    ('attributes.name ~ "Pump [7]*"', True),
    ('attributes.floor ~ "*"', False),
    ('attributes.missing ~ "*"', False),
    ("exists(desired.setpoint)", True),
    ("desired.setpoint > 19", True),
    ('linked("hosted-by", "acme:gw-1")', True),
    ('linked("hosted-by", "acme:gw-2")', False),
    ('linked("feeds", "acme:gw-1")', False),
    ('linked("*", "acme:gw-1")', True),
    ('linked("*", "acme:gw-2")', False),
    ('not linked("*", "acme:gw-2")', True),
    # The TD's links are edges too: a directory URL naming a Thing, with an IRI rel.
    ('linked("controlledby", "acme:ctl-1")', True),
    ('linked("link", "acme:doc")', True),
    ('kind == "pump" and not exists(desired.setpoint)', False),
    ('kind == "valve" or labels.tier == "edge"', True),
]


@pytest.mark.parametrize(("text", "expected"), TRUTH)
def test_matches(text: str, expected: bool) -> None:
    assert matches(parse(text), SAMPLE.to_dict(), now_us=0) is expected


def test_a_document_answers_linked_but_not_reachable() -> None:
    # One document shows its own edges only: reachable() needs the others, so matches()
    # refuses it (and the event stream refuses such a filter before it starts: `transitive`).
    doc = SAMPLE.to_dict()
    for text in ('reachable("hosted-by", "acme:gw-1")', 'kind == "x" or reachable("*", "a:b")'):
        node = parse(text)
        assert transitive(node)
        with pytest.raises(InvalidInput, match="reachable"):
            matches(node, doc, now_us=0)
    assert not transitive(parse('not linked("*", "acme:gw-1") and kind == "pump"'))


@settings(max_examples=200, deadline=None)
@given(trees())
def test_not_equal_is_exactly_not_equal(node: Node) -> None:
    assume(not transitive(node))
    doc = SAMPLE.to_dict()
    if isinstance(node, Compare) and node.op in ("==", "!="):
        flipped = Compare(node.field, "!=" if node.op == "==" else "==", node.value)
        assert matches(node, doc, now_us=0) is not matches(flipped, doc, now_us=0)
    assert matches(Not(node), doc, now_us=0) is not matches(node, doc, now_us=0)


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("", "", True),
        ("", "a", False),
        ("*", "", True),
        ("*", "anything\nat all", True),
        ("?", "é", True),
        ("?", "", False),
        ("a*b*c", "aXbYc", True),
        ("a*b*c", "aXbY", False),
        ("*a", "bbba", True),
        ("a**", "a", True),
        ("[a]", "[a]", True),
        ("%_", "%_", True),
        ("%_", "ab", False),
    ],
)
def test_glob_match(pattern: str, text: str, expected: bool) -> None:
    assert glob_match(pattern, text) is expected


def test_glob_has_no_catastrophic_backtracking() -> None:
    started = time.perf_counter()
    assert not glob_match("*a" * 200 + "b", "a" * 2000)
    assert time.perf_counter() - started < 2


# --- time fields: last_seen, as query.FIELDS declares it --------------------------------------


def test_last_seen_is_the_time_field_of_presence() -> None:
    assert query.FIELDS["last_seen"].kind == "time"
    assert query.FIELDS["connected"].kind == "bool"


def test_time_field_compares_with_now() -> None:
    assert parse("last_seen < now() - 1h") == cmp(Field("last_seen"), "<", Now(-HOUR))
    assert parse("last_seen >= now()") == cmp(Field("last_seen"), ">=", Now(0))
    assert parse("last_seen > now() + 500ms") == cmp(Field("last_seen"), ">", Now(500_000))
    assert parse("last_seen > now() - 7d").value == Now(-7 * 24 * HOUR)  # type: ignore[union-attr]
    assert parse("last_seen > now() - 5m").value == Now(-300_000_000)  # type: ignore[union-attr]
    assert parse("last_seen > now() - 10s").value == Now(-10_000_000)  # type: ignore[union-attr]
    now = 1_000 * HOUR
    stale = {"last_seen": now - 2 * HOUR}
    fresh = {"last_seen": now - 1}
    never = {"last_seen": None}
    node = parse("last_seen < now() - 1h")
    assert [matches(node, d, now_us=now) for d in (stale, fresh, never)] == [True, False, False]
    assert matches(parse("last_seen != now()"), never, now_us=now)
    assert matches(parse("not exists(last_seen)"), never, now_us=now)
    rfc3339 = {"last_seen": "1970-01-01T00:00:00Z"}
    assert matches(parse("last_seen < now() - 1h"), rfc3339, now_us=now)
    assert to_text(node) == "last_seen < now() - 3600000ms"
    assert parse(to_text(node)) == node


@pytest.mark.parametrize(
    ("text", "position", "message"),
    [
        ('last_seen == "x"', 14, "expected now(), now() - <duration>"),
        ("last_seen < 5", 13, "expected now()"),
        ("last_seen < 1h", 13, "a duration only appears in now()"),
        ("last_seen < now() - 1", 21, "expected a duration"),
        ("last_seen < now() - 37000d", 21, "duration too long"),
        ("last_seen < now(1)", 17, "now() takes no arguments"),
        ("last_seen in [1]", 11, "'in' does not apply to the time field last_seen"),
        ('last_seen ~ "x"', 11, "'~' does not apply to the time field last_seen"),
        ("last_seen.x == 1", 10, "last_seen has no sub-fields"),
    ],
)
def test_time_field_errors(text: str, position: int, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(text)
    assert caught.value.extra["position"] == position
    assert message in caught.value.detail
