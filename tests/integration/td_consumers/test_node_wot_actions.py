"""WoT consumers invoke a native Thing's actions through its TD alone, on a real device: the
device SDK's `Device.on_action` over MQTT (the embedded broker on a free port), iotas
between them with its invocation queue.

- node-wot 0.9 gets the output; a failing handler gives it an error; an input the action's
  schema refuses is an error too, and never reaches the device;
- wotpy 0.18's HTTP client and thingctx 0.3 invoke through the same TD and get the output
  (and the failure: thingctx sends {} for an action without input, taken as none).
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from thingctx import HttpBinding, ThingClient
from wotpy.protocols.http.client import HTTPClient
from wotpy.wot.td import ThingDescription

from integration.api.test_invocations import MODEL as LAMP
from integration.mqtt.test_device_sdk import FAST
from iotas.sdk import ActionError, Device
from peer_support import NODE_WOT, node_with
from support import free_port

from .conftest import Live, Start
from .test_node_wot_consumer import Lines

pytestmark = [pytest.mark.wot_runtime, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

THING = "acme:dimmer-1"
MODEL: dict[str, Any] = {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    "title": "Dimmer",
    "actions": {
        "dim": {
            # {"level": 0-100}, required
            "input": LAMP["actions"]["dim"]["input"],
            "output": {
                "type": "object",
                "properties": {"level": {"type": "integer"}, "was": {"type": "integer"}},
            },
        },
        "jam": {"description": "Always fails"},
    },
}


@dataclass
class Dimmer:
    """What the device saw: every input its `dim` handler ran with."""

    live: Live
    td: dict[str, Any]
    inputs: list[Any] = field(default_factory=list)


@pytest.fixture
async def dimmer(start_iotas: Start) -> AsyncIterator[Dimmer]:
    live = await start_iotas(mqtt_port=free_port())
    c = live.server.client
    made = await c.post(
        "/api/v1/things", json={"id": THING, "kind": "dimmer", "description": MODEL}
    )
    assert made.status_code == 201, made.text
    cred = await c.post(f"/api/v1/things/{THING}/credentials", json={"type": "password"})
    assert cred.status_code == 201, cred.text
    td = await c.get(f"/tdd/things/{THING}")
    assert td.status_code == 200, td.text
    port = live.server.settings.mqtt_port
    device = Device(THING, cred.json()["secret"], url=f"mqtt://127.0.0.1:{port}", **FAST)
    seen = Dimmer(live, td.json())
    level = 10

    @device.on_action("dim")
    async def dim(value: Any, progress: Any) -> Any:
        nonlocal level
        seen.inputs.append(value)
        await progress(50)
        was, level = level, value["level"]
        return {"level": level, "was": was}

    @device.on_action("jam")
    async def jam(value: Any, progress: Any) -> Any:
        raise ActionError("the motor is jammed", code="jammed")

    async with device:
        yield seen


async def test_node_wot_invokes_on_a_device_over_mqtt(dimmer: Dimmer, tmp_path: Path) -> None:
    node = node_with("@node-wot/core")
    server = dimmer.live.server
    with (tmp_path / "node-wot.log").open("w") as log:
        process = subprocess.Popen(
            [
                node,
                "actions.js",
                f"{server.url}/tdd/things/{THING}",
                server.token,
                "dim",
                orjson.dumps({"level": 70}).decode(),
                "jam",
                orjson.dumps({"level": 500}).decode(),
            ],
            cwd=NODE_WOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    try:
        assert process.stdout is not None
        out = Lines(process.stdout)
        assert (await out.until("consumed"))["actions"] == ["dim", "jam"]
        assert (await out.until("invoked"))["output"] == {"level": 70, "was": 10}
        failure = await out.until("failure")
        assert failure["error"] and "Bad Gateway" in failure["error"], failure
        refused = await out.until("refused")
        assert refused["error"] and "Bad Request" in refused["error"], refused
        assert process.wait(15) == 0
    finally:
        process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
    # The refused input never reached the device; the failure is the device's own.
    assert dimmer.inputs == [{"level": 70}]
    jams = await server.client.get(
        "/api/v1/invocations", params={"thing": THING, "status": "failed"}
    )
    [jammed] = jams.json()["items"]
    assert jammed["error"] == {"code": "jammed", "message": "the motor is jammed"}


async def test_python_consumers_invoke_on_a_device_over_mqtt(dimmer: Dimmer) -> None:
    server = dimmer.live.server
    # wotpy: generic consumer code, the credential with the TD's own security scheme.
    http = HTTPClient()
    td = dimmer.td
    http.set_security(td["securityDefinitions"][td["security"][0]], {"token": server.token})
    thing = ThingDescription(td)
    assert await http.invoke_action(thing, "dim", {"level": 30}) == {"level": 30, "was": 10}
    with pytest.raises(Exception, match="502"):
        await http.invoke_action(thing, "jam", None)

    # thingctx: checks the input against the TD before sending anything.
    binding = HttpBinding(credentials={"bearer": server.token})
    client = ThingClient(tds=[td], bindings=[binding], validate=True)
    try:
        output = await client.invoke("dimmer-1__dim", {"level": 45})
        assert output == {"level": 45, "was": 30}, output
        refused = await client.invoke("dimmer-1__dim", {"level": 500})
        assert "error" in refused, refused
        # It sends {} for an action without input: no input, and the device's failure back.
        jammed = await client.invoke("dimmer-1__jam")
        assert jammed["status"] == 502 and "jammed" in jammed["error"], jammed
    finally:
        with suppress(Exception):
            await binding.aclose()
    assert dimmer.inputs == [{"level": 30}, {"level": 45}]
