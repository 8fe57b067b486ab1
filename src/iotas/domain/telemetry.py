"""Telemetry payloads, checked and turned into samples; query buckets and aggregates.

A payload is one record (`{"temp": 21.5, "hum": 40}`, taken at the time of receipt) or a
list of records (`[{"ts": "2026-11-22T08:00:00Z", "temp": 21.5}, {"ts": 1763798400123, ...}]`),
where `ts` is an RFC 3339 instant or epoch milliseconds. Each value of each record becomes one
`Sample`. A payload is accepted whole or rejected whole with a `TelemetryRejected` naming one
of `REASONS`: a device that sees a rejection knows nothing of that message was stored.

The parser sees untrusted bytes at a high rate, so it raises nothing but `TelemetryRejected`
(a fuzz test holds it to that) and stops counting as soon as a limit is passed.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, get_args

import orjson

from iotas.domain import clock
from iotas.domain.errors import InvalidInput
from iotas.domain.merge_patch import check_json

# Why a payload was refused; the MQTT adapter counts by these, the HTTP API returns them.
NOT_JSON: Final = "not_json"
TOO_LARGE: Final = "too_large"
BAD_SHAPE: Final = "bad_shape"
EMPTY: Final = "empty"
TOO_MANY_SAMPLES: Final = "too_many_samples"
BAD_KEY: Final = "bad_key"
BAD_TIMESTAMP: Final = "bad_timestamp"
NOT_FINITE: Final = "not_finite"
BAD_VALUE: Final = "bad_value"
VALUE_TOO_LARGE: Final = "value_too_large"
REASONS: Final = frozenset(
    {
        NOT_JSON,
        TOO_LARGE,
        BAD_SHAPE,
        EMPTY,
        TOO_MANY_SAMPLES,
        BAD_KEY,
        BAD_TIMESTAMP,
        NOT_FINITE,
        BAD_VALUE,
        VALUE_TOO_LARGE,
    }
)

KEY_RULE = "a telemetry key is 1-200 characters of letters, digits, '_', '.', ':', '/' and '-'"
_KEY_RE = re.compile(r"[A-Za-z0-9_.:/-]{1,200}")
TS = "ts"  # the member of a record that holds its time; therefore not a key
MIN_TS_US: Final = 946_684_800_000_000  # 2000-01-01T00:00:00Z: earlier is a clock never set
DAY_US: Final = 86_400_000_000


class TelemetryRejected(InvalidInput):
    """A payload refused whole; `reason` is one of `REASONS`, `detail` says what to fix."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail, reason=reason)
        self.reason = reason


class Sample(NamedTuple):
    """One value of one key at one instant: `num` for finite numbers, else `value` (JSON text).

    A tuple, so that storing a few thousand of them is `(thing_id, *sample)` and no more.
    """

    key: str
    ts_us: int
    num: float | None
    value: str | None


@dataclass(frozen=True, slots=True)
class Limits:
    max_samples: int = 1000  # values per message (a record with 3 keys counts 3)
    max_bytes: int = 1024 * 1024
    max_value_bytes: int = 64 * 1024  # the JSON text of one string, object or array value
    max_future_us: int = DAY_US  # how far ahead of receipt a timestamp may be


DEFAULT_LIMITS = Limits()


def is_key(value: object) -> bool:
    return isinstance(value, str) and _KEY_RE.fullmatch(value) is not None


# Keys already found valid: a fleet sends the same few keys in every message, and the check
# ran for each value. Bounded: past the limit, new keys are checked every time.
_VALID_KEYS: set[str] = set()
_VALID_KEYS_MAX = 4096


def parse_payload(
    payload: bytes | bytearray | memoryview | str,
    received_us: int,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Sample]:
    """The samples of a raw payload (an MQTT message), or TelemetryRejected."""
    # surrogatepass: a str with lone surrogates is measured here and refused by orjson below.
    size = len(payload.encode("utf-8", "surrogatepass") if isinstance(payload, str) else payload)
    if size > limits.max_bytes:
        raise TelemetryRejected(
            TOO_LARGE, f"the payload is {size} bytes; at most {limits.max_bytes} are accepted"
        )
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        if _has_non_finite(payload):
            raise TelemetryRejected(
                NOT_FINITE, "NaN and Infinity are not numbers JSON can carry; leave the key out"
            ) from None
        raise TelemetryRejected(NOT_JSON, f"the payload is not valid JSON: {exc}") from None
    return parse_document(document, received_us, limits)


