"""Plausible sensor values: bounded, mean-reverting random walks. Pure: no I/O.

Each kind of device measures three things (one telemetry message carries all three). A walk
takes a Gaussian step, is pulled back towards its target (so it wanders but does not drift
off), and stays within physical bounds. A desired value with the same key as a signal (a
pump's `speed`) becomes that signal's target: the device visibly follows its desired state.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Signal:
    key: str
    start: tuple[float, float]  # initial value drawn uniformly from this range
    step: float  # standard deviation of one step
    low: float
    high: float
    decimals: int = 1
    pull: float = 0.05  # share of the distance to the target closed per step
    drift: float = 0.0  # added every step (a battery drains)
    reset_to: float | None = None  # on reaching `low` (a battery replaced)


SIGNALS: dict[str, tuple[Signal, ...]] = {
    "sensor": (
        Signal("temp", (18.0, 24.0), 0.15, -20.0, 60.0, 2),
        Signal("hum", (35.0, 60.0), 0.5, 0.0, 100.0, 1),
        Signal("battery", (70.0, 100.0), 0.01, 0.0, 100.0, 2, 0.0, -0.005, 100.0),
    ),
    "pump": (
        Signal("temp", (35.0, 45.0), 0.2, -10.0, 120.0, 2),
        Signal("pressure", (2.0, 4.0), 0.05, 0.0, 16.0, 2),
        Signal("speed", (1100.0, 1500.0), 8.0, 0.0, 3000.0, 0, 0.1),
    ),
    "gateway": (
        Signal("temp", (38.0, 50.0), 0.2, -10.0, 95.0, 1),
        Signal("cpu", (5.0, 30.0), 2.0, 0.0, 100.0, 1),
        Signal("rssi", (-85.0, -55.0), 1.0, -120.0, -30.0, 0),
    ),
}


class RandomWalk:
    def __init__(self, signal: Signal, rng: random.Random) -> None:
        self.signal = signal
        self.rng = rng
        self.value = rng.uniform(*signal.start)
        self.target = self.value

    def step(self) -> float:
        s = self.signal
        self.value += self.rng.gauss(0.0, s.step) + s.pull * (self.target - self.value) + s.drift
        if s.drift:
            self.target += s.drift  # drift moves the whole walk, not only today's value
        if self.value <= s.low and s.reset_to is not None:
            self.value = self.target = s.reset_to
        self.value = min(s.high, max(s.low, self.value))
        return round(self.value, s.decimals) if s.decimals else float(round(self.value))


class Signals:
    """The walks of one device."""

    def __init__(self, kind: str, rng: random.Random) -> None:
        self.walks = [RandomWalk(signal, rng) for signal in SIGNALS[kind]]

    def sample(self) -> dict[str, float]:
        return {walk.signal.key: walk.step() for walk in self.walks}

    def follow(self, desired: dict[str, Any]) -> None:
        """Make numeric desired values with a signal's key that signal's target."""
        for walk in self.walks:
            value = desired.get(walk.signal.key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                walk.target = min(walk.signal.high, max(walk.signal.low, float(value)))
