"""Telling live readers (SSE) that the journal grew.

Commits in this process wake readers at once; a short poll picks up commits made by other
processes (another API node on the same PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Iterable


class JournalSignal:
    def __init__(self) -> None:
        self.last_seq = 0
        self._changed = asyncio.Event()
        # The last seq this process committed with an event of each type.
        self._last_of_type: dict[str, int] = {}

    def committed(self, seq: int, types: Iterable[str] = ()) -> None:
        """A commit of this process, up to `seq`, with events of these types."""
        if seq > self.last_seq:
            self.last_seq = seq
        for type_ in types:
            self._last_of_type[type_] = seq
        self._changed.set()
        # Everyone waiting has been woken; the next waiters wait for the next commit.
        self._changed = asyncio.Event()

    def committed_any(self, types: Collection[str], after: int) -> bool:
        """Whether this process committed an event of one of `types` after seq `after`."""
        return any(self._last_of_type.get(t, 0) > after for t in types)

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
