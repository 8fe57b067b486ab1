"""Journal events, their canonical form and hash chain, and how each applies to its record.

Every entry names the kind of record it is about and that record's id. Commands validate
and produce events; each kind has one table, event type -> apply function (the way Ditto
separates event strategies from command strategies), and `apply` looks the type up there.
The live write path and the time-travel read (`?at=`) both fold a Thing with it, so a Thing
read as it was at an instant is exactly the state the live path had after that event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

import orjson

from iotas.domain import merge_patch
from iotas.domain.merge_patch import JSONObject
from iotas.domain.things import Thing
from iotas.domain.twin import Side

GENESIS_HASH: Final = "0" * 64

THING_CREATED: Final = "thing_created"
THING_UPDATED: Final = "thing_updated"
THING_DELETED: Final = "thing_deleted"
DESIRED_CHANGED: Final = "desired_changed"
REPORTED_CHANGED: Final = "reported_changed"
THING_CONNECTED: Final = "thing_connected"
THING_DISCONNECTED: Final = "thing_disconnected"
CREDENTIAL_ADDED: Final = "credential_added"
CREDENTIAL_REVOKED: Final = "credential_revoked"
# Something the Thing says happened (`things/{id}/events/{name}`); it changes no state.
THING_EVENT: Final = "thing_event"
# What an adapter did to a Thing through the Thing's own API (a property written, an action
# invoked) and how it went; it changes no state (what the Thing then reports does).
ADAPTER_ATTEMPT: Final = "adapter_attempt"
# A forensic snapshot of the Thing was taken: its sha256 and why; it changes no state.
SNAPSHOT_TAKEN: Final = "snapshot_taken"
# The Thing was quarantined (patch: reason and the sha256 of the snapshot taken as evidence)
# or released from quarantine.
THING_QUARANTINED: Final = "thing_quarantined"
THING_RELEASED: Final = "thing_released"
EVENT_TYPES: Final = (
    THING_CREATED,
    THING_UPDATED,
    THING_DELETED,
    DESIRED_CHANGED,
    REPORTED_CHANGED,
    THING_CONNECTED,
    THING_DISCONNECTED,
    CREDENTIAL_ADDED,
    CREDENTIAL_REVOKED,
    THING_EVENT,
    ADAPTER_ATTEMPT,
    SNAPSHOT_TAKEN,
    THING_QUARANTINED,
    THING_RELEASED,
)


# The kinds of record the journal speaks of. A Thing's events keep the canonical form they
# had before kinds existed ("thing_id", no "kind"), so chains written before stay valid and
# the per-Thing history reads as it did; every other kind carries "kind" and "record_id".
THING: Final = "thing"
TOKEN: Final = "token"  # noqa: S105 (a kind of record, not a secret)
CLAIM: Final = "claim"
WOT_BINDING: Final = "wot_binding"
INVOCATION: Final = "invocation"
ROLLOUT: Final = "rollout"

TOKEN_CREATED: Final = "token_created"  # noqa: S105
TOKEN_REVOKED: Final = "token_revoked"  # noqa: S105
CLAIM_CREATED: Final = "claim_created"
# A device redeemed the claim: the Thing it provisioned is in the patch.
CLAIM_USED: Final = "claim_used"
CLAIM_REVOKED: Final = "claim_revoked"
WOT_ADOPTED: Final = "wot_adopted"
WOT_RELEASED: Final = "wot_released"
# An action was invoked (patch: the invocation with its input) / its status changed (patch:
# the status and what else changed: output, error, progress, attempts).
INVOCATION_CREATED: Final = "invocation_created"
INVOCATION_CHANGED: Final = "invocation_changed"
# A rollout was made; its status changed (patch: status, previous, rule); a wave opened
# (patch: wave, size, opens). Its Things' starts are journaled by their change (an invocation).
ROLLOUT_CREATED: Final = "rollout_created"
ROLLOUT_STATUS_CHANGED: Final = "rollout_status_changed"
ROLLOUT_WAVE_STARTED: Final = "rollout_wave_started"


@dataclass(frozen=True, slots=True)
class Event:
    """One change of the record `kind`/`record_id`. `patch` is the effective change;
    `before` is set where state is removed."""

    seq: int
    ts: str
    record_id: str
    type: str
    actor: str
    cause: str | None
    patch: JSONObject | None
    before: JSONObject | None = None
    kind: str = THING

    @property
    def thing_id(self) -> str:
        """The Thing's id, for an event of a Thing."""
        return self.record_id

    def canonical(self) -> bytes:
        """The bytes that are hashed and stored: sorted keys, no spaces, UTF-8."""
        # Not dataclasses.asdict: it deep-copies the patch, and this runs on every change.
        doc: dict[str, object] = {
            "seq": self.seq,
            "ts": self.ts,
            "type": self.type,
            "actor": self.actor,
            "cause": self.cause,
            "patch": self.patch,
            "before": self.before,
        }
        if self.kind == THING:
            doc["thing_id"] = self.record_id
        else:
            doc["kind"] = self.kind
            doc["record_id"] = self.record_id
        return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)

    @staticmethod
    def from_canonical(body: bytes | str) -> Event:
        doc = orjson.loads(body)
        if "thing_id" in doc:
            doc["record_id"] = doc.pop("thing_id")
        return Event(**doc)


