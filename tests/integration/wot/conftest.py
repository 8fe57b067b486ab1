"""Real Web of Things Things that nobody at iotas wrote, on 127.0.0.1: a wotpy lamp (HTTP and
CoAP forms) and a node-wot lamp (HTTP). Each runs as a subprocess for one test; commands on
its stdin change it "outside iotas". Without node or its npm install the node-wot tests skip,
except under CI=true, where that is a failure."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from peer_support import PEERS, PeerLines, node_with
from support import free_port

START_SECONDS = 30.0


@dataclass
class Peer:
    process: subprocess.Popen[str]
    lines: PeerLines
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
            lines = PeerLines(process.stdout)
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
    node = node_with("@node-wot/core")

    def command() -> tuple[list[str], str]:
        port = free_port()
        return [node, "lamp.js", str(port)], f"http://127.0.0.1:{port}/lamp/properties/{{name}}"

    yield from _start(command, PEERS / "node-wot", tmp_path)
