"""Counters of what came in and what was refused, for `/api/v1/stats` and `/metrics`.

Rejections are counted per reason and logged at most once per reason per interval, so a
flood of bad messages is visible without flooding the log.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import Any

log = logging.getLogger("iotas.ingest")


class IngestStats:
    def __init__(self, *, log_interval: float = 10.0) -> None:
        self.accepted: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self._log_interval = log_interval
        self._last_logged: dict[str, float] = {}
        self._suppressed: Counter[str] = Counter()
        # Messages held back (not refused) because their device was over its budget.
        self.throttled = 0

    def accept(self, channel: str, count: int = 1) -> None:
        self.accepted[channel] += count

    def reject(self, reason: str, detail: str, *, source: str) -> None:
        self.rejected[reason] += 1
        now = time.monotonic()
        if now - self._last_logged.get(reason, -1e9) < self._log_interval:
            self._suppressed[reason] += 1
            return
        suppressed = self._suppressed.pop(reason, 0)
        self._last_logged[reason] = now
        more = f" ({suppressed} more like it since the last line)" if suppressed else ""
        log.warning("rejected a message from %s: %s: %s%s", source, reason, detail[:300], more)

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": dict(self.accepted),
            "rejected": dict(self.rejected),
            "throttled": self.throttled,
        }

    def prometheus(self) -> str:
        lines = [
            "# HELP iotas_messages_accepted_total Messages from Things accepted, by channel.",
            "# TYPE iotas_messages_accepted_total counter",
            *(
                f'iotas_messages_accepted_total{{channel="{k}"}} {v}'
                for k, v in sorted(self.accepted.items())
            ),
            "# HELP iotas_messages_rejected_total Messages from Things refused, by reason.",
            "# TYPE iotas_messages_rejected_total counter",
            *(
                f'iotas_messages_rejected_total{{reason="{k}"}} {v}'
                for k, v in sorted(self.rejected.items())
            ),
            "# HELP iotas_messages_throttled_total Messages held back for their device's budget.",
            "# TYPE iotas_messages_throttled_total counter",
            f"iotas_messages_throttled_total {self.throttled}",
        ]
        return "\n".join(lines) + "\n"
