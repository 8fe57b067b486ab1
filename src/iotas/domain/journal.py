"""Journal events, their canonical form and hash chain, and the fold that turns them into state.

Commands validate and produce events; `apply` below is the only place an event changes a
Thing. The live write path and the time-travel read (`?at=`) both fold with it, so a Thing
read as it was at an instant is exactly the state the live path had after that event.
"""

from __future__ import annotations

import hashlib
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


@dataclass(frozen=True, slots=True)
class Event:
    """One change. `patch` is the effective change; `before` is set where state is removed."""

    seq: int
    ts: str
    thing_id: str
    type: str
    actor: str
    cause: str | None
    patch: JSONObject | None
    before: JSONObject | None = None

    def canonical(self) -> bytes:
        """The bytes that are hashed and stored: sorted keys, no spaces, UTF-8."""
        # Not dataclasses.asdict: it deep-copies the patch, and this runs on every change.
        return orjson.dumps(
            {
                "seq": self.seq,
                "ts": self.ts,
                "thing_id": self.thing_id,
                "type": self.type,
                "actor": self.actor,
                "cause": self.cause,
                "patch": self.patch,
                "before": self.before,
            },
            option=orjson.OPT_SORT_KEYS,
        )

    @staticmethod
    def from_canonical(body: bytes | str) -> Event:
        return Event(**orjson.loads(body))


def chain_hash(previous_hash: str, body: bytes) -> str:
    return hashlib.sha256(previous_hash.encode("ascii") + body).hexdigest()


def apply(state: Thing | None, event: Event) -> Thing | None:
    """The state after `event`: None when the Thing does not exist."""
    if event.type == THING_CREATED:
        assert event.patch is not None
        thing = Thing(id=event.thing_id, kind=event.patch["kind"], created_at=event.ts)
        return _touched(thing.with_record(event.patch), event)
    if state is None:
        raise ValueError(f"event {event.seq} ({event.type}) applies to a Thing that does not exist")
    if event.type == THING_DELETED:
        return None
    if event.type == THING_UPDATED:
        assert event.patch is not None
        record = merge_patch.apply(state.record(), event.patch)
        return _touched(state.with_record(record), event)
    if event.type in (DESIRED_CHANGED, REPORTED_CHANGED):
        assert event.patch is not None
        side: Side = "desired" if event.type == DESIRED_CHANGED else "reported"
        twin = state.twin.patched(side, event.patch, ts=event.ts, source=event.actor)
        # One `replace`, not two: this runs for every change.
        return replace(state, twin=twin, revision=state.revision + 1, updated_at=event.ts)
    if event.type in (THING_CONNECTED, THING_DISCONNECTED):
        return _touched(replace(state, connected=event.type == THING_CONNECTED), event)
    if event.type in (CREDENTIAL_ADDED, CREDENTIAL_REVOKED):
        return _touched(state, event)
    if event.type == THING_QUARANTINED:
        assert event.patch is not None
        quarantine = {"since": event.ts, "by": event.actor, **event.patch}
        return _touched(replace(state, quarantine=quarantine), event)
    if event.type == THING_RELEASED:
        return _touched(replace(state, quarantine=None), event)
    if event.type in (THING_EVENT, ADAPTER_ATTEMPT, SNAPSHOT_TAKEN):
        return state
    raise ValueError(f"unknown event type {event.type!r} at seq {event.seq}")


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


def _touched(thing: Thing, event: Event) -> Thing:
    return replace(thing, revision=thing.revision + 1, updated_at=event.ts)


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
