from dataclasses import replace
from typing import Any

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
