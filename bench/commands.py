"""Commands end to end (issue 15): invocations completed per second, from created to
`succeeded`, through a real `iotas` server and its broker to device-SDK devices and back,
while 20 % of the devices go offline and come back.

Per broker (a private Mosquitto, or iotas' embedded broker):

- singles: `--clients` (8) HTTP clients invoke `ping` on random devices for `--seconds`;
- rollout: one rollout of `ping` over every device (one wave, no limits);
- during each, `--offline` (20 %) of the devices lose their network (their reconnects fail)
  and get an invocation while away; they come back spread over `--offline-s`, and the time
  from each one's reconnect (its CONNACK) to its first delivery (the handler starting) is
  measured;
- lost: invocations iotas accepted that did not end `succeeded` within `--settle-timeout`;
  executed twice: handler runs of one invocation id beyond the first (the device SDK drops
  a repeat delivery by id; this counts what reached handlers);
- the physical limit, in the same run: the broker's raw QoS 1 publish-to-acknowledgement rate
  with the same number of clients (bench/ingest.py's generator, no iotas; for the embedded
  broker, a plain amqtt broker in its own process), printed as a ratio.

Rates use the server's own times: completed invocations / (last `updated` of a succeeded
one - first `created`). The devices are the device SDK (gmqtt) in this process on uvloop;
their Things are written into the server's database before it starts (with passwords for
the embedded broker), as creating 10,000 through the API would take longer than the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

# `python bench/commands.py` puts bench/ first on sys.path (bench/ is a folder of scripts).
from _common import (
    HOST,
    RESULTS_DIR,
    Row,
    Server,
    free_port,
    latency_summary_ms,
    print_table,
    run_header,
    verdict,
    write_json,
)
from ingest import (
    _CHILDREN,
    IOTAS_SETTINGS,
    Child,
    Fleet,
    Mosquitto,
    _recv,
    amqtt_main,
    cpu_seconds,
    environment,
    watchdog,
)

from iotas.domain import journal as ev
from iotas.domain.clock import parse_rfc3339
from iotas.runtime import open_runtime
from iotas.sdk import Device
from iotas.sdk._mqtt import Link
from iotas.services import changes
from iotas.services.context import Actor, Context
from iotas.services.credentials import NewCredential, add_in
from iotas.settings import Settings
from iotas.store.store import WriteTx

NAMESPACE = "bench"
ACTION = "ping"
MODEL: dict[str, Any] = {"actions": {ACTION: {}}}
TTL_S = 3600.0
SEEDER = Context(Actor("bench-commands"), "bench/commands.py")
TASK_PREFIX = "iotas-action "  # the SDK names each handler's task after its invocation

TARGET_ROLLOUT_PER_S = 2000.0  # on Mosquitto
TARGET_RECONNECT_P99_MS = 1000.0
FINAL = ("succeeded", "failed", "expired", "cancelled", "rejected")


# --- the devices ---------------------------------------------------------------------------


class Record:
    """What the devices saw: handler runs per invocation id, reconnect-to-delivery times."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.reconnect_s: list[float] = []


class BenchDevice(Device):
    """A device whose network can be cut for a while (its reconnects fail until then)."""

    def __init__(self, thing_id: str, secret: str | None, url: str, record: Record) -> None:
        super().__init__(
            thing_id, secret, url=url, follow_desired=False, backoff_initial=0.1, backoff_max=0.5
        )
        self.offline_until = 0.0
        self.expecting = False  # it has an invocation waiting since it went offline
        self.up_at: float | None = None
        self.record = record
        self.on_action(ACTION)(self._ping)

    async def _open(self) -> Link:
        if time.monotonic() < self.offline_until:
            raise OSError("offline (bench)")
        return await super()._open()

    def _up(self, link: Link) -> None:
        super()._up(link)
        if self.expecting:
            self.up_at = time.monotonic()

    async def _ping(self, value: Any, progress: Any) -> Any:
        task = asyncio.current_task()
        name = task.get_name() if task is not None else ""
        if not name.startswith(TASK_PREFIX):
            raise RuntimeError(f"the SDK's handler task is named {name!r}: cannot count by id")
        self.record.runs[name[len(TASK_PREFIX) :]] += 1
        if self.up_at is not None:
            self.record.reconnect_s.append(time.monotonic() - self.up_at)
            self.up_at = None
            self.expecting = False
        return {"pong": True}

    def go_offline(self) -> None:
        self.offline_until = float("inf")
        self.expecting = True
        self.up_at = None
        self.drop_connection()


