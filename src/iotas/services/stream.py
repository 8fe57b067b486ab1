"""Telling live readers (SSE) that the journal grew.

Commits in this process wake readers at once; a short poll picks up commits made by other
processes (another API node on the same PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib


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

    def watch(self) -> asyncio.Event:
        """Take before reading the journal and pass to `wait`: a commit that lands while the
        read runs then ends the wait at once instead of being missed."""
        return self._changed

    async def wait(self, within: float, watched: asyncio.Event | None = None) -> None:
        """Return at the next commit (or at once if one came since `watched` was taken), or
        after `within` seconds."""
        changed = self._changed if watched is None else watched
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), within)
