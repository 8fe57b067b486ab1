"""The embedded broker's connect path and delivery check, measured in one process (decision 47).

Brokers on 127.0.0.1, no database: a stand-in gate lets in every client whose client id is
its user name and applies iotas' own topic rule (`BrokerGate.owns`). Compared:

- `amqtt`: amqtt 0.12's Broker with iotas' auth and topic plugins (its connect path, which
  iotas used unchanged before decision 47);
- `iotas`: `GatedBroker` (connect path, retained replay, takeover and every delivery checked).

Figures: `--devices` gmqtt clients (MQTT 3.1.1), each with a retained desired state, connect
at the same moment and subscribe to their own desired topic: the time until every one has
its own desired state (connects/s), how many were dropped, how many received another's
topic, and the errors the broker logged. Then one subscribed client receives `--messages`
QoS 0 messages that the broker publishes: messages/s with and without the per-delivery check.

    .venv/bin/python bench/embedded_broker.py --devices 500 --messages 20000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import socket
import statistics
import time
import timeit
from pathlib import Path
from typing import Any

from amqtt.broker import Broker
from amqtt.mqtt.constants import QOS_0, QOS_1
from gmqtt import Client
from gmqtt.mqtt.constants import MQTTv311

from iotas.broker.gate import BrokerGate
from iotas.broker.gated import GatedBroker
from iotas.broker.handler import GatedHandler
from iotas.services.stats import IngestStats

SETTLE = 30.0
RESULT = Path(__file__).resolve().parent / "results" / "embedded_broker.json"


class StandInGate:
    """What the broker asks of `BrokerGate`, without credentials or a database."""

    provisioning = None

    def __init__(self) -> None:
        self.stats = IngestStats()

    async def authenticate(self, client_id: Any, username: Any, _p: Any, _s: str = "-") -> bool:
        return bool(username) and client_id == username

    owns = staticmethod(BrokerGate.owns)

    def may_use(self, username: str | None, topic: str, _action: str) -> bool:
        return BrokerGate.owns(username, topic)

    async def take(self, *_a: Any) -> None:
        return None

    def presence_changed(self, *_a: Any) -> None:
        return None

    async def presence_settled(self) -> None:
        return None


class Errors(logging.Handler):
    """Counts what is logged at ERROR and above (tracebacks among it), printing nothing."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


ERRORS = Errors()


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _broker(kind: str, gate: StandInGate, port: int) -> Broker:
    plugins = "iotas.broker.plugins"
    config: dict[str, Any] = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {
            f"{plugins}.IotasAuthPlugin": {"gate": gate},
            f"{plugins}.IotasTopicPlugin": {"gate": gate},
        },
    }
    broker = GatedBroker(config, gate) if kind == "iotas" else Broker(config)  # type: ignore[arg-type]
    await broker.start()
    return broker


async def connects(kind: str, devices: int) -> dict[str, Any]:
    gate, port = StandInGate(), _port()
    broker = await _broker(kind, gate, port)
    ERRORS.count = 0
    ids = [f"bench{i % 2}:dev-{i}" for i in range(devices)]
    for thing_id in ids:
        payload = json.dumps({"wifi_password": f"pw-{thing_id}", "$version": 1}).encode()
        await broker.retain_message(None, f"things/{thing_id}/desired", payload, QOS_1)
    clients: list[Client] = []
    own: dict[str, asyncio.Event] = {t: asyncio.Event() for t in ids}
    foreign: set[str] = set()
    drops = [0]

    def make(thing_id: str) -> Client:
        client = Client(thing_id)
        client.set_config({"reconnect_retries": 0})
        client.set_auth_credentials(thing_id, "x")

        def on_message(_c: Any, topic: str, _payload: bytes, _q: int, _p: Any) -> int:
            if topic == f"things/{thing_id}/desired":
                own[thing_id].set()
            elif not topic.startswith(f"things/{thing_id}/"):
                foreign.add(thing_id)
            return 0

        client.on_message = on_message
        client.on_disconnect = lambda *_a: drops.__setitem__(0, drops[0] + 1)
        return client

    async def connect(thing_id: str) -> None:
        client = make(thing_id)
        clients.append(client)
        await client.connect("127.0.0.1", port, keepalive=60, version=MQTTv311)
        client.subscribe(f"things/{thing_id}/desired", qos=1)

    started = time.monotonic()
    results = await asyncio.gather(*(connect(t) for t in ids), return_exceptions=True)
    refused = sum(isinstance(r, BaseException) for r in results)
    connacked = time.monotonic() - started
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in own.values())), SETTLE)
    took = time.monotonic() - started
    settled = sum(e.is_set() for e in own.values())
    report = {
        "broker": kind,
        "devices": devices,
        "connacks_per_s": round((devices - refused) / connacked, 1),
        "seconds_to_all_own_desired": round(took, 2) if settled == devices else None,
        "connects_per_s": round(devices / took, 1) if settled == devices else None,
        "got_own_desired": settled,
        "refused_or_failed_connects": refused,
        "dropped": drops[0],
        "received_others_topics": len(foreign),
        "errors_logged": ERRORS.count,
    }
    drops[0] = 0
    await asyncio.gather(*(c.disconnect() for c in clients if c.is_connected))
    await broker.shutdown()
    return report


