"""MQTT client libraries and brokers on this machine, measured against Mosquitto's C tools.

Which Python MQTT client library should iotas consume with, and which broker should it
embed? This script measures both in one run on 127.0.0.1 and writes
`bench/results/mqtt_clients.json`:

- subscribers: one Python process per library (gmqtt on MQTT 5 with the PUBACK sent only
  when the handler returns, as iotas uses it; paho-mqtt 2 with manual acknowledgement on
  3.1.1 and on 5; amqtt's client; aiomqtt when installed) counting and orjson-decoding
  100-byte JSON messages from a private Mosquitto;
- brokers: the same publishers and Mosquitto's C subscriber through that Mosquitto and
  through amqtt's pure-Python `Broker` (MQTT 3.1.1) in a process of its own.

The load is `--publishers` `mosquitto_pub -l` processes reading prepared lines. The
reference, "the physical limit", is the same publishers and `mosquitto_sub` (C) through the
same Mosquitto; every figure is also quoted as a ratio of it at the same QoS.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import importlib.metadata
import math
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

# `python bench/mqtt_clients.py` puts bench/ first on sys.path, so the shared helpers import
# as a top-level module.
from _common import (
    HOST,
    RESULTS_DIR,
    Row,
    free_port,
    percentile,
    print_table,
    run_header,
    write_json,
)

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"
MOSQUITTO_SUB = shutil.which("mosquitto_sub") or "/usr/bin/mosquitto_sub"
PAYLOAD_BYTES = 100
# mosquitto_pub -l numbers QoS 1 messages with 16-bit packet ids and disconnects when the id
# of the last line is acknowledged, so one process must publish fewer than 65,535 lines.
MAX_LINES_PER_PUBLISHER = 65_000
OTHER_BENCHMARKS = "bench/registry.py|bench/ingest.py|pytest"
READY = "READY"


# --- the cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    broker: str  # "mosquitto" or "amqtt"
    subscriber: str  # "c" or a worker name
    protocol: int  # 4 = MQTT 3.1.1, 5 = MQTT 5
    note: str = ""


CASES: dict[str, Case] = {
    case.key: case
    for case in (
        Case(
            "mosquitto_c",
            "Mosquitto, C publisher → C subscriber (reference)",
            "mosquitto",
            "c",
            4,
            "mosquitto_sub, no decoding",
        ),
        Case(
            "gmqtt",
            "gmqtt subscriber via Mosquitto",
            "mosquitto",
            "gmqtt",
            5,
            "MQTT 5, optimistic_acknowledgement=False: PUBACK when the async handler returns",
        ),
        Case(
            "paho",
            "paho-mqtt subscriber via Mosquitto",
            "mosquitto",
            "paho",
            4,
            "MQTT 3.1.1, manual_ack: ack() in on_message; network loop thread",
        ),
        Case(
            "paho_v5",
            "paho-mqtt subscriber (MQTT 5) via Mosquitto",
            "mosquitto",
            "paho",
            5,
            "MQTT 5, manual_ack: ack() in on_message; network loop thread",
        ),
        Case(
            "amqtt_client",
            "amqtt client subscriber via Mosquitto",
            "mosquitto",
            "amqtt",
            4,
            "MQTT 3.1.1 (its only version), deliver_message() loop; PUBACKs on receipt",
        ),
        Case(
            "aiomqtt",
            "aiomqtt subscriber via Mosquitto",
            "mosquitto",
            "aiomqtt",
            4,
            "MQTT 3.1.1, async for over client.messages (paho underneath, PUBACK on receipt)",
        ),
        Case(
            "amqtt_broker_c",
            "amqtt Broker, C publisher → C subscriber",
            "amqtt",
            "c",
            4,
            "pure-Python broker in its own process, MQTT 3.1.1, anonymous",
        ),
    )
}
DEFAULT_CASES = list(CASES)
QUICK_CASES = [key for key in CASES if key != "paho_v5"]
REFERENCE = "mosquitto_c"


def library_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in ("gmqtt", "paho-mqtt", "amqtt", "aiomqtt", "orjson", "uvloop"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    try:
        probe = subprocess.run(
            [MOSQUITTO, "-h"], capture_output=True, text=True, timeout=10, check=False
        )
        first = (probe.stdout or probe.stderr).splitlines()
        out["mosquitto"] = first[0].split()[-1] if first else None
    except (OSError, subprocess.SubprocessError):
        out["mosquitto"] = None
    return out


def aiomqtt_available() -> bool:
    try:
        importlib.import_module("aiomqtt")
    except ImportError:
        return False
    return True


# --- the worker side: one subscriber (or the amqtt broker) in its own process -----------------


class Tally:
    """What a subscriber received: counts, decode errors, the first and last arrival."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.received = 0
        self.decode_errors = 0
        self.first = 0.0
        self.last = 0.0
        self.cpu_at_ready = 0.0
        self.ready_at = 0.0

    def message(self, payload: bytes | bytearray) -> None:
        now = time.time()
        if not self.received:
            self.first = now
        self.last = now
        try:
            orjson.loads(payload)
        except orjson.JSONDecodeError:
            self.decode_errors += 1
        self.received += 1

    def ready(self) -> None:
        self.ready_at = time.time()
        self.cpu_at_ready = time.process_time()
        print(READY, flush=True)

    def end_reason(self, cap_s: float, idle_s: float, hard_s: float) -> str | None:
        """Why to stop now, or None: the count, the time cap after the first message, the
        idle time after the last one, or the hard timeout after READY."""
        now = time.time()
        if self.received >= self.count:
            return "count"
        if self.received and now - self.first >= cap_s:
            return "cap"
        if self.received and now - self.last >= idle_s:
            return "idle"
        if now - self.ready_at >= hard_s:
            return "timeout"
        return None

    def wait_sync(self, args: argparse.Namespace) -> str:
        while (reason := self.end_reason(args.cap, args.idle, args.hard)) is None:
            time.sleep(0.02)
        return reason

    async def wait_async(self, args: argparse.Namespace) -> str:
        while (reason := self.end_reason(args.cap, args.idle, args.hard)) is None:
            await asyncio.sleep(0.02)
        return reason

    def report(self, ended: str) -> None:
        result = {
            "received": self.received,
            "decode_errors": self.decode_errors,
            "first": self.first,
            "last": self.last,
            "ended": ended,
            "cpu_s": round(time.process_time() - self.cpu_at_ready, 4),
        }
        print(orjson.dumps(result).decode(), flush=True)


