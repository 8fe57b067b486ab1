"""Provisioning by claim over HTTP, on both backends: an admin makes a claim bound to a
template; a device with only the claim token and its serial becomes a Thing with a
certificate, in one transaction, journaled with actor `claim:<id>`; uses are counted exactly
under concurrency; expired, revoked, used-up and unknown claims are refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from integration.api.test_x509 import check_issued, csr_for
from iotas.domain.errors import TooManyRequests, Unauthenticated
from iotas.runtime import Runtime, open_runtime
from iotas.sdk.provisioning import provision
from iotas.services.auth import Authenticator
from iotas.services.claims import ClaimService
from iotas.settings import Settings
from support import LiveServer

TEMPLATE: dict[str, Any] = {
    "namespace": "acme",
    "kind": "meter",
    "labels": {"tier": "edge"},
    "attributes": {"site": "plant-7", "model": {"name": "m1"}},
    "desired": {"interval": 60, "mode": "eco"},
    "name_pattern": "meter-{serial}",
}


async def make_claim(server: LiveServer, **body: Any) -> dict[str, Any]:
    response = await server.client.post("/api/v1/claims", json={"template": TEMPLATE, **body})
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created: dict[str, Any] = response.json()
    return created


async def provision_raw(
    server: LiveServer, token: str | None, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with server.anonymous() as anon:
        return await anon.post("/api/v1/provision", json=body, headers=sent)


def is_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    return body


async def test_a_device_provisions_itself_from_the_template(server: LiveServer) -> None:
    c = server.client
    claim = await make_claim(server, max_uses=5)
    token = claim["token"]
    assert token.startswith("iotas_claim_") and claim["uses"] == 0
    assert claim["state"] == "active" and claim["created_by"] == "admin"
    assert claim["template"] == TEMPLATE
    listed = (await c.get("/api/v1/claims")).json()["items"]
    assert [i["id"] for i in listed] == [claim["id"]]
    assert token not in str(listed) and "token" not in listed[0]
    assert (await c.get(f"/api/v1/claims/{claim['id']}")).json()["uses"] == 0

    key = ec.generate_private_key(ec.SECP256R1())
    response = await provision_raw(server, token, {"serial": "SN-1", "csr": csr_for(key)})
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["thing_id"] == "acme:meter-SN-1" and body["created"] is True
    assert "private_key" not in body
    ca = (await c.get("/api/v1/ca")).text
    assert body["ca_certificate"] == ca
    cert = check_issued(body["certificate"], ca, "acme:meter-SN-1")
    assert cert.public_key() == key.public_key()
    assert body["credential"]["type"] == "x509"
    assert body["credential"]["thing_id"] == "acme:meter-SN-1"
    assert body["endpoints"]["http"] == server.url

    thing = (await c.get("/api/v1/things/acme:meter-SN-1")).json()
    assert thing["kind"] == "meter" and thing["labels"] == {"tier": "edge"}
    assert thing["attributes"] == TEMPLATE["attributes"]
    twin = (await c.get("/api/v1/things/acme:meter-SN-1/twin")).json()
    assert twin["desired"] == TEMPLATE["desired"]
    history = (await c.get("/api/v1/things/acme:meter-SN-1/history")).json()["items"]
    assert [e["type"] for e in history] == ["thing_created", "desired_changed", "credential_added"]
    assert {e["actor"] for e in history} == {f"claim:{claim['id']}"}
    assert all(claim["id"] in e["cause"] for e in history)
    assert len({e["seq"] for e in history}) == 3
    listed_creds = (await c.get("/api/v1/things/acme:meter-SN-1/credentials")).json()["items"]
    assert [(i["id"], i["type"]) for i in listed_creds] == [(body["credential"]["id"], "x509")]
    assert (await c.get(f"/api/v1/claims/{claim['id']}")).json()["uses"] == 1

    # Without a CSR, a key pair is made and returned this once.
    made = await provision_raw(server, token, {"serial": "SN-2"})
    assert made.status_code == 201, made.text
    pem = made.json()
    private = serialization.load_pem_private_key(pem["private_key"].encode(), password=None)
    cert = check_issued(pem["certificate"], ca, "acme:meter-SN-2")
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert cert.public_key() == private.public_key()
    assert (await c.get(f"/api/v1/claims/{claim['id']}")).json()["uses"] == 2


async def test_the_sdk_helper_keeps_the_key_on_the_device(server: LiveServer) -> None:
    claim = await make_claim(server, max_uses=2)
    done = await provision(server.url, claim["token"], "SN-sdk")
    assert done.thing_id == "acme:meter-SN-sdk" and done.created
    cert = x509.load_pem_x509_certificate(done.certificate.encode())
    assert done.private_key is not None
    key = serialization.load_pem_private_key(done.private_key.encode(), password=None)
    assert cert.public_key() == key.public_key()
    assert done.ca_certificate.startswith("-----BEGIN CERTIFICATE-----")
    # With the device's own CSR, no key comes back at all.
    own = await provision(
        server.url, claim["token"], "SN-sdk", csr=csr_for(ec.generate_private_key(ec.SECP256R1()))
    )
    assert own.private_key is None and not own.created


async def test_re_provisioning_only_by_the_claim_that_made_the_thing(server: LiveServer) -> None:
    c = server.client
    first = await make_claim(server, max_uses=10)
    other = await make_claim(server, max_uses=10)
    one = (await provision_raw(server, first["token"], {"serial": "SN-7"})).json()
    again = await provision_raw(server, first["token"], {"serial": "SN-7"})
    assert again.status_code == 201, again.text
    assert again.json()["created"] is False and again.json()["thing_id"] == one["thing_id"]
    assert again.json()["certificate"] != one["certificate"]
    creds = (await c.get("/api/v1/things/acme:meter-SN-7/credentials")).json()["items"]
    assert len(creds) == 2 and all(i["revoked_at"] is None for i in creds)
    assert (await c.get(f"/api/v1/claims/{first['id']}")).json()["uses"] == 2
    history = (await c.get("/api/v1/things/acme:meter-SN-7/history")).json()["items"]
    assert [e["type"] for e in history].count("thing_created") == 1

    # Another claim may not take over a Thing it did not make; nor may any claim take a
    # Thing an operator made.
    refused = is_problem(await provision_raw(server, other["token"], {"serial": "SN-7"}), 409)
    assert "not provisioned by this claim" in refused["detail"]
    await c.post("/api/v1/things", json={"id": "acme:meter-SN-8", "kind": "meter"})
    is_problem(await provision_raw(server, first["token"], {"serial": "SN-8"}), 409)
    assert (await c.get(f"/api/v1/claims/{other['id']}")).json()["uses"] == 0
    assert (await c.get("/api/v1/things/acme:meter-SN-8/credentials")).json()["items"] == []

    # Quarantined (and even released since): the claim cannot bring it back by itself.
    await provision_raw(server, first["token"], {"serial": "SN-9"})
    await c.post("/api/v1/things/acme:meter-SN-9/quarantine", json={"reason": "tamper"})
    barred = is_problem(await provision_raw(server, first["token"], {"serial": "SN-9"}), 409)
    assert "quarantined" in barred["detail"]
    released = await c.post(
        "/api/v1/things/acme:meter-SN-9/quarantine/release", json={"credential": {"type": "x509"}}
    )
    assert released.status_code == 200, released.text
    is_problem(await provision_raw(server, first["token"], {"serial": "SN-9"}), 409)

    # Deleted and made again by an operator: the claim no longer owns the id.
    await c.delete("/api/v1/things/acme:meter-SN-7")
    await c.post("/api/v1/things", json={"id": "acme:meter-SN-7", "kind": "meter"})
    is_problem(await provision_raw(server, first["token"], {"serial": "SN-7"}), 409)


async def test_max_uses_hold_under_concurrent_devices(server: LiveServer) -> None:
    claim = await make_claim(server, max_uses=3)
    responses = await asyncio.gather(
        *(provision_raw(server, claim["token"], {"serial": f"C-{i}"}) for i in range(12))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201] * 3 + [409] * 9, [r.text for r in responses]
    used_up = next(r for r in responses if r.status_code == 409)
    assert "used 3 of 3" in is_problem(used_up, 409)["detail"]
    shown = (await server.client.get(f"/api/v1/claims/{claim['id']}")).json()
    assert shown["uses"] == 3 and shown["state"] == "used_up"
    things = (await server.client.get("/api/v1/things", params={"q": 'kind == "meter"'})).json()
    assert len(things["items"]) == 3

    # The same serial from several devices at once: one Thing, each a certificate.
    same = await make_claim(server, max_uses=4)
    responses = await asyncio.gather(
        *(provision_raw(server, same["token"], {"serial": "TWIN"}) for _ in range(4))
    )
    ok = [r.json() for r in responses if r.status_code == 201]
    assert ok and sum(r["created"] for r in ok) == 1
    assert all(r.status_code in (201, 409) for r in responses)
    creds = (await server.client.get("/api/v1/things/acme:meter-TWIN/credentials")).json()
    assert len(creds["items"]) == len(ok)
    shown = (await server.client.get(f"/api/v1/claims/{same['id']}")).json()
    assert shown["uses"] == len(ok)


async def test_expired_revoked_and_unknown_claims_are_refused(server: LiveServer) -> None:
    c = server.client
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    short = await make_claim(server, expires=soon, max_uses=None)
    assert short["max_uses"] is None and short["expires_at"] is not None
    await asyncio.sleep(1.3)
    expired = is_problem(await provision_raw(server, short["token"], {"serial": "E-1"}), 403)
    assert "expired" in expired["detail"]
    assert (await c.get(f"/api/v1/claims/{short['id']}")).json()["state"] == "expired"

    claim = await make_claim(server)
    assert claim["max_uses"] == 1  # one device, unless the admin says more
    assert (await c.delete(f"/api/v1/claims/{claim['id']}")).status_code == 204
    assert (await c.delete(f"/api/v1/claims/{claim['id']}")).status_code == 204
    revoked = is_problem(await provision_raw(server, claim["token"], {"serial": "R-1"}), 403)
    assert "revoked" in revoked["detail"]
    assert (await c.get(f"/api/v1/claims/{claim['id']}")).json()["state"] == "revoked"
    assert (await c.delete("/api/v1/claims/nope")).status_code == 404
    assert (await c.get("/api/v1/claims/nope")).status_code == 404

    # Unknown tokens: 401, the same answer whether or not claims exist; an operator token
    # is not a claim token.
    details = set()
    for token in ("iotas_claim_0_nope", server.token, claim["token"] + "x"):
        response = await provision_raw(server, token, {"serial": "U-1"})
        details.add(is_problem(response, 401)["detail"])
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert details == {"the claim token is not valid"}
    is_problem(await provision_raw(server, None, {"serial": "U-1"}), 401)
    is_problem(await provision_raw(server, None, {}, {"Authorization": "Basic eDp5"}), 401)
    assert (await c.get("/api/v1/things/acme:meter-U-1")).status_code == 404
    assert (await c.get("/api/v1/things/acme:meter-E-1")).status_code == 404


async def test_bad_serials_and_csrs_are_refused_and_cost_nothing(server: LiveServer) -> None:
    claim = await make_claim(server, max_uses=2)
    good = csr_for(ec.generate_private_key(ec.SECP256R1()))
    body: object  # JSON bodies of every shape, right and wrong
    for body in (
        {"serial": "a/b"},
        {"serial": ""},
        {"serial": "x" * 129},
        {"serial": "../etc"},
        {"serial": "a+b"},
        {"serial": "ends-"},
        {"serial": 42},
        {},
        {"serial": "ok", "csr": "not a csr"},
        {"serial": "ok", "csr": good.replace(good.splitlines()[3], "A" * 64)},
        {"serial": "ok", "csr": 7},
        {"serial": "ok", "type": "password"},
        [],
    ):
        problem = is_problem(await provision_raw(server, claim["token"], body), 400)
        assert problem["detail"], body
    # The name pattern with a serial that is valid alone but makes too long an id.
    is_problem(await provision_raw(server, claim["token"], {"serial": "y" * 128}), 400)
    shown = (await server.client.get(f"/api/v1/claims/{claim['id']}")).json()
    assert shown["uses"] == 0
    assert (await server.client.get("/api/v1/things")).json()["items"] == []


async def test_claims_are_validated(server: LiveServer) -> None:
    c = server.client
    body: object  # JSON bodies of every shape, right and wrong
    for body in (
        {},
        {"template": {"kind": "meter"}},
        {"template": {**TEMPLATE, "namespace": "Bad_NS"}},
        {"template": {**TEMPLATE, "kind": ""}},
        {"template": {**TEMPLATE, "name_pattern": "no-serial"}},
        {"template": {**TEMPLATE, "name_pattern": "{serial}-{serial}"}},
        {"template": {**TEMPLATE, "name_pattern": "{serial.__class__}"}},
        {"template": {**TEMPLATE, "name_pattern": "a/{serial}"}},
        {"template": {**TEMPLATE, "name_pattern": "{serial}{x}"}},
        {"template": {**TEMPLATE, "desired": [1]}},
        {"template": {**TEMPLATE, "labels": {"k": 1}}},
        {"template": {**TEMPLATE, "links": []}},
        {"template": TEMPLATE, "max_uses": 0},
        {"template": TEMPLATE, "max_uses": True},
        {"template": TEMPLATE, "max_uses": "3"},
        {"template": TEMPLATE, "expires": "2001-01-01T00:00:00Z"},
        {"template": TEMPLATE, "expires": "soon"},
        {"template": TEMPLATE, "token": "mine"},
        [],
    ):
        response = await c.post("/api/v1/claims", json=body)
        assert response.status_code == 400, (body, response.text)
    # The default pattern: the Thing is named by its serial alone.
    plain = await make_claim(server, template={"namespace": "acme", "kind": "k"})
    assert plain["template"]["name_pattern"] == "{serial}"
    made = await provision_raw(server, plain["token"], {"serial": "SN.9_x"})
    assert made.status_code == 201 and made.json()["thing_id"] == "acme:SN.9_x"


@pytest.fixture
async def rt(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(Settings(data_dir=tmp_path / "d", database_url=database_url))
    try:
        yield runtime
    finally:
        await runtime.store.dispose()


async def test_claim_failures_share_the_api_tokens_limit(rt: Runtime) -> None:
    auth = Authenticator(rt.store, failure_burst=2, failure_refill=0.5)
    claims = ClaimService(rt.store, auth, rt.credentials, rt.settings)
    with pytest.raises(Unauthenticated):
        await claims.authenticate("Bearer iotas_claim_nope", "192.0.2.1")
    with pytest.raises(Unauthenticated):
        await auth.authenticate("Bearer nope", "192.0.2.1")
    with pytest.raises(Unauthenticated):
        await claims.authenticate(None, "192.0.2.1")
    assert auth.failures == {"unknown_claim": 1, "unknown": 1, "missing": 1}
    # Spent on either kind of token: failures of both are 429 now.
    with pytest.raises(TooManyRequests):
        await claims.authenticate("Bearer iotas_claim_nope", "192.0.2.1")
    with pytest.raises(TooManyRequests):
        await auth.authenticate("Bearer nope", "192.0.2.1")
    assert auth.failures["rate_limited"] == 2
    with pytest.raises(Unauthenticated):
        await claims.authenticate("Bearer iotas_claim_nope", "192.0.2.2")
