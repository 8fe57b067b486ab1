"""The ingest benchmark: QoS 1 telemetry from many MQTT devices, stored by iotas.

    .venv/bin/python bench/ingest.py                         # both brokers, 1,000 devices
    .venv/bin/python bench/ingest.py --quick                 # smoke run, about a minute
    .venv/bin/python bench/ingest.py --broker mosquitto --devices 1000 --seconds 20

For each broker (the embedded amqtt one, and a private Mosquitto started here) it measures:

  a) the raw pass-through rate: the same devices send the same message stream through the
     same broker to a subscriber that only counts (no iotas): the limit of this machine;
  b) the rate of telemetry iotas durably stores from those devices (its own counter, checked
     afterwards against every Thing's stored samples read back through the API);
  c) publish -> queryable through `GET /api/v1/things/{id}/telemetry`, p50/p99;
  d) `PATCH /api/v1/things/{id}/twin/desired` -> the device receives `things/{id}/desired`.

The load generator is a minimal MQTT 3.1.1 client written here on asyncio (uvloop), spread
over several processes; see bench/README.md for why, and for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

import httpx

# `python bench/ingest.py` puts bench/ first on sys.path, so the shared helpers import
# directly (bench/ is a folder of scripts, not a package).
from _common import (
    HOST,
    RESULTS_DIR,
    Row,
    Server,
    free_port,
    healthz_rate,
    latency_summary_ms,
    print_table,
    run_header,
    running_server,
    verdict,
    write_json,
)

from iotas.adapters.mqtt.mosquitto import mosquitto_conf
from iotas.domain.clock import now_us, to_rfc3339
from iotas.sdk import Client
from iotas.sim.plan import SimThing, thing_at
from iotas.sim.provision import provision

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
NAMESPACE = "bench"
PROBE_ID = f"{NAMESPACE}:probe"
TELEMETRY_FILTER = "things/+/telemetry"

# The per-device message budget (100/s by default) is for real devices; simulated ones sending
# flat out (100 devices at 20,000/s in --quick) would be refused, so the benchmark lifts it.
IOTAS_SETTINGS = {"IOTAS_MQTT_DEVICE_RATE": "0"}

# Targets from the issue.
TARGET_MOSQUITTO_RATE = 15_000.0
TARGET_SHARE_OF_RAW = 0.5


def thing_ids(devices: int) -> list[str]:
    return [thing_at(i, NAMESPACE, devices).id for i in range(devices)]


# --- a minimal MQTT 3.1.1 client ----------------------------------------------------------
# Just what the benchmark needs: CONNECT, SUBSCRIBE, QoS 1 PUBLISH both ways, PUBACK. Writing
# packets from prepared bytes, and answering a whole read of PUBACKs with one write of new
# PUBLISHes, makes it several times cheaper per message than a general client, so the
# generator takes as little as possible of the two cores it shares with iotas and the broker.


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(text: str) -> bytes:
    raw = text.encode()
    return len(raw).to_bytes(2, "big") + raw


def connect_packet(client_id: str, username: str | None, password: str | None) -> bytes:
    flags = 0x02  # clean session
    payload = _string(client_id)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
        if password is not None:
            flags |= 0x40
            payload += _string(password)
    # Keep-alive 0: no PINGREQ needed while a phase is idle.
    body = b"\x00\x04MQTT\x04" + bytes([flags]) + b"\x00\x00" + payload
    return b"\x10" + _varint(len(body)) + body


def subscribe_packet(mid: int, topic_filter: str) -> bytes:
    body = mid.to_bytes(2, "big") + _string(topic_filter) + b"\x01"
    return b"\x82" + _varint(len(body)) + body


# Telemetry payloads of a fixed length (so each device's PUBLISH header is prepared once):
# {"t":21.53,"h":40.1,"p":1013.2}, the values varying from message to message.
PAYLOADS = [
    b'{"t":%.2f,"h":%.1f,"p":%.1f}' % (15 + (i * 0.37) % 10, 30 + (i * 0.7) % 50, 1000 + i % 30)
    for i in range(256)
]
PAYLOAD_SIZE = len(PAYLOADS[0])
assert all(len(p) == PAYLOAD_SIZE for p in PAYLOADS)


class MqttConn(asyncio.Protocol):
    """One MQTT connection: QoS 1 publishes with a window, and incoming publishes."""

    def __init__(
        self,
        client_id: str,
        *,
        username: str | None = None,
        password: str | None = None,
        on_acks: Callable[[MqttConn, int], None] | None = None,
        on_message: Callable[[bytes, bytes], None] | None = None,
    ) -> None:
        self.client_id = client_id
        self.username = username
        self.password = password
        self.on_acks = on_acks
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        loop = asyncio.get_running_loop()
        self.connack: asyncio.Future[int] = loop.create_future()
        self.suback: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.inflight = 0
        self.mid = 0
        self.waiters: dict[int, asyncio.Future[float]] = {}
        topic = f"things/{client_id}/telemetry".encode()
        remaining = 2 + len(topic) + 2 + PAYLOAD_SIZE
        self.head = b"\x32" + _varint(remaining) + len(topic).to_bytes(2, "big") + topic
        self.n = 0

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(connect_packet(self.client_id, self.username, self.password))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.connack.done():
            self.connack.set_exception(ConnectionError(f"{self.client_id}: closed ({exc})"))
        if not self.closed.done():
            self.closed.set_result(None)
        for waiter in self.waiters.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError("connection lost"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        size = len(buf)
        pos = acks = 0
        replies: list[bytes] = []
        while size - pos >= 2:
            header = buf[pos]
            i = pos + 1
            rem = shift = 0
            complete = False
            while i < size:
                byte = buf[i]
                i += 1
                rem |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    complete = True
                    break
            if not complete or i + rem > size:
                break  # an incomplete packet: wait for more
            kind = header >> 4
            if kind == 4:  # PUBACK
                acks += 1
                if self.waiters:
                    waiter = self.waiters.pop((buf[i] << 8) | buf[i + 1], None)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(time.perf_counter())
            elif kind == 3:  # PUBLISH to us
                qos = (header >> 1) & 3
                tlen = (buf[i] << 8) | buf[i + 1]
                topic = bytes(buf[i + 2 : i + 2 + tlen])
                j = i + 2 + tlen
                if qos:
                    if qos == 1:
                        replies.append(b"\x40\x02" + bytes(buf[j : j + 2]))
                    j += 2
                if self.on_message is not None:
                    self.on_message(topic, bytes(buf[j : i + rem]))
            elif kind == 2 and not self.connack.done():  # CONNACK
                self.connack.set_result(buf[i + 1])
            elif kind == 9 and not self.suback.done():  # SUBACK
                self.suback.set_result(None)
            pos = i + rem
        if pos:
            del buf[:pos]
        if replies and self.transport is not None:
            self.transport.write(b"".join(replies))
        if acks:
            self.inflight -= acks
            if self.on_acks is not None:
                self.on_acks(self, acks)

    # publishing

    def packets(self, count: int) -> bytes:
        """`count` telemetry PUBLISHes, QoS 1, ready to write."""
        out = []
        head = self.head
        for _ in range(count):
            self.mid = self.mid % 65535 + 1
            self.n += 1
            out.append(head + self.mid.to_bytes(2, "big") + PAYLOADS[self.n & 255])
        self.inflight += count
        return b"".join(out)

    def send(self, count: int) -> None:
        if self.transport is not None and count > 0:
            self.transport.write(self.packets(count))

    def publish(self, topic: str, payload: bytes) -> asyncio.Future[float]:
        """One QoS 1 publish whose future gives the perf_counter time of its PUBACK."""
        assert self.transport is not None
        self.mid = self.mid % 65535 + 1
        raw = _string(topic) + self.mid.to_bytes(2, "big") + payload
        waiter: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters[self.mid] = waiter
        self.inflight += 1
        self.transport.write(b"\x32" + _varint(len(raw)) + raw)
        return waiter

    async def subscribe(self, topic_filter: str, timeout: float = 10.0) -> None:
        assert self.transport is not None
        self.transport.write(subscribe_packet(1, topic_filter))
        await asyncio.wait_for(self.suback, timeout)

    def disconnect(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"\xe0\x00")
            self.transport.close()


async def open_conn(port: int, conn: MqttConn, timeout: float = 30.0) -> MqttConn:
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.create_connection(lambda: conn, HOST, port), timeout)
    code = await asyncio.wait_for(conn.connack, timeout)
    if code != 0:
        conn.disconnect()
        raise ConnectionError(f"{conn.client_id}: CONNACK return code {code}")
    return conn


def _run_uvloop(main: Callable[[], Any]) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] brings it
        asyncio.run(main())
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


# --- generator processes -------------------------------------------------------------------
# Each process holds a share of the devices' connections and obeys commands from a pipe:
# ("load", seconds, rate or 0, inflight, max_messages), ("stop",), ("quit",). Counters live
# in shared memory, so the parent reads them at any instant without asking.


@dataclass
class Counters:
    sent: Any  # multiprocessing RawValue("q")
    acked: Any


def generator_main(
    pipe: Connection,
    counters: Counters,
    port: int,
    devices: list[tuple[str, str | None, str | None]],
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    _run_uvloop(lambda: _generator(pipe, counters, port, devices))


async def _generator(
    pipe: Connection,
    counters: Counters,
    port: int,
    devices: list[tuple[str, str | None, str | None]],
) -> None:
    loop = asyncio.get_running_loop()
    state: dict[str, Any] = {"running": False, "deadline": 0.0, "budget": 0, "rate": 0.0}

    def on_acks(conn: MqttConn, count: int) -> None:
        counters.acked.value += count
        if not state["running"] or state["rate"]:
            return
        if time.monotonic() >= state["deadline"]:
            state["running"] = False
            return
        count = min(count, state["budget"])
        if count > 0:
            state["budget"] -= count
            counters.sent.value += count
            conn.send(count)

    conns: list[MqttConn] = []
    gate = asyncio.Semaphore(32)
    errors: list[str] = []

    async def connect(device: tuple[str, str | None, str | None]) -> None:
        client_id, username, password = device
        async with gate:
            try:
                conn = MqttConn(client_id, username=username, password=password, on_acks=on_acks)
                conns.append(await open_conn(port, conn))
            except (OSError, TimeoutError, ConnectionError) as exc:
                errors.append(f"{client_id}: {exc!r}")

    await asyncio.gather(*(connect(d) for d in devices))
    pipe.send(("ready", len(conns), errors[:5], len(errors)))

    commands: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
    loop.add_reader(pipe.fileno(), lambda: commands.put_nowait(pipe.recv()))
    run_task: asyncio.Task[dict[str, Any]] | None = None

    async def run(seconds: float, rate: float, inflight: int, max_messages: int) -> dict[str, Any]:
        started = time.monotonic()
        sent0, acked0 = counters.sent.value, counters.acked.value
        state.update(
            running=True,
            deadline=started + seconds,
            budget=max_messages,
            rate=rate,
        )
        if not rate:
            # Closed loop: every device keeps `inflight` messages unacknowledged.
            for conn in conns:
                count = min(inflight, state["budget"])
                state["budget"] -= count
                counters.sent.value += count
                conn.send(count)
            while state["running"] and time.monotonic() < state["deadline"]:
                await asyncio.sleep(0.05)
        else:
            # Paced: `rate` messages a second over this process' devices, round robin,
            # never more than `inflight` unacknowledged per device.
            ring = itertools.cycle(conns)
            done = 0
            while state["running"] and time.monotonic() < state["deadline"]:
                due = min(int(rate * (time.monotonic() - started)) - done, state["budget"])
                for _ in range(len(conns)):
                    if due <= 0:
                        break
                    conn = next(ring)
                    if conn.inflight < inflight:
                        conn.send(1)
                        due -= 1
                        done += 1
                        state["budget"] -= 1
                        counters.sent.value += 1
                await asyncio.sleep(0.002)
        state["running"] = False
        stopped = time.monotonic()
        # Wait (bounded) for the acknowledgements still owed, so totals are exact.
        grace = stopped + 60.0
        while any(c.inflight > 0 for c in conns) and time.monotonic() < grace:
            await asyncio.sleep(0.05)
        return {
            "sent": counters.sent.value - sent0,
            "acked": counters.acked.value - acked0,
            "unacked": sum(max(c.inflight, 0) for c in conns),
            "load_s": stopped - started,
            "settle_s": time.monotonic() - stopped,
            "closed_connections": sum(1 for c in conns if c.closed.done()),
        }

    def _report(task: asyncio.Task[dict[str, Any]]) -> None:
        error = None if task.cancelled() else task.exception()
        if task.cancelled() or error is not None:
            pipe.send(("done", {"error": repr(error) if error else "cancelled"}))
        else:
            pipe.send(("done", task.result()))

    while True:
        command = await commands.get()
        if command[0] == "load":
            _, seconds, rate, inflight, max_messages = command
            run_task = asyncio.create_task(run(seconds, rate, inflight, max_messages))
            run_task.add_done_callback(_report)
        elif command[0] == "stop":
            state["running"] = False
        elif command[0] == "quit":
            state["running"] = False
            if run_task is not None:
                with contextlib.suppress(Exception):
                    await run_task
            for conn in conns:
                conn.disconnect()
            await asyncio.sleep(0.2)
            pipe.send(("bye",))
            return


def counter_main(pipe: Connection, count: Any, port: int) -> None:
    """The subscriber that only counts (the raw rate): QoS 1 on things/+/telemetry."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def main() -> None:
        def on_message(topic: bytes, payload: bytes) -> None:
            count.value += 1

        conn = await open_conn(port, MqttConn("bench-counter", on_message=on_message))
        await conn.subscribe(TELEMETRY_FILTER)
        pipe.send(("ready",))
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        conn.disconnect()

    _run_uvloop(main)