async def deliveries(kind: str, messages: int, check: bool) -> dict[str, Any]:
    gate, port = StandInGate(), _port()
    broker = await _broker(kind, gate, port)
    original = GatedHandler._may_receive
    if not check:
        GatedHandler._may_receive = lambda self, topic: True  # type: ignore[method-assign]
    got = [0]
    done = asyncio.Event()
    client = Client("bench:sub")
    client.set_auth_credentials("bench:sub", "x")

    def on_message(*_a: Any) -> int:
        got[0] += 1
        if got[0] >= messages:
            done.set()
        return 0

    client.on_message = on_message
    try:
        await client.connect("127.0.0.1", port, keepalive=60, version=MQTTv311)
        client.subscribe("things/bench:sub/desired", qos=0)
        await asyncio.sleep(0.5)  # the SUBACK; the measurement is of the stream after it
        started = time.monotonic()
        for i in range(messages):
            await broker.internal_message_broadcast("things/bench:sub/desired", b"%d" % i, QOS_0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), SETTLE)
        took = time.monotonic() - started
        return {
            "broker": kind,
            "per_delivery_check": check if kind == "iotas" else "amqtt plugin",
            "messages": messages,
            "received": got[0],
            "messages_per_s": round(got[0] / took),
        }
    finally:
        GatedHandler._may_receive = original  # type: ignore[method-assign]
        await client.disconnect()
        await broker.shutdown()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)
    logging.getLogger().addHandler(ERRORS)
    rows = [await connects(kind, args.devices) for kind in ("amqtt", "iotas")]
    # Delivery runs alternate, `--repeat` times each, and the median is quoted: one run on a
    # shared machine moves by more than the difference measured.
    runs: dict[tuple[str, bool], list[int]] = {}
    for _ in range(args.repeat):
        for kind, check in (("amqtt", True), ("iotas", False), ("iotas", True)):
            row = await deliveries(kind, args.messages, check)
            runs.setdefault((kind, check), []).append(row["messages_per_s"])
    for (kind, check), rates in runs.items():
        rows.append(
            {
                "broker": kind,
                "per_delivery_check": check if kind == "iotas" else "amqtt plugin",
                "messages": args.messages,
                "messages_per_s": rates,
                "median": statistics.median(rates),
            }
        )
    rows.append({"per_delivery_check_ns": _check_cost()})
    for row in rows:
        print(json.dumps(row))
    RESULT.write_text(json.dumps(rows, indent=2) + "\n")


def _check_cost(n: int = 1_000_000) -> int:
    """The per-delivery check alone, in nanoseconds (the call as the handler makes it)."""
    session = type("Session", (), {"username": "acme:dev-1"})()
    handler = GatedHandler.__new__(GatedHandler)
    handler.session = session
    handler.gate = StandInGate()  # type: ignore[assignment]
    topic = "things/acme:dev-1/desired"
    took = timeit.timeit(lambda: handler._may_receive(topic), number=n)
    empty = timeit.timeit(lambda: None, number=n)
    return round((took - empty) / n * 1e9)


if __name__ == "__main__":
    asyncio.run(main())