async def seed(data_dir: Path, ids: list[str], passwords: bool) -> dict[str, str]:
    """The Things (with MODEL, and a password each when `passwords`) in the database the
    server will open; their secrets."""
    rt = await open_runtime(Settings(data_dir=data_dir))
    secrets: dict[str, str] = {}
    record = {"kind": "sensor", "attributes": {}, "labels": {}, "links": [], "description": MODEL}

    def unit(tx: WriteTx, chunk: list[str], made: dict[str, NewCredential]) -> None:
        for thing_id in chunk:
            changes.change(tx, SEEDER, None, thing_id, ev.THING_CREATED, record)
            if passwords:
                add_in(tx, SEEDER, tx.existing(thing_id), made[thing_id])

    try:
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            made = (
                {t: await rt.credentials.prepare(t, {"type": "password"}) for t in chunk}
                if passwords
                else {}
            )
            await rt.store.write(lambda tx, c=chunk, m=made: unit(tx, c, m))  # type: ignore[misc]
            secrets.update({t: str(m.shown_once["secret"]) for t, m in made.items()})
    finally:
        await rt.store.dispose()
    return secrets


async def connect_all(devices: list[BenchDevice], timeout: float, at_once: int) -> dict[str, Any]:
    """Connect every device, `at_once` handshakes at a time: more, and a busy broker answers
    them slower than they time out (10 s), they are retried, and none gets through."""
    started = time.monotonic()
    limit = asyncio.Semaphore(at_once)

    async def one(device: BenchDevice) -> bool:
        async with limit:
            try:
                await device.connect(give_up_after=timeout)
            except Exception:
                return False
            return True

    ok = await asyncio.gather(*(one(d) for d in devices))
    took = time.monotonic() - started
    return {"connected": sum(ok), "failed": len(ok) - sum(ok), "connect_s": round(took, 2)}


# --- the API -------------------------------------------------------------------------------


async def invoke(client: httpx.AsyncClient, thing_id: str) -> str | None:
    answer = await client.post(
        f"/api/v1/things/{thing_id}/actions/{ACTION}", json={"input": None, "ttl": TTL_S}
    )
    return str(answer.json()["id"]) if answer.status_code == 202 else None