def amqtt_main(pipe: Connection, port: int) -> None:
    """A plain amqtt broker (what the embedded one is built on), anonymous, no iotas."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    async def main() -> None:
        from amqtt.broker import Broker

        broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{HOST}:{port}"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )
        await broker.start()
        pipe.send(("ready",))
        await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        await broker.shutdown()

    _run_uvloop(main)


# --- the parent's handles on child processes -----------------------------------------------

_SPAWN = multiprocessing.get_context("spawn")
_CHILDREN: list[Callable[[], None]] = []  # how to stop each child still running


def _recv(child: Child, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while not child.pipe.poll(0.1):
        if not child.process.is_alive():
            raise RuntimeError(f"{child.name} exited with {child.process.exitcode}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{child.name}: no answer within {timeout:.0f}s")
    return child.pipe.recv()


class Child:
    """A spawned process with a pipe; stopped by its own handle only."""

    def __init__(self, target: Callable[..., None], *args: Any, name: str) -> None:
        self.pipe, child_end = _SPAWN.Pipe()
        self.process = _SPAWN.Process(target=target, args=(child_end, *args), name=name)
        self.process.start()
        child_end.close()
        self.name = name
        _CHILDREN.append(self.kill)

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    def stop(self, message: tuple[Any, ...] = ("quit",), timeout: float = 15.0) -> None:
        if self.process.is_alive():
            with contextlib.suppress(OSError, BrokenPipeError):
                self.pipe.send(message)
            self.process.join(timeout)
        self.kill()

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        with contextlib.suppress(ValueError):
            _CHILDREN.remove(self.kill)


class Fleet:
    """The simulated devices, spread over `procs` generator processes."""

    def __init__(
        self,
        port: int,
        ids: list[str],
        secrets: dict[str, str] | None,
        procs: int,
    ) -> None:
        devices = [(i, i if secrets else None, secrets[i] if secrets else None) for i in ids]
        self.counters: list[Counters] = []
        self.children: list[Child] = []
        for k in range(procs):
            counters = Counters(_SPAWN.RawValue("q", 0), _SPAWN.RawValue("q", 0))
            self.counters.append(counters)
            share = devices[k::procs]
            self.children.append(
                Child(generator_main, counters, port, share, name=f"bench-generator-{k}")
            )

    def ready(self, timeout: float) -> dict[str, Any]:
        connected, errors, failed = 0, [], 0
        deadline = time.monotonic() + timeout
        for child in self.children:
            reply = _recv(child, max(1.0, deadline - time.monotonic()))
            connected += reply[1]
            errors += reply[2]
            failed += reply[3]
        return {"connected": connected, "failed": failed, "first_errors": errors[:5]}

    def load(self, seconds: float, rate: float, inflight: int, max_messages: int) -> None:
        procs = len(self.children)
        for child in self.children:
            child.pipe.send(("load", seconds, rate / procs, inflight, max_messages // procs))

    def stop_load(self) -> None:
        for child in self.children:
            child.pipe.send(("stop",))

    async def finished(self, timeout: float) -> dict[str, Any]:
        def wait() -> list[dict[str, Any]]:
            deadline = time.monotonic() + timeout
            return [_recv(c, max(1.0, deadline - time.monotonic()))[1] for c in self.children]

        parts = await asyncio.to_thread(wait)
        errors = [p["error"] for p in parts if "error" in p]
        if errors:
            raise RuntimeError(f"a generator failed: {errors[0]}")
        return {
            "sent": sum(p["sent"] for p in parts),
            "acked": sum(p["acked"] for p in parts),
            "unacked": sum(p["unacked"] for p in parts),
            "load_s": round(max(p["load_s"] for p in parts), 3),
            "settle_s": round(max(p["settle_s"] for p in parts), 3),
            "closed_connections": sum(p["closed_connections"] for p in parts),
        }

    @property
    def sent(self) -> int:
        return sum(int(c.sent.value) for c in self.counters)

    @property
    def acked(self) -> int:
        return sum(int(c.acked.value) for c in self.counters)

    @property
    def pids(self) -> list[int]:
        return [c.pid for c in self.children]

    def close(self) -> None:
        for child in self.children:
            child.stop()


# --- brokers -------------------------------------------------------------------------------


def broker_config_tuning(inflight: int | None) -> list[str]:
    """The lines of `iotas broker-config mosquitto` that set Mosquitto's limits and
    persistence (everything but listeners, authentication and the plugin), taken from the
    function that writes them, so the bench's broker cannot drift from a user's. Devices here
    log in anonymously: authentication costs Mosquitto only at connect. `inflight`, when
    given (`--mosquitto-inflight`), replaces max_inflight_messages to measure another value."""
    conf = mosquitto_conf(
        host=HOST, port=1, plugin="-", dynsec=Path("-"), things=0, generated_at="-"
    )
    tuning = ("max_inflight_messages", "max_queued_messages", "max_queued_bytes", "persistence")
    lines = [line for line in conf.splitlines() if line.split(" ")[0] in tuning]
    if inflight is not None:
        lines = [ln for ln in lines if not ln.startswith("max_inflight_messages")]
        lines.append(f"max_inflight_messages {inflight}")
    return lines


@dataclass
class Mosquitto:
    """A private Mosquitto on a free loopback port (never the one on 1883)."""

    inflight: int | None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="iotas-mosq-")))

    def config(self) -> str:
        return "\n".join(
            [
                "per_listener_settings false",
                f"listener {self.port} {HOST}",
                "allow_anonymous true",
                # The queue and in-flight limits (and persistence, left at Mosquitto's
                # default) as `iotas broker-config mosquitto` writes them for a user.
                *broker_config_tuning(self.inflight),
                "max_connections -1",
                "set_tcp_nodelay true",
                "connection_messages false",
                f"log_dest file {self.workdir / 'mosquitto.log'}",
                "log_type error",
                "log_type warning",
                "",
            ]
        )

    def start(self) -> None:
        path = self.workdir / "mosquitto.conf"
        path.write_text(self.config())
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        _CHILDREN.append(self.stop)
        wait_port(self.port, 10.0, lambda: self.process is not None and self.process.poll())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        with contextlib.suppress(ValueError):
            _CHILDREN.remove(self.stop)
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0


def wait_port(port: int, timeout: float, exited: Callable[[], Any] = lambda: None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if exited():
            raise RuntimeError(f"the process meant to listen on {port} exited")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1.0):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {HOST}:{port} after {timeout}s")


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables while a server subprocess starts (it copies os.environ)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


# --- CPU accounting ------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine so far, from /proc/stat."""
    parts = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = parts[3] + parts[4]
    total = sum(parts[:8])
    return (total - idle) / _TICK, total / _TICK


