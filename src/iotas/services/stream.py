"""Telling live readers (SSE) that the journal grew.

Commits in this process wake readers at once; a short poll picks up commits made by other
processes (another API node on the same PostgreSQL).
"""

from __future__ import annotations

import asyncio


class JournalSignal:
    def __init__(self) -> None:
        self.last_seq = 0
        self._changed = asyncio.Event()

    def committed(self, seq: int) -> None:
        if seq > self.last_seq:
            self.last_seq = seq
        self._changed.set()
        # Everyone waiting has been woken; the next waiters wait for the next commit.
        self._changed = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        changed = self._changed
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            pass
