"""The rules of invocations: the move table, ttl, ids, input validation, results."""

from __future__ import annotations

import pytest

from iotas.domain import invocations as inv
from iotas.domain import journal as ev
from iotas.domain.errors import Conflict, InvalidInput
from iotas.domain.invocations import FINAL, Invocation, Status


def test_final_statuses_move_nowhere_and_the_others_as_the_table_says() -> None:
    for final in FINAL:
        for target in Status:
            assert not inv.can_move(final, target)
    assert inv.can_move(Status.QUEUED, Status.DELIVERED)
    assert inv.can_move(Status.DELIVERED, Status.QUEUED)  # a device dropped before acking
    assert inv.can_move(Status.RUNNING, Status.RUNNING)  # progress
    assert inv.can_move(Status.QUEUED, Status.REJECTED)
    assert not inv.can_move(Status.DELIVERED, Status.REJECTED)
    assert not inv.can_move(Status.RUNNING, Status.QUEUED)
    assert not inv.can_move(Status.RUNNING, Status.DELIVERED)
    with pytest.raises(Conflict, match="it is final"):
        inv.check_move("inv-x", Status.SUCCEEDED, Status.CANCELLED)


def test_ttl_has_a_default_and_bounds() -> None:
    assert inv.ttl_us(None) == 3_600_000_000
    assert inv.ttl_us(2.5) == 2_500_000
    assert inv.ttl_us(30 * 86_400) == 30 * 86_400 * 1_000_000
    for bad in (0, 0.5, -1, 30 * 86_400 + 1, True, "60", float("nan")):
        with pytest.raises(InvalidInput) as caught:
            inv.ttl_us(bad)
        assert caught.value.extra["field"] == "ttl"


def test_ids_sort_in_creation_order_even_within_one_microsecond() -> None:
    ids = [inv.new_id(1_000) for _ in range(50)]
    assert ids == sorted(ids) and len(set(ids)) == 50
    assert all(inv.looks_like_id(i) for i in ids)
    later = inv.new_id(2_000_000_000_000_000)
    assert later > ids[-1]
    assert not inv.looks_like_id("inv-../../etc")


SCHEMA = {
    "input": {
        "type": "object",
        "properties": {
            "brightness": {"type": "integer", "minimum": 0, "maximum": 100},
            "steps": {"type": "array", "items": {"type": "object", "required": ["at"]}},
        },
        "required": ["brightness"],
    }
}


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"brightness": 500}, "/input/brightness"),
        ({"brightness": "x"}, "/input/brightness"),
        ({}, "/input/brightness"),  # the missing member is named, not its object
        ({"brightness": 5, "steps": [{"at": 1}, {}]}, "/input/steps/1/at"),
        ("on", "/input"),
    ],
)
def test_an_input_that_breaks_the_schema_names_the_member(value: object, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        inv.check_input("dim", SCHEMA, value)
    assert caught.value.extra["field"] == field
    assert "'dim'" in caught.value.detail


def test_a_fitting_input_passes_and_no_input_schema_constrains_nothing() -> None:
    inv.check_input("dim", SCHEMA, {"brightness": 5, "steps": [{"at": 1}]})
    inv.check_input("reboot", {}, None)
    inv.check_input("reboot", {}, {"now": True})


def test_results_are_parsed_or_refused_saying_why() -> None:
    ok = inv.parse_result({"status": "succeeded", "output": {"v": 1}})
    assert (ok.status, ok.output, ok.error) == (Status.SUCCEEDED, {"v": 1}, None)
    failed = inv.parse_result({"status": "failed", "error": "jammed"})
    assert failed.error == {"code": "failed", "message": "jammed"}
    assert inv.parse_result({"status": "failed"}).error == {"code": "failed", "message": ""}
    running = inv.parse_result({"status": "running", "progress": 40})
    assert running.progress == 40.0
    bad: object
    for bad in (
        None,
        [],
        {"status": "queued"},
        {"status": "succeeded", "extra": 1},
        {"status": "running", "progress": 101},
        {"status": "running", "progress": True},
        {"status": "failed", "error": {"code": 5}},
    ):
        with pytest.raises(InvalidInput):
            inv.parse_result(bad)


def _queued() -> Invocation:
    return Invocation(
        id="inv-1",
        thing_id="acme:a",
        action="dim",
        input={"brightness": 1},
        status=Status.QUEUED,
        created_us=1,
        updated_us=1,
        expires_us=10,
        actor="ops",
    )


def test_a_result_moves_the_invocation_and_the_patch_says_what_changed() -> None:
    before = _queued()
    running = inv.after_result(before, inv.parse_result({"status": "running", "progress": 5}), 2)
    assert inv.changed_patch(before, running) == {"status": "running", "progress": 5.0}
    done = inv.after_result(running, inv.parse_result({"status": "succeeded", "output": 3}), 3)
    assert (done.status, done.progress, done.output) == (Status.SUCCEEDED, 100.0, 3)
    with pytest.raises(Conflict):
        inv.after_result(done, inv.parse_result({"status": "running"}), 4)
    assert done.as_json()["status"] == "succeeded" and done.as_json()["thing"] == "acme:a"
    assert done.as_json()["created"].endswith("Z")


def test_the_journal_folds_an_invocation_kind() -> None:
    created = ev.Event(
        1, "t1", "inv-1", ev.INVOCATION_CREATED, "ops", None, {"id": "inv-1"}, kind="invocation"
    )
    changed = ev.Event(
        2,
        "t2",
        "inv-1",
        ev.INVOCATION_CHANGED,
        "dev",
        None,
        {"status": "delivered"},
        kind="invocation",
    )
    folded = ev.fold_record([created, changed])
    assert folded is not None and folded["status"] == "delivered" and folded["created_by"] == "ops"
    assert ev.KINDS["invocation"] == {ev.INVOCATION_CREATED, ev.INVOCATION_CHANGED}
