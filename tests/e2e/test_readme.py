"""The README's "Using it" commands, run in order as a reader runs them: from the directory
where `iotas up` was started (the CLI finds the admin token there), with `IOTAS_URL` exported
as the README says when the server is not on port 8080.

Before, the block quarantined acme:pump-9 and the API example then changed it (409), and
the hosted-by query named a gateway nobody had created (issue 12, item 15). The adopt line
names a Thing at a documentation address (192.0.2.10); the test serves a real one on
loopback and puts its URL there, as a reader puts their own Thing's."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from e2e.docs_blocks import code_blocks
from e2e.e2e_server import clean_env, server_process
from support import free_port

COMMAND_TIMEOUT = 60.0
WATCH_TIMEOUT = 30.0
EXAMPLE_THING = "http://192.0.2.10:8080/lamp"


@pytest.fixture
def lamp() -> Iterator[str]:
    """A third-party Web of Things lamp on loopback: its TD's URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    level: dict[str, Any] = {"value": 3}
    td = {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "title": "Lamp",
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "base": base,
        "properties": {"level": {"type": "integer", "forms": [{"href": "/level"}]}},
    }

    async def describe(request: Request) -> Response:
        return JSONResponse(td, media_type="application/td+json")

    async def prop(request: Request) -> Response:
        if request.method == "PUT":
            level["value"] = json.loads(await request.body())
            return Response(status_code=204)
        return JSONResponse(level["value"])

    app = Starlette(
        routes=[Route("/lamp", describe), Route("/level", prop, methods=["GET", "PUT"])]
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"{base}/lamp"
    server.should_exit = True
    thread.join(10)


def lines(block: str) -> list[str]:
    return [line for line in block.splitlines() if line.strip()]


def test_using_it_runs_in_order(tmp_path: Path, lamp: str) -> None:
    cli, api, actions, quarantine = code_blocks("README.md", "Using it")
    # `.venv/bin/iotas` as in a checkout: the environment these tests run in.
    venv = Path(sys.prefix)
    assert (venv / "bin" / "iotas").exists(), f"{venv} has no bin/iotas"
    (tmp_path / ".venv").symlink_to(venv)
    assert EXAMPLE_THING in cli
    cli = cli.replace(EXAMPLE_THING, lamp)

    with server_process(
        tmp_path, data_dir=tmp_path / "iotas-data", generated_token=True, broker=True
    ) as server:
        env = clean_env(IOTAS_URL=server.url, COLUMNS="200", PYTHONUNBUFFERED="1")

        def run(command: str) -> str:
            ran = subprocess.run(
                ["bash", "-c", f"set -euo pipefail\n{command}"],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
            assert ran.returncode == 0, f"{command}\n{ran.stdout}\n{ran.stderr}"
            return ran.stdout

        *once, follow = lines(cli)
        outputs = {command: run(command) for command in once}
        hosted = next(command for command in once if "reachable(" in command)
        assert "acme:pump-9" in outputs[hosted], outputs[hosted]
        assert (tmp_path / "pump-9.crt").exists() and (tmp_path / "pump-9.key").exists()

        assert "iotas watch" in follow
        watch_until_a_change(follow, tmp_path, env, run)

        answers = run(api)
        assert '"acme:pump-9"' in answers, answers
        assert '"setpoint":22' in answers.replace(" ", ""), answers
        assert '"status":4' not in answers.replace(" ", ""), answers

        with simulated_fleet(server.output(), tmp_path, env):
            wait_connected("sim:pump-00002", tmp_path, env)
            shown = run(actions)  # one script: the rollout's id goes from one line to the next
        assert "blink on sim:pump-00002: succeeded" in shown, shown

        for command in lines(quarantine):
            run(command)


@contextmanager
def simulated_fleet(banner: str, cwd: Path, env: dict[str, str]) -> Iterator[None]:
    """What the README's actions block runs against: `iotas simulate` beside `iotas up`, as
    it says (8 devices, two of them pumps, none transmit-only or failing, so every action
    the block waits for ends)."""
    mqtt = re.search(r"mqtt://127\.0\.0\.1:(\d+)", banner)
    assert mqtt is not None, banner
    command = [
        *(".venv/bin/iotas", "simulate", "--devices", "8", "--rate", "2", "--seed", "1"),
        *("--transmit-only", "0", "--flaky", "0", "--mqtt-url", mqtt.group(0)),
    ]
    with (cwd / "simulate.log").open("wb") as log:
        fleet = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield
    finally:
        fleet.send_signal(signal.SIGINT)
        try:
            fleet.wait(WATCH_TIMEOUT)
        except subprocess.TimeoutExpired:
            fleet.kill()
            fleet.wait()


def wait_connected(thing_id: str, cwd: Path, env: dict[str, str]) -> None:
    """Until the simulator has made the Thing and its device is connected."""
    deadline = time.monotonic() + COMMAND_TIMEOUT
    while True:
        ran = subprocess.run(
            [".venv/bin/iotas", "things", "get", thing_id, "--json"],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if ran.returncode == 0 and json.loads(ran.stdout).get("connected") is True:
            return
        log = (cwd / "simulate.log").read_text(encoding="utf-8", errors="replace")
        assert time.monotonic() < deadline, f"{thing_id} never connected:\n{ran.stderr}\n{log}"
        time.sleep(0.2)


def watch_until_a_change(command: str, cwd: Path, env: dict[str, str], run: Any) -> None:
    """`iotas watch` runs until Ctrl-C: it must print a change to a pump, then stop with 0."""
    log_path = cwd / "watch.log"
    with log_path.open("wb") as log:
        watcher = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + WATCH_TIMEOUT
        setpoint = 30
        # It starts at the present: change a pump until the stream (connecting) shows one.
        while "acme:pump-9" not in log_path.read_text(encoding="utf-8"):
            assert time.monotonic() < deadline, log_path.read_text(encoding="utf-8")
            run(f".venv/bin/iotas twin set acme:pump-9 '{{\"setpoint\": {setpoint}}}'")
            setpoint += 1
            time.sleep(0.5)
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(WATCH_TIMEOUT) == 0, log_path.read_text(encoding="utf-8")
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
