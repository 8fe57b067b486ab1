"""node-wot 0.9 consumes iotas' own TDs through their forms alone: it finds the directory at
/.well-known/wot (its TD schema accepts the directory's TD and every TD it lists), retrieves a
native Thing's TD through the directory's `retrieveThing` action and searches with
`searchJSONPath`, then reads and writes a property (a value against the data schema is
refused), observes it (long poll) and subscribes to its `telemetry` event."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from peer_support import NODE_WOT, PeerLines, node_with

from .conftest import THING, Start, make_lamp

pytestmark = pytest.mark.wot_runtime


class Lines(PeerLines):
    """The consumer's stdout as JSON objects, one per step it reached."""

    async def until(self, step: str, within: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            line = await self.next_async(max(0.0, deadline - time.monotonic()))
            if not line:
                raise AssertionError(f"node-wot exited before {step!r}")
            if not line.startswith("{"):
                continue  # node-wot's own log lines
            found: dict[str, Any] = orjson.loads(line)
            if found["step"] == "failed":
                raise AssertionError(f"node-wot failed: {found['error']}")
            if found["step"] == step:
                return found


async def test_node_wot_consumes_a_native_things_td(start_iotas: Start, tmp_path: Path) -> None:
    node = node_with("@node-wot/core")
    live = await start_iotas()
    c, base = live.server.client, live.server.url
    await make_lamp(c)
    with (tmp_path / "node-wot.log").open("w") as log:
        process = subprocess.Popen(
            [node, "consumer.js", base, live.server.token, THING, "brightness", "telemetry"],
            cwd=NODE_WOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        assert process.stdout is not None and process.stdin is not None
        out = Lines(process.stdout)
        directory = await out.until("directory")
        assert directory == {"step": "directory", "id": f"{base}/.well-known/wot", "base": base}
        explored = await out.until("explored")
        assert explored["ids"] == [THING] and explored["error"] is None, explored
        retrieved = await out.until("retrieved")
        assert retrieved["context"][0] == "https://www.w3.org/2019/wot/td/v1"
        assert (await out.until("searched"))["values"] == ["Lamp 1"]
        assert (await out.until("read"))["value"] == 20
        await out.until("wrote")
        refused = await out.until("refused")
        assert refused["error"] is not None  # 500 > maximum: 100, answered 422
        twin = (await c.get(f"/api/v1/things/{THING}/twin")).json()
        assert twin["desired"]["brightness"] == 42

        await out.until("observing")
        # The device reports a new brightness and sends telemetry; node-wot hears of both.
        # (Its long poll may be between two requests: report until one is seen.)
        deadline = time.monotonic() + 30
        observed: dict[str, Any] | None = None
        value, sent = 42, set()
        while observed is None and time.monotonic() < deadline:
            sent.add(value)
            await c.patch(f"/api/v1/things/{THING}/twin/reported", json={"brightness": value})
            try:
                observed = await out.until("observed", within=2)
            except AssertionError:
                value += 1
        assert observed is not None and observed["value"] in sent
        event: dict[str, Any] | None = None
        while event is None and time.monotonic() < deadline:
            posted = await c.post(f"/api/v1/things/{THING}/telemetry", json={"temp": 21.5})
            assert posted.status_code == 202, posted.text
            with contextlib.suppress(AssertionError):
                event = await out.until("event", within=2)
        assert event is not None and event["data"]["temp"] == 21.5 and "ts" in event["data"]

        process.stdin.write("stop\n")
        process.stdin.flush()
        await out.until("stopped")
        assert process.wait(15) == 0
    finally:
        process.kill()
        process.wait(10)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()
