"""Failure allowances: how many failed authentications a key (an address, an address and a
user name) may make in a burst, refilled at a steady rate; a token bucket per key.

A key with a full allowance is not stored at all, so memory holds only keys that failed
lately; a spray of keys is bounded by MAX_KEYS. The first refusal of a key is logged once,
not every refusal: a guesser must not be able to fill the log.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

log = logging.getLogger("iotas.auth")

MAX_KEYS = 100_000


@dataclass(slots=True)
class _Left:
    allowance: float
    since: float  # monotonic time `allowance` was computed
    warned: bool = False


class Allowance:
    def __init__(self, burst: float, refill_per_s: float, *, realm: str) -> None:
        self.burst = burst
        self.refill = refill_per_s
        self.realm = realm  # named in the log
        self._left: dict[str, _Left] = {}

    def left(self, key: str) -> float:
        """What `key` may still fail now (the burst when it has no failure on record)."""
        entry = self._left.get(key)
        if entry is None:
            return self.burst
        now = time.monotonic()
        entry.allowance = min(self.burst, entry.allowance + (now - entry.since) * self.refill)
        entry.since = now
        if entry.allowance >= self.burst:
            del self._left[key]  # back to full: forget it
            return self.burst
        return entry.allowance

    def full(self, key: str) -> bool:
        return self.left(key) >= self.burst

    def allows(self, key: str) -> bool:
        return self.left(key) >= 1.0

    def adjust(self, key: str, delta: float) -> None:
        """Charge (negative) or give back (positive). Never below zero: a client that goes on
        failing stays refused while it does, and is let back in one refill after it stops."""
        allowance = max(0.0, self.left(key) + delta)
        if allowance >= self.burst:
            self._left.pop(key, None)
            return
        entry = self._left.get(key)
        if entry is None:
            if len(self._left) >= MAX_KEYS:
                self._left.clear()  # bounded memory under a spray of keys
            self._left[key] = _Left(allowance, time.monotonic())
        else:
            entry.allowance = allowance

    def wait(self, key: str) -> int:
        """Whole seconds until `key` may fail once more (for Retry-After)."""
        return int(max(0.0, 1.0 - self.left(key)) / self.refill) + 1

    def refused(self, key: str, what: str) -> None:
        """Log the first refusal of `key` since it last had a full allowance."""
        entry = self._left.get(key)
        if entry is not None and not entry.warned:
            entry.warned = True
            log.warning(
                "%s: too many failed authentications from %s; refusing its failures for "
                "about %d s (%s)",
                self.realm,
                key.replace("\0", " as "),
                self.wait(key),
                what,
            )