def kind_and_id(body: dict[str, Any]) -> tuple[Any, Any]:
    """The record a parsed canonical body is about: (kind, id)."""
    if "thing_id" in body:
        return THING, body["thing_id"]
    return body.get("kind"), body.get("record_id")


def chain_hash(previous_hash: str, body: bytes) -> str:
    return hashlib.sha256(previous_hash.encode("ascii") + body).hexdigest()


# -- Things ----------------------------------------------------------------------------------

ApplyThing = Callable[[Thing, Event], Thing | None]


def _touched(thing: Thing, event: Event) -> Thing:
    return replace(thing, revision=thing.revision + 1, updated_at=event.ts)


def _created(_state: Thing | None, event: Event) -> Thing:
    assert event.patch is not None
    thing = Thing(id=event.record_id, kind=event.patch["kind"], created_at=event.ts)
    return _touched(thing.with_record(event.patch), event)


def _deleted(_state: Thing, _event: Event) -> None:
    return None


def _updated(state: Thing, event: Event) -> Thing:
    assert event.patch is not None
    return _touched(state.with_record(merge_patch.apply(state.record(), event.patch)), event)


def _twin_changed(side: Side) -> ApplyThing:
    def apply_side(state: Thing, event: Event) -> Thing:
        assert event.patch is not None
        twin = state.twin.patched(side, event.patch, ts=event.ts, source=event.actor)
        # One `replace`, not two: this runs for every change.
        return replace(state, twin=twin, revision=state.revision + 1, updated_at=event.ts)

    return apply_side


def _presence(connected: bool) -> ApplyThing:
    return lambda state, event: _touched(replace(state, connected=connected), event)


def _quarantined(state: Thing, event: Event) -> Thing:
    assert event.patch is not None
    quarantine = {"since": event.ts, "by": event.actor, **event.patch}
    return _touched(replace(state, quarantine=quarantine), event)


def _unchanged(state: Thing, _event: Event) -> Thing:
    return state


# Every event type of a Thing and what it does to the Thing (creation is `_created`, the one
# type that applies to no Thing).
THING_EVENTS: Final[dict[str, ApplyThing]] = {
    THING_UPDATED: _updated,
    THING_DELETED: _deleted,
    DESIRED_CHANGED: _twin_changed("desired"),
    REPORTED_CHANGED: _twin_changed("reported"),
    THING_CONNECTED: _presence(True),
    THING_DISCONNECTED: _presence(False),
    # A credential belongs to its Thing: issuing and revoking one is a change of the Thing.
    CREDENTIAL_ADDED: _touched,
    CREDENTIAL_REVOKED: _touched,
    THING_QUARANTINED: _quarantined,
    THING_RELEASED: lambda state, event: _touched(replace(state, quarantine=None), event),
    THING_EVENT: _unchanged,
    ADAPTER_ATTEMPT: _unchanged,
    SNAPSHOT_TAKEN: _unchanged,
}


def apply(state: Thing | None, event: Event) -> Thing | None:
    """The Thing after `event`: None when it does not exist."""
    if event.type == THING_CREATED:
        return _created(state, event)
    strategy = THING_EVENTS.get(event.type)
    if strategy is None:
        raise ValueError(f"unknown event type {event.type!r} at seq {event.seq}")
    if state is None:
        raise ValueError(f"event {event.seq} ({event.type}) applies to a Thing that does not exist")
    return strategy(state, event)