class CpuWindow:
    """CPU used by each named group of processes, and by the machine, between two marks."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.start = self._snapshot()

    def _snapshot(self) -> tuple[float, dict[str, float], tuple[float, float]]:
        return (
            time.monotonic(),
            {name: sum(cpu_seconds(p) for p in pids) for name, pids in self.groups.items()},
            machine_busy(),
        )

    def result(self) -> dict[str, Any]:
        t1, used1, (busy1, total1) = self._snapshot()
        t0, used0, (busy0, total0) = self.start
        wall = t1 - t0
        ours = {name: (used1[name] - used0[name]) / wall for name in self.groups}
        machine = (busy1 - busy0) / wall
        return {
            "cores_used_by": {k: round(v, 2) for k, v in ours.items()},
            "cores_used_machine": round(machine, 2),
            "cores_used_by_other_processes": round(max(0.0, machine - sum(ours.values())), 2),
            "machine_busy_share": round((busy1 - busy0) / max(total1 - total0, 1e-9), 3),
        }


# --- one measurement window ----------------------------------------------------------------


async def read_count(count: Callable[[], Any]) -> int:
    value = count()
    return int(await value) if asyncio.iscoroutine(value) else int(value)


async def read_stamped(count: Callable[[], Any], fleet: Fleet) -> tuple[float, int, float, float]:
    """`count()` stamped at the middle of its read (an HTTP read takes a while under load),
    with the devices' acknowledgements at the same moment, and how long the read took."""
    before, acked_before = time.monotonic(), fleet.acked
    value = await read_count(count)
    after, acked_after = time.monotonic(), fleet.acked
    return (before + after) / 2, value, (acked_before + acked_after) / 2, after - before


