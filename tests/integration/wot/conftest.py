"""Real Web of Things Things that nobody at iotas wrote, on 127.0.0.1: a wotpy lamp (HTTP and
CoAP forms) and a node-wot lamp (HTTP). Each runs as a subprocess for one test; commands on
its stdin change it "outside iotas". Without node or its npm install the node-wot tests skip,
except under CI=true, where that is a failure."""

from __future__ import annotations

import asyncio
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import httpx
import pytest

from support import free_port

PEERS = Path(__file__).resolve().parents[2] / "peers"
IN_CI = os.environ.get("CI", "").lower() == "true"
START_SECONDS = 30.0


class _Lines:
    """A peer's stdout, read by a daemon thread: waiting for a line is bounded and never leaves
    a blocked read behind (a read in the event loop's executor that never returns would hang
    the loop's close, and with it the whole test run)."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put("")  # end of output: the peer exited

    def next(self, within: float) -> str:
        """The next line; "" when the peer has exited; an AssertionError after `within` s."""
        try:
            return self._queue.get(timeout=within)
        except queue.Empty:
            raise AssertionError(f"the peer printed nothing within {within} s") from None

    async def next_async(self, within: float) -> str:
        deadline = time.monotonic() + within
        while True:
            try:
                return self._queue.get_nowait()
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the peer printed nothing within {within} s") from None
                await asyncio.sleep(0.02)


@dataclass
class Peer:
    process: subprocess.Popen[str]
    lines: _Lines
    td_url: str
    # Where the Thing's own HTTP API reads a property, for checking its true state.
    property_url: str

    async def command(self, line: str) -> None:
        """Act on the Thing outside iotas (`set brightness 7`, `emit overheat "hot"`)."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        done = await self.lines.next_async(10)
        assert done.startswith("DONE"), done

    async def value(self, name: str) -> Any:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(self.property_url.format(name=name))).json()


# A peer is given free ports, but another process may take one first (CoAP's is UDP, which
# `free_port` does not check): a peer that exits before it is ready is started again on new
# ports, this many times in all.
START_ATTEMPTS = 3


def _start(
    command: Callable[[], tuple[list[str], str]], cwd: Path, log_dir: Path
) -> Iterator[Peer]:
    """Run `command()` (argv, property URL) until a peer says READY; yield it; kill it."""
    problems: list[str] = []
    for attempt in range(START_ATTEMPTS):
        argv, property_url = command()
        log = log_dir / f"peer-{attempt}.log"
        with log.open("w") as errors:
            process = subprocess.Popen(
                argv,
                cwd=cwd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
            )
        try:
            assert process.stdout is not None
            lines = _Lines(process.stdout)
            deadline = time.monotonic() + START_SECONDS
            line = "-"
            while line and not line.startswith("READY"):
                line = lines.next(max(0.0, deadline - time.monotonic()))
            if line:
                yield Peer(process, lines, line.split()[1], property_url)
                return
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            problems.append(f"exited with {process.wait(10)}: {' / '.join(tail)}")
        finally:
            process.kill()
            process.wait(10)
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    pipe.close()
    pytest.fail(f"{argv[0]} {argv[1]} did not start: {'; '.join(problems)}")


@pytest.fixture
def wotpy_lamp(tmp_path: Path) -> Iterator[Peer]:
    def command() -> tuple[list[str], str]:
        http, coap, catalogue = free_port(), free_port(), free_port()
        argv = [
            sys.executable,
            str(PEERS / "wotpy_lamp.py"),
            "--port",
            str(http),
            "--coap-port",
            str(coap),
            "--catalogue-port",
            str(catalogue),
        ]
        return argv, f"http://127.0.0.1:{http}/lamp/property/{{name}}"

    yield from _start(command, PEERS, tmp_path)


@pytest.fixture
def node_wot_lamp(tmp_path: Path) -> Iterator[Peer]:
    node = shutil.which("node")
    installed = (PEERS / "node-wot" / "node_modules" / "@node-wot" / "core").is_dir()
    if node is None or not installed:
        reason = "node is not installed" if node is None else "run `make test` (npm ci) first"
        if IN_CI:
            pytest.fail(f"CI requires the node-wot peer: {reason}")
        pytest.skip(f"node-wot peer unavailable: {reason}")

    def command() -> tuple[list[str], str]:
        port = free_port()
        return [node, "lamp.js", str(port)], f"http://127.0.0.1:{port}/lamp/properties/{{name}}"

    yield from _start(command, PEERS / "node-wot", tmp_path)
