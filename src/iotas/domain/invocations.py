"""Invocations: one call of a Thing's action, tracked from queued to its final status.

    queued ──> delivered ──> running ──> succeeded | failed
       │  <──────┘ (re-queued)  │
       └──────────┴─────────────┴──> expired | cancelled      (queued only: rejected)

The statuses, which moves between them are allowed (a table, checked by `check_move`), the
record and its API form, the ttl rules and the validation of an input against the data
schema of the action's `input` (docs/commands.md; decision "Invocations").
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Final

from iotas.domain import clock
from iotas.domain.errors import Conflict, InvalidInput
from iotas.domain.merge_patch import JSON, JSONObject
from iotas.domain.td import data_violation


class Status(StrEnum):
    QUEUED = "queued"
    DELIVERED = "delivered"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REJECTED = "rejected"


FINAL: Final = frozenset(
    {Status.SUCCEEDED, Status.FAILED, Status.EXPIRED, Status.CANCELLED, Status.REJECTED}
)
# What a Thing still has to be sent: nothing came back from it yet.
PENDING: Final = (Status.QUEUED, Status.DELIVERED)
# What counts against a Thing's queue bound: everything not final.
OPEN: Final = (Status.QUEUED, Status.DELIVERED, Status.RUNNING)
# The statuses a Thing may report in a result.
REPORTED: Final = frozenset({Status.RUNNING, Status.SUCCEEDED, Status.FAILED})

# Allowed moves, from -> to. A delivered invocation goes back to queued when its device
# dropped before acknowledging it; delivered -> delivered is a delivery made again (at least
# once); running -> running is progress.
# Where every invocation not final may end: its result, its ttl, a cancel.
_ENDS: Final = frozenset({Status.SUCCEEDED, Status.FAILED, Status.EXPIRED, Status.CANCELLED})
MOVES: Final[dict[Status, frozenset[Status]]] = {
    Status.QUEUED: _ENDS | {Status.DELIVERED, Status.RUNNING, Status.REJECTED},
    Status.DELIVERED: _ENDS | {Status.QUEUED, Status.DELIVERED, Status.RUNNING},
    Status.RUNNING: _ENDS | {Status.RUNNING},
    **{final: frozenset() for final in FINAL},
}

DEFAULT_TTL_S: Final = 3600.0
MAX_TTL_S: Final = 30 * 86_400.0
MIN_TTL_S: Final = 1.0
# The same idempotency key on the same Thing within this long returns the same invocation.
IDEMPOTENCY_S: Final = 86_400
MAX_KEY: Final = 200
MAX_ACTION: Final = 200
MAX_MESSAGE: Final = 1000
ID_PREFIX: Final = "inv-"


def can_move(before: Status, after: Status) -> bool:
    return after in MOVES[before]


def check_move(invocation_id: str, before: Status, after: Status) -> None:
    """Refuse a move the table does not allow (409 Conflict, saying from what to what)."""
    if not can_move(before, after):
        raise Conflict(
            f"invocation {invocation_id} is {before}: it cannot become {after}"
            + (" (it is final)" if before in FINAL else "")
        )


def parse_statuses(value: str) -> list[Status]:
    """`queued,delivered` -> those statuses; InvalidInput naming the valid ones."""
    out: list[Status] = []
    for part in value.split(","):
        name = part.strip()
        if not name:
            continue
        try:
            out.append(Status(name))
        except ValueError:
            raise InvalidInput(
                f"{name[:40]!r} is not an invocation status: one of "
                f"{', '.join(s.value for s in Status)}",
                field="status",
            ) from None
    return out


@dataclass(frozen=True, slots=True)
class Invocation:
    id: str
    thing_id: str
    action: str
    input: JSON
    status: Status
    created_us: int
    updated_us: int
    expires_us: int
    actor: str
    delivered_us: int | None = None
    output: JSON = None
    error: JSONObject | None = None
    progress: float | None = None
    idempotency_key: str | None = None
    rollout_id: str | None = None
    attempts: int = 0

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def as_json(self) -> JSONObject:
        """The API form; times in RFC 3339."""
        return {
            "id": self.id,
            "thing": self.thing_id,
            "action": self.action,
            "input": self.input,
            "status": self.status.value,
            "created": clock.to_rfc3339(self.created_us),
            "updated": clock.to_rfc3339(self.updated_us),
            "expires": clock.to_rfc3339(self.expires_us),
            "delivered": None if self.delivered_us is None else clock.to_rfc3339(self.delivered_us),
            "output": self.output,
            "error": self.error,
            "progress": self.progress,
            "rollout": self.rollout_id,
            "attempts": self.attempts,
        }

    def journaled(self) -> JSONObject:
        """What `invocation_created` carries: the command itself (its input included: inputs
        are not secrets) and where it goes."""
        shown = self.as_json()
        return {
            **{k: shown[k] for k in ("id", "thing", "action", "input", "status", "expires")},
            "rollout": self.rollout_id,
            "idempotency_key": self.idempotency_key,
        }


# -- ids -----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Ids:
    last_us: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


_IDS = _Ids()


def new_id(now_us: int) -> str:
    """`inv-` + 14 hex digits of microseconds (strictly increasing within a process, so ids
    sort in creation order) + 8 random hex digits (distinct across nodes)."""
    with _IDS.lock:
        us = max(now_us, _IDS.last_us + 1)
        _IDS.last_us = us
    return f"{ID_PREFIX}{us:014x}{secrets.token_hex(4)}"


def looks_like_id(value: str) -> bool:
    return (
        value.startswith(ID_PREFIX)
        and len(value) == len(ID_PREFIX) + 22
        and all(c in "0123456789abcdef" for c in value[len(ID_PREFIX) :])
    )


# -- rules of a request -------------------------------------------------------------------------


def ttl_us(value: object) -> int:
    """A ttl in seconds (None: the default) as microseconds; InvalidInput outside
    [MIN_TTL_S, MAX_TTL_S]."""
    if value is None:
        return int(DEFAULT_TTL_S * 1_000_000)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not MIN_TTL_S <= value <= MAX_TTL_S
    ):
        raise InvalidInput(
            f"ttl is a number of seconds from {MIN_TTL_S:g} to {MAX_TTL_S:g} (30 days); "
            f"without it an invocation waits {DEFAULT_TTL_S:g} s to be delivered",
            field="ttl",
        )
    return int(value * 1_000_000)


def check_key(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= MAX_KEY:
        raise InvalidInput(
            f"idempotency_key is a string of 1-{MAX_KEY} characters", field="idempotency_key"
        )
    return value


def check_input(action: str, affordance: JSONObject, value: JSON) -> None:
    """Refuse an input that does not fit the data schema of the action's `input` (400 naming
    the member as a JSON Pointer under /input). An action that declares no input schema
    constrains nothing (as a property without one: many TDs leave it out)."""
    schema = affordance.get("input")
    if not isinstance(schema, dict):
        return
    violation = data_violation(schema, value)
    if violation is not None:
        pointer, message, keyword = violation
        raise InvalidInput(
            f"the input does not fit the input schema of the action {action[:200]!r} at "
            f"{pointer or 'its top level'}: {message}",
            field="/input" + pointer,
            keyword=keyword,
        )


# -- results from a Thing ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Result:
    status: Status
    progress: float | None
    output: JSON
    error: JSONObject | None


def parse_result(body: object) -> Result:
    """A Thing's result: `{"status": running|succeeded|failed, "progress"?, "output"?,
    "error"?}`. InvalidInput saying what is wrong (the caller counts it for a device)."""
    if not isinstance(body, dict):
        raise InvalidInput('a result is {"status": "running"|"succeeded"|"failed", ...}')
    unknown = sorted(set(body) - {"status", "progress", "output", "error"})
    if unknown:
        raise InvalidInput(f"unknown member(s) {', '.join(unknown)[:200]} in a result")
    given = body.get("status")
    try:
        status = Status(given) if isinstance(given, str) else None
    except ValueError:
        status = None
    if status is None or status not in REPORTED:
        raise InvalidInput("a result's status is running, succeeded or failed", field="/status")
    progress = body.get("progress")
    if progress is not None and (
        isinstance(progress, bool)
        or not isinstance(progress, int | float)
        or not 0 <= progress <= 100
    ):
        raise InvalidInput("progress is a number from 0 to 100", field="/progress")
    error = _error(body.get("error"), status)
    return Result(status, None if progress is None else float(progress), body.get("output"), error)


def _error(value: object, status: Status) -> JSONObject | None:
    """A failure's `{"code", "message"}`: a bare string becomes the message; a failure
    without one gets `{"code": "failed", "message": ""}`."""
    if value is None:
        return {"code": "failed", "message": ""} if status is Status.FAILED else None
    if isinstance(value, str):
        return {"code": "failed", "message": value[:MAX_MESSAGE]}
    if isinstance(value, dict):
        code, message = value.get("code", "failed"), value.get("message", "")
        if isinstance(code, str) and isinstance(message, str) and 1 <= len(code) <= 100:
            return {"code": code, "message": message[:MAX_MESSAGE]}
    raise InvalidInput('error is {"code": "...", "message": "..."} or a message', field="/error")


def after_result(invocation: Invocation, result: Result, now_us: int) -> Invocation:
    """The invocation once `result` is applied (the move must be allowed: `check_move`)."""
    check_move(invocation.id, invocation.status, result.status)
    progress = 100.0 if result.status is Status.SUCCEEDED else result.progress
    return replace(
        invocation,
        status=result.status,
        updated_us=now_us,
        progress=invocation.progress if progress is None else progress,
        output=result.output if result.output is not None else invocation.output,
        error=result.error,
    )


def changed_patch(before: Invocation, after: Invocation) -> JSONObject:
    """What `invocation_changed` carries: the status and what else changed."""
    patch: JSONObject = {"status": after.status.value}
    for name in ("output", "error", "progress", "attempts"):
        value: Any = getattr(after, name)
        if value != getattr(before, name):
            patch[name] = value
    return patch
