"""Shared plumbing for benchmarks: a real server subprocess, load generators, output.

Every benchmark here talks to a real `iotas` server over 127.0.0.1, drives load with `wrk`
when it is installed (an asyncio httpx client otherwise, recorded in the result), quotes
medians and tail percentiles, bounds each load loop by a count and a time, and writes one
JSON result beside a printed table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
HOST = "127.0.0.1"
POSTGRES_ADMIN_URL = os.environ.get(
    "IOTAS_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
WRK = shutil.which("wrk")

# Printed after everything else by the `done` hook appended to every wrk script, so the
# harness reads exact counts instead of parsing wrk's rounded human-readable summary.
_WRK_MARK = "IOTAS_BENCH_JSON "
_WRK_THREAD_DONE = "IOTAS_BENCH_THREAD_DONE"
_WRK_LUA = r"""
-- stderr is unbuffered, so the harness sees this at once and can end wrk early.
function bench_stop()
  if not bench_stopped then
    bench_stopped = true
    io.stderr:write("IOTAS_BENCH_THREAD_DONE\n")
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local extra = ""
  if bench_done_extra then extra = bench_done_extra() end
  io.write(string.format(
    "%s{\"requests\":%d,\"duration_us\":%d,\"bytes\":%d,\"status_errors\":%d," ..
    "\"connect_errors\":%d,\"read_errors\":%d,\"write_errors\":%d,\"timeouts\":%d," ..
    "\"p50_us\":%d,\"p99_us\":%d,\"max_us\":%d%s}\n",
    "IOTAS_BENCH_JSON ", summary.requests, summary.duration, summary.bytes,
    summary.errors.status, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, extra))
