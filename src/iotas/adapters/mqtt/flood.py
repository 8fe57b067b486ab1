"""A per-device message budget: a token bucket per Thing, for the embedded broker.

One device in a loop must not take the ingest path from every other. Past its budget, a QoS 0
message (which the device accepts may be lost) is refused, counted as `rate_limited`, before
any parsing or database work; a QoS 1 or 2 message is not refused (it may be a backlog the
device kept while offline, and refusing an acknowledged message would lose it) but waits for
its turn before it is taken and acknowledged, which slows that device alone: its own
connection waits, the others do not. The budget is generous for a real device (a reading a
second is typical) and refills continuously.
"""

from __future__ import annotations

from dataclasses import dataclass

# Buckets that have refilled completely are forgotten once this many exist (a sender of
# random topic names on an open broker must not grow memory without bound).
PRUNE_AT = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class FloodGuard:
    def __init__(self, rate: float, burst: float) -> None:
        """`rate` messages per second per device, with bursts of up to `burst`; a rate of
        0 turns the guard off."""
        if rate < 0 or burst < 1:
            raise ValueError("rate must be >= 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}
        self._prune_at = PRUNE_AT

    def allow(self, thing_id: str, now: float) -> bool:
        """Whether the device may send one more message at monotonic time `now` (taking
        its token if so)."""
        if self.rate == 0:
            return True
        bucket = self._refilled(thing_id, now)
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def reserve(self, thing_id: str, now: float) -> float:
        """Take one message's token, borrowing against the future if need be; return how
        many seconds the message must wait for it (0: none)."""
        if self.rate == 0:
            return 0.0
        bucket = self._refilled(thing_id, now)
        bucket.tokens -= 1
        return 0.0 if bucket.tokens >= 0 else -bucket.tokens / self.rate

    def _refilled(self, thing_id: str, now: float) -> _Bucket:
        bucket = self._buckets.get(thing_id)
        if bucket is None:
            if len(self._buckets) >= self._prune_at:
                self._prune(now)
            bucket = self._buckets[thing_id] = _Bucket(self.burst, now)
            return bucket
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
        bucket.at = now
        return bucket

    def _prune(self, now: float) -> None:
        """Forget devices whose bucket is full again: forgetting them changes nothing."""
        full = [
            key
            for key, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.at) * self.rate >= self.burst
        ]
        for key in full:
            del self._buckets[key]
        self._prune_at = max(PRUNE_AT, 2 * len(self._buckets))

    def __len__(self) -> int:
        return len(self._buckets)