def run_loop(main: Callable[[], Coroutine[Any, Any, None]], loop: str) -> None:
    """iotas serves on uvicorn's default loop, uvloop when installed; the asyncio clients
    here run on the same one (`--loop asyncio` to compare)."""
    if loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            asyncio.run(main())
            return
        uvloop.run(main())
    else:
        asyncio.run(main())


def worker_gmqtt(args: argparse.Namespace, tally: Tally) -> None:
    import gmqtt
    from gmqtt.mqtt.constants import MQTTv50, MQTTv311

    async def main() -> None:
        subscribed = asyncio.Event()
        # As iotas' adapter: the PUBACK goes out when the coroutine returns (MQTT 5 only).
        client = gmqtt.Client(f"bench-gmqtt-{os.getpid()}", optimistic_acknowledgement=False)

        async def on_message(
            client: Any, topic: str, payload: bytes, qos: int, properties: Any
        ) -> int:
            tally.message(payload)
            return 0

        def on_subscribe(client: Any, mid: int, qos: Any, properties: Any) -> None:
            subscribed.set()

        client.on_message = on_message
        client.on_subscribe = on_subscribe
        version = MQTTv50 if args.protocol == 5 else MQTTv311
        await client.connect(HOST, args.port, keepalive=60, version=version)
        client.subscribe(args.topic, qos=args.sub_qos)
        await asyncio.wait_for(subscribed.wait(), 10)
        tally.ready()
        ended = await tally.wait_async(args)
        tally.report(ended)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 5)

    run_loop(main, args.loop)


