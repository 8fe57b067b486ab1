from dataclasses import replace
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotas.domain import journal as ev
from iotas.domain.journal import Event, chain_hash, check_link


def _event(seq: int, type_: str, patch: dict[str, Any] | None, thing: str = "acme:p") -> Event:
    return Event(seq, f"2026-01-01T00:00:{seq:02d}.000000Z", thing, type_, "alice", None, patch)


def test_fold_rebuilds_state() -> None:
    events = [
        _event(
            1,
            ev.THING_CREATED,
            {
                "kind": "pump",
                "attributes": {"a": 1},
                "labels": {},
                "links": [],
                "description": None,
            },
        ),
        _event(2, ev.THING_UPDATED, {"attributes": {"b": 2}, "labels": {"t": "x"}}),
        _event(3, ev.DESIRED_CHANGED, {"sp": 3}),
        _event(4, ev.REPORTED_CHANGED, {"sp": 3}),
    ]
    thing = ev.fold(events)
    assert thing is not None
    assert thing.attributes == {"a": 1, "b": 2} and thing.labels == {"t": "x"}
    assert thing.revision == 4 and thing.twin.version == 2
    assert thing.twin.status == "in_sync"
    assert thing.created_at == events[0].ts and thing.updated_at == events[3].ts
    assert ev.fold([*events, _event(5, ev.THING_DELETED, None)]) is None


def test_canonical_form_is_stable_and_round_trips() -> None:
    event = _event(7, ev.DESIRED_CHANGED, {"z": 1, "a": {"y": "é", "b": 2.5}})
    body = event.canonical()
    assert body.index(b'"actor"') < body.index(b'"seq"')
    assert Event.from_canonical(body) == event
    assert b"\\u" not in body


def test_chain_detects_edits() -> None:
    first, second = _event(1, ev.DESIRED_CHANGED, {"a": 1}), _event(2, ev.DESIRED_CHANGED, {"a": 2})
    h1 = chain_hash(ev.GENESIS_HASH, first.canonical())
    h2 = chain_hash(h1, second.canonical())
    _, ok = check_link(2, h1, 2, h2, second.canonical())
    assert ok is None
    edited = replace(second, patch={"a": 3}).canonical()
    _, broken = check_link(2, h1, 2, h2, edited)
    assert broken is not None and broken.seq == 2
    _, gap = check_link(2, h1, 3, h2, second.canonical())
    assert gap is not None and gap.seq == 2
    _, garbage = check_link(2, h1, 2, h2, b"not json")
    assert garbage is not None


@given(
    st.dictionaries(
        st.text(max_size=5), st.integers(-(2**63), 2**63 - 1) | st.text(max_size=5), max_size=5
    )
)
def test_any_patch_round_trips_through_the_canonical_body(patch: dict[str, Any]) -> None:
    event = _event(1, ev.REPORTED_CHANGED, patch)
    assert Event.from_canonical(event.canonical()) == event


def test_presence_credentials_and_device_events_fold() -> None:
    created = _event(
        1,
        ev.THING_CREATED,
        {"kind": "pump", "attributes": {}, "labels": {}, "links": [], "description": None},
    )
    online = _event(2, ev.THING_CONNECTED, None)
    cred = _event(3, ev.CREDENTIAL_ADDED, {"id": "c1", "type": "password"})
    said = _event(4, ev.THING_EVENT, {"name": "overheat", "data": {"t": 90}})
    offline = _event(5, ev.THING_DISCONNECTED, None)
    thing = ev.fold([created, online])
    assert thing is not None and thing.connected and thing.revision == 2
    thing = ev.fold([created, online, cred, said])
    assert thing is not None and thing.connected and thing.revision == 3
    thing = ev.fold([created, online, cred, said, offline])
    assert thing is not None and not thing.connected and thing.revision == 4
    assert set(ev.EVENT_TYPES) >= {ev.THING_CONNECTED, ev.THING_EVENT, ev.CREDENTIAL_REVOKED}


def test_a_things_body_keeps_its_form_and_other_kinds_name_theirs() -> None:
    thing = _event(1, ev.THING_CONNECTED, None)
    assert orjson.loads(thing.canonical()).keys() == {
        "seq",
        "ts",
        "thing_id",
        "type",
        "actor",
        "cause",
        "patch",
        "before",
    }
    token = Event(
        2, thing.ts, "ab12", ev.TOKEN_CREATED, "alice", None, {"id": "ab12"}, kind=ev.TOKEN
    )
    body = orjson.loads(token.canonical())
    assert (body["kind"], body["record_id"]) == ("token", "ab12") and "thing_id" not in body
    for event in (thing, token):
        assert Event.from_canonical(event.canonical()) == event
        parsed = orjson.loads(event.canonical())
        assert ev.kind_and_id(parsed) == (event.kind, event.record_id)


def test_every_kind_has_one_table_and_every_type_applies() -> None:
    assert set(ev.KINDS) == {
        ev.THING, ev.TOKEN, ev.CLAIM, ev.WOT_BINDING, ev.INVOCATION, ev.ROLLOUT
    }  # fmt: skip
    assert ev.KINDS[ev.THING] == set(ev.EVENT_TYPES)
    types = [t for kind in ev.KINDS.values() for t in kind]
    assert len(types) == len(set(types)), "an event type belongs to one kind"
    with pytest.raises(ValueError, match="token_exploded"):
        ev.apply_record(None, _event(1, "token_exploded", None))


def test_a_claim_folds_from_its_events() -> None:
    def claim(seq: int, type_: str, patch: dict[str, Any] | None, actor: str = "alice") -> Event:
        return Event(
            seq, f"2026-01-01T00:00:0{seq}Z", "c1", type_, actor, None, patch, kind=ev.CLAIM
        )

    created = claim(1, ev.CLAIM_CREATED, {"id": "c1", "max_uses": 2})
    used = claim(2, ev.CLAIM_USED, {"id": "c1", "thing_id": "acme:m-1"}, actor="claim:c1")
    revoked = claim(3, ev.CLAIM_REVOKED, {"id": "c1"}, actor="bob")
    assert ev.fold_record([created, used, used, revoked]) == {
        "id": "c1",
        "max_uses": 2,
        "created_at": created.ts,
        "created_by": "alice",
        "uses": 2,
        "revoked_at": revoked.ts,
        "revoked_by": "bob",
    }
    adopted = Event(4, created.ts, "acme:l", ev.WOT_ADOPTED, "a", None, {}, kind=ev.WOT_BINDING)
    released = replace(adopted, seq=5, type=ev.WOT_RELEASED)
    assert ev.fold_record([adopted, released]) is None
