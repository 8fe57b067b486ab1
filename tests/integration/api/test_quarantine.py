"""Quarantine: evidence kept, credentials revoked, desired state frozen, actions refused, and
the way back only with a new credential; on SQLite and PostgreSQL."""

from __future__ import annotations

import orjson

from support import LiveServer

THING = "/api/v1/things/acme:cam-1"


async def _suspect(server: LiveServer) -> None:
    c = server.client
    await c.post("/api/v1/things", json={"id": "acme:cam-1", "kind": "camera"})
    await c.patch(f"{THING}/twin/desired", json={"fps": 25})
    await c.patch(f"{THING}/twin/reported", json={"fps": 12, "fw": "6.6.6"})
    assert (await c.post(f"{THING}/credentials", json={"type": "password"})).status_code == 201
    assert (await c.post(f"{THING}/credentials", json={"type": "x509"})).status_code == 201


async def test_quarantine_keeps_evidence_and_cuts_the_thing_off(server: LiveServer) -> None:
    c = server.client
    await _suspect(server)
    found = (await c.get(THING)).json()
    assert found["quarantine"] is None

    response = await c.post(f"{THING}/quarantine", json={"reason": "odd outbound traffic"})
    assert response.status_code == 200, response.text
    thing = response.json()
    quarantine = thing["quarantine"]
    assert quarantine["reason"] == "odd outbound traffic"
    assert quarantine["by"] == "admin" and quarantine["since"]

    # Every credential revoked, each journaled, after the evidence and before the verdict.
    credentials = (await c.get(f"{THING}/credentials")).json()["items"]
    assert len(credentials) == 2 and all(cred["revoked_at"] for cred in credentials)
    history = (await c.get(f"{THING}/history")).json()["items"]
    assert [e["type"] for e in history[-4:]] == [
        "snapshot_taken",
        "credential_revoked",
        "credential_revoked",
        "thing_quarantined",
    ]
    digest = quarantine["snapshot"]
    assert history[-1]["patch"] == {"reason": "odd outbound traffic", "snapshot": digest}
    assert history[-4]["patch"]["sha256"] == digest

    # The snapshot is the Thing exactly as it was found: its state at the snapshot's seq.
    evidence = orjson.loads((await c.get(f"/api/v1/snapshots/{digest}")).content)
    as_found = evidence["thing"]
    for key in ("attributes", "labels", "links", "description", "revision", "updated_at"):
        assert as_found[key] == found[key], key
    assert as_found["twin"]["desired"] == {"fps": 25}
    assert as_found["twin"]["reported"] == {"fps": 12, "fw": "6.6.6"}
    assert as_found["twin"]["metadata"] == found["twin"]["metadata"]
    assert [cred["revoked_at"] for cred in evidence["credentials"]] == [None, None]
    assert evidence["journal"]["events"][-1]["seq"] == history[-4]["seq"] - 1

    # Frozen: no desired change (single or bulk), no property write, no action, no credential.
    refused = await c.patch(f"{THING}/twin/desired", json={"fps": 1})
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert "quarantined" in refused.json()["detail"]
    assert (await c.put(f"{THING}/properties/fps", json=1)).status_code == 409
    assert (await c.post(f"{THING}/actions/reboot", json={})).status_code == 423
    assert (await c.post(f"{THING}/credentials", json={"type": "password"})).status_code == 409
    bulk = await c.patch("/api/v1/twins/desired", params={"q": 'kind == "camera"'}, json={"fps": 2})
    assert bulk.json() == {"matched": 1, "changed": 0}
    # What the Thing itself reports is still recorded (evidence), and so is the journal.
    assert (await c.patch(f"{THING}/twin/reported", json={"fw": "6.6.7"})).status_code == 200
    again = await c.post(f"{THING}/quarantine", json={"reason": "twice"})
    assert again.status_code == 409
    assert (await c.get(f"{THING}?at={found['updated_at']}")).json()["quarantine"] is None
    assert (await c.get("/api/v1/journal/verify")).json()["ok"] is True


async def test_release_needs_a_new_credential(server: LiveServer) -> None:
    c = server.client
    await _suspect(server)
    assert (await c.post(f"{THING}/quarantine/release", json={})).status_code == 400
    not_quarantined = await c.post(
        f"{THING}/quarantine/release", json={"credential": {"type": "password"}}
    )
    assert not_quarantined.status_code == 409
    await c.post(f"{THING}/quarantine", json={"reason": "stolen"})
    body: object  # JSON bodies of every shape, right and wrong
    for body in ({}, {"credential": None}, {"credential": {"type": "magic"}}, []):
        response = await c.post(f"{THING}/quarantine/release", json=body)
        assert response.status_code == 400, body

    released = await c.post(f"{THING}/quarantine/release", json={"credential": {"type": "x509"}})
    assert released.status_code == 200, released.text
    doc = released.json()
    assert doc["thing"]["quarantine"] is None
    assert "BEGIN CERTIFICATE" in doc["credential"]["certificate"]
    assert "PRIVATE KEY" in doc["credential"]["private_key"]
    credentials = (await c.get(f"{THING}/credentials")).json()["items"]
    assert [cred["revoked_at"] is None for cred in credentials] == [False, False, True]
    history = (await c.get(f"{THING}/history")).json()["items"]
    assert [e["type"] for e in history[-2:]] == ["thing_released", "credential_added"]
    assert (await c.patch(f"{THING}/twin/desired", json={"fps": 30})).status_code == 200
    assert (await c.get("/api/v1/journal/verify")).json()["ok"] is True


async def test_bad_quarantine_requests(server: LiveServer) -> None:
    c = server.client
    assert (
        await c.post("/api/v1/things/acme:none/quarantine", json={"reason": "x"})
    ).status_code == 404
    await c.post("/api/v1/things", json={"id": "acme:q", "kind": "k"})
    body: object  # JSON bodies of every shape, right and wrong
    for body in ({}, {"reason": ""}, {"reason": "  "}, {"reason": 3}, {"reason": "x" * 600}, []):
        response = await c.post("/api/v1/things/acme:q/quarantine", json=body)
        assert response.status_code == 400, body
    bad_json = await c.post(
        "/api/v1/things/acme:q/quarantine",
        content=b"{",
        headers={"content-type": "application/json"},
    )
    assert bad_json.status_code == 400
    for role in ("operator", "viewer"):
        created = await c.post("/api/v1/tokens", json={"subject": f"{role}-1", "role": role})
        token = created.json()["token"]
        response = await c.post(
            "/api/v1/things/acme:q/quarantine",
            json={"reason": "x"},
            headers={"authorization": f"Bearer {token}"},
        )
        assert response.status_code == 403, role
    assert (await c.get("/api/v1/things/acme:q")).json()["quarantine"] is None
