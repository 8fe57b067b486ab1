"""Two `iotas up` nodes on one PostgreSQL: each cluster-wide controller runs on one of them,
and when that node is killed (SIGKILL: nothing is let go in good order) the other takes over
within 10 s. Seen from outside: /healthz names what a node leads, and an adopted WoT Thing (a
small HTTP Thing run here) gets its desired state written by whichever node leads."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from e2e.e2e_server import ServerProcess, server_process
from support import free_port

CLUSTER_WIDE = [
    "invocation-expiry",
    "rollouts",
    "tdd-expiry",
    "telemetry-compaction",
    "telemetry-retention",
    "wot-reconciler",
]
TAKEOVER_S = 10.0
WAIT_S = 20.0


class HttpThing:
    """A WoT Thing with one writable property, `level`, over plain HTTP."""

    def __init__(self) -> None:
        self.level: Any = 0
        self.writes: list[Any] = []
        self.changed = threading.Condition()
        thing = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._answer(200, orjson.dumps(thing.level))

            def do_PUT(self) -> None:
                value = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with thing.changed:
                    thing.level = value
                    thing.writes.append(value)
                    thing.changed.notify_all()
                self._answer(204, b"")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def td(self) -> dict[str, Any]:
        return {
            "@context": "https://www.w3.org/2022/wot/td/v1.1",
            "id": "urn:iotas-test:takeover-lamp",
            "title": "Lamp",
            "securityDefinitions": {"nosec": {"scheme": "nosec"}},
            "security": "nosec",
            "properties": {
                "level": {
                    "type": "integer",
                    "forms": [{"href": f"{self.url}/level", "contentType": "application/json"}],
                }
            },
        }

    def wait_for_write(self, value: Any, within: float) -> float:
        """Seconds until `value` was written to the Thing (fails after `within`)."""
        started = time.monotonic()
        with self.changed:
            if not self.changed.wait_for(lambda: value in self.writes, within):
                raise AssertionError(f"{value!r} was not written within {within} s: {self.writes}")
        return time.monotonic() - started


@pytest.fixture
def http_thing() -> Iterator[HttpThing]:
    thing = HttpThing()
    serving = threading.Thread(target=thing.server.serve_forever, daemon=True)
    serving.start()
    try:
        yield thing
    finally:
        thing.server.shutdown()
        thing.server.server_close()


def _health(node: ServerProcess) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{node.url}/healthz", timeout=5).json()
    return answer


def _until(check: Callable[[], bool], within: float, what: str) -> float:
    """Seconds until `check()` holds (polled every 0.1 s; fails after `within`)."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within:
            raise AssertionError(f"{what} did not happen within {within} s")
        time.sleep(0.1)
    return time.monotonic() - started


def _set_level(node: ServerProcess, value: int) -> None:
    response = httpx.patch(
        f"{node.url}/api/v1/things/iotas-test:takeover-lamp/twin/desired",
        json={"level": value},
        headers={
            "Authorization": f"Bearer {node.token}",
            "Content-Type": "application/merge-patch+json",
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_the_other_node_takes_over_when_the_leader_is_killed(
    tmp_path: Path, pg_database: str, http_thing: HttpThing
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        server_process(tmp_path / "a", database_url=pg_database) as first,
        server_process(tmp_path / "b", database_url=pg_database) as second,
    ):
        # The first node up took every lease; the second runs none of them.
        assert _health(first)["leading"] == CLUSTER_WIDE
        assert _health(second)["leading"] == []

        adopted = httpx.post(
            f"{second.url}/api/v1/adoptions",
            json={"td": http_thing.td(), "id": "iotas-test:takeover-lamp", "poll_interval": 60},
            headers={"Authorization": f"Bearer {second.token}"},
            timeout=10,
        )
        assert adopted.status_code == 201, adopted.text
        # Adopted on the second node, managed by the first: it writes the desired level.
        _set_level(second, 3)
        http_thing.wait_for_write(3, WAIT_S)

        first.process.kill()
        first.process.wait(10)
        took = _until(
            lambda: _health(second)["leading"] == CLUSTER_WIDE, TAKEOVER_S, "the takeover"
        )
        assert took <= TAKEOVER_S
        _set_level(second, 7)
        http_thing.wait_for_write(7, WAIT_S)
        assert _health(second)["adapters"]["wot"] == {"leading": True, "managed": 1}