def worker_paho(args: argparse.Namespace, tally: Tally) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    subscribed = threading.Event()
    client_id = f"bench-paho-{os.getpid()}"
    if args.protocol == 5:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id, protocol=mqtt.MQTTv5)
    else:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id, clean_session=True, protocol=mqtt.MQTTv311
        )
    # Acknowledge only once the message is handled, as iotas must (PUBACK after commit).
    client.manual_ack_set(True)

    def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        client.subscribe(args.topic, qos=args.sub_qos)

    def on_subscribe(client: Any, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        subscribed.set()

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        tally.message(message.payload)
        if message.qos:
            client.ack(message.mid, message.qos)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(HOST, args.port, keepalive=60)
    client.loop_start()
    if not subscribed.wait(10):
        raise TimeoutError("paho: no SUBACK within 10 s")
    tally.ready()
    ended = tally.wait_sync(args)
    tally.report(ended)
    client.disconnect()
    client.loop_stop()


def worker_amqtt(args: argparse.Namespace, tally: Tally) -> None:
    from amqtt.client import MQTTClient

    async def main() -> None:
        client = MQTTClient(f"bench-amqtt-{os.getpid()}", config={"auto_reconnect": False})
        await client.connect(f"mqtt://{HOST}:{args.port}/")
        await client.subscribe([(args.topic, args.sub_qos)])  # returns after the SUBACK

        async def consume() -> None:
            while True:
                message = await client.deliver_message()
                if message is not None:
                    tally.message(message.data)

        tally.ready()
        consumer = asyncio.create_task(consume())
        ended = await tally.wait_async(args)
        tally.report(ended)
        consumer.cancel()
        with contextlib.suppress(BaseException):
            await consumer
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 5)

    run_loop(main, args.loop)


def worker_aiomqtt(args: argparse.Namespace, tally: Tally) -> None:
    aiomqtt: Any = importlib.import_module("aiomqtt")

    async def main() -> None:
        version = aiomqtt.ProtocolVersion.V5 if args.protocol == 5 else aiomqtt.ProtocolVersion.V311
        async with aiomqtt.Client(
            HOST, args.port, identifier=f"bench-aiomqtt-{os.getpid()}", protocol=version
        ) as client:
            await client.subscribe(args.topic, qos=args.sub_qos)  # returns after the SUBACK

            async def consume() -> None:
                async for message in client.messages:
                    tally.message(message.payload)

            tally.ready()
            consumer = asyncio.create_task(consume())
            ended = await tally.wait_async(args)
            tally.report(ended)
            consumer.cancel()
            with contextlib.suppress(BaseException):
                await consumer

    run_loop(main, args.loop)


def worker_amqtt_broker(args: argparse.Namespace) -> None:
    """amqtt's plain Broker (what iotas' embedded broker builds on): anonymous, nothing else.
    Stops when its standard input closes."""
    from amqtt.broker import Broker

    async def main() -> None:
        anonymous = "amqtt.plugins.authentication.AnonymousAuthPlugin"
        listener = {"type": "tcp", "bind": f"{HOST}:{args.port}"}
        broker = Broker(
            {"listeners": {"default": listener}, "plugins": {anonymous: {"allow_anonymous": True}}}
        )
        await broker.start()
        print(READY, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(broker.shutdown(), 10)

    run_loop(main, args.loop)


WORKERS: dict[str, Callable[[argparse.Namespace, Tally], None]] = {
    "gmqtt": worker_gmqtt,
    "paho": worker_paho,
    "amqtt": worker_amqtt,
    "aiomqtt": worker_aiomqtt,
}


def worker_main(args: argparse.Namespace) -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops its children itself
    if args.worker == "amqtt-broker":
        worker_amqtt_broker(args)
        return 0
    WORKERS[args.worker](args, Tally(args.count))
    return 0


# --- the parent's side: child processes, CPU, the brokers ---------------------------------


_CHILDREN: list[Child] = []  # every child still to stop (the watchdog stops them all)


class Child:
    """A child process reaped with os.wait4, so its CPU time is known when it ends."""

    def __init__(self, argv: list[str], **popen: Any) -> None:
        self.argv = argv
        self.popen: subprocess.Popen[Any] = subprocess.Popen(argv, **popen)
        self.pid = self.popen.pid
        self.returncode: int | None = None
        self.cpu_s: float | None = None
        self.ended_at: float | None = None
        _CHILDREN.append(self)

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        try:
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
        except ChildProcessError:
            self.returncode = -1
            self.ended_at = time.time()
            return self.returncode
        if pid == 0:
            return None
        self.returncode = os.waitstatus_to_exitcode(status)
        self.popen.returncode = self.returncode
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.ended_at = time.time()
        with contextlib.suppress(ValueError):
            _CHILDREN.remove(self)
        return self.returncode

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.005)
        return self.returncode

    def stop(self, grace: float = 3.0) -> int | None:
        if self.poll() is not None:
            return self.returncode
        with contextlib.suppress(ProcessLookupError):
            self.popen.terminate()
        if self.wait(grace) is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            self.wait(grace)
        return self.returncode


def stop_children() -> None:
    for child in list(_CHILDREN):
        with contextlib.suppress(Exception):
            child.stop(1.0)


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process, from /proc (0.0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    tick = os.sysconf("SC_CLK_TCK")
    return (total - idle) / tick, total / tick


def wait_port(port: int, timeout: float, child: Child) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"{child.argv[0]} exited with {child.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {timeout} s")


