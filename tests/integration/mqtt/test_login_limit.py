"""Failed MQTT logins are limited per source address, sharing the API's allowance: past it, a
source is refused before any password is checked, even with the right password; other
sources are not affected."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest

from integration.mqtt.mqtt_support import Iotas

GUESSER = "127.0.0.2"  # another loopback address: its own source to iotas


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[Iotas]:
    node = Iotas("embedded", tmp_path)
    node.settings["auth_failure_burst"] = 3
    node.settings["auth_failure_rate"] = 0.01
    node.start()
    try:
        yield node
    finally:
        node.stop()


def refused(node: Iotas, thing_id: str, secret: str, source: str = "127.0.0.1") -> bool:
    answered = threading.Event()
    codes: list[Any] = []

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        codes.append(reason)
        answered.set()

    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id=thing_id, protocol=paho.MQTTv311
    )
    client.username_pw_set(thing_id, secret)
    client.on_connect = on_connect
    client.connect(*node.mqtt, keepalive=30, bind_address=source)
    client.loop_start()
    try:
        assert answered.wait(10), "no CONNACK"
        return bool(codes[0] != 0)
    finally:
        client.disconnect()
        client.loop_stop()


async def test_a_source_that_fails_too_often_is_refused(strict: Iotas) -> None:
    async with strict.client() as api:
        secret = await strict.register(api, "acme:lim-1")
        assert secret is not None
        assert not refused(strict, "acme:lim-1", secret, GUESSER)  # the right secret: in
        for _ in range(3):
            assert refused(strict, "acme:lim-1", "wrong-" + secret, GUESSER)
        # The allowance is spent: now even the right secret is refused from that address...
        assert refused(strict, "acme:lim-1", secret, GUESSER)
        # ... and only from it.
        assert not refused(strict, "acme:lim-1", secret)
        stats = (await api.get("/api/v1/stats")).json()
        assert stats["ingest"]["rejected"].get("login_rate_limited", 0) >= 1
        assert stats["auth"]["failures"].get("mqtt", 0) == 3
        # API tokens share the allowance: that address is answered 429 there too.
        transport = httpx.AsyncHTTPTransport(local_address=GUESSER)
        async with httpx.AsyncClient(transport=transport, base_url=strict.url) as guesser:
            response = await guesser.get(
                "/api/v1/things", headers={"Authorization": f"Bearer {strict.token}"}
            )
            assert response.status_code == 429


async def test_a_fleet_behind_one_address_logging_in_at_once_is_not_refused(
    strict: Iotas,
) -> None:
    """Six times the allowance of logins at once from one address with a clean record (a NAT
    after the broker restarted): all get in. Once that address has failed, logins from it
    take an attempt up front again."""
    async with strict.client() as api:
        fleet = {f"acme:nat-{i}": await strict.register(api, f"acme:nat-{i}") for i in range(18)}
    outcomes: dict[str, bool] = {}

    def log_in(thing_id: str, secret: str) -> None:
        outcomes[thing_id] = refused(strict, thing_id, secret, GUESSER)

    threads = [
        threading.Thread(target=log_in, args=(thing_id, secret))
        for thing_id, secret in fleet.items()
        if secret is not None
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(outcomes) == 18 and not any(outcomes.values()), outcomes
    for _ in range(3):
        assert refused(strict, "acme:nat-0", "wrong", GUESSER)
    assert refused(strict, "acme:nat-1", fleet["acme:nat-1"] or "", GUESSER)
