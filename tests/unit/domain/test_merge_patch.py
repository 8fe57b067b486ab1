import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotas.domain import merge_patch

# RFC 7396, Appendix A.
RFC_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC_EXAMPLES)
def test_rfc_7396_examples(target: Any, patch: Any, result: Any) -> None:
    assert merge_patch.apply(target, patch) == result


def test_apply_does_not_modify_its_arguments() -> None:
    target = {"a": {"b": 1}}
    patch = {"a": {"c": 2}}
    merge_patch.apply(target, patch)
    assert target == {"a": {"b": 1}} and patch == {"a": {"c": 2}}


def test_same_distinguishes_bool_from_number() -> None:
    assert merge_patch.same(1, 1.0)
    assert not merge_patch.same(True, 1)
    assert not merge_patch.same({"a": 1}, {"a": True})
    assert merge_patch.same([1, {"x": "y"}], [1.0, {"x": "y"}])


scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["x", "y"])
keys = st.sampled_from(["a", "b", "c"])
documents = st.recursive(
    st.dictionaries(keys, scalars, max_size=3),
    lambda children: st.dictionaries(keys, scalars | children, max_size=3),
    max_leaves=8,
)


def _clean(document: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = merge_patch.apply({}, document)
    return result


@given(documents, documents)
def test_effective_patch_has_the_same_result(target: dict[str, Any], patch: dict[str, Any]) -> None:
    target = _clean(target)
    effective = merge_patch.effective(target, patch)
    assert merge_patch.apply(target, effective) == merge_patch.apply(target, patch)


@given(documents, documents)
def test_a_patch_already_applied_is_a_no_op(target: dict[str, Any], patch: dict[str, Any]) -> None:
    after = merge_patch.apply(_clean(target), patch)
    assert merge_patch.effective(after, patch) == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "not a finite number"),
        ({"a": [1, float("inf")]}, "x.a[1] is not a finite number"),
        ({"a": object()}, "not a JSON value"),
        ({1: 2}, "key that is not a string"),
        ({"big": 2**63}, "x.big is an integer outside the 64-bit range"),
        ({"s": "a\x00b"}, "x.s contains the character U+0000"),
        ({"a\x00": 1}, "U+0000"),
    ],
)
def test_check_json_rejects(value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        merge_patch.check_json(value, "x")


def test_check_json_bounds_depth() -> None:
    deep: Any = 1
    for _ in range(40):
        deep = {"a": deep}
    with pytest.raises(ValueError, match="nested too deeply"):
        merge_patch.check_json(deep, "x")
