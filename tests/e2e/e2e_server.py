"""A real `iotas up` in a subprocess, for end-to-end tests of the CLI and SDK."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from support import free_port

START_TIMEOUT = 30.0
# The CLI reads these; tests set them explicitly where they matter.
CLIENT_ENV = ("IOTAS_URL", "IOTAS_TOKEN", "IOTAS_DATA_DIR", "IOTAS_ADMIN_TOKEN", "IOTAS_PORT")


@dataclass(frozen=True)
class ServerProcess:
    url: str
    token: str
    data_dir: Path
    process: subprocess.Popen[bytes]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV}
    env.update(extra)
    return env


@contextmanager
def server_process(workdir: Path) -> Iterator[ServerProcess]:
    """Start `python -m iotas up` on a free port with a known admin token; stop it after."""
    token = "iotas_e2e_" + secrets.token_urlsafe(18)
    port = free_port()
    data_dir = workdir / "data"
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "iotas", "up", "--port", str(port)),
                *("--data-dir", str(data_dir), "--no-broker"),
            ],
            env=clean_env(IOTAS_ADMIN_TOKEN=token),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log_path)
        yield ServerProcess(url, token, data_dir, process)
    finally:
        stop(process)


def wait_healthy(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"iotas up exited with {process.returncode}:\n{log_path.read_text()}"
            )
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"iotas up did not answer within {START_TIMEOUT}s:\n{log_path.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
