"""Real Web of Things Things that nobody at iotas wrote, on 127.0.0.1: a wotpy lamp (HTTP and
CoAP forms) and a node-wot lamp (HTTP). Each runs as a subprocess for one test; commands on
its stdin change it "outside iotas". Without node or its npm install the node-wot tests skip,
except under CI=true, where that is a failure."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import free_port

PEERS = Path(__file__).resolve().parents[2] / "peers"
IN_CI = os.environ.get("CI", "").lower() == "true"
START_SECONDS = 30.0


@dataclass
class Peer:
    process: subprocess.Popen[str]
    td_url: str
    # Where the Thing's own HTTP API reads a property, for checking its true state.
    property_url: str

    async def command(self, line: str) -> None:
        """Act on the Thing outside iotas (`set brightness 7`, `emit overheat "hot"`)."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        done = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), 10)
        assert done.startswith("DONE"), done

    async def value(self, name: str) -> Any:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(self.property_url.format(name=name))).json()


def _start(argv: list[str], cwd: Path, property_url: str) -> Iterator[Peer]:
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + START_SECONDS
        line = ""
        while time.monotonic() < deadline and not line.startswith("READY"):
            line = process.stdout.readline()
            if not line and process.poll() is not None:
                pytest.fail(f"{argv[0]} {argv[1]} exited with {process.returncode}")
        assert line.startswith("READY"), f"{argv} did not start within {START_SECONDS} s"
        yield Peer(process, line.split()[1], property_url)
    finally:
        process.kill()
        process.wait(10)
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def wotpy_lamp() -> Iterator[Peer]:
    http, coap, catalogue = free_port(), free_port(), free_port()
    yield from _start(
        [
            sys.executable,
            str(PEERS / "wotpy_lamp.py"),
            "--port",
            str(http),
            "--coap-port",
            str(coap),
            "--catalogue-port",
            str(catalogue),
        ],
        PEERS,
        f"http://127.0.0.1:{http}/lamp/property/{{name}}",
    )


@pytest.fixture
def node_wot_lamp() -> Iterator[Peer]:
    node = shutil.which("node")
    installed = (PEERS / "node-wot" / "node_modules" / "@node-wot" / "core").is_dir()
    if node is None or not installed:
        reason = "node is not installed" if node is None else "run `make test` (npm ci) first"
        if IN_CI:
            pytest.fail(f"CI requires the node-wot peer: {reason}")
        pytest.skip(f"node-wot peer unavailable: {reason}")
    port = free_port()
    yield from _start(
        [node, "lamp.js", str(port)],
        PEERS / "node-wot",
        f"http://127.0.0.1:{port}/lamp/properties/{{name}}",
    )
