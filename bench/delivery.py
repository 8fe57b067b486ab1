"""Invocations to MQTT devices, end to end: a real `iotas` server subprocess, simulated devices
(the device SDK, in this process) answering `ping` at once, and 8 clients invoking it.

    .venv/bin/python bench/delivery.py --broker mosquitto --devices 500 --invocations 5000
    .venv/bin/python bench/delivery.py --broker embedded --devices 200 --out /tmp/d.json

Figures:
- completed invocations/s: `POST .../actions/ping` from 8 clients over loopback, round robin
  over the devices, until every invocation ended; the server's own `created` and `updated`
  times (first created to last succeeded), with p50/p99 of created-to-succeeded;
- reconnect to first delivery: `--offline` devices are closed, invoked while away, and
  connected again at once; from each one's CONNACK to its handler getting the invocation;
- lost (created, not succeeded) and executed twice (a handler run more than once for one
  invocation id; repeats the SDK dropped are counted apart).

With `--broker mosquitto` the server uses the Mosquitto at 127.0.0.1:1883, which must let
anyone in (devices connect without a password); with `embedded`, its own broker on a free
port (each device gets a password credential first).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    Row,
    free_port,
    latency_summary_ms,
    print_table,
    run_header,
    running_server,
    verdict,
    write_json,
)

from iotas.sdk import Device

CLIENTS = 8
MODEL: dict[str, Any] = {"actions": {"ping": {}}}


def seconds(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


class Fleet:
    def __init__(self, ids: list[str], secrets_: dict[str, str], url: str) -> None:
        self.runs: Counter[str] = Counter()
        self.first_at: dict[str, float] = {}
        self.retired = 0  # handler runs of devices replaced (a process restarted, say)
        self.devices = {t: self._device(t, secrets_.get(t), url) for t in ids}

    def _device(self, thing_id: str, secret: str | None, url: str) -> Device:
        device = Device(thing_id, secret, url=url, backoff_initial=0.2, backoff_max=2.0)

        @device.on_action("ping")
        async def ping(value: Any, progress: Any) -> Any:
            self.first_at.setdefault(thing_id, time.monotonic())
            return None

        original = device.actions.take

        def take(topic: str, payload: bytes) -> None:
            self.runs[topic.rsplit("/", 1)[1]] += 1
            original(topic, payload)

        device.actions.take = take  # type: ignore[method-assign]
        return device

    def executed_twice(self) -> int:
        """Handler runs beyond one per invocation id (the SDK's `received` counts runs)."""
        received = self.retired + sum(d.actions.stats.received for d in self.devices.values())
        return max(0, received - len(self.runs))

    def repeats_dropped(self) -> int:
        return sum(d.actions.stats.repeated for d in self.devices.values())


async def provision(api: httpx.AsyncClient, ids: list[str], embedded: bool) -> dict[str, str]:
    found: dict[str, str] = {}
    gate = asyncio.Semaphore(CLIENTS)

    async def one(thing_id: str) -> None:
        async with gate:
            made = await api.post(
                "/api/v1/things", json={"id": thing_id, "kind": "bench", "description": MODEL}
            )
            made.raise_for_status()
            if embedded:
                cred = await api.post(
                    f"/api/v1/things/{thing_id}/credentials", json={"type": "password"}
                )
                cred.raise_for_status()
                found[thing_id] = cred.json()["secret"]

    await asyncio.gather(*(one(t) for t in ids))
    return found


async def invoke_all(api: httpx.AsyncClient, ids: list[str], count: int) -> list[str]:
    made: list[str] = []
    counter = iter(range(count))

    async def client() -> None:
        for n in counter:
            response = await api.post(
                f"/api/v1/things/{ids[n % len(ids)]}/actions/ping", json={"input": None}
            )
            response.raise_for_status()
            made.append(response.json()["id"])

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return made


async def ended(api: httpx.AsyncClient, ids: list[str], timeout: float) -> list[dict[str, Any]]:
    """Every invocation once all ended (or the timeout passed), by id."""
    deadline = time.monotonic() + timeout
    wanted = set(ids)
    while True:
        found: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if after:
                params["after"] = after
            page = (await api.get("/api/v1/invocations", params=params)).json()
            found += [i for i in page["items"] if i["id"] in wanted]
            after = page["next"]
            if not after:
                break
        finals = [i for i in found if i["status"] not in ("queued", "delivered", "running")]
        if len(finals) == len(wanted) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    embedded = args.broker == "embedded"
    if embedded:
        mqtt_port = free_port()
        os.environ["IOTAS_MQTT_PORT"] = str(mqtt_port)
        os.environ.pop("IOTAS_MQTT_URL", None)
        mqtt_url = f"mqtt://127.0.0.1:{mqtt_port}"
    else:
        os.environ["IOTAS_MQTT_URL"] = "mqtt://127.0.0.1:1883"
        os.environ["IOTAS_MQTT_CLIENT_ID"] = "iotas-bench-" + secrets.token_hex(4)
        os.environ["IOTAS_MQTT_SESSION_EXPIRY"] = "60"
        mqtt_url = "mqtt://127.0.0.1:1883"
    space = "b" + secrets.token_hex(4)
    ids = [f"{space}:d-{n}" for n in range(args.devices)]
    with running_server(None) as server:
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=server.headers, timeout=60
        ) as api:
            device_secrets = await provision(api, ids, embedded)
            fleet = Fleet(ids, device_secrets, mqtt_url)
            await asyncio.gather(*(d.connect(give_up_after=120) for d in fleet.devices.values()))

            # Completed invocations per second, 8 clients.
            made = await invoke_all(api, ids, args.invocations)
            items = await ended(api, made, args.timeout)
            done = [i for i in items if i["status"] == "succeeded"]
            start = min(seconds(i["created"]) for i in items)
            end = max(seconds(i["updated"]) for i in done) if done else start
            latency = [seconds(i["updated"]) - seconds(i["created"]) for i in done]

            # Reconnect to first delivery.
            away = ids[: args.offline]
            await asyncio.gather(*(fleet.devices[t].close() for t in away))
            fleet.first_at.clear()
            fleet.retired += sum(fleet.devices[t].actions.stats.received for t in away)
            fleet.devices.update(
                {t: fleet._device(t, device_secrets.get(t), mqtt_url) for t in away}
            )
            waiting = await invoke_all(api, away, len(away))
            connected_at: dict[str, float] = {}

            async def back(thing_id: str) -> None:
                await fleet.devices[thing_id].connect(give_up_after=120)
                connected_at[thing_id] = time.monotonic()

            await asyncio.gather(*(back(t) for t in away))
            later = await ended(api, waiting, args.timeout)
            reconnect = [
                max(0.0, fleet.first_at[t] - connected_at[t]) for t in away if t in fleet.first_at
            ]
            await asyncio.gather(*(d.close() for d in fleet.devices.values()))
    lost = len(made) - len(done) + len(waiting) - sum(i["status"] == "succeeded" for i in later)
    return {
        **run_header("delivery"),
        "broker": args.broker,
        "devices": args.devices,
        "invocations": len(made),
        "clients": CLIENTS,
        "completed_per_s": round(len(done) / (end - start), 1) if end > start else None,
        "created_to_succeeded": latency_summary_ms(latency),
        "reconnect_to_first_delivery": latency_summary_ms(reconnect),
        "offline_devices": len(away),
        "lost": lost,
        "statuses": dict(Counter(i["status"] for i in [*items, *later])),
        "executed_twice": fleet.executed_twice(),
        "repeats_dropped_by_the_sdk": fleet.repeats_dropped(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", choices=["mosquitto", "embedded"], default="mosquitto")
    parser.add_argument("--devices", type=int, default=500)
    parser.add_argument("--invocations", type=int, default=5000)
    parser.add_argument("--offline", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    args.offline = min(args.offline, args.devices)
    result = asyncio.run(run(args))
    succeeded = result["created_to_succeeded"]
    back = result["reconnect_to_first_delivery"]
    rows = [
        Row("completed invocations/s", str(result["completed_per_s"])),
        Row("created to succeeded p50/p99 ms", f"{succeeded['p50_ms']}/{succeeded['p99_ms']}"),
        Row(
            "reconnect to first delivery p50/p99 ms",
            f"{back['p50_ms']}/{back['p99_ms']}",
            "p99 < 1000",
            verdict(back["p99_ms"] < 1000),
        ),
        Row("lost", str(result["lost"]), "0", verdict(result["lost"] == 0)),
        Row(
            "executed twice",
            str(result["executed_twice"]),
            "0",
            verdict(not result["executed_twice"]),
        ),
    ]
    print_table(f"delivery over {args.broker}, {args.devices} devices", rows)
    if args.out is not None:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