def applied(state: Thing | None, event: Event) -> Thing:
    """`apply` for an event after which the Thing exists (anything but its deletion)."""
    thing = apply(state, event)
    assert thing is not None
    return thing


def fold(events: list[Event]) -> Thing | None:
    state: Thing | None = None
    for event in events:
        state = apply(state, event)
    return state


# -- Records kept as documents (tokens, claims, WoT bindings) --------------------------------
#
# Their rows hold secrets (hashes, sealed credentials) that the journal must never carry, so
# the journal folds their public view: what identifies the record, who made it, its state.

ApplyRecord = Callable[[JSONObject | None, Event], JSONObject | None]


def _record_created(_state: JSONObject | None, event: Event) -> JSONObject:
    return {**(event.patch or {}), "created_at": event.ts, "created_by": event.actor}


def _record_revoked(state: JSONObject | None, event: Event) -> JSONObject:
    return {**(state or {}), "revoked_at": event.ts, "revoked_by": event.actor}


def _claim_used(state: JSONObject | None, event: Event) -> JSONObject:
    uses = (state or {}).get("uses", 0)
    return {**(state or {}), "uses": (uses if isinstance(uses, int) else 0) + 1}


def _released(_state: JSONObject | None, _event: Event) -> None:
    return None


RECORD_EVENTS: Final[dict[str, dict[str, ApplyRecord]]] = {
    TOKEN: {TOKEN_CREATED: _record_created, TOKEN_REVOKED: _record_revoked},
    CLAIM: {
        CLAIM_CREATED: _record_created,
        CLAIM_USED: _claim_used,
        CLAIM_REVOKED: _record_revoked,
    },
    # Adopting again updates the binding (poll interval, TD URL, whether it has credentials).
    WOT_BINDING: {
        WOT_ADOPTED: lambda state, event: {**(state or {}), **_record_created(state, event)},
        WOT_RELEASED: _released,
    },
    INVOCATION: {
        INVOCATION_CREATED: _record_created,
        INVOCATION_CHANGED: lambda state, event: {
            **(state or {}),
            **(event.patch or {}),
            "updated_at": event.ts,
        },
    },
    ROLLOUT: {
        ROLLOUT_CREATED: _record_created,
        ROLLOUT_STATUS_CHANGED: lambda state, event: {**(state or {}), **(event.patch or {})},
        ROLLOUT_WAVE_STARTED: lambda state, event: {
            **(state or {}),
            "wave": (event.patch or {}).get("wave"),
        },
    },
}

# Every kind and its event types: what `GET /journal?kind=` accepts.
KINDS: Final[dict[str, frozenset[str]]] = {
    THING: frozenset({THING_CREATED, *THING_EVENTS}),
    **{kind: frozenset(table) for kind, table in RECORD_EVENTS.items()},
}


def apply_record(state: JSONObject | None, event: Event) -> JSONObject | None:
    """The public view of a token, claim or binding after `event` (None: gone)."""
    strategy = RECORD_EVENTS.get(event.kind, {}).get(event.type)
    if strategy is None:
        raise ValueError(f"unknown {event.kind} event type {event.type!r} at seq {event.seq}")
    return strategy(state, event)


def fold_record(events: list[Event]) -> JSONObject | None:
    state: JSONObject | None = None
    for event in events:
        state = apply_record(state, event)
    return state


@dataclass(frozen=True, slots=True)
class ChainBreak:
    seq: int
    reason: str


def check_link(
    expected_seq: int, previous_hash: str, row_seq: int, row_hash: str, body: bytes
) -> tuple[str, ChainBreak | None]:
    """Check one stored journal row against the chain; return the hash to continue from."""
    if row_seq != expected_seq:
        return row_hash, ChainBreak(expected_seq, f"expected seq {expected_seq}, found {row_seq}")
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return row_hash, ChainBreak(row_seq, "the event body is not JSON")
    if not isinstance(parsed, dict) or parsed.get("seq") != row_seq:
        return row_hash, ChainBreak(row_seq, "the event body names another seq")
    computed = chain_hash(previous_hash, body)
    if computed != row_hash:
        return row_hash, ChainBreak(
            row_seq, "the hash does not match the event and its predecessor"
        )
    return row_hash, None