end
"""


# --- the machine and the run ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=REPO_DIR,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def machine() -> dict[str, Any]:
    uname = os.uname()
    return {
        "uname": {
            "sysname": uname.sysname,
            "release": uname.release,
            "version": uname.version,
            "machine": uname.machine,
        },
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
    }


def run_header(bench: str) -> dict[str, Any]:
    return {
        "benchmark": bench,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(),
        "machine": machine(),
    }


# --- statistics ----------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), so p50 is the median."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary_ms(seconds: list[float]) -> dict[str, float | int]:
    ms = [s * 1000.0 for s in seconds]
    return {
        "count": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p90_ms": round(percentile(ms, 90), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "max_ms": round(max(ms), 3) if ms else math.nan,
    }


# --- the server ----------------------------------------------------------------------------


@dataclass
class Server:
    """An `iotas` server in a subprocess on a free loopback port with a known admin token."""

    data_dir: Path
    database_url: str | None
    port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: "bench-" + secrets.token_urlsafe(24))
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self, ready_timeout: float = 60.0) -> None:
        code = (
            "from iotas.server import serve; from iotas.settings import Settings; "
            f"serve(Settings.from_env(data_dir={str(self.data_dir)!r}, "
            f"database_url={self.database_url!r}, host={HOST!r}, port={self.port}, "
            "log_level='warning'))"
        )
        env = {**os.environ, "IOTAS_ADMIN_TOKEN": self.token}
        # The caller's IOTAS_* settings must not redirect the benchmark to another database.
        for name in ("IOTAS_DATABASE_URL", "IOTAS_DATA_DIR", "IOTAS_HOST", "IOTAS_PORT"):
            env.pop(name, None)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "server.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", code], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the server exited with {self.process.returncode}:\n{self.log()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.base_url + "/healthz", timeout=2.0).status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the server did not answer /healthz in {ready_timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout)

    def log(self, tail: int = 4000) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-tail:]


@contextlib.contextmanager
def running_server(database_url: str | None, keep: bool = False) -> Iterator[Server]:
    """A server on a fresh data directory, stopped (and the directory removed) afterwards."""
    data_dir = Path(tempfile.mkdtemp(prefix="iotas-bench-"))
    server = Server(data_dir=data_dir, database_url=database_url)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)


@contextlib.contextmanager
def postgres_database(admin_url: str = POSTGRES_ADMIN_URL) -> Iterator[str]:
    """A fresh, uniquely named database on the PostgreSQL server, dropped afterwards."""
    import asyncpg  # imported here: a SQLite-only run should not need the server

    name = f"iotas_bench_{int(time.time())}_{secrets.token_hex(3)}"

    async def execute(sql: str) -> None:
        conn = await asyncpg.connect(admin_url, timeout=10)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        # FORCE: a server killed after the timeout may leave connections behind.
        asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _run_wrk_process(command: list[str], threads: int, timeout: float) -> tuple[str, str, int]:
    stopped = threading.Semaphore(0)
    other: list[str] = []
    with tempfile.TemporaryFile("w+") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, text=True)

        def read_stderr() -> None:
            assert process.stderr is not None
            for line in process.stderr:
                if line.strip() == _WRK_THREAD_DONE:
                    stopped.release()
                else:
                    other.append(line)

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        deadline = time.monotonic() + timeout
        waiting = threads
        # Runs bounded by `-d` alone end by themselves; only count stops while wrk runs.
        while waiting and process.poll() is None and time.monotonic() < deadline:
            if stopped.acquire(timeout=0.1):
                waiting -= 1
        if not waiting:
            # SIGINT ends wrk's sleep and it prints its summary as usual. A signal that lands
            # on a thread still unwinding is lost, hence a few tries.
            for _ in range(10):
                if process.poll() is not None:
                    break
                process.send_signal(signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(1.0)
        try:
            process.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(5.0)
        out.seek(0)
        return out.read(), "".join(other), process.returncode


# --- load generators -----------------------------------------------------------------------


@dataclass
class LoadResult:
    """What one load run did, from wrk's own counters or the httpx fallback's."""

    client: str
    requests: int
    duration_s: float
    non_2xx: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "requests_per_s": round(self.rate, 1)}


def run_wrk(
    url: str,
    script: str,
    *,
    threads: int,
    connections: int,
    duration_s: float,
    args: list[str] | None = None,
    headers: dict[str, str] | None = None,
) -> LoadResult:
    """Run wrk for at most `duration_s` (the script may stop it sooner) and read its counters.

    A script ends a thread early with `bench_stop()`; once every thread has, wrk is told to
    finish (it otherwise sleeps out the whole `-d`, and its duration would include that).
    `script` may define `bench_done_extra()` returning `,"name":value...` to add its own
    JSON members (evaluated in wrk's main Lua state, after every thread stopped).
    """
    if WRK is None:
        raise RuntimeError("wrk is not installed")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script + "\n" + _WRK_LUA)
        path = handle.name
    command = [WRK, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration_s))}s"]
    command += ["--timeout", "10s", "-s", path]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    command.append(url)
    if args:
        command += ["--", *args]
    try:
        stdout, stderr, returncode = _run_wrk_process(command, threads, duration_s + 60)
    finally:
        os.unlink(path)
    done = subprocess.CompletedProcess(command, returncode, stdout, stderr)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(_WRK_MARK)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = json.loads(lines[-1][len(_WRK_MARK) :])
    known = {
        "requests",
        "duration_us",
        "bytes",
        "status_errors",
        "connect_errors",
        "read_errors",
        "write_errors",
        "timeouts",
        "p50_us",
        "p99_us",
        "max_us",
    }
    return LoadResult(
        client="wrk",
        requests=data["requests"],
        duration_s=data["duration_us"] / 1e6,
        non_2xx=data["status_errors"],
        socket_errors=sum(
            data[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts")
        ),
        p50_ms=data["p50_us"] / 1000.0,
        p99_ms=data["p99_us"] / 1000.0,
        extra={k: v for k, v in data.items() if k not in known},
    )


def healthz_rate(server: Server, seconds: float = 3.0) -> float:
    """`GET /healthz` answers a second from `server` (wrk, 2 threads, 8 connections; the
    httpx fallback without wrk): the machine's HTTP ceiling in this run, recorded beside a
    bench's figures so runs on different days compare as ratios to it."""
    if WRK is not None:
        load = run_wrk(
            server.base_url + "/healthz", "", threads=2, connections=8, duration_s=seconds
        )
    else:
        load = run_httpx(
            server.base_url,
            lambda _w, i: ("GET", "/healthz", None),
            workers=8,
            duration_s=seconds,
        )
    return round(load.rate, 1)


# A request the fallback client sends: (method, path, JSON body or None). None ends a worker.
Request = tuple[str, str, Any] | None


def run_httpx(
    base_url: str,
    next_request: Callable[[int, int], Request],
    *,
    workers: int,
    duration_s: float,
    headers: dict[str, str] | None = None,
    on_response: Callable[[int, httpx.Response], None] | None = None,
) -> LoadResult:
    """The fallback when wrk is missing: `workers` keep-alive connections, closed-loop.

    `next_request(worker, i)` gives each worker's i-th request or None when its share is
    done; the run also ends after `duration_s`. Much slower than wrk on the client side, so
    results say which client produced them.
    """

    async def main() -> LoadResult:
        latencies: list[float] = []
        counts = {"requests": 0, "non_2xx": 0, "errors": 0}
        deadline = time.perf_counter() + duration_s
        limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers, limits=limits, timeout=10.0
        ) as client:

            async def worker(index: int) -> None:
                i = 0
                while time.perf_counter() < deadline:
                    request = next_request(index, i)
                    if request is None:
                        return
                    i += 1
                    method, path, body = request
                    started = time.perf_counter()
                    try:
                        response = await client.request(method, path, json=body)
                    except httpx.HTTPError:
                        counts["errors"] += 1
                        continue
                    latencies.append(time.perf_counter() - started)
                    counts["requests"] += 1
                    if not 200 <= response.status_code < 300:
                        counts["non_2xx"] += 1
                    if on_response is not None:
                        on_response(index, response)

            started = time.perf_counter()
            await asyncio.gather(*(worker(i) for i in range(workers)))
            elapsed = time.perf_counter() - started
        lat = latency_summary_ms(latencies)
        return LoadResult(
            client="httpx",
            requests=counts["requests"],
            duration_s=elapsed,
            non_2xx=counts["non_2xx"],
            socket_errors=counts["errors"],
            p50_ms=float(lat["p50_ms"]),
            p99_ms=float(lat["p99_ms"]),
        )

    return asyncio.run(main())