async def measure_rate(
    fleet: Fleet,
    count: Callable[[], Any],
    args: argparse.Namespace,
    cpu_groups: dict[str, list[int]],
) -> dict[str, Any]:
    """Run the fleet flat out for warmup + seconds, then wait until everything the devices
    had acknowledged has reached `count()` (the counting subscriber, or iotas' store).

    Two figures: the burst rate (every message of the burst / time from the first publish
    to the last delivery, the headline, fair to a consumer that falls behind and catches up
    later) and the window rate (`count()`'s growth over the last `seconds` of the load).
    `count` may be async (an HTTP read): its value is stamped at the middle of the read.
    """
    sample_s: list[float] = []

    async def sample() -> tuple[float, int]:
        at, value, _, took = await read_stamped(count, fleet)
        sample_s.append(round(took, 4))
        return at, value

    _, c_start = await sample()
    max_messages = int(args.max_rate * (args.warmup + args.seconds))
    load_started = time.monotonic()
    fleet.load(args.warmup + args.seconds, 0.0, args.inflight, max_messages)
    await asyncio.sleep(args.warmup)
    t0, c0 = await sample()
    acked0 = fleet.acked
    cpu = CpuWindow(cpu_groups)
    await asyncio.sleep(args.seconds)
    t1, c1 = await sample()
    acked1 = fleet.acked
    cpu_result = cpu.result()
    done = await fleet.finished(args.seconds + 120)
    drain, drained_at = await wait_until(count, c_start + done["acked"], args.drain_timeout)
    burst_s = drained_at - load_started
    delivered = drain["value"] - c_start
    window = t1 - t0
    return {
        "rate_per_s": round(delivered / burst_s, 1),
        "burst_messages": delivered,
        "burst_s": round(burst_s, 3),
        "window_rate_per_s": round((c1 - c0) / window, 1),
        "window_s": round(window, 3),
        "window_counted": c1 - c0,
        "device_acked_rate_per_s": round((acked1 - acked0) / window, 1),
        "generator": done,
        "drain_after_load": drain,
        "cpu_in_window": cpu_result,
        # How long reading the counter took at each end (an HTTP request for iotas): the
        # window's ends are uncertain by half of that.
        "counter_read_s": sample_s,
    }


LAG_SPAN = 2.0  # s over which each end of a sustained step's window is read


async def measure_sustained(
    fleet: Fleet,
    count: Callable[[], Any],
    args: argparse.Namespace,
    cpu_groups: dict[str, list[int]],
    start_rate: float,
) -> dict[str, Any]:
    """The highest offered rate the consumer keeps up with: paced load in steps, each
    `args.step_seconds` long after a short warm-up, from `start_rate` up by `args.step_factor`
    until a step is not kept up with (or `args.max_steps`, or the generator no longer sends
    more than at the step before); while no step has been kept up with, two steps lower.
    Then `args.refine` steps between the highest rate kept up with and the lowest not, each
    at their geometric mean, so b is found to within a fraction of a step. The offered rate
    is what the broker acknowledged to the devices in the window. A step is kept up with when
    what was counted in its window is at least 97% of that, and the backlog left when the
    load stops is stored within 2 s.

    A flat-out burst (`measure_rate`) makes the generator and the broker spend cores on
    messages the consumer cannot take yet, on a machine where all three share two cores; a
    paced load at the sustained rate is what a fleet that iotas keeps up with looks like."""
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    rate = start_rate
    # Asked rates: the highest kept up with, the lowest not; between them, `args.refine`
    # steps halve the gap (in ratio), so b is not up to a whole step factor low.
    kept_at: float | None = None
    fell_at: float | None = None
    refined = 0

    async def sample() -> tuple[float, int, float]:
        """The read of least lag (acknowledged minus stored) over `LAG_SPAN` s. What the
        consumer holds in flight varies over a cycle (iotas: a batch window, a move of staged
        samples that holds commits for up to a second), and one read at each end of a 10 s
        window lands anywhere in it: up to a tenth of the window either way. The least lag
        of each end is the same point of the cycle."""
        found: tuple[float, int, float] | None = None
        until = time.monotonic() + LAG_SPAN
        while True:
            at, value, acked, _ = await read_stamped(count, fleet)
            if found is None or acked - value < found[2] - found[1]:
                found = (at, value, acked)
            if time.monotonic() >= until:
                return found
            await asyncio.sleep(0.1)

    for _ in range(args.max_steps):
        c_start = await read_count(count)
        load_s = args.step_warmup + args.step_seconds + 2 * LAG_SPAN + 1
        fleet.load(load_s, rate, args.inflight, int(rate * 1000))
        await asyncio.sleep(args.step_warmup)
        t0, c0, acked0 = await sample()
        cpu = CpuWindow(cpu_groups)
        await asyncio.sleep(args.step_seconds)
        t1, c1, acked1 = await sample()
        cpu_result = cpu.result()
        done = await fleet.finished(args.step_seconds + 120)
        stopped = time.monotonic()
        drain, drained_at = await wait_until(count, c_start + done["acked"], args.drain_timeout)
        window = t1 - t0
        stored_rate = (c1 - c0) / window
        acked_rate = (acked1 - acked0) / window
        kept_up = (
            drain["reached"] and stored_rate >= 0.97 * acked_rate and drained_at - stopped <= 2.0
        )
        step = {
            "asked_per_s": round(rate, 1),
            "offered_per_s": round(acked_rate, 1),
            "stored_per_s": round(stored_rate, 1),
            # What was both offered and stored: more stored than offered in a window is a
            # backlog from the warm-up caught up, not a rate iotas sustains.
            "sustained_per_s": round(min(stored_rate, acked_rate), 1),
            "drained_after_stop_s": round(drained_at - stopped, 3),
            "kept_up": kept_up,
            "cpu_in_window": cpu_result,
        }
        steps.append(step)
        print(
            f"    asked {rate:,.0f}/s, offered {acked_rate:,.0f}/s: stored {stored_rate:,.0f}/s, "
            f"{'kept up' if kept_up else 'fell behind'}",
            flush=True,
        )
        if not kept_up and kept_at is None:
            fell_at = rate
            rate /= args.step_factor**2  # too high so far: two steps down, then on up
            continue
        if not kept_up:
            fell_at = rate if fell_at is None else min(fell_at, rate)
            if kept_at is None or refined >= args.refine:
                break
            refined += 1
            rate = (kept_at * fell_at) ** 0.5
            continue
        generator_limit = best is not None and acked_rate < 1.03 * best["offered_per_s"]
        if best is None or step["sustained_per_s"] > best["sustained_per_s"]:
            best = step
        kept_at = rate if kept_at is None else max(kept_at, rate)
        if generator_limit:
            # Asked for more, offered no more: the devices' limit here (on the embedded broker
            # they wait for iotas' commits), so the best so far is iotas' rate.
            step["generator_limit"] = True
            break
        if fell_at is not None and rate * args.step_factor >= fell_at:
            if refined >= args.refine:
                break
            refined += 1
            rate = (kept_at * fell_at) ** 0.5
            continue
        rate *= args.step_factor
    return {
        "rate_per_s": best["sustained_per_s"] if best else 0.0,
        "offered_per_s": best["offered_per_s"] if best else 0.0,
        "steps": steps,
        "rule": "highest paced rate whose window stored >= 97% of what devices had "
        "acknowledged, with the backlog stored within 2 s of the load stopping; a step's rate "
        "is the lesser of stored and acknowledged in its window; steps of "
        f"x{args.step_factor} up, then {args.refine} halving the ratio between the highest "
        "step kept up with and the lowest not",
    }


