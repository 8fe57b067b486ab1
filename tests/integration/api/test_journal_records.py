"""Tokens, claims and credentials in the journal: each change with its actor, never a
secret, filtered by `?kind=`, covered by the hash chain (decision 53); on both backends."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from integration.api.test_claims import TEMPLATE, provision_raw
from support import LiveServer, execute_raw


async def _entries(c: httpx.AsyncClient, kind: str | None = None) -> list[dict[str, Any]]:
    params = {"limit": 500} | ({} if kind is None else {"kind": kind})
    response = await c.get("/api/v1/journal", params=params)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def _token_claim_credential(c: httpx.AsyncClient) -> dict[str, str]:
    """Create and revoke one of each; return the secrets the answers showed once."""
    token = (await c.post("/api/v1/tokens", json={"subject": "ci-bot", "role": "viewer"})).json()
    assert (await c.delete(f"/api/v1/tokens/{token['id']}")).status_code == 204
    claim = (await c.post("/api/v1/claims", json={"template": TEMPLATE})).json()
    assert (await c.delete(f"/api/v1/claims/{claim['id']}")).status_code == 204
    assert (await c.post("/api/v1/things", json={"id": "acme:p", "kind": "pump"})).is_success
    cred = (await c.post("/api/v1/things/acme:p/credentials", json={"type": "password"})).json()
    gone = await c.delete(f"/api/v1/things/acme:p/credentials/{cred['id']}")
    assert gone.status_code == 204
    return {
        "token": token["token"],
        "token_id": token["id"],
        "claim": claim["token"],
        "claim_id": claim["id"],
        "secret": cred["secret"],
        "credential_id": cred["id"],
    }


async def test_tokens_claims_and_credentials_are_journaled_with_their_actor(
    server: LiveServer,
) -> None:
    c = server.client
    made = await _token_claim_credential(c)
    everything = await _entries(c)
    summary = [
        (e.get("kind", "thing"), e.get("record_id", e.get("thing_id")), e["type"], e["actor"])
        for e in everything
    ]
    assert summary == [
        ("token", made["token_id"], "token_created", "admin"),
        ("token", made["token_id"], "token_revoked", "admin"),
        ("claim", made["claim_id"], "claim_created", "admin"),
        ("claim", made["claim_id"], "claim_revoked", "admin"),
        ("thing", "acme:p", "thing_created", "admin"),
        ("thing", "acme:p", "credential_added", "admin"),
        ("thing", "acme:p", "credential_revoked", "admin"),
    ]
    assert everything[0]["patch"] == {
        "id": made["token_id"],
        "subject": "ci-bot",
        "role": "viewer",
        "namespaces": None,
        "expires_at": None,
    }
    assert everything[2]["patch"]["namespace"] == "acme"
    assert everything[5]["patch"] == {"id": made["credential_id"], "type": "password"}
    text = str(everything)
    for secret in (made["token"], made["claim"], made["secret"]):
        assert secret not in text
    assert [e["type"] for e in await _entries(c, "token")] == ["token_created", "token_revoked"]
    assert [e["type"] for e in await _entries(c, "claim")] == ["claim_created", "claim_revoked"]
    assert len(await _entries(c, "thing")) == 3
    unknown = await c.get("/api/v1/journal", params={"kind": "lamp"})
    assert unknown.status_code == 400
    # A Thing's history and the live feeds see only Things' events, as before.
    history = (await c.get("/api/v1/things/acme:p/history")).json()["items"]
    assert [e["type"] for e in history] == [
        "thing_created",
        "credential_added",
        "credential_revoked",
    ]
    assert (await c.get("/api/v1/journal/verify")).json() == {
        "ok": True,
        "checked": 7,
        "first_bad_seq": None,
        "reason": None,
    }


async def test_a_used_claim_is_journaled_with_the_thing_it_made(server: LiveServer) -> None:
    c = server.client
    claim = (await c.post("/api/v1/claims", json={"template": TEMPLATE})).json()
    response = await provision_raw(server, claim["token"], {"serial": "SN-1"})
    assert response.status_code == 201, response.text
    used = [e for e in await _entries(c, "claim") if e["type"] == "claim_used"]
    assert len(used) == 1
    assert used[0]["actor"] == f"claim:{claim['id']}"
    assert used[0]["patch"]["thing_id"] == "acme:meter-SN-1"
    assert (await c.get("/api/v1/journal/verify")).json()["ok"] is True


@pytest.mark.parametrize(
    ("seq", "sql"),
    [
        (1, "UPDATE journal SET body = replace(body, 'ci-bot', 'ci-bob') WHERE seq = 1"),
        (2, "UPDATE journal SET body = replace(body, '\"admin\"', '\"other\"') WHERE seq = 2"),
        (3, "UPDATE journal SET record_id = 'ffffffffffffffff' WHERE seq = 3"),
        (4, "UPDATE journal SET kind = 'token' WHERE seq = 4"),
        (6, "UPDATE journal SET body = replace(body, 'password', 'x509') WHERE seq = 6"),
        (7, "UPDATE journal SET type = 'credential_added' WHERE seq = 7"),
    ],
    ids=[
        "token-created",
        "token-revoked",
        "claim-created",
        "claim-revoked",
        "cred-added",
        "cred-revoked",
    ],
)
async def test_editing_any_of_those_rows_breaks_the_chain_there(
    server: LiveServer, seq: int, sql: str
) -> None:
    c = server.client
    await _token_claim_credential(c)
    assert (await c.get("/api/v1/journal/verify")).json()["ok"] is True
    assert server.settings.database_url is not None
    await execute_raw(server.settings.database_url, sql)
    result = (await c.get("/api/v1/journal/verify")).json()
    assert result["ok"] is False and result["first_bad_seq"] == seq, result
