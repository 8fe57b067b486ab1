"""Failed MQTT logins are limited per source address and user name, with a wider allowance per
address (decision 48): past it, a login is refused before any password is checked, even with
the right password; other addresses, other Things from the same address, and API tokens
(another realm) are not affected. Wrong API tokens do not lock out a valid one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

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

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=thing_id, protocol=paho.MQTTv311)
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
        # Another Thing from the same address is not refused for its neighbour's failures...
        other = await strict.register(api, "acme:lim-2")
        assert other is not None and not refused(strict, "acme:lim-2", other, GUESSER)
        # ... and API tokens are another realm: the admin's token works from that address.
        transport = httpx.AsyncHTTPTransport(local_address=GUESSER)
        async with httpx.AsyncClient(transport=transport, base_url=strict.url) as guesser:
            response = await guesser.get(
                "/api/v1/things", headers={"Authorization": f"Bearer {strict.token}"}
            )
            assert response.status_code == 200


async def test_wrong_api_tokens_do_not_lock_out_a_valid_one_nor_mqtt(strict: Iotas) -> None:
    """25 wrong tokens from one address (everyone behind a reverse proxy shares one): the
    failures past the allowance are answered 429, the admin's valid token still 200, and
    devices' MQTT logins from that address are not refused."""
    async with strict.client() as api:
        secret = await strict.register(api, "acme:realm-1")
        assert secret is not None
    transport = httpx.AsyncHTTPTransport(local_address=GUESSER)
    async with httpx.AsyncClient(transport=transport, base_url=strict.url) as guesser:
        codes = [
            (
                await guesser.get("/api/v1/things", headers={"Authorization": f"Bearer wrong-{i}"})
            ).status_code
            for i in range(25)
        ]
        assert codes == [401] * 3 + [429] * 22, codes
        limited = await guesser.get("/api/v1/things", headers={"Authorization": "Bearer x"})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert limited.headers["content-type"] == "application/problem+json"
        valid = await guesser.get(
            "/api/v1/things", headers={"Authorization": f"Bearer {strict.token}"}
        )
        assert valid.status_code == 200, valid.text
    assert not refused(strict, "acme:realm-1", secret, GUESSER)
    async with strict.client() as api:
        failures = (await api.get("/api/v1/stats")).json()["auth"]["failures"]
    assert failures["unknown"] == 26 and failures["rate_limited"] == 23, failures
    assert "mqtt" not in failures and "mqtt_rate_limited" not in failures
    assert "too many failed authentications from 127.0.0.2" in strict.log()


async def test_a_fleet_behind_one_address_logging_in_at_once_is_not_refused(
    strict: Iotas,
) -> None:
    """Six times the allowance of logins at once from one address with a clean record (a NAT
    after the broker restarted): all get in. A device failing from there is refused past its
    allowance; its neighbours behind the same address are not."""
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
    # nat-0 is refused from there now, even with its right secret; its neighbours are not.
    assert refused(strict, "acme:nat-0", fleet["acme:nat-0"] or "", GUESSER)
    assert not refused(strict, "acme:nat-1", fleet["acme:nat-1"] or "", GUESSER)