@dataclass
class RunningBroker:
    kind: str
    port: int
    child: Child
    config: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        if self.kind == "amqtt" and self.child.popen.stdin is not None:
            with contextlib.suppress(OSError):
                self.child.popen.stdin.close()  # the worker shuts the broker down on EOF
            self.child.wait(10)
        self.child.stop()

    def settle(self, timeout: float) -> float:
        """Wait until the broker is quiet (under 10% of a core for 0.25 s): a broker still
        working through the last run's backlog would slow the next run down."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            before = proc_cpu_s(self.child.pid)
            time.sleep(0.25)
            if proc_cpu_s(self.child.pid) - before < 0.025:
                break
        return round(time.monotonic() - started, 2)


def start_mosquitto(work: Path, inflight: int) -> RunningBroker:
    port = free_port()
    settings = {
        "listener": f"{port} {HOST}",
        "allow_anonymous": "true",
        "persistence": "false",
        "max_queued_messages": "0",  # no limit: a slow subscriber's backlog stays queued
        "max_queued_bytes": "0",
        "max_inflight_messages": str(inflight),  # QoS 1 in flight to each subscriber
        "log_dest": "stderr",
        "log_type": "error",
    }
    conf = work / "mosquitto.conf"
    conf.write_text("".join(f"{key} {value}\n" for key, value in settings.items()))
    with (work / "mosquitto.log").open("wb") as log:
        child = Child([MOSQUITTO, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    wait_port(port, 10, child)
    return RunningBroker("mosquitto", port, child, settings)


def start_amqtt_broker(work: Path, loop: str) -> RunningBroker:
    port = free_port()
    argv = [sys.executable, __file__, "--worker", "amqtt-broker", "--port", str(port)]
    argv += ["--loop", loop]
    with (work / "amqtt-broker.log").open("wb") as log:
        child = Child(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
    lines = LineReader(child)
    if lines.get(60) != READY:
        child.stop()
        raise RuntimeError(f"the amqtt broker did not start: {log_tail(work / 'amqtt-broker.log')}")
    wait_port(port, 10, child)
    return RunningBroker("amqtt", port, child, {"bind": f"{HOST}:{port}", "loop": loop})


def log_tail(path: Path, chars: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


class LineReader:
    """A child's standard output, line by line, from a thread (for timeouts)."""

    def __init__(self, child: Child) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        stream = child.popen.stdout
        assert stream is not None

        def read() -> None:
            for raw in stream:
                self.lines.put(raw.decode() if isinstance(raw, bytes) else raw)
            self.lines.put(None)

        threading.Thread(target=read, daemon=True).start()

    def get(self, timeout: float) -> str | None:
        with contextlib.suppress(queue.Empty):
            line = self.lines.get(timeout=max(0.0, timeout))
            return None if line is None else line.strip()
        return None


# --- one measurement ---------------------------------------------------------------------


def payload(device: int, seq: int) -> bytes:
    """One message: a JSON object of exactly PAYLOAD_BYTES bytes (padded)."""
    head = orjson.dumps(
        {"device": f"dev-{device:04d}", "seq": seq, "t": 21.53, "h": 40.1, "p": 1013.2}
    )
    pad = PAYLOAD_BYTES - len(head) - len(b',"pad":""')
    if pad < 0:
        raise ValueError("the payload does not fit")
    return head[:-1] + b',"pad":"' + b"x" * pad + b'"}'


