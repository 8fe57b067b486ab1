from typing import Any

import pytest

from iotas.domain.errors import InvalidInput
from iotas.domain.ids import parse_thing_id
from iotas.domain.things import validate_patch, validate_record


@pytest.mark.parametrize("good", ["acme:pump-17", "a:b", "my-ns:Sensor_01.a", "x1:SN.2024_7"])
def test_valid_ids(good: str) -> None:
    assert parse_thing_id(good)[0] == good.split(":")[0]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "acme",
        ":pump",
        "acme:",
        "Acme:pump",
        "acme:pu/mp",
        "acme:pump#",
        "acme:a:b",
        "-acme:pump",
        "acme:-pump",
        "acme:pump.",
        "a" * 65 + ":x",
        "acme:" + "x" * 129,
        17,
        None,
    ],
)
def test_invalid_ids_say_what_is_valid(bad: Any) -> None:
    with pytest.raises(InvalidInput, match="namespace:name"):
        parse_thing_id(bad)


def test_record_defaults_and_normalisation() -> None:
    record = validate_record(
        {
            "kind": "pump",
            "attributes": {"a": 1, "gone": None},
            "links": [
                {"rel": "hosted-by", "target": "acme:gw-1"},
                {"rel": "hosted-by", "target": "acme:gw-1"},
            ],
        }
    )
    assert record == {
        "kind": "pump",
        "attributes": {"a": 1},
        "labels": {},
        "links": [{"rel": "hosted-by", "target": "acme:gw-1"}],
        "description": None,
    }


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ({"kind": ""}, "kind"),
        ({"kind": "p", "attributes": []}, "attributes"),
        ({"kind": "p", "labels": {"k": 1}}, "labels"),
        ({"kind": "p", "labels": {"bad key": "v"}}, "labels"),
        ({"kind": "p", "links": [{"rel": "Bad Rel", "target": "a:b"}]}, "links"),
        ({"kind": "p", "links": [{"rel": "x", "target": "nope"}]}, "links"),
        ({"kind": "p", "links": [{"rel": "x", "target": "a:b", "extra": 1}]}, "links"),
        ({"kind": "p", "attributes": {"x": float("nan")}}, "attributes"),
    ],
)
def test_invalid_records(record: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as info:
        validate_record(record)
    assert info.value.extra.get("field") == field


def test_patch_rules() -> None:
    with pytest.raises(InvalidInput, match="cannot patch id"):
        validate_patch({"id": "x:y"})
    with pytest.raises(InvalidInput, match="kind cannot be removed"):
        validate_patch({"kind": None})
    with pytest.raises(InvalidInput, match="JSON object"):
        validate_patch([1])
