"""The rollout rules, pure: the spec's checks, wave sizes, the gate between waves, the failure
threshold, what may start now, the window, and the status rules in their order."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iotas.domain import rollouts as ro
from iotas.domain.errors import Conflict, InvalidInput
from iotas.domain.rollouts import Snapshot, Spec, Status, Wave, WaveCounts

NOW = 1_800_000_000_000_000


def parse(**extra: Any) -> Spec:
    body = {"name": "n", "target": 'kind == "meter"', "change": {"type": "t"}, **extra}
    return ro.parse_spec(body, lambda change: change if isinstance(change, dict) else {})


def snap(spec: Spec, waves: list[WaveCounts], **extra: Any) -> Snapshot:
    opens = extra.pop("opens", [NOW] + [None] * (len(waves) - 1))
    return Snapshot(spec, extra.pop("status", Status.RUNNING), NOW, waves, opens, **extra)


def test_a_spec_round_trips_through_its_stored_form() -> None:
    spec = parse(
        waves=[{"count": 5, "wait": 60}, {"percent": 25}],
        max_in_flight=10,
        rate_per_minute=100,
        success_threshold={"percent": 90},
        failure_threshold={"percent": 5, "min_executed": 20},
        timeout=120,
        start_at="2027-01-01T00:00:00Z",
        window={"start": "22:00", "end": "04:00", "tz": "Europe/Paris"},
        continuous=True,
    )
    assert ro.spec_from_json(spec.as_json()) == spec


@pytest.mark.parametrize(
    ("extra", "member"),
    [
        ({"target": "kind =="}, "target"),
        ({"waves": [{"count": 0}]}, "waves/0/count"),
        ({"waves": [{"percent": 10, "wait": -1}]}, "waves/0/wait"),
        ({"failure_threshold": {"count": 1, "percent": 1}}, "failure_threshold"),
        ({"window": {"start": "10:00", "end": "10:00"}}, "window"),
        ({"timeout": 0}, "timeout"),
        ({"continuous": "yes"}, "continuous"),
        ({"rate_per_minute": True}, "rate_per_minute"),
    ],
)
def test_a_bad_spec_names_its_member(extra: dict[str, Any], member: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(**extra)
    assert caught.value.extra["field"] == member


def test_wave_sizes_round_percents_up_and_repeat_the_last_wave() -> None:
    waves = (Wave(percent=1), Wave(count=100), Wave(percent=50))
    assert ro.wave_sizes(waves, 1000) == [10, 100, 500, 390]
    assert ro.wave_sizes((Wave(percent=10),), 15) == [2, 2, 2, 2, 2, 2, 2, 1]
    assert ro.wave_sizes((Wave(count=3),), 0) == []
    assert ro.wave_sizes((Wave(percent=0.01),), 5) == [1, 1, 1, 1, 1]


@given(
    total=st.integers(0, 5000),
    waves=st.lists(
        st.one_of(
            st.builds(Wave, count=st.integers(1, 2000)),
            st.builds(Wave, percent=st.floats(0.1, 100)),
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_waves_cover_the_target_exactly_once(total: int, waves: list[Wave]) -> None:
    sizes = ro.wave_sizes(waves, total)
    assert sum(sizes) == total and all(size > 0 for size in sizes)
    assert len(ro.assign_waves(sizes)) == total


def test_the_spread_is_stable_and_a_permutation() -> None:
    ids = [f"acme:m-{i}" for i in range(50)]
    assert ro.spread("ro-1", ids) == ro.spread("ro-1", list(reversed(ids)))
    assert sorted(ro.spread("ro-1", ids)) == sorted(ids)
    assert ro.spread("ro-1", ids) != ro.spread("ro-2", ids)


def test_the_gate_waits_for_the_success_threshold_or_the_whole_wave() -> None:
    with_threshold = parse(success_threshold={"percent": 80})
    assert not ro.gate(with_threshold, WaveCounts(10, {"succeeded": 7, "in_flight": 3}))
    assert ro.gate(with_threshold, WaveCounts(10, {"succeeded": 8, "in_flight": 2}))
    assert ro.stuck(with_threshold, WaveCounts(10, {"succeeded": 7, "failed": 3}))
    plain = parse()
    assert not ro.gate(plain, WaveCounts(10, {"succeeded": 9, "in_flight": 1}))
    assert ro.gate(plain, WaveCounts(10, {"succeeded": 1, "failed": 9}))
    assert not ro.stuck(plain, WaveCounts(10, {"failed": 10}))


def test_the_next_wave_opens_after_the_wait() -> None:
    spec = parse(waves=[{"count": 2, "wait": 30}, {"count": 2}])
    state = snap(spec, [WaveCounts(2, {"succeeded": 2}), WaveCounts(2, {"pending": 2})])
    assert ro.next_openings(state) == [(1, NOW + 30_000_000)]
    later = snap(spec, list(state.waves), opens=[NOW, NOW + 30_000_000])
    assert not later.opened(1) and ro.admissible(later) == (0, [])


def test_the_failure_threshold() -> None:
    by_count = parse(failure_threshold={"count": 3})
    assert not ro.failure_reached(snap(by_count, [WaveCounts(10, {"failed": 2})]))
    assert ro.failure_reached(snap(by_count, [WaveCounts(10, {"failed": 3})]))
    by_percent = parse(failure_threshold={"percent": 10, "min_executed": 20})
    few = [WaveCounts(100, {"failed": 5, "succeeded": 5})]
    assert not ro.failure_reached(snap(by_percent, few))  # 50 %, but only 10 finished
    enough = [WaveCounts(100, {"failed": 2, "succeeded": 18})]
    assert ro.failure_reached(snap(by_percent, enough))
    assert not ro.failure_reached(
        snap(by_percent, [WaveCounts(100, {"failed": 1, "succeeded": 19})])
    )


def test_what_may_start_now() -> None:
    spec = parse(max_in_flight=5, rate_per_minute=8)
    waves = [WaveCounts(10, {"pending": 8, "in_flight": 2}), WaveCounts(10, {"pending": 10})]
    assert ro.admissible(snap(spec, waves)) == (3, [0])
    assert ro.admissible(snap(spec, waves, started_last_minute=7)) == (1, [0])
    assert ro.admissible(snap(spec, waves, status=Status.PAUSED)) == (0, [])
    night = parse(window={"start": "22:00", "end": "04:00", "tz": "UTC"})
    # NOW is 2027-01-15T08:00:00Z: outside the window.
    assert ro.admissible(snap(night, waves)) == (0, [])


@pytest.mark.parametrize(
    ("hhmm", "inside"), [("21:59", False), ("22:00", True), ("03:59", True), ("04:00", False)]
)
def test_a_window_across_midnight(hhmm: str, inside: bool) -> None:
    window = ro.Window(22 * 60, 4 * 60, "UTC")
    hours, minutes = map(int, hhmm.split(":"))
    midnight = NOW - NOW % 86_400_000_000
    assert window.open_at(midnight + (hours * 60 + minutes) * 60_000_000) is inside


def test_the_rules_fire_in_order() -> None:
    spec = parse(failure_threshold={"count": 1})
    # The last Thing failed past the threshold: halted, not succeeded.
    done = snap(spec, [WaveCounts(2, {"succeeded": 1, "failed": 1})])
    rule = ro.decide(done)
    assert rule is not None and rule.name == "failure_threshold" and rule.target is Status.HALTED
    fine = snap(parse(), [WaveCounts(2, {"succeeded": 2})])
    rule = ro.decide(fine)
    assert rule is not None and rule.target is Status.SUCCEEDED
    continuous = snap(parse(continuous=True), [WaveCounts(2, {"succeeded": 2})])
    assert ro.decide(continuous) is None
    due = snap(parse(), [], status=Status.SCHEDULED, opens=[])
    rule = ro.decide(due)
    assert rule is not None and rule.name == "start"
    assert (
        ro.decide(
            snap(parse(start_at="2099-01-01T00:00:00Z"), [], status=Status.SCHEDULED, opens=[])
        )
        is None
    )


def test_commands() -> None:
    running = snap(parse(), [WaveCounts(2, {"pending": 2})])
    assert ro.commanded(running, "pause").target is Status.PAUSED
    with pytest.raises(Conflict, match="cannot be resumed"):
        ro.commanded(running, "resume")
    halted = snap(parse(), [WaveCounts(2, {"failed": 2})], status=Status.HALTED)
    for command in ("pause", "resume", "cancel"):
        with pytest.raises(Conflict):
            ro.commanded(halted, command)
    assert {"pause", "resume", "cancel"} == ro.COMMANDS
