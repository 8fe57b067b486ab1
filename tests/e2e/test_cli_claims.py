"""`iotas claims create|ls|rm` against a real server, and a device provisioning with the
token the CLI printed."""

from __future__ import annotations

import asyncio

import pytest

from e2e.e2e_server import ServerProcess
from e2e.test_cli import iotas, live, ok_json
from iotas.sdk.errors import ApiError
from iotas.sdk.provisioning import provision

__all__ = ["live"]  # the module-scoped server fixture, shared with test_cli.py


def test_claims_create_list_use_and_revoke(live: ServerProcess) -> None:
    created = iotas(
        live,
        "claims",
        "create",
        "--namespace",
        "clm",
        "--kind",
        "meter",
        "--label",
        "batch=b7",
        "--attribute",
        "site=plant-7",
        "--attribute",
        "rev:=3",
        "--desired",
        '{"interval": 60}',
        "--name-pattern",
        "meter-{serial}",
        "--max-uses",
        "2",
        "--expires",
        "30d",
    )
    assert created.exit_code == 0, created.output
    token = created.stdout.strip()
    assert token.startswith("iotas_claim_") and "\n" not in token
    assert "shown only now" in created.stderr

    listed = ok_json(iotas(live, "claims", "ls", "--json"))
    mine = [c for c in listed if c["template"]["namespace"] == "clm"]
    assert len(mine) == 1 and token not in str(listed)
    claim = mine[0]
    assert claim["template"]["attributes"] == {"site": "plant-7", "rev": 3}
    assert claim["template"]["labels"] == {"batch": "b7"}
    assert claim["template"]["desired"] == {"interval": 60}
    assert claim["max_uses"] == 2 and claim["expires_at"] is not None

    done = asyncio.run(provision(live.url, token, "A1"))
    assert done.thing_id == "clm:meter-A1"
    table = iotas(live, "claims", "ls")
    assert table.exit_code == 0 and claim["id"] in table.stdout and "1/2" in table.stdout

    removed = iotas(live, "claims", "rm", claim["id"], "--yes")
    assert removed.exit_code == 0, removed.output
    with pytest.raises(ApiError) as refused:
        asyncio.run(provision(live.url, token, "A2"))
    assert refused.value.status == 403
    assert ok_json(iotas(live, "claims", "ls", "--json"))[-1]["state"] == "revoked"

    unlimited = ok_json(
        iotas(
            live, "--json", "claims", "create", "--namespace", "clm", "--kind", "k", "--unlimited"
        )
    )
    assert unlimited["max_uses"] is None and unlimited["token"].startswith("iotas_claim_")
    for bad in (
        ("--namespace", "Bad!", "--kind", "k"),
        ("--namespace", "clm", "--kind", "k", "--desired", "[1]"),
        ("--namespace", "clm", "--kind", "k", "--expires", "2001-01-01T00:00:00Z"),
    ):
        result = iotas(live, "claims", "create", *bad)
        assert result.exit_code != 0, bad
