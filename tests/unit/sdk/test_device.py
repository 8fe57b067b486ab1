"""The device SDK's parts that need no broker: arguments, backoff, queueing, desired state."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from iotas.sdk import Device
from iotas.sdk.device import DeviceClosed, MessageDropped, backoff_delay, parse_url


def test_backoff_doubles_to_the_cap_with_jitter_in_the_upper_half() -> None:
    rng = random.Random(1)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (7, 30.0), (60, 30.0), (10**6, 30.0)]:
        delays = [backoff_delay(attempt, initial=0.5, cap=30.0, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) == 200  # jittered: a fleet does not retry in step


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://127.0.0.1", ("127.0.0.1", 1883, False)),
        ("mqtt://broker.example:1884/", ("broker.example", 1884, False)),
        ("mqtts://broker.example", ("broker.example", 8883, True)),
        ("mqtts://[::1]:9000", ("::1", 9000, True)),
    ],
)
def test_mqtt_urls(url: str, expected: tuple[str, int, bool]) -> None:
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h", "not an MQTT URL"),
        ("mqtt://", "not an MQTT URL"),
        ("mqtt://user:pw@h", "credentials"),
        ("mqtt://h/path", "no path"),
    ],
)
def test_bad_mqtt_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_url(url)


def test_thing_ids_and_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="not a valid Thing id"):
        Device("no-namespace")
    with pytest.raises(ValueError, match="not a valid Thing id"):
        Device("a:b/c")
    with pytest.raises(ValueError, match="queue_limit"):
        Device("a:b", queue_limit=0)


async def test_payloads_are_checked_before_queueing() -> None:
    device = Device("a:b")
    with pytest.raises(TypeError, match="mapping"):
        await device.telemetry(21.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="mapping"):
        await device.telemetry([])
    with pytest.raises(TypeError, match="samples"):
        await device.telemetry([{"ts": 1, "t": 1}, 2])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="mapping"):
        await device.report([("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="event name"):
        await device.event("a/b")
    with pytest.raises(ValueError, match="qos"):
        await device.telemetry({"t": 1}, qos=2)
    with pytest.raises(TypeError):
        await device.telemetry({"t": object()}, wait=False)  # not JSON
    assert device.stats.submitted == 0 and device.queued == 0


async def test_before_connecting_messages_queue_up_to_the_limit_dropping_the_oldest() -> None:
    device = Device("a:b", queue_limit=3)
    waiting = [asyncio.create_task(device.telemetry({"n": n})) for n in range(5)]
    await asyncio.sleep(0)
    assert device.queued == 3 and device.stats.dropped == 2
    await device.telemetry({"n": 5}, wait=False)
    assert device.stats.dropped == 3
    await device.close()
    results = await asyncio.gather(*waiting, return_exceptions=True)
    assert [type(r) for r in results] == [MessageDropped] * 3 + [DeviceClosed] * 2
    with pytest.raises(DeviceClosed):
        await device.telemetry({"n": 6})


async def test_desired_documents_are_delivered_once_each_newest_first_wins() -> None:
    device = Device("a:b")
    got: list[dict[str, Any]] = []
    release = asyncio.Event()

    async def slow(desired: dict[str, Any]) -> None:
        got.append(desired)
        await release.wait()

    device.on_desired(slow)
    deliver = device._on_message  # what gmqtt calls for each message
    topic = "things/a:b/desired"
    deliver(None, topic, b'{"v": 1, "$version": 1}', 1, {})
    await asyncio.sleep(0)
    # While the callback works on version 1, versions 2 and 3 arrive: only 3 matters.
    deliver(None, topic, b'{"v": 2, "$version": 2}', 1, {})
    deliver(None, topic, b'{"v": 3, "$version": 3}', 1, {})
    deliver(None, topic, b"not json", 1, {})
    deliver(None, "things/a:b/other", b"{}", 1, {})
    release.set()
    await asyncio.sleep(0.01)
    assert [d["$version"] for d in got] == [1, 3]
    assert device.desired == {"v": 3, "$version": 3}
    deliver(None, topic, b'{"v": 3, "$version": 3}', 1, {})  # the retained copy on reconnect
    await asyncio.sleep(0.01)
    assert len(got) == 2 and device.stats.desired_received == 3  # 2 was superseded
    late: list[dict[str, Any]] = []
    device.on_desired(late.append)  # registered late: gets the current state, alone
    await asyncio.sleep(0.01)
    assert late == [{"v": 3, "$version": 3}] and len(got) == 2
    await device.close()


async def test_a_failing_callback_does_not_stop_the_others() -> None:
    device = Device("a:b")
    got: list[dict[str, Any]] = []

    def broken(desired: dict[str, Any]) -> None:
        raise RuntimeError("bug in the device's code")

    device.on_desired(broken)
    device.on_desired(got.append)
    device._on_message(None, "things/a:b/desired", b'{"$version": 1}', 1, {})
    await asyncio.sleep(0.01)
    assert got == [{"$version": 1}]
    await device.close()
