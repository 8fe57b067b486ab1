"""Spreading work over time: a fixed average rate for the whole fleet. Pure: no I/O.

One pacer for the fleet, not one timer per device: the total rate is exact whatever the
number of devices, and thousands of devices cost one timer instead of thousands.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class Pacer:
    """Hands out `rate` tokens per second on average, from `start` on.

    `take(now)` returns how many are due. When the caller falls behind by more than
    `max_backlog` seconds' worth, the excess is given up (counted in `skipped`) rather than
    sent in one burst: a simulator that cannot keep up should say so, not flood the broker
    when it catches up.
    """

    def __init__(self, rate: float, start: float, *, max_backlog: float = 1.0) -> None:
        if not rate > 0 or math.isinf(rate):
            raise ValueError(f"a rate is a positive number, not {rate}")
        self.rate = rate
        self.start = start
        self.issued = 0
        self.skipped = 0
        self._max_due = max(1, math.ceil(rate * max_backlog))

    def take(self, now: float) -> int:
        # The epsilon keeps 0.1 s at 10/s from flooring 0.999... to no token.
        due = math.floor((now - self.start) * self.rate + 1e-9) - self.issued
        if due <= 0:
            return 0
        if due > self._max_due:
            self.skipped += due - self._max_due
            self.issued += due - self._max_due
            due = self._max_due
        self.issued += due
        return due

    def next_at(self) -> float:
        """When the next token falls due."""
        return self.start + (self.issued + 1) / self.rate


class Rotation(Generic[T]):
    """Turns over a growing list in one shuffled order: with a total rate R over N items,
    each gets R/N per second, evenly spaced, and no two runs of a fleet line up alike.
    Items added later (devices started gradually) join the rotation in random order."""

    def __init__(self, items: Sequence[T], rng: random.Random) -> None:
        self.items = items
        self.rng = rng
        self._order: list[int] = []
        self._position = 0

    def next(self) -> T | None:
        if len(self._order) < len(self.items):
            added = list(range(len(self._order), len(self.items)))
            self.rng.shuffle(added)
            self._order.extend(added)
        if not self._order:
            return None
        item = self.items[self._order[self._position % len(self._order)]]
        self._position += 1
        return item


def drops_now(rng: random.Random, elapsed: float, mean_uptime: float) -> bool:
    """Whether a flaky connection fails within the next `elapsed` seconds, when failures
    come at random (exponential lifetimes) every `mean_uptime` seconds on average."""
    return rng.random() < 1.0 - math.exp(-elapsed / mean_uptime)
