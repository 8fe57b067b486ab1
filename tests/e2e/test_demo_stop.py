"""Ctrl-C on a running `iotas demo`: the fleet and the server stop quietly and in bounded time.

Before, the broker was torn down under the simulated fleet's live sessions; they all
reconnected into the stopping server, and its shutdown printed dozens of CancelledError
tracebacks (issue 12, item 5)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from e2e.e2e_server import clean_env
from support import free_port

DEVICES = 150
UP_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
TOKEN = "iotas_demo_stop_test_token_0123456789"


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, str]]:
    port, mqtt_port, mqtts_port = free_port(), free_port(), free_port()
    log_path = tmp_path / "demo.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "iotas", "demo", "--port", str(port)),
                *("--mqtt-port", str(mqtt_port), "--mqtts-port", str(mqtts_port)),
                *("--data-dir", str(tmp_path / "data"), "--devices", str(DEVICES)),
                *("--rate", "50"),
            ],
            env=clean_env(IOTAS_ADMIN_TOKEN=TOKEN, COLUMNS="200"),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        yield process, log_path, f"http://127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def connected_devices(url: str) -> int:
    answer = httpx.get(
        f"{url}/api/v1/things",
        params={"q": "connected == true", "limit": 1000},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    answer.raise_for_status()
    return sum(1 for thing in answer.json()["items"] if thing["id"].startswith("sim:"))


def wait_for_fleet(process: subprocess.Popen[bytes], log_path: Path, url: str) -> None:
    deadline = time.monotonic() + UP_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, log_path.read_text()
        if "Ctrl-C to stop" in log_path.read_text():
            try:
                if connected_devices(url) == DEVICES:
                    return
            except httpx.HTTPError:
                pass
        time.sleep(0.5)
    log = log_path.read_text()
    raise AssertionError(f"the demo fleet did not connect in {UP_TIMEOUT}s:\n{log}")


def test_ctrl_c_stops_the_demo_quietly(
    demo: tuple[subprocess.Popen[bytes], Path, str],
) -> None:
    process, log_path, url = demo
    wait_for_fleet(process, log_path, url)

    began = time.monotonic()
    process.send_signal(signal.SIGINT)
    code = process.wait(STOP_TIMEOUT)
    took = time.monotonic() - began

    output = log_path.read_text()
    after = output[output.index("Ctrl-C to stop") :]
    assert "Traceback" not in after, after
    assert "CancelledError" not in after, after
    assert "Task exception was never retrieved" not in after, after
    assert code == 0, after
    assert after.rstrip().endswith("iotas demo stopped."), after
    assert took < STOP_TIMEOUT
