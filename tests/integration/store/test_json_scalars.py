"""Documents that are bare JSON scalars (an invocation's input `3`, its output `21.5`) are read
back as stored on both backends (SQLite gives a JSON column numeric affinity)."""

from __future__ import annotations

from typing import Any

import pytest

from iotas.runtime import Runtime
from iotas.services.context import Actor, Context

CTX = Context(Actor("ops"), "test")
DEVICE = Context(Actor("acme:pump", role="device"), "result")


@pytest.mark.parametrize("value", [3, 1.5, -7, 0, "3", True, None, [1, 2], {"a": 1}])
async def test_a_scalar_input_and_output_come_back_as_they_were(rt: Runtime, value: Any) -> None:
    await rt.registry.create(
        CTX, {"id": "acme:pump", "kind": "pump", "description": {"actions": {"go": {"input": {}}}}}
    )
    made = await rt.invocations.create(CTX, "acme:pump", "go", value)
    assert (await rt.invocations.pending("acme:pump"))[0].input == value
    await rt.invocations.report(
        DEVICE, "acme:pump", made.id, {"status": "succeeded", "output": value}
    )
    done = await rt.invocations.get(made.id)
    assert (done.input, done.output) == (value, value)
    assert type(done.input) is type(value)
