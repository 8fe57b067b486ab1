"""Device credentials through the API and the broker's password check, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from iotas.domain.errors import Forbidden, NotFound
from iotas.runtime import Runtime
from iotas.services.context import Actor, Context
from iotas.settings import Settings
from support import LiveServer, execute_raw

PUMP = {"id": "acme:pump-1", "kind": "pump"}
CREDS = "/api/v1/things/acme:pump-1/credentials"
ADMIN = Context(Actor("admin"), "test")


async def _journal(server: LiveServer) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await server.client.get("/api/v1/journal")).json()["items"]
    return items


async def test_create_list_revoke(server: LiveServer) -> None:
    c = server.client
    thing = (await c.post("/api/v1/things", json=PUMP)).json()

    created = await c.post(CREDS, json={"type": "password"}, headers={"X-Iotas-Cause": "setup"})
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    cred = created.json()
    assert set(cred) == {"id", "thing_id", "type", "created_at", "revoked_at", "secret"}
    assert cred["thing_id"] == "acme:pump-1" and cred["type"] == "password"
    assert cred["revoked_at"] is None and len(cred["secret"]) >= 40

    listed = (await c.get(CREDS)).json()
    assert listed["next"] is None
    assert listed["items"] == [{k: v for k, v in cred.items() if k != "secret"}]
    assert (await c.get("/api/v1/things/acme:pump-1")).json()["revision"] == thing["revision"] + 1

    assert (await c.delete(f"{CREDS}/{cred['id']}")).status_code == 204
    [revoked] = (await c.get(CREDS)).json()["items"]
    assert revoked["revoked_at"] is not None and revoked["revoked_at"] >= cred["created_at"]
    # Revoking again is a no-op: no error, no second event.
    events = await _journal(server)
    assert (await c.delete(f"{CREDS}/{cred['id']}")).status_code == 204
    assert len(await _journal(server)) == len(events)
    assert (await c.get("/api/v1/things/acme:pump-1")).json()["revision"] == thing["revision"] + 2

    added, gone = [e for e in events if e["type"].startswith("credential_")]
    assert added["type"] == "credential_added" and added["cause"] == "setup"
    assert added["patch"] == {"id": cred["id"], "type": "password"}
    assert added["actor"] == "admin"
    assert gone["type"] == "credential_revoked" and gone["patch"] == added["patch"]
    # The journal holds neither the secret nor its hash.
    body = orjson.dumps(events).decode()
    assert cred["secret"] not in body and "$7$" not in body
    verify = (await c.get("/api/v1/journal/verify")).json()
    assert verify["ok"] is True

    # The history of the Thing shows both, and the Thing as it was between them folds.
    history = (await c.get("/api/v1/things/acme:pump-1/history")).json()["items"]
    assert [e["type"] for e in history][-2:] == ["credential_added", "credential_revoked"]


async def test_secret_and_hash_are_never_listed_or_stored_plainly(server: LiveServer) -> None:
    c = server.client
    await c.post("/api/v1/things", json=PUMP)
    cred = (await c.post(CREDS, json={"type": "password"})).json()
    rows = await execute_raw(
        server.settings.database_url or "", "SELECT secret_hash FROM credentials"
    )
    [(stored,)] = rows
    assert stored.startswith("$7$") and cred["secret"] not in stored
    assert "$7$" not in (await c.get(CREDS)).text


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"type": "x509", "secret": "mine"}, "unknown member"),
        ({"type": "token"}, "password"),
        ({}, "password"),
        ({"type": "password", "secret": "mine"}, "unknown member"),
        (["password"], "JSON object"),
        ("password", "JSON object"),
    ],
)
async def test_bad_bodies_are_400(server: LiveServer, body: Any, words: str) -> None:
    c = server.client
    await c.post("/api/v1/things", json=PUMP)
    r = await c.post(CREDS, json=body)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert words in r.json()["detail"]
    assert (await c.get(CREDS)).json()["items"] == []


async def test_missing_things_and_credentials_are_404(server: LiveServer) -> None:
    c = server.client
    assert (await c.post(CREDS, json={"type": "password"})).status_code == 404
    assert (await c.get(CREDS)).status_code == 404
    assert (await c.delete(f"{CREDS}/abc")).status_code == 404
    assert (await c.post("/api/v1/things/no-colon/credentials", json={})).status_code == 400
    for thing_id in ("acme:pump-1", "acme:pump-2"):
        await c.post("/api/v1/things", json={"id": thing_id, "kind": "pump"})
    other = (
        await c.post("/api/v1/things/acme:pump-2/credentials", json={"type": "password"})
    ).json()
    # Another Thing's credential id is not found under this Thing.
    r = await c.delete(f"{CREDS}/{other['id']}")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert (await c.delete(f"{CREDS}/{'x' * 500}")).status_code == 404
    assert (await c.get("/api/v1/things/acme:pump-2/credentials")).json()["items"][0][
        "revoked_at"
    ] is None


async def test_anonymous_and_viewer_callers_are_refused(server: LiveServer) -> None:
    c = server.client
    await c.post("/api/v1/things", json=PUMP)
    async with server.anonymous() as anonymous:
        assert (await anonymous.post(CREDS, json={"type": "password"})).status_code == 401
        assert (await anonymous.get("/api/v1/broker/credentials")).status_code == 401
    token = "iotas_viewer_" + secrets.token_urlsafe(24)
    digest = hashlib.sha256(token.encode()).hexdigest()
    await execute_raw(
        server.settings.database_url or "",
        "INSERT INTO tokens (id, subject, role, token_hash, created_us) "
        f"VALUES ('v1', 'vera', 'viewer', '{digest}', 0)",
    )
    async with server.anonymous() as viewer:
        viewer.headers["Authorization"] = f"Bearer {token}"
        assert (await viewer.get(CREDS)).status_code == 200
        refused = await viewer.post(CREDS, json={"type": "password"})
        assert refused.status_code == 403 and "viewer" in refused.json()["detail"]
        assert (await viewer.get("/api/v1/broker/credentials")).status_code == 403


async def test_broker_export_has_active_hashes_newest_last(server: LiveServer) -> None:
    c = server.client
    for thing_id in ("acme:b", "acme:a"):
        await c.post("/api/v1/things", json={"id": thing_id, "kind": "pump"})
    first = (await c.post("/api/v1/things/acme:a/credentials", json={"type": "password"})).json()
    second = (await c.post("/api/v1/things/acme:a/credentials", json={"type": "password"})).json()
    b = (await c.post("/api/v1/things/acme:b/credentials", json={"type": "password"})).json()
    await c.delete(f"/api/v1/things/acme:b/credentials/{b['id']}")
    r = await c.get("/api/v1/broker/credentials")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["generated_at"]
    assert [x["thing_id"] for x in body["credentials"]] == ["acme:a", "acme:a"]
    rows = dict(
        await execute_raw(
            server.settings.database_url or "", "SELECT id, secret_hash FROM credentials"
        )
    )
    assert [x["secret_hash"] for x in body["credentials"]] == [
        rows[first["id"]],
        rows[second["id"]],
    ]


# -- the service, as the embedded broker uses it ---------------------------------------------


@pytest.fixture
async def rt(database_url: str, tmp_path: Path) -> AsyncIterator[Runtime]:
    from iotas.runtime import open_runtime

    runtime = await open_runtime(Settings(data_dir=tmp_path / "d", database_url=database_url))
    try:
        yield runtime
    finally:
        await runtime.store.dispose()


async def test_verify_password(rt: Runtime) -> None:
    await rt.registry.create(ADMIN, PUMP)
    cred = await rt.credentials.create(ADMIN, "acme:pump-1", {"type": "password"})
    secret = cred["secret"]
    assert await rt.credentials.verify_password("acme:pump-1", secret)
    assert await rt.credentials.verify_password("acme:pump-1", secret)  # from the cache
    assert not await rt.credentials.verify_password("acme:pump-1", secret + "x")
    assert not await rt.credentials.verify_password("acme:pump-1", "")
    assert not await rt.credentials.verify_password("acme:pump-1", "x" * 5000)
    assert not await rt.credentials.verify_password("acme:pump-2", secret)
    assert not await rt.credentials.verify_password("", secret)

    # Two active secrets (a rotation): both work until the old one is revoked.
    newer = await rt.credentials.create(ADMIN, "acme:pump-1", {"type": "password"})
    checks = await asyncio.gather(
        *(rt.credentials.verify_password("acme:pump-1", s) for s in (secret, newer["secret"]))
    )
    assert checks == [True, True]
    await rt.credentials.revoke(ADMIN, "acme:pump-1", cred["id"])
    # Revocation is immediate on this node, cache or not.
    assert not await rt.credentials.verify_password("acme:pump-1", secret)
    assert await rt.credentials.verify_password("acme:pump-1", newer["secret"])
    assert await rt.credentials.active_hashes() == [
        ("acme:pump-1", (await _hashes(rt))[newer["id"]])
    ]


async def test_many_concurrent_checks_do_not_block_the_loop(rt: Runtime) -> None:
    await rt.registry.create(ADMIN, PUMP)
    secret = (await rt.credentials.create(ADMIN, "acme:pump-1", {"type": "password"}))["secret"]
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    wrong = [rt.credentials.verify_password("acme:pump-1", f"wrong-{i}") for i in range(20)]
    results = await asyncio.gather(*wrong, rt.credentials.verify_password("acme:pump-1", secret))
    task.cancel()
    assert results == [False] * 20 + [True]
    # The loop kept turning while 21 hashes were computed in threads.
    assert ticks > 21


async def test_revoke_all_and_a_recreated_thing_inherits_nothing(rt: Runtime) -> None:
    await rt.registry.create(ADMIN, PUMP)
    old = await rt.credentials.create(ADMIN, "acme:pump-1", {"type": "password"})
    await rt.credentials.create(ADMIN, "acme:pump-1", {"type": "password"})
    assert await rt.credentials.verify_password("acme:pump-1", old["secret"])
    assert await rt.credentials.revoke_all(ADMIN, "acme:pump-1") == 2
    assert await rt.credentials.revoke_all(ADMIN, "acme:pump-1") == 0
    assert not await rt.credentials.verify_password("acme:pump-1", old["secret"])

    # Deleted without revoking (the registry alone) and created again: the old secret is
    # neither accepted, listed nor exported.
    await rt.registry.create(ADMIN, {"id": "acme:pump-2", "kind": "pump"})
    stale = await rt.credentials.create(ADMIN, "acme:pump-2", {"type": "password"})
    await rt.registry.delete(ADMIN, "acme:pump-2")
    assert not await rt.credentials.verify_password("acme:pump-2", stale["secret"])
    with pytest.raises(NotFound):
        await rt.credentials.list("acme:pump-2")
    await asyncio.sleep(0.001)  # a later microsecond than the stale credential
    await rt.registry.create(ADMIN, {"id": "acme:pump-2", "kind": "pump"})
    assert await rt.credentials.list("acme:pump-2") == []
    assert not await rt.credentials.verify_password("acme:pump-2", stale["secret"])
    assert await rt.credentials.active_hashes() == []
    with pytest.raises(NotFound):
        await rt.credentials.revoke(ADMIN, "acme:pump-2", stale["id"])


async def test_scoped_and_device_actors_cannot_create(rt: Runtime) -> None:
    await rt.registry.create(ADMIN, PUMP)
    for actor in (Actor("d", role="device"), Actor("o", role="operator", namespaces=("other",))):
        with pytest.raises(Forbidden):
            await rt.credentials.create(Context(actor), "acme:pump-1", {"type": "password"})
    scoped = Context(Actor("o", role="operator", namespaces=("acme",)))
    assert (await rt.credentials.create(scoped, "acme:pump-1", {"type": "password"}))["secret"]


async def _hashes(rt: Runtime) -> dict[str, str]:
    from sqlalchemy import select

    from iotas.store.schema import credentials

    def read(conn: Any) -> dict[str, str]:
        rows = conn.execute(select(credentials.c.id, credentials.c.secret_hash))
        return {row.id: row.secret_hash for row in rows}

    return await rt.store.read(read)


# -- the CLI ---------------------------------------------------------------------------------


async def _iotas(server: LiveServer, *args: str) -> subprocess.CompletedProcess[str]:
    # A real `iotas` process; the server answers it from this event loop, so wait in a thread.
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "iotas", "--url", server.url, "--token", server.token, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_cli_add_ls_rm(server: LiveServer, database_url: str) -> None:
    await server.client.post("/api/v1/things", json=PUMP)
    added = await _iotas(server, "things", "credentials", "add", "acme:pump-1")
    assert added.returncode == 0, added.stderr
    secret = added.stdout.strip()  # the secret alone on stdout, for scripts
    assert len(secret) == 43 and "shown only now" in " ".join(added.stderr.split())

    listed = await _iotas(server, "things", "credentials", "ls", "acme:pump-1", "--json")
    [item] = orjson.loads(listed.stdout)
    assert item["revoked_at"] is None and secret not in listed.stdout
    table = await _iotas(server, "things", "credentials", "ls", "acme:pump-1")
    assert item["id"] in table.stdout and "1 active" in table.stderr

    as_json = await _iotas(server, "--json", "things", "credentials", "add", "acme:pump-1")
    assert orjson.loads(as_json.stdout)["secret"]

    removed = await _iotas(server, "things", "credentials", "rm", "acme:pump-1", item["id"], "-y")
    assert removed.returncode == 0, removed.stderr
    items = orjson.loads(
        (await _iotas(server, "things", "credentials", "ls", "acme:pump-1", "--json")).stdout
    )
    assert [i["revoked_at"] is None for i in items] == [False, True]

    out = server.settings.data_dir / "device"
    x509 = await _iotas(
        server, "things", "credentials", "add", "acme:pump-1", "--type", "x509", "--out", str(out)
    )
    assert x509.returncode == 0, x509.stderr
    assert f"{out}.crt" in x509.stderr and (out.parent / "device.key").stat().st_mode & 0o077 == 0
    assert (out.parent / "device.crt").read_text().startswith("-----BEGIN CERTIFICATE-----")
    missing = await _iotas(server, "things", "credentials", "ls", "acme:nope")
    assert missing.returncode == 3