def timed_sequential(
    call: Callable[[int], None],
    *,
    warmup: int,
    count: int,
    max_seconds: float,
) -> list[float]:
    """Latencies (s) of `count` sequential calls after `warmup` untimed ones, within a budget.

    `call(i)` raises to fail the benchmark (a wrong answer is not a latency).
    """
    for i in range(warmup):
        call(-1 - i)
    out: list[float] = []
    deadline = time.perf_counter() + max_seconds
    for i in range(count):
        if time.perf_counter() > deadline:
            break
        started = time.perf_counter()
        call(i)
        out.append(time.perf_counter() - started)
    return out


# --- output --------------------------------------------------------------------------------


@dataclass
class Row:
    figure: str
    value: str
    target: str = ""
    verdict: str = ""  # PASS, FAIL or "" when there is no target
    note: str = ""


def verdict(ok: bool | None) -> str:
    return "" if ok is None else ("PASS" if ok else "FAIL")


def print_table(title: str, rows: list[Row]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a project dependency
        print(f"\n{title}")
        for row in rows:
            print(
                f"  {row.figure:<40} {row.value:>16}  {row.target:<18} {row.verdict:<5} {row.note}"
            )
        return
    table = Table(title=title, title_justify="left")
    table.add_column("figure")
    table.add_column("measured", justify="right")
    table.add_column("target")
    table.add_column("")
    table.add_column("note")
    for row in rows:
        style = {"PASS": "green", "FAIL": "bold red"}.get(row.verdict, "")
        table.add_row(
            row.figure,
            row.value,
            row.target,
            f"[{style}]{row.verdict}[/]" if style else "",
            row.note,
        )
    # A pipe gets 80 columns by default, which wraps every note onto several lines.
    Console(width=None if sys.stdout.isatty() else 132).print(table)


def write_json(path: Path, result: dict[str, Any]) -> Path:
    """Write a result; benchmarks default to `RESULTS_DIR / "<name>.json"`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