async def wait_until(
    count: Callable[[], Any], target: int, timeout: float, stall: float = 15.0
) -> tuple[dict[str, Any], float]:
    """Wait until `count()` reaches `target`, at most `timeout` s and while it moves.
    Returns what happened and the monotonic time it ended."""
    started = time.monotonic()
    last_value, last_move = -1, started
    value = first = -1
    while True:
        value = await read_count(count)
        first = value if first < 0 else first
        now = time.monotonic()
        if value >= target or now - started > timeout:
            break
        if value != last_value:
            last_value, last_move = value, now
        elif now - last_move > stall:
            break
        await asyncio.sleep(0.1)
    ended = time.monotonic()
    elapsed = ended - started
    return {
        "reached": value >= target,
        "value": value,
        "target": target,
        "s": round(elapsed, 3),
        # A backlog drained with the generator quiet: the consumer's rate on its own.
        "backlog": target - first,
        "rate_per_s": round((value - first) / elapsed, 1) if elapsed >= 1.0 else None,
    }, ended


# --- (a) raw pass-through ------------------------------------------------------------------


async def raw_phase(kind: str, args: argparse.Namespace, ids: list[str]) -> dict[str, Any]:
    broker_child: Child | None = None
    mosquitto: Mosquitto | None = None
    counter: Child | None = None
    fleet: Fleet | None = None
    try:
        if kind == "mosquitto":
            mosquitto = Mosquitto(inflight=args.mosquitto_inflight)
            mosquitto.start()
            port, broker_pid = mosquitto.port, mosquitto.pid
            what = "a private Mosquitto (same configuration as for iotas), no iotas"
        else:
            port = free_port()
            broker_child = Child(amqtt_main, port, name="bench-amqtt")
            _recv(broker_child, 30)
            broker_pid = broker_child.pid
            what = (
                "a plain amqtt Broker (the library the embedded broker is built on) in its own "
                "process on uvloop, anonymous, without iotas' gate, plugins or database"
            )
        received = _SPAWN.RawValue("q", 0)
        counter = Child(counter_main, received, port, name="bench-counter")
        _recv(counter, 30)
        fleet = Fleet(port, ids, None, args.procs)
        connected = fleet.ready(args.connect_timeout)
        print(f"  [{kind}] raw: {connected['connected']} devices connected", flush=True)
        rate = await measure_rate(
            fleet,
            lambda: received.value,
            args,
            {
                "broker": [broker_pid],
                "counter": [counter.pid],
                "generator": fleet.pids,
                "bench_main": [os.getpid()],
            },
        )
        return {
            "what": what,
            "subscriber": "the same minimal client, QoS 1 on things/+/telemetry, counts only",
            "devices": connected,
            **rate,
            "received_total": int(received.value),
            "device_acked_total": fleet.acked,
        }
    finally:
        stops = [
            fleet.close if fleet else None,
            counter.stop if counter else None,
            broker_child.stop if broker_child else None,
            mosquitto.stop if mosquitto else None,
        ]
        for stop in stops:
            if stop is not None:
                with contextlib.suppress(Exception):
                    stop()


# --- (b), (c), (d) with iotas ----------------------------------------------------------------


class Api:
    def __init__(self, server: Server) -> None:
        self.http = httpx.AsyncClient(base_url=server.base_url, headers=server.headers, timeout=30)

    async def accepted(self) -> int:
        return int((await self.stats())["accepted"].get("telemetry", 0))

    async def stats(self) -> dict[str, Any]:
        response = await self.http.get("/api/v1/stats")
        response.raise_for_status()
        ingest: dict[str, Any] = response.json()["ingest"]
        return ingest

    async def close(self) -> None:
        await self.http.aclose()


class Probe:
    """A device of its own in this process: timed telemetry and desired-state round trips."""

    def __init__(self, api: Api, port: int, secret: str | None) -> None:
        self.api = api
        self.port = port
        self.secret = secret
        self.desired: asyncio.Queue[bytes] = asyncio.Queue()
        self.conn: MqttConn | None = None
        self.published = 0
        self.acked = 0
        self.seq = itertools.count(1)

    async def connect(self) -> None:
        user = PROBE_ID if self.secret else None
        self.conn = await open_conn(
            self.port,
            MqttConn(
                PROBE_ID,
                username=user,
                password=self.secret,
                on_message=lambda topic, payload: self.desired.put_nowait(payload),
            ),
        )
        await self.conn.subscribe(f"things/{PROBE_ID}/desired")

    async def telemetry(self, count: int, budget_s: float) -> dict[str, Any]:
        """Publish a unique value, then read the Thing's telemetry until it is there."""
        assert self.conn is not None
        queryable: list[float] = []
        acks: list[float] = []
        missing = 0
        deadline = time.monotonic() + budget_s
        path = f"/api/v1/things/{PROBE_ID}/telemetry"
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            n = next(self.seq)
            value = 100_000.0 + n + 0.25
            payload = b'{"t":%.2f,"h":40.1,"p":1013.2}' % value
            since = to_rfc3339(now_us() - 2_000_000)
            started = time.perf_counter()
            acked = self.conn.publish(f"things/{PROBE_ID}/telemetry", payload)
            self.published += 1
            found = False
            give_up = started + 15.0
            while time.perf_counter() < give_up:
                response = await self.api.http.get(path, params={"keys": "t", "from": since})
                response.raise_for_status()
                if any(v == value for _, v in response.json()["keys"].get("t", [])):
                    queryable.append(time.perf_counter() - started)
                    found = True
                    break
            if not found:
                missing += 1
            with contextlib.suppress(TimeoutError):
                acks.append(await asyncio.wait_for(acked, 15.0) - started)
                self.acked += 1
        return {
            "publish_to_queryable": latency_summary_ms(queryable),
            "publish_to_puback": latency_summary_ms(acks),
            "not_found_in_time": missing,
        }

    async def desired_changes(
        self, count: int, budget_s: float, give_up_s: float = 15.0
    ) -> dict[str, Any]:
        """PATCH desired through the API; time until the device receives that state."""
        import orjson

        latencies: list[float] = []
        patch_answered: list[float] = []
        missing = 0
        deadline = time.monotonic() + budget_s
        path = f"/api/v1/things/{PROBE_ID}/twin/desired"
        while not self.desired.empty():  # the retained state from subscribing, older changes
            self.desired.get_nowait()
        for _ in range(count):
            if time.monotonic() > deadline:
                break
            n = next(self.seq)
            started = time.perf_counter()
            response = await self.api.http.patch(
                path,
                content=orjson.dumps({"bench_seq": n}),
                headers={"Content-Type": "application/merge-patch+json"},
            )
            response.raise_for_status()
            patch_answered.append(time.perf_counter() - started)
            give_up = started + give_up_s
            while True:
                left = give_up - time.perf_counter()
                if left <= 0:
                    missing += 1
                    break
                try:
                    payload = await asyncio.wait_for(self.desired.get(), left)
                except TimeoutError:
                    missing += 1
                    break
                with contextlib.suppress(orjson.JSONDecodeError):
                    if orjson.loads(payload).get("bench_seq") == n:
                        latencies.append(time.perf_counter() - started)
                        break
        return {
            "patch_to_device": latency_summary_ms(latencies),
            "patch_answered": latency_summary_ms(patch_answered),
            "not_received_in_time": missing,
        }

    def close(self) -> None:
        if self.conn is not None:
            self.conn.disconnect()