def parse_document(
    document: object, received_us: int, limits: Limits = DEFAULT_LIMITS
) -> list[Sample]:
    """The samples of an already decoded payload (an HTTP body), or TelemetryRejected."""
    if isinstance(document, dict):
        records: list[Any] = [document]
    elif isinstance(document, list):
        records = document
        if not records:
            raise TelemetryRejected(EMPTY, "the list of records is empty")
        if len(records) > limits.max_samples:
            raise _too_many(limits)
    else:
        raise TelemetryRejected(
            BAD_SHAPE,
            'send an object of values ({"temp": 21.5}) or a list of such objects, each with '
            f"an optional ts; got {_json_type(document)}",
        )
    samples: list[Sample] = []
    for index, record in enumerate(records):
        where = "the payload" if isinstance(document, dict) else f"record {index}"
        if not isinstance(record, dict):
            raise TelemetryRejected(
                BAD_SHAPE, f"{where} is {_json_type(record)}, not an object of values"
            )
        ts_us = _timestamp(record[TS], where, received_us, limits) if TS in record else received_us
        values = len(record) - (TS in record)
        if values == 0:
            raise TelemetryRejected(EMPTY, f"{where} has no values")
        if len(samples) + values > limits.max_samples:
            raise _too_many(limits)
        for key, value in record.items():
            if key == TS:
                continue
            if key not in _VALID_KEYS:
                if not is_key(key):
                    shown = repr(key)[:80] if isinstance(key, str) else _json_type(key)
                    raise TelemetryRejected(
                        BAD_KEY, f"{where}: {shown} is not a valid key: {KEY_RULE}"
                    )
                if len(_VALID_KEYS) < _VALID_KEYS_MAX:
                    _VALID_KEYS.add(key)
            if type(value) is float and math.isfinite(value):  # nearly every value
                samples.append(Sample(key, ts_us, value, None))
            else:
                samples.append(_sample(key, ts_us, value, f"{where}: {key}", limits))
    return samples


def _sample(key: str, ts_us: int, value: object, where: str, limits: Limits) -> Sample:
    if isinstance(value, bool):
        return Sample(key, ts_us, None, "true" if value else "false")
    if isinstance(value, int | float):
        try:
            num = float(value)
        except OverflowError:  # an integer beyond what a double holds
            num = math.inf
        if not math.isfinite(num):
            raise TelemetryRejected(NOT_FINITE, f"{where} is not a finite number")
        return Sample(key, ts_us, num, None)
    if value is None:
        raise TelemetryRejected(
            BAD_VALUE, f"{where} is null; leave a key out when there is no value"
        )
    if isinstance(value, str | list | dict):
        try:
            check_json(value, where)
            data = orjson.dumps(value)
        except (ValueError, TypeError) as exc:  # orjson.JSONEncodeError is a TypeError
            raise TelemetryRejected(BAD_VALUE, str(exc)) from None
        if len(data) > limits.max_value_bytes:
            raise TelemetryRejected(
                VALUE_TOO_LARGE,
                f"{where} is {len(data)} bytes of JSON; at most {limits.max_value_bytes}",
            )
        return Sample(key, ts_us, None, data.decode())
    raise TelemetryRejected(BAD_VALUE, f"{where} is not a JSON value")


