"""The change column of `history` and `journal tail`: a long patch is cut, the cause never
(issue 12, item 15)."""

from __future__ import annotations

from iotas.cli.output import SUMMARY_WIDTH, record_of, summary

CAUSE = "Wartung nach Störung — Ventil Nr. 4 getauscht, naïve Messwerte verworfen, Ticket Ω-4711"


def test_the_cause_is_kept_whole_after_a_long_patch() -> None:
    patch = {f"key{n}": n for n in range(40)}
    text = summary({"patch": patch, "cause": CAUSE})
    change, _, cause = text.partition("  (")
    assert len(change) == SUMMARY_WIDTH and change.endswith("…")
    assert cause == CAUSE + ")"


def test_a_short_change_is_whole_and_the_request_line_is_left_out() -> None:
    assert summary({"patch": {"a": 1}, "cause": CAUSE}) == '{"a":1}  (' + CAUSE + ")"
    assert summary({"patch": {"a": 1}, "cause": "PATCH /api/v1/things/a:b"}) == '{"a":1}'
    assert summary({"patch": None}) == "-"


def test_an_entry_names_its_thing_or_its_kind_and_id() -> None:
    assert record_of({"thing_id": "acme:p", "type": "thing_created"}) == "acme:p"
    token = {"kind": "token", "record_id": "ab12", "type": "token_revoked"}
    assert record_of(token) == "token ab12"