async def count_stored(api: Api, ids: list[str], since_us: int) -> dict[str, Any]:
    """Every Thing's stored samples since `since_us`, read back through the query API."""
    per_key = {"t": 0, "h": 0, "p": 0}
    uneven: list[str] = []
    queue = list(ids)
    params = {"keys": "t,h,p", "from": to_rfc3339(since_us), "bucket": "1d", "agg": "count"}

    async def worker() -> None:
        while queue:
            thing = queue.pop()
            response = await api.http.get(f"/api/v1/things/{thing}/telemetry", params=params)
            response.raise_for_status()
            counts = {
                k: int(sum(p["value"] for p in response.json()["keys"].get(k, []))) for k in per_key
            }
            for key, value in counts.items():
                per_key[key] += value
            if len(set(counts.values())) != 1:
                uneven.append(thing)

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(8)))
    return {
        "messages": per_key["t"],
        "samples_by_key": per_key,
        "things_with_uneven_keys": len(uneven),
        "things_read": len(ids),
        "read_s": round(time.monotonic() - started, 3),
    }


async def iotas_phase(kind: str, args: argparse.Namespace, ids: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    problems: list[str] = []
    mosquitto: Mosquitto | None = None
    fleet: Fleet | None = None
    probe: Probe | None = None
    api: Api | None = None
    try:
        if kind == "mosquitto":
            mosquitto = Mosquitto(inflight=args.mosquitto_inflight)
            mosquitto.start()
            port = mosquitto.port
            env = {"IOTAS_MQTT_URL": f"mqtt://{HOST}:{port}", "IOTAS_MQTT_PORT": ""}
        else:
            port = free_port()
            env = {"IOTAS_MQTT_URL": "", "IOTAS_MQTT_PORT": str(port)}
        env.update(IOTAS_SETTINGS)
        out["iotas_settings"] = IOTAS_SETTINGS
        with environment(**env), running_server(None) as server:
            assert server.process is not None
            out["healthz_per_s"] = healthz_rate(server)
            api = Api(server)
            since_us = now_us() - 60_000_000
            started = time.monotonic()
            things = [thing_at(i, NAMESPACE, len(ids)) for i in range(len(ids))]
            things.append(SimThing(PROBE_ID, "sensor", {"probe": True}, {}))
            async with Client(server.base_url, server.token, timeout=60) as client:
                made = await provision(client, things, concurrency=8)
            out["provision_s"] = round(time.monotonic() - started, 3)
            print(f"  [{kind}] iotas: provisioned {made.created} Things", flush=True)
            secrets = made.secrets if kind == "embedded" else None
            probe = Probe(api, port, secrets[PROBE_ID] if secrets else None)
            await probe.connect()
            fleet = Fleet(port, ids, secrets, args.procs)
            out["devices"] = fleet.ready(args.connect_timeout)
            print(f"  [{kind}] iotas: {out['devices']['connected']} devices connected", flush=True)
            if out["devices"]["failed"]:
                problems.append(f"{out['devices']['failed']} devices could not connect")
            stats0 = await api.stats()
            groups = {
                "iotas": [server.process.pid],
                "generator": fleet.pids,
                "bench_main": [os.getpid()],
            }
            if mosquitto is not None:
                groups["broker"] = [mosquitto.pid]

            # (c), (d) on a quiet system first
            out["latency_idle"] = {
                **await probe.telemetry(args.probes, args.probe_timeout),
                **await probe.desired_changes(args.probes, args.probe_timeout),
            }

            # (b) flat out, until everything acknowledged is stored
            rate = await measure_rate(fleet, api.accepted, args, groups)
            out["ingest"] = rate
            print(f"  [{kind}] iotas: stored {rate['rate_per_s']:,.0f} messages/s", flush=True)

            # (b) sustained: paced, from just under what the burst drained at, upwards
            print(f"  [{kind}] iotas: sustained rate ...", flush=True)
            out["sustained"] = await measure_sustained(
                fleet, api.accepted, args, groups, 0.9 * rate["rate_per_s"]
            )
            print(
                f"  [{kind}] iotas: sustained {out['sustained']['rate_per_s']:,.0f} messages/s",
                flush=True,
            )

            # How long until a desired change reaches a device again after the burst (a
            # broker still working through a backlog delays it).
            settle_started = time.monotonic()
            settle = await probe.desired_changes(
                1, args.drain_timeout, give_up_s=args.drain_timeout
            )
            out["desired_after_burst"] = {
                **settle["patch_to_device"],
                "waited_s": round(time.monotonic() - settle_started, 3),
            }

            # (c), (d) under a paced background load, a share of b
            paced = max(1.0, args.latency_load * out["sustained"]["rate_per_s"])
            fleet.load(2 * args.probe_timeout + 10, paced, args.inflight, int(paced * 1000))
            await asyncio.sleep(2.0)
            acked_before, loaded_started = fleet.acked, time.monotonic()
            loaded = {
                **await probe.telemetry(args.probes, args.probe_timeout),
                **await probe.desired_changes(args.probes, args.probe_timeout),
            }
            loaded_rate = (fleet.acked - acked_before) / (time.monotonic() - loaded_started)
            fleet.stop_load()
            loaded["background"] = {
                "asked_per_s": round(paced, 1),
                "device_acked_per_s": round(loaded_rate, 1),
                "generator": await fleet.finished(120),
            }
            out["latency_loaded"] = loaded

            # Everything acknowledged must be stored, and readable through the API.
            total_acked = fleet.acked + probe.acked
            stored_before = stats0["accepted"].get("telemetry", 0)
            out["final_drain"], _ = await wait_until(
                api.accepted, stored_before + total_acked, args.drain_timeout
            )
            stats1 = await api.stats()
            stored = stats1["accepted"].get("telemetry", 0) - stored_before
            readback = await count_stored(api, [*ids, PROBE_ID], since_us)
            rejected = {
                k: v - stats0["rejected"].get(k, 0)
                for k, v in stats1["rejected"].items()
                if v != stats0["rejected"].get(k, 0)
            }
            total_sent = fleet.sent + probe.published
            out["verification"] = {
                "messages_sent": total_sent,
                "messages_acked": total_acked,
                "accepted_counter": stored,
                "read_back_through_api": readback,
                "rejected": rejected,
            }
            if not total_acked <= readback["messages"] <= total_sent:
                problems.append(
                    f"stored {readback['messages']:,} messages (read back), but "
                    f"{total_acked:,} were acknowledged and {total_sent:,} sent"
                )
            if readback["messages"] != stored:
                problems.append(
                    f"the accepted counter says {stored:,}, the API reads back "
                    f"{readback['messages']:,}"
                )
            if readback["things_with_uneven_keys"]:
                problems.append(f"{readback['things_with_uneven_keys']} Things miss t, h or p")
            if rejected:
                problems.append(f"iotas rejected messages: {rejected}")
            for name in ("latency_idle", "latency_loaded"):
                lost = out[name]["not_found_in_time"] + out[name]["not_received_in_time"]
                if lost:
                    problems.append(f"{name}: {lost} probes not seen within 15 s")
            if not out["final_drain"]["reached"]:
                problems.append("not everything acknowledged was stored in time")
            out["server_pid_cpu_s"] = round(cpu_seconds(server.process.pid), 1)
            probe.close()
            probe = None
            fleet.close()
            fleet = None
            await api.close()
            api = None
            out["server_exit_code"] = server.stop()
            # uvicorn re-raises the SIGTERM it handled, so -15 is a clean stop.
            if server.process.returncode not in (0, -signal.SIGTERM, None):
                out["server_log_tail"] = server.log()
    finally:
        if probe is not None:
            probe.close()
        if fleet is not None:
            fleet.close()
        if api is not None:
            await api.close()
        if mosquitto is not None:
            mosquitto.stop()
    out["problems"] = problems
    return out


# --- one broker, the table, the run --------------------------------------------------------


async def run_broker(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    ids = thing_ids(args.devices)
    started = time.monotonic()
    print(f"[{kind}] raw pass-through ...", flush=True)
    raw = await raw_phase(kind, args, ids)
    print(f"[{kind}] raw: {raw['rate_per_s']:,.0f} messages/s", flush=True)
    print(f"[{kind}] iotas ...", flush=True)
    with_iotas = await iotas_phase(kind, args, ids)
    # a, the ceiling b is set against. Mosquitto delivers to the counting subscriber while
    # the devices publish, so what reached it is the ceiling. Plain amqtt serves its
    # publishers first and delivers almost nothing to a subscriber until they stop (about one
    # message a second), so its burst rate is mostly a drain after the load, and b / a could
    # not fail; its ceiling is the rate it acknowledged the devices at, in the same window.
    a = raw["device_acked_rate_per_s"] if kind == "embedded" else raw["rate_per_s"]
    # b is the sustained rate (the highest paced rate iotas kept up with); the flat-out
    # burst's rate, where the generator and the broker spend cores on a backlog, is beside it.
    b = with_iotas["sustained"]["rate_per_s"]
    result: dict[str, Any] = {
        "broker": kind,
        "raw": raw,
        "iotas": with_iotas,
        "a_raw_per_s": a,
        "a_is": "devices acknowledged by plain amqtt"
        if kind == "embedded"
        else "delivered to the counting subscriber",
        "a_counted_per_s": raw["rate_per_s"],
        # The HTTP ceiling of the same machine in the same run: figures of different days
        # compare as ratios to it.
        "healthz_per_s": with_iotas["healthz_per_s"],
        "b_per_healthz": round(b / with_iotas["healthz_per_s"], 3)
        if with_iotas["healthz_per_s"]
        else None,
        "b_stored_per_s": b,
        "b_burst_per_s": with_iotas["ingest"]["rate_per_s"],
        "b_per_a": round(b / a, 3) if a else None,
        "duration_s": round(time.monotonic() - started, 1),
        "problems": with_iotas["problems"],
    }
    if not raw["drain_after_load"]["reached"]:
        result["problems"].append("the counting subscriber did not receive every message")
    if not with_iotas["ingest"]["drain_after_load"]["reached"]:
        result["problems"].append("iotas did not store the burst within --drain-timeout")
    checks: dict[str, bool] = {"b_at_least_half_of_a": bool(a) and b >= TARGET_SHARE_OF_RAW * a}
    if kind == "mosquitto":
        checks["b_at_least_15000"] = b >= TARGET_MOSQUITTO_RATE
    result["targets"] = checks
    return result


def table(result: dict[str, Any], args: argparse.Namespace) -> list[Row]:
    kind = result["broker"]
    raw, io = result["raw"], result["iotas"]
    ingest = io["ingest"]
    idle, loaded = io["latency_idle"], io["latency_loaded"]
    ratio = result["b_per_a"]

    def ms(summary: dict[str, Any], p: str) -> str:
        return f"{summary[p]:.1f} ms" if summary["count"] else "n/a"

    rows = [
        Row(
            "a) raw pass-through",
            f"{result['a_raw_per_s']:,.0f}/s",
            note=f"{result['a_is']}; {_burst(raw)}; cores: {_cores(raw['cpu_in_window'])}",
        ),
        Row(
            "b) stored by iotas, sustained",
            f"{result['b_stored_per_s']:,.0f}/s",
            ">= 15,000/s" if kind == "mosquitto" else "",
            verdict(result["targets"].get("b_at_least_15000")),
            _sustained(io["sustained"]),
        ),
        Row(
            "   stored from a flat-out burst",
            f"{result['b_burst_per_s']:,.0f}/s",
            note=f"{_burst(ingest)}; cores: {_cores(ingest['cpu_in_window'])}",
        ),
        Row(
            "b / a",
            f"{ratio:.2f}" if ratio is not None else "n/a",
            ">= 0.50",
            verdict(result["targets"]["b_at_least_half_of_a"]),
            f"GET /healthz {result['healthz_per_s']:,.0f}/s in the same run",
        ),
        Row(
            "c) publish -> queryable p50",
            ms(loaded["publish_to_queryable"], "p50_ms"),
            note=f"under {loaded['background']['device_acked_per_s']:,.0f} msgs/s; "
            f"idle {ms(idle['publish_to_queryable'], 'p50_ms')}",
        ),
        Row(
            "c) publish -> queryable p99",
            ms(loaded["publish_to_queryable"], "p99_ms"),
            note=f"idle {ms(idle['publish_to_queryable'], 'p99_ms')}; "
            f"{loaded['publish_to_queryable']['count']} probes "
            f"(+{loaded['not_found_in_time']} not found in 15 s)",
        ),
        Row(
            "d) PATCH desired -> device p50",
            ms(loaded["patch_to_device"], "p50_ms"),
            note=f"idle {ms(idle['patch_to_device'], 'p50_ms')}; first after the burst "
            f"{io['desired_after_burst']['waited_s']:.1f} s",
        ),
        Row(
            "d) PATCH desired -> device p99",
            ms(loaded["patch_to_device"], "p99_ms"),
            note=f"idle {ms(idle['patch_to_device'], 'p99_ms')}; "
            f"{loaded['patch_to_device']['count']} probes "
            f"(+{loaded['not_received_in_time']} not received in 15 s)",
        ),
        Row(
            "stored = read back >= acked",
            f"{io['verification']['read_back_through_api']['messages']:,}",
            verdict=verdict(not result["problems"]),
            note=f"acked {io['verification']['messages_acked']:,}, counter "
            f"{io['verification']['accepted_counter']:,}",
        ),
    ]
    return rows


def _sustained(sustained: dict[str, Any]) -> str:
    steps = sustained["steps"]
    kept = [s for s in steps if s["kept_up"]]
    shown = ", ".join(
        f"{s['offered_per_s']:,.0f}{'' if s['kept_up'] else ' (fell behind)'}" for s in steps
    )
    cores = f"; cores at the best: {_cores(kept[-1]['cpu_in_window'])}" if kept else ""
    return f"paced steps offered {shown}/s{cores}"


def _burst(rate: dict[str, Any]) -> str:
    return (
        f"{rate['burst_messages']:,} in {rate['burst_s']:.0f}s; while loaded "
        f"{rate['window_rate_per_s']:,.0f}/s, "
        f"devices acked {rate['device_acked_rate_per_s']:,.0f}/s"
    )


def _cores(cpu: dict[str, Any]) -> str:
    parts = [f"{k} {v:.2f}" for k, v in cpu["cores_used_by"].items()]
    return ", ".join(parts) + f", other {cpu['cores_used_by_other_processes']:.2f}"


def other_benchmarks() -> list[str]:
    try:
        out = subprocess.run(
            ["pgrep", "-fa", "bench/registry.py"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return [line for line in out.stdout.splitlines() if str(os.getpid()) not in line.split()[:1]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--broker", choices=["embedded", "mosquitto", "both"], default="both", help="default both"
    )
    parser.add_argument("--devices", type=int, default=1000, help="simulated devices")
    parser.add_argument("--seconds", type=float, default=20.0, help="each rate window (s)")
    parser.add_argument("--warmup", type=float, default=5.0, help="load before each window (s)")
    parser.add_argument(
        "--procs", type=int, default=max(2, os.cpu_count() or 2), help="generator processes"
    )
    parser.add_argument(
        "--inflight", type=int, default=8, help="unacknowledged QoS 1 messages per device"
    )
    parser.add_argument("--probes", type=int, default=200, help="timed round trips per latency")
    parser.add_argument(
        "--latency-load",
        type=float,
        default=1.0,
        help="background load while timing latencies, as a share of b (default: b itself)",
    )
    parser.add_argument("--probe-timeout", type=float, default=60.0, help="budget per latency (s)")
    parser.add_argument("--drain-timeout", type=float, default=600.0, help="bound on drains (s)")
    parser.add_argument("--connect-timeout", type=float, default=120.0, help="bound (s)")
    parser.add_argument(
        "--mosquitto-inflight",
        type=int,
        default=None,
        help="Mosquitto's max_inflight_messages (default: as `iotas broker-config` writes it)",
    )
    # A count bound for the time-bound runs, far above what the machine can do.
    parser.add_argument(
        "--step-seconds", type=float, default=10.0, help="window of each sustained step (s)"
    )
    parser.add_argument("--step-warmup", type=float, default=3.0, help="before each window (s)")
    parser.add_argument("--step-factor", type=float, default=1.12, help="rate increase a step")
    parser.add_argument("--max-steps", type=int, default=10, help="sustained steps at most")
    parser.add_argument(
        "--refine", type=int, default=2, help="steps between the last kept up and the first not"
    )
    parser.add_argument("--max-rate", type=float, default=500_000.0, help=argparse.SUPPRESS)
    parser.add_argument("--timeout", type=float, default=2400.0, help="hard bound on the run (s)")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 100 devices, 5 s windows, 50 probes"
    )
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/ingest.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.devices, args.seconds, args.warmup = 100, 5.0, 2.0
        args.probes, args.probe_timeout = 50, 15.0
        args.step_seconds, args.step_warmup, args.max_steps = 4.0, 1.0, 3
        args.timeout = min(args.timeout, 420.0)
    if args.devices < 1 or args.procs < 1 or args.inflight < 1:
        parser.error("--devices, --procs and --inflight must be at least 1")
    return args


def watchdog(seconds: float, name: str = "ingest") -> None:
    """After `seconds`, stop every child still running and exit 3, whatever the bench is
    doing (bench/commands.py uses it too)."""

    def fire() -> None:
        print(f"\n{name} benchmark: hard timeout of {seconds:.0f}s reached", file=sys.stderr)
        for stop in list(_CHILDREN):
            with contextlib.suppress(Exception):
                stop()
        os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    watchdog(args.timeout)
    brokers = ["embedded", "mosquitto"] if args.broker == "both" else [args.broker]
    others = other_benchmarks()
    if others:
        print(f"warning: another benchmark is running: {others}", file=sys.stderr)
    result: dict[str, Any] = {
        **run_header("ingest"),
        "parameters": {
            "devices": args.devices,
            "seconds": args.seconds,
            "warmup_s": args.warmup,
            "inflight_per_device": args.inflight,
            "qos": 1,
            "payload_example": PAYLOADS[1].decode(),
            "payload_bytes": PAYLOAD_SIZE,
            "probes": args.probes,
            "latency_load_share_of_b": args.latency_load,
            "mosquitto_max_inflight_messages": args.mosquitto_inflight,
            "mosquitto_tuning": broker_config_tuning(args.mosquitto_inflight),
            "quick": args.quick,
            "sustained_step_seconds": args.step_seconds,
            "sustained_step_warmup_s": args.step_warmup,
            "sustained_step_factor": args.step_factor,
            "sustained_max_steps": args.max_steps,
        },
        "generator": {
            "client": "minimal MQTT 3.1.1 client in bench/ingest.py (asyncio on uvloop)",
            "processes": args.procs,
            "cpu_count": os.cpu_count(),
            "shares_cores_with": "iotas and the broker (all on this machine)",
        },
        "targets": {
            "mosquitto_b_per_s_min": TARGET_MOSQUITTO_RATE,
            "b_per_a_min": TARGET_SHARE_OF_RAW,
        },
        "other_benchmarks_running_at_start": others,
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
    path = write_json(args.out or RESULTS_DIR / "ingest.json", result)
    for kind in brokers:
        data = result["brokers"][kind]
        if "error" in data:
            print(f"\n{kind}: FAILED: {data['error']}")
            continue
        print_table(
            f"ingest via {kind}: {args.devices:,} devices, QoS 1, {args.seconds:g}s windows, "
            f"{args.procs} generator processes on {os.cpu_count()} cores",
            table(data, args),
        )
        for problem in data["problems"]:
            print(f"  problem: {problem}")
        failed = failed or bool(data["problems"])
    print(f"\nwrote {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
