"""A Thing's messages other than telemetry are applied in the order it sent them, even when
an earlier one takes longer to commit (an "offline" behind an "online" would leave a device
that is online marked disconnected, and nothing would be sent to it)."""

from __future__ import annotations

import asyncio
from typing import Any

from iotas.adapters.mqtt.ingest import DeviceMessages
from iotas.services.context import Context
from iotas.services.stats import IngestStats


class SlowFirstRegistry:
    def __init__(self) -> None:
        self.applied: list[tuple[str, bool]] = []
        self.calls = 0

    async def set_connected(self, ctx: Context, thing_id: str, connected: bool) -> None:
        self.calls += 1
        if self.calls == 1:
            await asyncio.sleep(0.05)  # the first commit is slow
        self.applied.append((thing_id, connected))


async def test_presence_of_one_thing_is_applied_in_order_others_do_not_wait() -> None:
    registry = SlowFirstRegistry()
    none: Any = None
    messages = DeviceMessages(
        registry=registry,  # type: ignore[arg-type]
        telemetry=none,
        stats=IngestStats(),
    )
    first = messages.take("things/acme:a/presence", b"offline")
    second = messages.take("things/acme:a/presence", b"online")
    other = messages.take("things/acme:b/presence", b"online")
    assert first is not None and second is not None and other is not None
    await asyncio.gather(first, second, other)
    mine = [c for t, c in registry.applied if t == "acme:a"]
    assert mine == [False, True]
    assert registry.applied[0] == ("acme:b", True)  # another Thing's did not wait
