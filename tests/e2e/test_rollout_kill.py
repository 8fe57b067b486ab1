"""kill -9 of `iotas up` with a rollout in its second wave: after a restart on the same data,
the rollout goes on from where it was, and no Thing's change was started twice or skipped.

Nothing answers the invocations here (the end-to-end version with simulated devices comes
with the MQTT delivery); each Thing times out after 1 s instead, which moves the rollout just
as results would: a Thing started, then finished, then the next ones. Every start queues one
invocation, journaled `invocation_created` with the rollout's id, so the journal tells how
many times each Thing was started."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import httpx

from e2e.e2e_server import ServerProcess, server_process
from rollout_support import MODEL

THINGS = 200
WAIT_S = 90.0


def _client(node: ServerProcess) -> httpx.Client:
    return httpx.Client(
        base_url=node.url, headers={"Authorization": f"Bearer {node.token}"}, timeout=10
    )


def _until(get: Any, check: Any, within: float, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        seen: dict[str, Any] = get()
        if check(seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {within} s: {seen}")
        time.sleep(0.1)


def _starts(client: httpx.Client, rollout_id: str) -> dict[str, int]:
    """invocation_created events of the rollout, per Thing."""
    seen: dict[str, int] = {}
    params: dict[str, Any] = {"kind": "invocation", "limit": 1000}
    while True:
        page = client.get("/api/v1/journal", params=params).json()
        for event in page["items"]:
            patch = event.get("patch") or {}
            if event["type"] == "invocation_created" and patch.get("rollout") == rollout_id:
                seen[patch["thing"]] = seen.get(patch["thing"], 0) + 1
        if not page.get("next"):
            return seen
        params["cursor"] = page["next"]


def test_a_rollout_goes_on_after_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (tmp_path / "a").mkdir()
    with server_process(tmp_path / "a", data_dir=data) as first, _client(first) as client:
        for i in range(THINGS):
            made = client.post(
                "/api/v1/things",
                json={
                    "id": f"kill:m-{i:04d}",
                    "kind": "meter",
                    "attributes": {"batch": "k9"},
                    "description": MODEL,
                },
            )
            assert made.status_code == 201, made.text
        rollout = client.post(
            "/api/v1/rollouts",
            json={
                "name": "reboot through a crash",
                "target": 'attributes.batch == "k9"',
                "change": {"type": "action", "action": "reboot", "ttl": 600},
                "waves": [{"percent": 10}, {"percent": 90}],
                "max_in_flight": 40,
                "timeout": 1,
            },
        ).json()
        rollout_id = rollout["id"]

        def get() -> dict[str, Any]:
            found: dict[str, Any] = client.get(f"/api/v1/rollouts/{rollout_id}").json()
            return found

        _until(
            get,
            lambda r: (
                r["waves"][1]["counts"]["in_flight"] > 0 and r["waves"][1]["counts"]["pending"] > 40
            ),
            WAIT_S,
            "the second wave",
        )
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
    (tmp_path / "b").mkdir()
    with server_process(tmp_path / "b", data_dir=data) as second, _client(second) as client:

        def again() -> dict[str, Any]:
            found: dict[str, Any] = client.get(f"/api/v1/rollouts/{rollout_id}").json()
            return found

        done = _until(
            again,
            lambda r: r["status"] == "succeeded" and r["counts"]["in_flight"] == 0,
            WAIT_S,
            "the end of the rollout",
        )
        assert done["total"] == THINGS
        assert done["counts"]["failed"] == THINGS  # every one timed out: nothing answers
        things = client.get(f"/api/v1/rollouts/{rollout_id}/things", params={"limit": 1000}).json()[
            "items"
        ]
        assert all(t["ref"] and t["outcome"]["code"] == "timeout" for t in things)
        starts = _starts(client, rollout_id)
        assert len(starts) == THINGS and set(starts.values()) == {1}