async def invocations(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after: str | None = None
    while True:
        query = {**params, "limit": "1000", **({"after": after} if after else {})}
        answer = await client.get("/api/v1/invocations", params=query)
        answer.raise_for_status()
        page = answer.json()
        found += page["items"]
        after = page["next"]
        if after is None:
            return found


async def settle(
    client: httpx.AsyncClient, ids: set[str], timeout: float, **params: str
) -> tuple[list[dict[str, Any]], bool]:
    """The invocations `ids` (read with `params`) once all are final, or when `timeout`
    has passed; and whether all were."""
    deadline = time.monotonic() + timeout
    while True:
        seen = [i for i in await invocations(client, **params) if i["id"] in ids]
        if len(seen) == len(ids) and all(i["status"] in FINAL for i in seen):
            return seen, True
        if time.monotonic() > deadline:
            return seen, False
        await asyncio.sleep(0.5)


def completed(
    seen: list[dict[str, Any]], away: set[str], since_us: int | None = None
) -> dict[str, Any]:
    """Succeeded invocations and the rate: count / (last success - first created, or
    `since_us`); beside it the same over the Things never taken offline (`away`: those
    that were), whose return the rate otherwise includes."""

    def rate(items: list[dict[str, Any]]) -> tuple[int, float, float | None]:
        done = [i for i in items if i["status"] == "succeeded"]
        if not done:
            return 0, 0.0, None
        first = (
            since_us if since_us is not None else min(parse_rfc3339(i["created"]) for i in items)
        )
        span = max(max(parse_rfc3339(i["updated"]) for i in done) - first, 1) / 1e6
        return len(done), round(len(done) / span, 1), round(span, 3)

    count, per_s, span = rate(seen)
    online, online_per_s, online_span = rate([i for i in seen if i["thing"] not in away])
    return {
        "succeeded": count,
        "rate_per_s": per_s,
        "span_s": span,
        "succeeded_online": online,
        "rate_online_per_s": online_per_s,
        "span_online_s": online_span,
    }


# --- offline and back ----------------------------------------------------------------------


async def outage(
    devices: list[BenchDevice],
    share: float,
    rng: random.Random,
    client: httpx.AsyncClient | None = None,
    made: list[str] | None = None,
) -> list[BenchDevice]:
    """Cut `share` of the devices off and wait until each is disconnected; with `client`,
    give each an invocation while it is away (its id into `made`)."""
    away = rng.sample(devices, round(share * len(devices)))
    for device in away:
        device.go_offline()
    deadline = time.monotonic() + 30.0
    while any(d.connected for d in away) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    if client is not None and made is not None:
        limit = asyncio.Semaphore(8)

        async def one(device: BenchDevice) -> None:
            async with limit:
                made_id = await invoke(client, device.thing_id)
                if made_id is not None:
                    made.append(made_id)

        await asyncio.gather(*(one(d) for d in away))
    return away


def back(away: list[BenchDevice], spread_s: float, rng: random.Random) -> set[str]:
    """Let the devices cut off come back, spread over `spread_s`; their ids."""
    now = time.monotonic()
    for device in away:
        device.offline_until = now + rng.uniform(0.1, spread_s)
    return {d.thing_id for d in away}


# --- the phases ----------------------------------------------------------------------------


async def singles(
    client: httpx.AsyncClient, devices: list[BenchDevice], args: argparse.Namespace
) -> dict[str, Any]:
    rng = random.Random(1)
    made: list[str] = []
    refused = 0
    stop_at = time.monotonic() + args.seconds
    budget = [int(args.max_rate * args.seconds)]

    async def worker(k: int) -> None:
        nonlocal refused
        own = random.Random(k)
        while time.monotonic() < stop_at and budget[0] > 0:
            budget[0] -= 1
            made_id = await invoke(client, own.choice(devices).thing_id)
            if made_id is None:
                refused += 1
            else:
                made.append(made_id)

    away: set[str] = set()

    async def chaos() -> None:
        await asyncio.sleep(min(1.0, args.seconds / 4))
        cut = await outage(devices, args.offline, rng, client, made)
        away.update(back(cut, args.offline_s, rng))

    started = time.monotonic()
    await asyncio.gather(chaos(), *(worker(k) for k in range(args.clients)))
    offered_s = time.monotonic() - started
    seen, all_final = await settle(client, set(made), args.settle_timeout)
    return {
        "created": len(made),
        "refused": refused,
        "offered_s": round(offered_s, 2),
        "went_offline": len(away),
        "all_final": all_final,
        "statuses": dict(Counter(i["status"] for i in seen)),
        **completed(seen, away),
        "ids": set(made),
    }


async def rollout(
    client: httpx.AsyncClient, devices: list[BenchDevice], args: argparse.Namespace
) -> dict[str, Any]:
    rng = random.Random(2)
    cut = await outage(devices, args.offline, rng)
    answer = await client.post(
        "/api/v1/rollouts",
        json={
            "name": "bench: ping every device",
            "target": f'namespace == "{NAMESPACE}"',
            "change": {"type": "action", "action": ACTION, "ttl": TTL_S},
        },
    )
    answer.raise_for_status()
    made = answer.json()
    rollout_id = made["id"]
    deadline = time.monotonic() + args.settle_timeout
    state = made
    away: set[str] = set()
    while state["status"] not in ("succeeded", "halted", "cancelled"):
        if not away and state["counts"]["pending"] == 0:
            away = back(cut, args.offline_s, rng)  # once every invocation was made
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
        got = await client.get(f"/api/v1/rollouts/{rollout_id}")
        got.raise_for_status()
        state = got.json()
    seen = await invocations(client, rollout=rollout_id)
    return {
        "rollout": rollout_id,
        "status": state["status"],
        "counts": state["counts"],
        "total": state["total"],
        "went_offline": len(away),
        "statuses": dict(Counter(i["status"] for i in seen)),
        **completed(seen, away, parse_rfc3339(state["started"]) if state.get("started") else None),
        "ids": {i["id"] for i in seen},
    }


async def raw_rate(kind: str, clients: int, args: argparse.Namespace) -> dict[str, Any]:
    """The broker alone: QoS 1 publishes from `clients` connections, acknowledged per s."""
    mosquitto: Mosquitto | None = None
    broker: Child | None = None
    fleet: Fleet | None = None
    try:
        if kind == "mosquitto":
            mosquitto = Mosquitto(inflight=args.mosquitto_inflight)
            mosquitto.start()
            port = mosquitto.port
        else:
            port = free_port()
            broker = Child(amqtt_main, port, name="bench-amqtt")
            _recv(broker, 30)
        ids = [f"{NAMESPACE}:raw-{i:05d}" for i in range(clients)]
        fleet = Fleet(port, ids, None, args.procs)
        ready = fleet.ready(args.connect_timeout)
        seconds = max(2.0, min(args.seconds, 10.0))
        fleet.load(seconds + 1.0, 0.0, args.inflight, int(args.max_rate * (seconds + 1.0)))
        await asyncio.sleep(1.0)
        t0, a0 = time.monotonic(), fleet.acked
        await asyncio.sleep(seconds)
        t1, a1 = time.monotonic(), fleet.acked
        done = await fleet.finished(seconds + 60)
        return {
            "what": "Mosquitto alone"
            if kind == "mosquitto"
            else "a plain amqtt broker (what the embedded one is built on), no iotas",
            "clients": ready,
            "inflight_per_client": args.inflight,
            "rate_per_s": round((a1 - a0) / (t1 - t0), 1),
            "generator": done,
        }
    finally:
        for stop in (
            fleet.close if fleet else None,
            broker.stop if broker else None,
            mosquitto.stop if mosquitto else None,
        ):
            if stop is not None:
                with contextlib.suppress(Exception):
                    stop()


async def run_broker(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    ids = [f"{NAMESPACE}:dev-{i:05d}" for i in range(args.devices)]
    data_dir = Path(tempfile.mkdtemp(prefix="iotas-bench-commands-"))
    mosquitto: Mosquitto | None = None
    server: Server | None = None
    stopping: Callable[[], None] | None = None
    devices: list[BenchDevice] = []
    record = Record()
    out: dict[str, Any] = {"broker": kind}
    try:
        started = time.monotonic()
        secrets = await seed(data_dir, ids, passwords=kind == "embedded")
        out["seed_s"] = round(time.monotonic() - started, 2)
        if kind == "mosquitto":
            mosquitto = Mosquitto(inflight=args.mosquitto_inflight)
            mosquitto.start()
            port = mosquitto.port
            env = {"IOTAS_MQTT_URL": f"mqtt://{HOST}:{port}", "IOTAS_MQTT_PORT": ""}
        else:
            port = free_port()
            env = {"IOTAS_MQTT_URL": "", "IOTAS_MQTT_PORT": str(port)}
        with environment(**env, **IOTAS_SETTINGS):
            server = Server(data_dir=data_dir, database_url=None)
            stopping = _stopper(server)
            _CHILDREN.append(stopping)  # the watchdog stops it too
            server.start()
        assert server.process is not None
        url = f"mqtt://{HOST}:{port}"
        devices = [BenchDevice(t, secrets.get(t), url, record) for t in ids]
        out["devices"] = await connect_all(devices, args.connect_timeout, args.connecting)
        print(f"[{kind}] {out['devices']}", flush=True)
        limits = httpx.Limits(max_connections=args.clients + 8)
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=server.headers, limits=limits, timeout=60
        ) as client:
            cpu0, own0, wall0 = (
                cpu_seconds(server.process.pid),
                time.process_time(),
                time.monotonic(),
            )
            out["singles"] = await singles(client, devices, args)
            print(f"[{kind}] singles: {_brief(out['singles'])}", flush=True)
            out["rollout"] = await rollout(client, devices, args)
            print(f"[{kind}] rollout: {_brief(out['rollout'])}", flush=True)
            # Where the cores went while iotas worked (the devices live in this process).
            out["phases_wall_s"] = round(time.monotonic() - wall0, 1)
            out["iotas_cpu_s"] = round(cpu_seconds(server.process.pid) - cpu0, 1)
            out["bench_process_cpu_s"] = round(time.process_time() - own0, 1)
        accepted = out["singles"].pop("ids") | out["rollout"].pop("ids")
        out["reconnect_to_delivery"] = latency_summary_ms(record.reconnect_s)
        out["reconnects_expected"] = out["singles"]["went_offline"] + out["rollout"]["went_offline"]
        succeeded = out["singles"]["succeeded"] + out["rollout"]["succeeded"]
        out["lost"] = len(accepted) - succeeded
        out["executed_twice"] = sum(n - 1 for n in record.runs.values() if n > 1)
        out["executed_unknown"] = len(set(record.runs) - accepted)
        out["not_executed_but_succeeded"] = succeeded - len(set(record.runs) & accepted)
    finally:
        await asyncio.gather(*(d.close(grace=1.0) for d in devices), return_exceptions=True)
        if server is not None:
            server.stop()
            if stopping is not None:
                _CHILDREN.remove(stopping)
        if mosquitto is not None:
            mosquitto.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    print(f"[{kind}] raw broker ...", flush=True)
    out["raw"] = await raw_rate(kind, args.devices, args)
    raw = out["raw"]["rate_per_s"]
    for phase in ("singles", "rollout"):
        out[phase]["per_raw"] = round(out[phase]["rate_per_s"] / raw, 4) if raw else None
    p99 = out["reconnect_to_delivery"]["p99_ms"]
    out["targets"] = {
        "reconnect_p99_under_1s": out["reconnect_to_delivery"]["count"] > 0
        and p99 < TARGET_RECONNECT_P99_MS,
        "zero_lost": out["lost"] == 0,
        "zero_executed_twice": out["executed_twice"] == 0,
    }
    if kind == "mosquitto":
        out["targets"]["rollout_at_least_2000_per_s"] = (
            out["rollout"]["rate_per_s"] >= TARGET_ROLLOUT_PER_S
        )
    return out


def _stopper(server: Server) -> Callable[[], None]:
    def stop() -> None:
        server.stop()

    return stop


def _brief(phase: dict[str, Any]) -> str:
    return f"{phase['succeeded']:,} succeeded at {phase['rate_per_s']:,.0f}/s; {phase['statuses']}"


def table(result: dict[str, Any]) -> list[Row]:
    targets = result["targets"]
    raw = result["raw"]["rate_per_s"]
    reconnect = result["reconnect_to_delivery"]
    rows = []
    for phase, label in (("singles", "singles, 8 clients"), ("rollout", "one rollout")):
        data = result[phase]
        rows.append(
            Row(
                f"{label}: completed/s",
                f"{data['rate_per_s']:,.0f}/s",
                ">= 2,000/s"
                if phase == "rollout" and "rollout_at_least_2000_per_s" in targets
                else "",
                verdict(targets.get("rollout_at_least_2000_per_s")) if phase == "rollout" else "",
                f"{data['succeeded']:,} succeeded of {sum(data['statuses'].values()):,} in "
                f"{data['span_s']} s; / raw {data['per_raw']}; devices never offline: "
                f"{data['rate_online_per_s']:,.0f}/s",
            )
        )
    rows += [
        Row("broker raw QoS 1 publish->ack", f"{raw:,.0f}/s", note=result["raw"]["what"]),
        Row(
            "reconnect -> first delivery p50",
            f"{reconnect['p50_ms']:.0f} ms",
            note=f"{reconnect['count']} of {result['reconnects_expected']} reconnects",
        ),
        Row(
            "reconnect -> first delivery p99",
            f"{reconnect['p99_ms']:.0f} ms",
            "< 1,000 ms",
            verdict(targets["reconnect_p99_under_1s"]),
        ),
        Row("lost", str(result["lost"]), "0", verdict(targets["zero_lost"])),
        Row(
            "executed twice",
            str(result["executed_twice"]),
            "0",
            verdict(targets["zero_executed_twice"]),
        ),
    ]
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--broker", choices=["embedded", "mosquitto", "both"], default="both", help="default both"
    )
    parser.add_argument("--devices", type=int, default=10_000, help="simulated devices")
    parser.add_argument("--seconds", type=float, default=20.0, help="singles: invoking for (s)")
    parser.add_argument("--clients", type=int, default=8, help="HTTP clients invoking")
    parser.add_argument("--offline", type=float, default=0.2, help="share going offline")
    parser.add_argument("--offline-s", type=float, default=1.0, help="back spread over (s)")
    parser.add_argument("--settle-timeout", type=float, default=600.0, help="bound (s)")
    parser.add_argument("--connect-timeout", type=float, default=600.0, help="bound (s)")
    parser.add_argument("--connecting", type=int, default=50, help="handshakes at a time")
    parser.add_argument(
        "--procs", type=int, default=max(2, os.cpu_count() or 2), help="raw generator processes"
    )
    parser.add_argument("--inflight", type=int, default=8, help="raw: QoS 1 in flight per client")
    parser.add_argument("--mosquitto-inflight", type=int, default=20000, help=argparse.SUPPRESS)
    parser.add_argument("--max-rate", type=float, default=100_000.0, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=3600.0, help="hard bound on the run (s)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 devices, 5 s")
    parser.add_argument(
        "--out", type=Path, default=None, help="default bench/results/commands.json"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.devices, args.seconds, args.offline_s = 200, 5.0, 1.0
        args.settle_timeout, args.connect_timeout = 120.0, 120.0
        args.timeout = min(args.timeout, 600.0)
    if args.devices < 5 or args.clients < 1 or not 0 <= args.offline <= 1:
        parser.error("--devices >= 5, --clients >= 1, --offline from 0 to 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    watchdog(args.timeout, "commands")
    brokers = ["embedded", "mosquitto"] if args.broker == "both" else [args.broker]
    result: dict[str, Any] = {
        **run_header("commands"),
        "parameters": {
            k: v for k, v in vars(args).items() if k not in ("out", "max_rate", "timeout")
        },
        "devices_client": "device SDK (gmqtt) in the benchmark's process",
        "targets": {
            "mosquitto_rollout_per_s_min": TARGET_ROLLOUT_PER_S,
            "reconnect_to_delivery_p99_ms_max": TARGET_RECONNECT_P99_MS,
            "lost": 0,
            "executed_twice": 0,
        },
        "brokers": {},
    }
    failed = False
    for kind in brokers:
        try:
            result["brokers"][kind] = asyncio.run(run_broker(kind, args))
        except Exception as exc:  # one broker failing must not lose the other's figures
            failed = True
            print(f"[{kind}] FAILED: {exc!r}", file=sys.stderr)
            result["brokers"][kind] = {"broker": kind, "error": repr(exc)}
    result["machine"]["load_average_at_end"] = list(os.getloadavg())
    path = write_json(args.out or RESULTS_DIR / "commands.json", result)
    for kind in brokers:
        data = result["brokers"][kind]
        if "error" in data:
            print(f"\n{kind}: FAILED: {data['error']}")
            continue
        print_table(
            f"commands via {kind}: {args.devices:,} devices, {args.offline:.0%} offline and back, "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores",
            table(data),
        )
        failed = failed or not all(data["targets"].values())
    print(f"\nwrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
