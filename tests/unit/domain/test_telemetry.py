from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iotas.domain import clock
from iotas.domain.errors import InvalidInput
from iotas.domain.telemetry import (
    DAY_US,
    DEFAULT_LIMITS,
    MIN_TS_US,
    REASONS,
    Limits,
    Sample,
    TelemetryRejected,
    is_key,
    parse_aggregate,
    parse_bucket,
    parse_document,
    parse_keys,
    parse_payload,
)

NOW = clock.parse_rfc3339("2026-11-22T08:30:00Z")
T0 = "2026-11-22T08:00:00Z"
T0_US = clock.parse_rfc3339(T0)


def parse(payload: Any, limits: Limits = DEFAULT_LIMITS) -> list[Sample]:
    raw = payload if isinstance(payload, bytes | str) else orjson.dumps(payload)
    return parse_payload(raw, NOW, limits)


def reason(payload: Any, limits: Limits = DEFAULT_LIMITS) -> str:
    with pytest.raises(TelemetryRejected) as info:
        parse(payload, limits)
    assert info.value.reason in REASONS
    assert info.value.detail
    return info.value.reason


def test_an_object_is_one_record_taken_at_receipt() -> None:
    assert parse({"temp": 21.5, "hum": 40}) == [
        Sample("temp", NOW, 21.5, None),
        Sample("hum", NOW, 40.0, None),
    ]


def test_a_list_of_records_with_rfc3339_and_millisecond_timestamps() -> None:
    samples = parse(
        [
            {"ts": T0, "temp": 21.5},
            {"ts": T0_US // 1000 + 123, "temp": 21.6},
            {"ts": "2026-11-22T09:00:00.5+01:00", "temp": 21.7},
            {"ts": (T0_US // 1000) + 0.5, "temp": 21.8},
            {"temp": 21.9},
        ]
    )
    assert [s.ts_us for s in samples] == [
        T0_US,
        T0_US + 123_000,
        T0_US + 500_000,
        T0_US + 500,
        NOW,
    ]


def test_values_numbers_in_num_everything_else_as_json_text() -> None:
    samples = parse({"n": 3, "f": -0.5, "b": True, "s": "on", "o": {"lat": 1.5}, "a": [1, "x"]})
    assert [(s.key, s.num, s.value) for s in samples] == [
        ("n", 3.0, None),
        ("f", -0.5, None),
        ("b", None, "true"),
        ("s", None, '"on"'),
        ("o", None, '{"lat":1.5}'),
        ("a", None, '[1,"x"]'),
    ]


def test_a_str_payload_and_a_decoded_document_give_the_same_samples() -> None:
    doc = [{"ts": T0, "temp": 1}]
    assert parse_payload(json.dumps(doc), NOW) == parse_document(doc, NOW) == parse(doc)
    with pytest.raises(TelemetryRejected) as info:
        parse_payload('{"s": "\ud800"}', NOW)  # a lone surrogate: not UTF-8
    assert info.value.reason == "not_json"
    with pytest.raises(TelemetryRejected) as info:
        parse_document({"s": "\ud800"}, NOW)
    assert info.value.reason == "bad_value"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"not json", "not_json"),
        (b"", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b'{"temp": 1', "not_json"),
        (b'{"temp": NaN}', "not_finite"),
        (b'[{"temp": -Infinity}]', "not_finite"),
        (b'{"temp": 1e400}', "not_finite"),
        (b"42", "bad_shape"),
        (b'"temp"', "bad_shape"),
        (b"null", "bad_shape"),
        (b"[1, 2]", "bad_shape"),
        (b"[[]]", "bad_shape"),
        (b"{}", "empty"),
        (b"[]", "empty"),
        (b'[{"ts": "2026-11-22T08:00:00Z"}]', "empty"),
        (b'{"temp": null}', "bad_value"),
        (b'{"s": "a\\u0000b"}', "bad_value"),
        (b'{"": 1}', "bad_key"),
        (b'{"$sys": 1}', "bad_key"),
        (b'{"te mp": 1}', "bad_key"),
        (b'{"t\\u00e9mp": 1}', "bad_key"),
        (b'{"ts": "yesterday", "temp": 1}', "bad_timestamp"),
        (b'{"ts": "2026-11-22T08:00:00", "temp": 1}', "bad_timestamp"),  # no zone
        (b'{"ts": true, "temp": 1}', "bad_timestamp"),
        (b'{"ts": null, "temp": 1}', "bad_timestamp"),
        (b'{"ts": {}, "temp": 1}', "bad_timestamp"),
        (b'{"ts": "1999-12-31T23:59:59Z", "temp": 1}', "bad_timestamp"),
        (b'{"ts": 1763798400, "temp": 1}', "bad_timestamp"),  # seconds, not ms
        (b'{"ts": -1, "temp": 1}', "bad_timestamp"),
        (b'{"ts": 1e300, "temp": 1}', "bad_timestamp"),
    ],
)
def test_rejections_name_their_reason(payload: bytes, expected: str) -> None:
    assert reason(payload) == expected


def test_keys_may_use_the_documented_characters_up_to_200() -> None:
    key = "a-Z_0.9:/" + "k" * 191
    assert parse({key: 1})[0].key == key
    assert reason({key + "k": 1}) == "bad_key"
    assert is_key("env/temp:c") and not is_key("temp\n")


