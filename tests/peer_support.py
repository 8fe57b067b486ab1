"""What the tests of third-party peers share: reading a peer's output without ever blocking the
event loop, and finding node with the node-wot install (skipped without them, except under
CI=true, where that is a failure)."""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import threading
import time
from pathlib import Path
from typing import IO

import pytest

PEERS = Path(__file__).resolve().parent / "peers"
NODE_WOT = PEERS / "node-wot"
IN_CI = os.environ.get("CI", "").lower() == "true"


class PeerLines:
    """A peer's stdout, read by a daemon thread: waiting for a line is bounded and never leaves
    a blocked read behind (a read in the event loop's executor that never returns would hang
    the loop's close, and with it the whole test run)."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put("")  # end of output: the peer exited

    def next(self, within: float) -> str:
        """The next line; "" when the peer has exited; an AssertionError after `within` s."""
        try:
            return self._queue.get(timeout=within)
        except queue.Empty:
            raise AssertionError(f"the peer printed nothing within {within} s") from None

    async def next_async(self, within: float) -> str:
        deadline = time.monotonic() + within
        while True:
            try:
                return self._queue.get_nowait()
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the peer printed nothing within {within} s") from None
                await asyncio.sleep(0.02)


def node_with(*packages: str) -> str:
    """The `node` executable, with these packages installed under tests/peers/node-wot."""
    node = shutil.which("node")
    missing = [p for p in packages if not (NODE_WOT / "node_modules" / p).is_dir()]
    if node is None or missing:
        reason = "node is not installed" if node is None else "run `make test` (npm ci) first"
        if IN_CI:
            pytest.fail(f"CI requires the node-wot peer: {reason}")
        pytest.skip(f"node-wot peer unavailable: {reason}")
    return node
