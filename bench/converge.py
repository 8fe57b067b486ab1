"""The convergence benchmark: one desired change on N third-party HTTP Things, iotas against
Ansible.

    .venv/bin/python bench/converge.py                  # N = 1,000 and 10,000
    .venv/bin/python bench/converge.py --things 100     # a quick look

One process (bench/converge_things.py) serves N thermostats, each with its own TD and
property URLs. iotas (a real server subprocess on SQLite) adopts all N by TD URL with the
defaults a user gets (the 30 s poll interval, so the periodic reads of N Things run
throughout), timed; then one bulk operation (`PATCH /api/v1/twins/desired?q=...`) sets
`setpoint` on all of them, and the clock runs until every Thing is in sync (reported, read
back from the Thing, equals desired). Both are reported, and their sum: from nothing adopted
to all N in sync. iotas' peak memory is the server process's VmHWM. In the same run Ansible
(ansible-core, the `uri` module, 50 forks, `connection: local`) sets the same property on
the same Things, timed end to end; the ratio is Ansible's time over iotas'. The Things
server counts the PUTs each Thing received, so both sides are checked to have written all N.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import (
    BENCH_DIR,
    HOST,
    RESULTS_DIR,
    Row,
    free_port,
    healthz_rate,
    print_table,
    run_header,
    running_server,
    verdict,
    write_json,
)

from iotas.services.wot import DEFAULT_POLL_SECONDS

KIND = "bench-thermostat"
QUERY = f'kind == "{KIND}"'
FORKS = 50
TARGET_RATIO_AT_1000 = 20.0
TARGET_SECONDS_AT_10000 = 60.0
TARGET_PEAK_MIB_AT_10000 = 1024.0
TARGET_ADOPT_SECONDS_AT_10000 = 20.0
ADOPT_CONCURRENCY = 32
CHECK_EVERY = 0.1


def thing_name(i: int) -> str:
    return f"t-{i:05d}"


class ThingsServer:
    def __init__(self, count: int) -> None:
        self.count = count
        self.port = free_port()
        self.base = f"http://{HOST}:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ThingsServer:
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(BENCH_DIR / "converge_things.py"),
                "--port",
                str(self.port),
                "--things",
                str(self.count),
            ]
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.base}/stats", timeout=1).raise_for_status()
                return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the Things server did not start")

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    def stats(self) -> dict[str, int]:
        result: dict[str, int] = httpx.get(f"{self.base}/stats", timeout=10).json()
        return result

    def reset(self) -> None:
        httpx.post(f"{self.base}/reset", timeout=10).raise_for_status()


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def count_matching(client: httpx.AsyncClient, query: str) -> bool:
    """Whether any Thing matches (one row is enough to know)."""
    response = await client.get("/api/v1/things", params={"q": query, "limit": 1})
    response.raise_for_status()
    return bool(response.json()["items"])


async def wait_until_none(client: httpx.AsyncClient, query: str, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if not await count_matching(client, query):
            return time.monotonic() - start
        await asyncio.sleep(CHECK_EVERY)
    raise TimeoutError(f"Things still matching {query!r} after {timeout:.0f} s")


async def run_iotas(things: ThingsServer, n: int, value: float) -> dict[str, Any]:
    with running_server(None) as server:
        assert server.process is not None
        pid = server.process.pid
        # The machine's HTTP ceiling in this run, so runs of different days compare as ratios.
        healthz = healthz_rate(server)
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=server.headers, timeout=60
        ) as client:
            started_mib = rss_mib(pid)
            queue: asyncio.Queue[int] = asyncio.Queue()
            for i in range(n):
                queue.put_nowait(i)

            async def adopt_worker() -> None:
                while not queue.empty():
                    i = queue.get_nowait()
                    name = thing_name(i)
                    response = await client.post(
                        "/api/v1/adoptions",
                        json={
                            "td_url": f"{things.base}/things/{name}/td",
                            "id": f"bench:{name}",
                        },
                    )
                    if response.status_code != 201:
                        raise RuntimeError(f"adopting {name}: {response.text}")

            t0 = time.monotonic()
            await asyncio.gather(*(adopt_worker() for _ in range(ADOPT_CONCURRENCY)))
            adopt_s = time.monotonic() - t0
            # Every Thing read once through its TD before the change.
            first_read_s = await wait_until_none(
                client, f"{QUERY} and not exists(reported.setpoint)", timeout=600
            )
            things.reset()

            t1 = time.monotonic()
            response = await client.patch(
                "/api/v1/twins/desired",
                params={"q": QUERY},
                json={"setpoint": value},
                headers={"Content-Type": "application/merge-patch+json"},
            )
            response.raise_for_status()
            bulk = response.json()
            bulk_s = time.monotonic() - t1
            converge_s = bulk_s + await wait_until_none(
                client, f"{QUERY} and reported.setpoint != {value}", timeout=900
            )
            peak = peak_rss_mib(pid)
            stats = things.stats()
            pending = await count_matching(client, f"{QUERY} and desired.setpoint != {value}")
    return {
        "things": n,
        "adopt_s": round(adopt_s, 2),
        "adopt_per_s": round(n / adopt_s, 1),
        "healthz_per_s": healthz,
        "adopt_per_healthz": round(n / adopt_s / healthz, 4) if healthz else None,
        "first_read_after_adopt_s": round(first_read_s, 2),
        "bulk_patch": bulk,
        "bulk_patch_s": round(bulk_s, 3),
        "bulk_patch_us_per_thing": round(bulk_s / n * 1e6, 1),
        "converge_s": round(converge_s, 3),
        "adopt_and_converge_s": round(adopt_s + first_read_s + converge_s, 3),
        "poll_interval_s": DEFAULT_POLL_SECONDS,
        "things_written": stats["things_written"],
        "puts": stats["puts"],
        "desired_missing": pending,
        "rss_at_start_mib": round(started_mib, 1),
        "peak_rss_mib": round(peak, 1),
    }


def ansible_playbook() -> str | None:
    found = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
    return found or shutil.which("ansible-playbook")


def run_ansible(things: ThingsServer, n: int, value: float) -> dict[str, Any]:
    playbook_bin = ansible_playbook()
    if playbook_bin is None:
        raise RuntimeError("ansible-playbook not found: pip install ansible-core (make bench)")
    things.reset()
    with tempfile.TemporaryDirectory(prefix="iotas-bench-ansible-") as tmp:
        folder = Path(tmp)
        hosts = "\n".join(thing_name(i) for i in range(n))
        (folder / "inventory.ini").write_text(
            f"[things]\n{hosts}\n\n[things:vars]\nansible_connection=local\n"
            f"ansible_python_interpreter={sys.executable}\n"
        )
        (folder / "playbook.yml").write_text(
            "- hosts: things\n"
            "  gather_facts: false\n"
            "  tasks:\n"
            "    - name: set the setpoint through the Thing's own HTTP API\n"
            "      ansible.builtin.uri:\n"
            f"        url: '{things.base}/things/{{{{ inventory_hostname }}}}"
            "/properties/setpoint'\n"
            "        method: PUT\n"
            "        body_format: json\n"
            f"        body: {value}\n"
            "        status_code: 204\n"
        )
        env = {
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_LOCAL_TEMP": str(folder / "tmp"),
            "ANSIBLE_HOME": str(folder / "home"),
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "LC_ALL": "C.UTF-8",
        }
        t0 = time.monotonic()
        done = subprocess.run(
            [playbook_bin, "-i", "inventory.ini", "-f", str(FORKS), "playbook.yml"],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
            check=False,
        )
        seconds = time.monotonic() - t0
    if done.returncode != 0:
        raise RuntimeError(f"ansible-playbook failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    stats = things.stats()
    return {
        "things": n,
        "forks": FORKS,
        "seconds": round(seconds, 2),
        "things_written": stats["things_written"],
        "ansible_core": _ansible_version(playbook_bin),
    }


def _ansible_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0] if out.stdout else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--things", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument(
        "--ansible-max",
        type=int,
        default=1000,
        help="Run Ansible only for N up to this (it takes minutes beyond; 0: never).",
    )
    parser.add_argument(
        "--out", "--output", dest="output", type=Path, default=RESULTS_DIR / "converge.json"
    )
    args = parser.parse_args()

    result = run_header("converge")
    result["runs"] = []
    rows: list[Row] = []
    for n in args.things:
        value = 22.5
        with ThingsServer(n) as things:
            iotas = asyncio.run(run_iotas(things, n, value))
            ansible = None
            if n <= args.ansible_max:
                ansible = run_ansible(things, n, value + 1)
        run: dict[str, Any] = {"things": n, "iotas": iotas, "ansible": ansible}
        ok_writes = iotas["things_written"] == n
        big = n >= 10000
        rows.append(
            Row(
                f"N={n}: adopt by TD URL",
                f"{iotas['adopt_s']:.1f} s",
                f"<= {TARGET_ADOPT_SECONDS_AT_10000:.0f} s" if big else "",
                verdict(iotas["adopt_s"] <= TARGET_ADOPT_SECONDS_AT_10000) if big else "",
                f"{iotas['adopt_per_s']:.0f}/s, {ADOPT_CONCURRENCY} at a time; "
                f"GET /healthz {iotas['healthz_per_s']:,.0f}/s",
            )
        )
        rows.append(
            Row(
                f"N={n}: bulk desired PATCH",
                f"{iotas['bulk_patch_s']:.2f} s",
                note=f"{iotas['bulk_patch_us_per_thing']:.0f} us per Thing",
            )
        )
        rows.append(
            Row(
                f"N={n}: iotas, bulk change -> all in_sync",
                f"{iotas['converge_s']:.2f} s",
                f"<= {TARGET_SECONDS_AT_10000:.0f} s" if n >= 10000 else "",
                verdict(iotas["converge_s"] <= TARGET_SECONDS_AT_10000 and ok_writes)
                if n >= 10000
                else "",
                f"{iotas['things_written']}/{n} Things written",
            )
        )
        rows.append(
            Row(
                f"N={n}: adopt, first read, change -> all in_sync",
                f"{iotas['adopt_and_converge_s']:.1f} s",
                note=f"poll interval {DEFAULT_POLL_SECONDS:g} s (the default)",
            )
        )
        rows.append(
            Row(
                f"N={n}: iotas peak RSS",
                f"{iotas['peak_rss_mib']:.0f} MiB",
                f"< {TARGET_PEAK_MIB_AT_10000:.0f} MiB" if n >= 10000 else "",
                verdict(iotas["peak_rss_mib"] < TARGET_PEAK_MIB_AT_10000) if n >= 10000 else "",
                f"{iotas['rss_at_start_mib']:.0f} MiB at start",
            )
        )
        if ansible is not None:
            ratio = ansible["seconds"] / iotas["converge_s"]
            run["ratio_ansible_over_iotas"] = round(ratio, 1)
            rows.append(
                Row(
                    f"N={n}: Ansible uri, {FORKS} forks",
                    f"{ansible['seconds']:.1f} s",
                    note=f"{ansible['things_written']}/{n} Things written",
                )
            )
            rows.append(
                Row(
                    f"N={n}: Ansible / iotas",
                    f"{ratio:.1f}x",
                    f">= {TARGET_RATIO_AT_1000:.0f}x" if n == 1000 else "",
                    verdict(ratio >= TARGET_RATIO_AT_1000) if n == 1000 else "",
                )
            )
        result["runs"].append(run)
    print_table("Convergence: one desired change on N HTTP Things", rows)
    path = write_json(args.output, result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
