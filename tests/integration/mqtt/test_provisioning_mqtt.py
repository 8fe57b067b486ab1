"""Provisioning by claim on the embedded broker: a device logs in with user name `claim` and
the claim token, asks on `provisioning/<client id>/request` and gets its Thing id and
certificate on `.../response`; a claim login reaches nothing else. And end to end over HTTP:
a device with only a claim token and its serial gets a certificate. (mTLS on the broker is
not there yet: the tests stop at the certificate and its credential.)"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from integration.api.test_x509 import check_issued, csr_for
from integration.mqtt.mqtt_support import Device, Iotas, eventually
from iotas.sdk.provisioning import provision


@pytest.fixture
def embedded(database_url: str, tmp_path: Path) -> Iterator[Iotas]:
    """iotas with the embedded broker on each backend (`database_url` is parametrised)."""
    node = Iotas("embedded", tmp_path)
    node.settings["database_url"] = database_url
    node.start()
    try:
        yield node
    finally:
        node.stop()


async def make_claim(api: httpx.AsyncClient, namespace: str, max_uses: int = 3) -> dict[str, Any]:
    response = await api.post(
        "/api/v1/claims",
        json={
            "template": {
                "namespace": namespace,
                "kind": "meter",
                "labels": {"batch": "b1"},
                "desired": {"interval": 30},
                "name_pattern": "m-{serial}",
            },
            "max_uses": max_uses,
        },
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def claim_login(embedded: Iotas, token: str | None, client_id: str) -> Device:
    return Device(embedded.mqtt, "claim", token, client_id=client_id, will=False)


def connected(embedded: Iotas, token: str, client_id: str | None = None) -> Device:
    device = claim_login(embedded, token, client_id or f"dev-{secrets.token_hex(4)}")
    assert device.wait_connack() == 0, device.connack
    return device


async def ask(device: Device, client_id: str, body: Any) -> dict[str, Any]:
    """Publish a request and wait for the answer on the client's response topic."""
    response_topic = f"provisioning/{client_id}/response"
    before = sum(t == response_topic for t, _ in device.messages)
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    device.client.publish(f"provisioning/{client_id}/request", payload, qos=1).wait_for_publish(5)

    def answers() -> list[bytes]:
        return [p for t, p in list(device.messages) if t == response_topic]

    await eventually(lambda: len(answers()) > before, timeout=10)
    answer: dict[str, Any] = orjson.loads(answers()[before])
    return answer


async def subscribed(device: Device, topic: str) -> None:
    count = len(device.suback)
    device.client.subscribe(topic, qos=1)
    await eventually(lambda: len(device.suback) > count)
    code = device.suback[count]
    assert not getattr(code, "is_failure", code == 0x80), (topic, code)


async def test_a_device_provisions_itself_over_mqtt(embedded: Iotas) -> None:
    async with embedded.client() as api:
        claim = await make_claim(api, "mq", max_uses=2)
        client_id = "dev-" + secrets.token_hex(4)
        device = connected(embedded, claim["token"], client_id)
        try:
            await subscribed(device, f"provisioning/{client_id}/response")
            key = ec.generate_private_key(ec.SECP256R1())
            answer = await ask(device, client_id, {"serial": "S1", "csr": csr_for(key)})
            assert answer.get("thing_id") == "mq:m-S1", answer
            assert answer["created"] is True and "private_key" not in answer
            ca = (await api.get("/api/v1/ca")).text
            cert = check_issued(answer["certificate"], ca, "mq:m-S1")
            assert cert.public_key() == key.public_key()
            assert answer["endpoints"]["mqtt"] == f"mqtt://127.0.0.1:{embedded.mqtt[1]}"
            embedded.things.append("mq:m-S1")

            creds = (await api.get("/api/v1/things/mq:m-S1/credentials")).json()["items"]
            assert [(c["id"], c["type"]) for c in creds] == [(answer["credential"]["id"], "x509")]
            twin = (await api.get("/api/v1/things/mq:m-S1/twin")).json()
            assert twin["desired"] == {"interval": 30}
            history = (await api.get("/api/v1/things/mq:m-S1/history")).json()["items"]
            assert [e["type"] for e in history] == [
                "thing_created",
                "desired_changed",
                "credential_added",
            ]
            assert {e["actor"] for e in history} == {f"claim:{claim['id']}"}
            assert all("mqtt" in e["cause"] for e in history)

            # Errors come back as a document on the same topic, and cost no use.
            bad = await ask(device, client_id, {"serial": "no/slash"})
            assert bad["error"] == "invalid-input" and bad["status"] == 400, bad
            assert "serial" in bad["detail"]
            assert (await ask(device, client_id, b"{nope"))["error"] == "invalid-input"
            # A key made here when there is no CSR; then the claim is used up.
            made = await ask(device, client_id, {"serial": "S2"})
            assert made["thing_id"] == "mq:m-S2" and "BEGIN PRIVATE KEY" in made["private_key"]
            embedded.things.append("mq:m-S2")
            used_up = await ask(device, client_id, {"serial": "S3"})
            assert used_up["error"] == "conflict" and "used 2 of 2" in used_up["detail"]
            shown = (await api.get(f"/api/v1/claims/{claim['id']}")).json()
            assert shown["uses"] == 2 and shown["state"] == "used_up"
        finally:
            device.close()