def _timestamp(raw: object, where: str, received_us: int, limits: Limits) -> int:
    hint = "an RFC 3339 instant (2026-11-22T08:00:00Z) or epoch milliseconds"
    ts_us: int | None = None
    if isinstance(raw, str) and len(raw) <= 64:
        try:
            ts_us = clock.parse_rfc3339(raw, name="ts")
        except (InvalidInput, ValueError, OverflowError):
            ts_us = None
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        try:
            # Integers stay exact; a float has at best microsecond resolution here anyway.
            ts_us = raw * 1000 if isinstance(raw, int) else round(raw * 1000)
        except (OverflowError, ValueError):  # round() of an infinite or NaN float
            ts_us = None
    if ts_us is None:
        shown = repr(raw)[:60] if isinstance(raw, str) else _json_type(raw)
        raise TelemetryRejected(BAD_TIMESTAMP, f"{where}: ts must be {hint}, not {shown}")
    if ts_us < MIN_TS_US:
        seconds = isinstance(raw, int | float) and ts_us * 1000 >= MIN_TS_US
        raise TelemetryRejected(
            BAD_TIMESTAMP,
            f"{where}: ts is before 2000-01-01, so the clock was probably never set"
            + (
                "; a number ts is in milliseconds, and this one looks like seconds"
                if seconds
                else ""
            ),
        )
    if ts_us > received_us + limits.max_future_us:
        raise TelemetryRejected(
            BAD_TIMESTAMP,
            f"{where}: ts is more than {limits.max_future_us // 3_600_000_000} h ahead of the "
            f"time of receipt ({clock.to_rfc3339(received_us)}); check the device's clock",
        )
    return ts_us


def _too_many(limits: Limits) -> TelemetryRejected:
    return TelemetryRejected(
        TOO_MANY_SAMPLES,
        f"a message carries at most {limits.max_samples} values (a record with 3 keys counts "
        "3); split it",
    )


def _json_type(value: object) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), "not a JSON value")


class _NonFinite(Exception):
    pass


def _refuse(_text: str) -> float:
    raise _NonFinite


def _check_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _NonFinite
    return number


def _has_non_finite(payload: bytes | bytearray | memoryview | str) -> bool:
    """Whether JSON that orjson refused would parse but for NaN, Infinity or 1e400.

    Only on the rejection path, to give senders (Python's json.dumps writes NaN) the reason.
    """
    try:
        json.loads(
            bytes(payload) if not isinstance(payload, str) else payload,
            parse_constant=_refuse,
            parse_float=_check_float,
        )
    except _NonFinite:
        return True
    except Exception:  # anything else is simply not JSON
        return False
    return False


# Query side: buckets and aggregates.

Aggregate = Literal["avg", "min", "max", "count", "last"]
AGGREGATES: Final[tuple[str, ...]] = get_args(Aggregate)
_BUCKET_RE = re.compile(r"([1-9][0-9]{0,5})([smhd])")
_UNIT_US = {"s": 1_000_000, "m": 60_000_000, "h": 3_600_000_000, "d": DAY_US}
MAX_BUCKET_US: Final = 366 * DAY_US
MAX_QUERY_KEYS: Final = 100


def parse_bucket(text: str) -> int:
    """`10s`, `1m`, `1h`, `1d` in microseconds; buckets are aligned to the epoch (UTC)."""
    match = _BUCKET_RE.fullmatch(text.strip())
    us = int(match[1]) * _UNIT_US[match[2]] if match else 0
    if not match or us > MAX_BUCKET_US:
        raise InvalidInput(
            f"bucket must be a whole number and a unit s, m, h or d (10s, 1m, 1h, 1d), at most "
            f"366d; got {text[:40]!r}",
            field="bucket",
        )
    return us


def parse_aggregate(text: str) -> Aggregate:
    name = text.strip()
    if name not in AGGREGATES:
        raise InvalidInput(
            f"agg must be one of {', '.join(AGGREGATES)}; got {text[:40]!r}", field="agg"
        )
    return name  # type: ignore[return-value]  # checked against the Literal's members


def parse_keys(text: str) -> list[str]:
    """A comma-separated list of keys (duplicates dropped, order kept)."""
    keys = list(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if not keys:
        raise InvalidInput("keys must name at least one key (keys=temp,hum)", field="keys")
    if len(keys) > MAX_QUERY_KEYS:
        raise InvalidInput(f"at most {MAX_QUERY_KEYS} keys per query", field="keys")
    for key in keys:
        if not is_key(key):
            raise InvalidInput(f"{key[:80]!r} is not a valid key: {KEY_RULE}", field="keys")
    return keys
