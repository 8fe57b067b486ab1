"""Simulated readings: plausible, bounded, and following the desired state."""

from __future__ import annotations

import itertools
import random
import statistics

from iotas.sim.signals import SIGNALS, RandomWalk, Signal, Signals


def test_every_kind_sends_three_values_within_bounds() -> None:
    for kind, signals in SIGNALS.items():
        walks = Signals(kind, random.Random(1))
        for _ in range(5_000):
            sample = walks.sample()
            assert list(sample) == [s.key for s in signals]
            for signal in signals:
                assert signal.low <= sample[signal.key] <= signal.high


def test_a_walk_wanders_but_stays_near_its_target() -> None:
    walk = RandomWalk(Signal("temp", (20.0, 20.0), 0.5, -50.0, 50.0, 2), random.Random(2))
    values = [walk.step() for _ in range(20_000)]
    assert len(set(values)) > 500  # it moves
    assert abs(statistics.mean(values) - 20.0) < 0.5  # mean reverting, no drift
    assert max(values) - min(values) < 15.0
    steps = [abs(b - a) for a, b in itertools.pairwise(values)]
    assert statistics.mean(steps) < 1.0  # a walk, not white noise


def test_values_are_rounded_to_the_signal_s_precision() -> None:
    walks = Signals("pump", random.Random(3))
    sample = walks.sample()
    assert sample["speed"] == int(sample["speed"])
    assert round(sample["pressure"], 2) == sample["pressure"]


def test_a_battery_drains_and_is_replaced_when_empty() -> None:
    battery = Signal("battery", (1.0, 1.0), 0.0, 0.0, 100.0, 2, 0.0, -0.1, 100.0)
    walk = RandomWalk(battery, random.Random(4))
    assert walk.step() < 1.0
    values = [walk.step() for _ in range(20)]
    assert 100.0 in values  # hit zero, then replaced
    assert values[-1] < 100.0  # draining again


def test_desired_values_become_the_targets_of_matching_signals() -> None:
    walks = Signals("pump", random.Random(5))
    walks.follow({"speed": 2400, "mode": "eco", "pressure": True, "$version": 9})
    for _ in range(300):
        sample = walks.sample()
    assert abs(sample["speed"] - 2400) < 150
    walks.follow({"speed": 99_999})  # clamped to what the pump can do
    assert walks.walks[2].target == 3000.0