async def test_a_claim_login_reaches_only_its_own_provisioning_topics(embedded: Iotas) -> None:
    async with embedded.client() as api:
        claim = await make_claim(api, "iso", max_uses=5)
        secret = await embedded.register(api, "iso:victim")
        victim = embedded.device("iso:victim", secret)
        a_id, b_id = "a-" + secrets.token_hex(3), "b-" + secrets.token_hex(3)
        a = connected(embedded, claim["token"], a_id)
        b = connected(embedded, claim["token"], b_id)
        before = await embedded.rejected(api)
        try:
            await subscribed(b, f"provisioning/{b_id}/#")
            for pattern in (
                "#",
                "things/#",
                "things/iso:victim/desired",
                "provisioning/#",
                f"provisioning/{b_id}/response",
                "provisioning/+/response",
                "$SYS/#",
            ):
                a.client.subscribe(pattern, qos=1)
            await eventually(lambda: len(a.suback) >= 7)
            assert all(getattr(code, "is_failure", code == 0x80) for code in a.suback), a.suback
            for topic in (
                "things/iso:victim/reported",
                "things/claim/reported",
                f"provisioning/{b_id}/request",
                f"provisioning/{b_id}/response",
            ):
                a.client.publish(topic, b'{"serial": "HIJACK"}', qos=1).wait_for_publish(5)
            # b's own answer reaches b only; a hears nothing of it.
            answer = await ask(b, b_id, {"serial": "B1"})
            embedded.things.append("iso:m-B1")
            assert answer["thing_id"] == "iso:m-B1"
            assert a.messages == []
            twin = (await api.get("/api/v1/things/iso:victim/twin")).json()
            assert twin["reported"] == {}
            assert (await api.get("/api/v1/things/iso:m-HIJACK")).status_code == 404
            rejected = await embedded.rejected(api)
            assert rejected.get("acl_denied", 0) - before.get("acl_denied", 0) == 11, rejected
            # The victim device was not disturbed by any of it.
            assert victim.client.is_connected()
        finally:
            for device in (a, b, victim):
                device.close()


async def test_claim_logins_are_refused_without_a_valid_claim_and_client_id(
    embedded: Iotas,
) -> None:
    async with embedded.client() as api:
        claim = await make_claim(api, "ref")
        revoked = await make_claim(api, "ref")
        await api.delete(f"/api/v1/claims/{revoked['id']}")
        before = await embedded.rejected(api)
        attempts = (
            ("iotas_claim_0_nope", "dev-1"),
            (None, "dev-2"),
            (revoked["token"], "dev-3"),
            (claim["token"], "ref:m-1"),  # a Thing id: could take over a device's session
            (claim["token"], "a/b"),
            (claim["token"], "a+b"),
        )
        for token, client_id in attempts:
            device = claim_login(embedded, token, client_id)
            try:
                assert device.wait_connack() != 0, (token, client_id)
            finally:
                device.close(clean=False)
        rejected = await embedded.rejected(api)
        assert rejected.get("auth_failed", 0) - before.get("auth_failed", 0) == len(attempts)
        # A claim token is no password for a Thing either.
        device = Device(embedded.mqtt, "ref:m-1", claim["token"], will=False)
        try:
            assert device.wait_connack() != 0
        finally:
            device.close(clean=False)


async def test_end_to_end_a_device_with_a_claim_token_and_a_serial(embedded: Iotas) -> None:
    """The device knows a URL, a claim token and its serial; nothing else is set up for it."""
    async with embedded.client() as api:
        claim = await make_claim(api, "e2e", max_uses=1)
        done = await provision(embedded.url, claim["token"], "0042")
        embedded.things.append(done.thing_id)
        assert done.thing_id == "e2e:m-0042" and done.private_key is not None
        cert = x509.load_pem_x509_certificate(done.certificate.encode())
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(done.ca_certificate.encode()))
        assert done.endpoints["mqtt"] == f"mqtt://127.0.0.1:{embedded.mqtt[1]}"
        creds = (await api.get(f"/api/v1/things/{done.thing_id}/credentials")).json()["items"]
        assert [c["id"] for c in creds] == [done.credential_id]
        thing = (await api.get(f"/api/v1/things/{done.thing_id}")).json()
        assert thing["labels"] == {"batch": "b1"} and thing["kind"] == "meter"
        # An x509 identity only: no password login exists for it.
        device = Device(embedded.mqtt, done.thing_id, "guess", will=False)
        try:
            assert device.wait_connack() != 0
        finally:
            device.close(clean=False)


async def test_a_claim_cannot_take_the_client_id_of_another_claims_device(
    embedded: Iotas,
) -> None:
    async with embedded.client() as api:
        mine = await make_claim(api, "alpha")
        theirs = await make_claim(api, "beta")
    holder = connected(embedded, mine["token"], "dev-shared")
    try:
        thief = claim_login(embedded, theirs["token"], "dev-shared")
        try:
            assert thief.wait_connack() != 0
        finally:
            thief.close(clean=False)
        await asyncio.sleep(0.3)
        assert holder.client.is_connected()
        # The same claim may come back on its own client id (a device reconnecting).
        again = claim_login(embedded, mine["token"], "dev-shared")
        try:
            assert again.wait_connack() == 0
        finally:
            again.close()
    finally:
        holder.close(clean=False)