def test_timestamps_more_than_a_day_ahead_are_refused() -> None:
    ahead = NOW + DAY_US
    assert parse({"ts": ahead // 1000, "x": 1})[0].ts_us == ahead
    assert reason({"ts": ahead // 1000 + 1, "x": 1}) == "bad_timestamp"
    assert parse({"ts": MIN_TS_US // 1000, "x": 1})[0].ts_us == MIN_TS_US


def test_limits_are_configurable_and_count_values() -> None:
    limits = Limits(max_samples=4, max_bytes=200, max_value_bytes=10)
    assert len(parse([{"a": 1, "b": 2}, {"a": 3, "b": 4}], limits)) == 4
    assert reason([{"a": 1, "b": 2}, {"a": 3, "b": 4, "c": 5}], limits) == "too_many_samples"
    assert reason([{"a": 1}] * 5, limits) == "too_many_samples"
    assert reason({"a": "x" * 300}, limits) == "too_large"
    assert reason({"a": "x" * 20}, limits) == "value_too_large"
    assert len(parse([{"k": i} for i in range(1000)])) == 1000
    assert reason([{"k": i} for i in range(1001)]) == "too_many_samples"


def test_integers_beyond_a_double_and_deep_objects_are_refused() -> None:
    with pytest.raises(TelemetryRejected) as info:
        parse_document({"big": 10**400}, NOW)
    assert info.value.reason == "not_finite"
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    assert reason({"deep": deep}) == "bad_value"


def test_a_rejection_is_a_400_with_its_reason() -> None:
    with pytest.raises(InvalidInput) as info:
        parse({"$x": 1})
    assert info.value.status == 400 and info.value.extra == {"reason": "bad_key"}


# The parser sees untrusted input: whatever comes in, it returns valid samples or refuses with
# one of its reasons; nothing else escapes.

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)
KEYS = st.sampled_from(["temp", "ts", "a/b:c", "", "$x", "x" * 201, "t\u00e9"]) | st.text(
    max_size=10
)
TIMESTAMPS = st.sampled_from(
    [T0, "2026-11-22", "2026-11-22T08:00:00+25:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59Z"]
) | st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(),
    st.integers(min_value=MIN_TS_US // 1000, max_value=NOW // 1000),
)
RECORDS = st.dictionaries(KEYS, JSON_VALUES, max_size=5) | st.builds(
    lambda rec, ts: {**rec, "ts": ts}, st.dictionaries(KEYS, JSON_VALUES, max_size=4), TIMESTAMPS
)
DOCUMENTS = RECORDS | st.lists(RECORDS | JSON_VALUES, max_size=6) | JSON_VALUES


def _check_samples(samples: list[Sample], limits: Limits) -> None:
    assert 0 < len(samples) <= limits.max_samples
    for sample in samples:
        assert is_key(sample.key) and sample.key != "ts"
        assert MIN_TS_US <= sample.ts_us <= NOW + limits.max_future_us
        assert (sample.num is None) != (sample.value is None)
        if sample.num is not None:
            assert math.isfinite(sample.num)
        else:
            assert sample.value is not None
            orjson.loads(sample.value)


@settings(max_examples=200, deadline=None)
@given(document=DOCUMENTS, max_samples=st.integers(min_value=1, max_value=8))
def test_fuzz_documents_give_valid_samples_or_a_reason(document: Any, max_samples: int) -> None:
    limits = Limits(max_samples=max_samples)
    try:
        samples = parse_document(document, NOW, limits)
    except TelemetryRejected as exc:
        assert exc.reason in REASONS
        return
    _check_samples(samples, limits)


@settings(max_examples=200, deadline=None)
@given(
    payload=st.binary(max_size=200)
    # Text with lone surrogates too (st.text leaves them out).
    | st.lists(st.characters() | st.sampled_from(["\ud800", "\udfff"]), max_size=60).map("".join)
    | DOCUMENTS.map(lambda d: json.dumps(d, allow_nan=True).encode())
)
def test_fuzz_raw_payloads_give_valid_samples_or_a_reason(payload: bytes | str) -> None:
    try:
        samples = parse_payload(payload, NOW)
    except TelemetryRejected as exc:
        assert exc.reason in REASONS
        return
    _check_samples(samples, DEFAULT_LIMITS)


@given(
    records=st.lists(
        st.fixed_dictionaries(
            {"ts": st.integers(min_value=MIN_TS_US // 1000, max_value=NOW // 1000)},
            optional={
                "temp": st.floats(allow_nan=False, allow_infinity=False),
                "state": st.text(
                    st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
                    max_size=10,
                ),
                "on": st.booleans(),
            },
        ).filter(lambda r: len(r) > 1),
        min_size=1,
        max_size=20,
    )
)
def test_fuzz_valid_records_round_trip(records: list[dict[str, Any]]) -> None:
    samples = parse(records)
    expected = [
        (key, record["ts"] * 1000, value)
        for record in records
        for key, value in record.items()
        if key != "ts"
    ]
    decoded = [
        (s.key, s.ts_us, s.num if s.num is not None else orjson.loads(s.value or "null"))
        for s in samples
    ]
    assert decoded == expected


def test_buckets() -> None:
    assert parse_bucket("10s") == 10_000_000
    assert parse_bucket("1m") == 60_000_000
    assert parse_bucket("1h") == 3_600_000_000
    assert parse_bucket("1d") == DAY_US
    assert parse_bucket("366d") == 366 * DAY_US
    for bad in ("", "0s", "1", "s", "1.5m", "-1m", "1w", "367d", "01m", "1 m", "1M"):
        with pytest.raises(InvalidInput, match="bucket"):
            parse_bucket(bad)


def test_aggregates_and_keys() -> None:
    assert [parse_aggregate(a) for a in ("avg", "min", "max", "count", "last")]
    with pytest.raises(InvalidInput, match="agg"):
        parse_aggregate("median")
    assert parse_keys("temp, hum,temp,,") == ["temp", "hum"]
    for bad in ("", ",", "te mp", "$x", ",".join(f"k{i}" for i in range(101))):
        with pytest.raises(InvalidInput):
            parse_keys(bad)