def line_files(work: Path, count: int, publishers: int) -> list[Path]:
    """One file of lines per publisher, `count` messages in all (cached per count)."""
    share = -(-count // publishers)
    if share > MAX_LINES_PER_PUBLISHER:
        raise SystemExit(
            f"{count:,} messages over {publishers} publishers is {share:,} each; "
            f"mosquitto_pub -l handles at most {MAX_LINES_PER_PUBLISHER:,}: add --publishers"
        )
    files = []
    left = count
    for index in range(publishers):
        path = work / f"lines-{count}-{index}.txt"
        n = min(share, left)
        left -= n
        if not path.exists():
            path.write_bytes(b"".join(payload(index, seq) + b"\n" for seq in range(n)))
        files.append(path)
    return files


def start_publishers(
    broker: RunningBroker, topic: str, qos: int, files: list[Path], inflight: int, work: Path
) -> list[Child]:
    children = []
    for index, path in enumerate(files):
        argv = [MOSQUITTO_PUB, "-h", HOST, "-p", str(broker.port), "-V", "mqttv311"]
        argv += ["-i", f"bench-pub-{index}-{secrets.token_hex(3)}"]
        argv += ["-t", f"{topic}/p{index}", "-q", str(qos), "-M", str(inflight), "-l"]
        with path.open("rb") as lines, (work / "publishers.log").open("ab") as log:
            children.append(Child(argv, stdin=lines, stdout=log, stderr=log))
    return children


@dataclass
class Subscribed:
    """A subscriber that has its SUBACK; `finish` waits for its figures."""

    child: Child
    finish: Callable[[float], dict[str, Any]]


def start_c_subscriber(
    broker: RunningBroker, topic: str, qos: int, count: int, cap_s: float, work: Path
) -> Subscribed:
    """mosquitto_sub printing each arrival's time (%U). It is ready once a retained message
    published beforehand has arrived: the broker sends retained messages after the SUBACK."""
    marker = f"{topic}/ready"
    retained = [MOSQUITTO_PUB, "-h", HOST, "-p", str(broker.port), "-V", "mqttv311"]
    retained += ["-t", marker, "-q", "1", "-r", "-m", "ready"]
    subprocess.run(
        retained,
        timeout=15,
        check=True,
        capture_output=True,
    )
    out_path = work / f"sub-{secrets.token_hex(4)}.txt"
    argv = [MOSQUITTO_SUB, "-h", HOST, "-p", str(broker.port), "-V", "mqttv311"]
    argv += ["-i", f"bench-csub-{secrets.token_hex(3)}", "-t", f"{topic}/#", "-q", str(qos)]
    argv += ["-C", str(count + 1), "-W", str(max(1, math.ceil(cap_s))), "-F", "%U"]
    with out_path.open("wb") as out, (work / "mosquitto_sub.log").open("ab") as log:
        child = Child(argv, stdout=out, stderr=log)
    deadline = time.monotonic() + 15
    while out_path.stat().st_size == 0:
        if child.poll() is not None or time.monotonic() > deadline:
            child.stop()
            raise RuntimeError(f"mosquitto_sub did not subscribe (exit {child.returncode})")
        time.sleep(0.005)

    def finish(timeout: float) -> dict[str, Any]:
        child.wait(timeout)
        child.stop()
        stamps = out_path.read_text().split()[1:]  # the first line is the retained marker
        out_path.unlink(missing_ok=True)
        received = len(stamps)
        ended = "count" if received >= count else "cap" if child.returncode == 27 else "timeout"
        return {
            "received": received,
            "decode_errors": None,
            "first": float(stamps[0]) if stamps else 0.0,
            "last": float(stamps[-1]) if stamps else 0.0,
            "ended": ended,
            "cpu_s": child.cpu_s,
        }

    return Subscribed(child, finish)


def start_py_subscriber(
    case: Case,
    broker: RunningBroker,
    topic: str,
    qos: int,
    count: int,
    cap: float,
    args: argparse.Namespace,
    work: Path,
) -> Subscribed:
    argv = [sys.executable, __file__, "--worker", case.subscriber, "--port", str(broker.port)]
    argv += ["--topic", f"{topic}/#", "--sub-qos", str(qos), "--count", str(count)]
    argv += ["--protocol", str(case.protocol), "--cap", str(cap), "--idle", str(args.idle)]
    argv += ["--hard", str(cap + 30), "--loop", args.loop]
    log_path = work / f"worker-{case.key}.log"
    with log_path.open("ab") as log:
        child = Child(argv, stdout=subprocess.PIPE, stderr=log)
    lines = LineReader(child)
    if lines.get(30) != READY:
        child.stop()
        raise RuntimeError(f"{case.key} did not subscribe:\n{log_tail(log_path)}")

    def finish(timeout: float) -> dict[str, Any]:
        line = lines.get(timeout)
        child.wait(10)
        child.stop()
        if not line:
            raise RuntimeError(f"{case.key} gave no result:\n{log_tail(log_path)}")
        result: dict[str, Any] = orjson.loads(line)
        return result

    return Subscribed(child, finish)


def measure(
    case: Case,
    broker: RunningBroker,
    qos: int,
    count: int,
    cap: float,
    args: argparse.Namespace,
    work: Path,
) -> dict[str, Any]:
    """One run: subscribe, start the publishers, take the subscriber's figures.

    The rate is every message received divided by the time from starting the publishers to
    the last arrival, so a broker that acknowledges publishers first and delivers later is
    charged for its backlog."""
    topic = f"bench/{case.key}/q{qos}/{secrets.token_hex(4)}"
    files = line_files(work, count, args.publishers)
    settle_s = broker.settle(15)
    if case.subscriber == "c":
        sub = start_c_subscriber(broker, topic, qos, count, cap, work)
    else:
        sub = start_py_subscriber(case, broker, topic, qos, count, cap, args, work)
    broker_cpu = proc_cpu_s(broker.child.pid)
    busy0, total0 = machine_cpu_s()
    started = time.time()
    publishers = start_publishers(broker, topic, qos, files, args.inflight, work)
    try:
        result = sub.finish(cap + 30)
    finally:
        sub.child.stop()
        for child in publishers:
            child.stop(1.0)
    busy1, total1 = machine_cpu_s()
    cores = os.cpu_count() or 1
    window = (total1 - total0) / cores
    cpu = {
        "subscriber": result["cpu_s"],
        "broker": round(proc_cpu_s(broker.child.pid) - broker_cpu, 3),
        "publishers": round(sum(c.cpu_s or 0.0 for c in publishers), 3),
    }
    ours = sum(v for v in cpu.values() if v is not None)
    received = int(result["received"])
    last = float(result["last"])
    first = float(result["first"])
    elapsed = last - started if received else 0.0
    pub_ends = [c.ended_at for c in publishers if c.ended_at is not None and c.returncode == 0]
    pub_done = len(pub_ends) == len(publishers)
    return {
        "received": received,
        "sent": count if pub_done else None,
        "ended": result["ended"],
        "complete": received >= count,
        "decode_errors": result["decode_errors"],
        "rate_per_s": round(received / elapsed, 1) if elapsed > 0 else 0.0,
        "seconds": round(elapsed, 3),
        "first_to_last_rate_per_s": round((received - 1) / (last - first), 1)
        if received > 1 and last > first
        else None,
        "publishers_acked_per_s": round(count / (max(pub_ends) - started), 1) if pub_done else None,
        "publisher_exit_codes": [c.returncode for c in publishers],
        "cpu_s": cpu,
        "machine_busy_cores": round((busy1 - busy0) / max(1e-9, window), 2),
        # Cores busy with anything but this run's broker, publishers and subscriber.
        "other_cores": round(max(0.0, busy1 - busy0 - ours) / max(1e-9, window), 2),
        "settle_s": settle_s,
    }


# --- the run -----------------------------------------------------------------------------


def other_benchmarks() -> list[str]:
    try:
        out = subprocess.run(
            ["pgrep", "-af", OTHER_BENCHMARKS], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    me = str(os.getpid())
    return [line for line in out.splitlines() if line and line.split()[0] != me]


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [float(r["rate_per_s"]) for r in runs]
    received = sum(int(r["received"]) for r in runs)
    cpu = [r["cpu_s"]["subscriber"] for r in runs if r["cpu_s"]["subscriber"] is not None]
    return {
        "median_per_s": round(percentile(rates, 50), 1) if rates else None,
        "rates_per_s": rates,
        "complete_runs": sum(1 for r in runs if r["complete"]),
        "other_cores_median": round(percentile([r["other_cores"] for r in runs], 50), 2)
        if runs
        else None,
        "subscriber_cpu_us_per_message": round(1e6 * sum(cpu) / received, 2)
        if cpu and received
        else None,
        "runs": runs,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    header = run_header("mqtt_clients")
    header["machine"]["other_benchmarks_at_start"] = other_benchmarks()
    versions = library_versions()
    cases = [CASES[key] for key in args.cases]
    skipped: dict[str, str] = {}
    if "aiomqtt" in args.cases and not aiomqtt_available():
        cases = [c for c in cases if c.key != "aiomqtt"]
        skipped["aiomqtt"] = (
            "not installed (it wraps paho-mqtt's client, so paho's figures bound it)"
        )
    counts = {0: args.count_qos0, 1: args.count_qos1}

    def budget(case: Case, qos: int) -> tuple[int, float]:
        """Messages and time cap of one run. Through amqtt's broker, which passes a few
        thousand messages a second, fewer messages and a longer cap, so that every run
        there completes and its rate covers a whole burst, its tail included."""
        if case.broker == "amqtt":
            return args.broker_count, args.broker_cap
        return counts[qos], args.cap

    problems: list[str] = []
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        c.key: {"qos0": [], "qos1": []} for c in cases
    }
    work = Path(tempfile.mkdtemp(prefix="iotas-bench-mqtt-"))
    brokers: dict[str, RunningBroker] = {}
    started = time.monotonic()
    try:
        brokers["mosquitto"] = start_mosquitto(work, args.inflight)
        if any(c.broker == "amqtt" for c in cases):
            brokers["amqtt"] = start_amqtt_broker(work, args.loop)
        for case in cases:
            for qos in args.qos:
                line_files(work, budget(case, qos)[0], args.publishers)
        # Repetitions outermost, so a change in the machine's load touches every case alike.
        for rep in range(args.reps):
            for qos in args.qos:
                for case in cases:
                    label = f"[{rep + 1}/{args.reps}] {case.key} QoS {qos}"
                    count, cap = budget(case, qos)
                    try:
                        one = measure(case, brokers[case.broker], qos, count, cap, args, work)
                    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
                        problems.append(f"{label}: {exc}")
                        print(f"{label}: FAILED {exc}", flush=True)
                        continue
                    results[case.key][f"qos{qos}"].append(one)
                    print(
                        f"{label}: {one['rate_per_s']:>10,.0f} msg/s  "
                        f"{one['received']:,}/{count:,} ({one['ended']}) in "
                        f"{one['seconds']:.2f} s; cores busy {one['machine_busy_cores']}, "
                        f"{one['other_cores']} of them with other work",
                        flush=True,
                    )
                    if one["decode_errors"]:
                        problems.append(f"{label}: {one['decode_errors']} payloads did not decode")
                    if qos == 1 and one["ended"] in ("idle", "timeout"):
                        problems.append(
                            f"{label}: QoS 1 delivery stopped at {one['received']:,} of "
                            f"{count:,} ({one['ended']})"
                        )
                    # -15: stopped by this script when the run ended at its cap.
                    codes = one["publisher_exit_codes"]
                    if any(
                        code not in (0, None, -signal.SIGTERM, -signal.SIGKILL) for code in codes
                    ):
                        problems.append(
                            f"{label}: publisher exit codes {one['publisher_exit_codes']}"
                        )
    finally:
        for broker in brokers.values():
            broker.stop()
        stop_children()
        shutil.rmtree(work, ignore_errors=True)

    figures: dict[str, Any] = {}
    for case in cases:
        figures[case.key] = {
            "label": case.label,
            "broker": case.broker,
            "subscriber": case.subscriber,
            "protocol": "5" if case.protocol == 5 else "3.1.1",
            "how": case.note,
        }
        for qos in args.qos:
            summary = summarize(results[case.key][f"qos{qos}"])
            figures[case.key][f"qos{qos}"] = summary
    for qos in args.qos:
        ref = figures.get(REFERENCE, {}).get(f"qos{qos}", {}).get("median_per_s")
        for key in figures:
            summary = figures[key][f"qos{qos}"]
            median = summary["median_per_s"]
            summary["ratio_to_reference"] = round(median / ref, 3) if ref and median else None
    header["machine"]["load_average_at_end"] = list(os.getloadavg())
    header["machine"]["other_benchmarks_at_end"] = other_benchmarks()
    return {
        **header,
        "versions": versions,
        "parameters": {
            "quick": args.quick,
            "reps": args.reps,
            "qos": args.qos,
            "messages": {f"qos{q}": counts[q] for q in args.qos},
            "payload_bytes": PAYLOAD_BYTES,
            "publishers": args.publishers,
            "publisher": "mosquitto_pub -l -V mqttv311, one topic each",
            "inflight": args.inflight,
            "cap_s": args.cap,
            "amqtt_broker_messages": args.broker_count,
            "amqtt_broker_cap_s": args.broker_cap,
            "idle_s": args.idle,
            "loop": args.loop,
            "reference": REFERENCE,
            "rate": "received / (last arrival - publishers started); median of the reps",
        },
        "brokers": {kind: b.config for kind, b in brokers.items()},
        "figures": figures,
        "skipped": skipped,
        "problems": problems,
        "duration_s": round(time.monotonic() - started, 1),
    }


def table(result: dict[str, Any]) -> list[Row]:
    """One row per case and QoS: the median rate and, in brackets, its ratio to the reference
    at the same QoS."""
    rows: list[Row] = []
    for figure in result["figures"].values():
        for qos in result["parameters"]["qos"]:
            summary = figure[f"qos{qos}"]
            median = summary["median_per_s"]
            ratio = summary["ratio_to_reference"]
            value = "-" if median is None else f"{median:,.0f}/s"
            if ratio is not None:
                value += f" ({ratio:.2f})"
            runs = " ".join(f"{r / 1000:.1f}k" for r in summary["rates_per_s"])
            note = f"runs {runs}; complete {summary['complete_runs']}/{len(summary['runs'])}"
            cpu = summary["subscriber_cpu_us_per_message"]
            if cpu is not None:
                note += f"; subscriber {cpu:.1f} µs CPU/msg"
            note += f"; other load {summary['other_cores_median']} cores"
            label = f"{figure['label']}, MQTT {figure['protocol']}, QoS {qos}"
            rows.append(Row(figure=label, value=value, note=note))
    for key, why in result["skipped"].items():
        rows.append(Row(figure=key, value="-", note=why))
    return rows


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run, under a minute")
    parser.add_argument("--reps", type=int, help="repetitions per figure (3; 1 with --quick)")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), help="what to measure")
    parser.add_argument("--qos", nargs="+", type=int, choices=(0, 1), default=[0, 1])
    parser.add_argument("--count-qos0", type=int, help="messages per QoS 0 run (240,000)")
    parser.add_argument("--count-qos1", type=int, help="messages per QoS 1 run (160,000)")
    parser.add_argument("--publishers", type=int, default=4, help="mosquitto_pub processes")
    parser.add_argument("--inflight", type=int, default=1000, help="QoS 1 in flight per client")
    parser.add_argument("--cap", type=float, help="seconds of delivery per run at most (10)")
    parser.add_argument(
        "--broker-count", type=int, help="messages per run through amqtt's broker (30,000)"
    )
    parser.add_argument("--broker-cap", type=float, help="cap through amqtt's broker (30 s)")
    parser.add_argument("--idle", type=float, help="stop after this long without a message (2)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument("--timeout", type=float, help="whole run (900 s; 150 with --quick)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS_DIR / "mqtt_clients.json", help="result file"
    )
    # The worker side: this script re-run as one subscriber or as the amqtt broker.
    hidden = argparse.SUPPRESS
    parser.add_argument("--worker", choices=[*WORKERS, "amqtt-broker"], help=hidden)
    parser.add_argument("--port", type=int, help=hidden)
    parser.add_argument("--topic", help=hidden)
    parser.add_argument("--count", type=int, help=hidden)
    parser.add_argument("--sub-qos", type=int, choices=(0, 1), default=1, help=hidden)
    parser.add_argument("--protocol", type=int, choices=(4, 5), default=5, help=hidden)
    parser.add_argument("--hard", type=float, help=hidden)
    args = parser.parse_args(argv)
    quick = args.quick
    defaults = {
        "reps": 1 if quick else 3,
        "cases": QUICK_CASES if quick else DEFAULT_CASES,
        "count_qos0": 40_000 if quick else 240_000,
        "count_qos1": 20_000 if quick else 160_000,
        "cap": 3.0 if quick else 10.0,
        "broker_count": 6_000 if quick else 30_000,
        "broker_cap": 8.0 if quick else 30.0,
        "idle": 1.0 if quick else 2.0,
        "timeout": 150.0 if quick else 900.0,
    }
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.worker is None and REFERENCE not in args.cases:
        args.cases = [REFERENCE, *args.cases]
    return args


def _watchdog(seconds: float) -> None:
    def expire() -> None:
        print(f"\nthe run took longer than {seconds:.0f} s: stopping", file=sys.stderr)
        stop_children()
        os._exit(3)

    timer = threading.Timer(seconds, expire)
    timer.daemon = True
    timer.start()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is not None:
        return worker_main(args)
    for tool in (MOSQUITTO, MOSQUITTO_PUB, MOSQUITTO_SUB):
        if not os.access(tool, os.X_OK):
            print(f"{tool} is missing: apt-get install mosquitto mosquitto-clients")
            return 2
    _watchdog(args.timeout)
    others = other_benchmarks()
    if others:
        print("other benchmarks are running; figures will be low:\n  " + "\n  ".join(others))
    result = run(args)
    print_table(
        f"MQTT clients and brokers: msg/s (ratio to the Mosquitto C pass-through), "
        f"median of {args.reps}, {os.cpu_count()} cores",
        table(result),
    )
    for problem in result["problems"]:
        print(f"PROBLEM: {problem}")
    path = write_json(args.out, result)
    print(f"wrote {path} ({result['duration_s']} s)")
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
