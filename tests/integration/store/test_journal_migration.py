"""Migration 0010 (journal entries name their kind of record) keeps a journal written before
it verifiable, and the chain goes on after it (decision 53); on both backends."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from alembic import command
from sqlalchemy import Connection, text

from iotas.domain import clock
from iotas.domain.journal import chain_hash
from iotas.runtime import open_runtime
from iotas.services.context import Actor, Context
from iotas.settings import Settings
from iotas.store import engine, migrate
from support import in_transaction

CTX = Context(Actor("tester"), "test")


def _old_body(seq: int, ts_us: int, thing_id: str, type_: str, patch: Any) -> bytes:
    """An event's canonical bytes as iotas wrote them before 0010 (a frozen copy)."""
    doc = {
        "seq": seq,
        "ts": clock.to_rfc3339(ts_us),
        "thing_id": thing_id,
        "type": type_,
        "actor": "old-operator",
        "cause": None,
        "patch": patch,
        "before": None,
    }
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def _to_0009_and_append(conn: Connection) -> None:
    """Back to 0009, then two events appended exactly as the code of that revision did."""
    command.downgrade(migrate.alembic_config(conn), "0009")
    seq, digest, ts_us = conn.execute(text("SELECT seq, hash, ts_us FROM journal_head")).one()
    ts_us = max(ts_us, clock.now_us())
    for type_, patch in (("desired_changed", {"mode": "eco"}), ("thing_connected", None)):
        seq, ts_us = seq + 1, ts_us + 1
        body = _old_body(seq, ts_us, "acme:old", type_, patch)
        digest = chain_hash(digest, body)
        conn.execute(
            text(
                "INSERT INTO journal (seq, ts_us, thing_id, type, body, hash)"
                " VALUES (:seq, :ts_us, :thing_id, :type, :body, :hash)"
            ),
            {
                "seq": seq,
                "ts_us": ts_us,
                "thing_id": "acme:old",
                "type": type_,
                "body": body.decode(),
                "hash": digest,
            },
        )
    conn.execute(
        text("UPDATE journal_head SET seq = :seq, hash = :hash, ts_us = :ts_us"),
        {"seq": seq, "hash": digest, "ts_us": ts_us},
    )


async def test_a_journal_from_before_0010_verifies_after_it_and_goes_on(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "d", database_url=database_url)
    rt = await open_runtime(settings)
    try:
        # Things' events only: their form is the one 0009 knew.
        await rt.registry.create(CTX, {"id": "acme:old", "kind": "pump"})
        await rt.registry.patch_twin(CTX, "acme:old", "reported", {"t": 1})
        await rt.credentials.create(CTX, "acme:old", {"type": "password"})
        await rt.registry.create(CTX, {"id": "acme:gone", "kind": "pump"})
        await rt.registry.delete(CTX, "acme:gone")
        reported_at = clock.now_us()
    finally:
        await rt.store.dispose()

    await in_transaction(engine.database_url(database_url, settings.data_dir), _to_0009_and_append)
    rt = await open_runtime(settings)  # migrates to the head again: 0010 runs
    try:
        verified = await rt.journal.verify()
        assert (verified.ok, verified.checked) == (True, 7), verified
        history = await rt.journal.history(
            "acme:old", after_seq=0, since_us=None, until_us=None, limit=100
        )
        assert [e["type"] for e in history] == [
            "thing_created",
            "reported_changed",
            "credential_added",
            "desired_changed",
            "thing_connected",
        ]
        assert all("kind" not in e and e["thing_id"] == "acme:old" for e in history)
        then = await rt.journal.thing_at("acme:old", reported_at)
        assert then.twin.reported == {"t": 1} and then.twin.desired == {}
        # (Only the journal was written at 0009, so only a fold sees those two events.)
        now = await rt.journal.thing_at("acme:old", clock.now_us())
        assert now.twin.desired == {"mode": "eco"} and now.connected

        # The chain goes on, with entries of other kinds among the Things'.
        await rt.tokens.create(CTX, {"subject": "ci-bot", "role": "viewer"})
        await rt.registry.patch_twin(CTX, "acme:old", "reported", {"t": 2})
        verified = await rt.journal.verify()
        assert (verified.ok, verified.checked) == (True, 9), verified
        kinds = [e.get("kind", "thing") for e in await rt.journal.feed(0, 100, kinds=None)]
        assert kinds == ["thing"] * 7 + ["token", "thing"]
    finally:
        await rt.store.dispose()
