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
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(encoding="utf-8")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLIENT_ENV}
    env.update(extra)
    return env


@contextmanager
def server_process(
    workdir: Path,
    *,
    broker: bool = False,
    data_dir: Path | None = None,
    generated_token: bool = False,
    database_url: str | None = None,
) -> Iterator[ServerProcess]:
    """Start `python -m iotas up` on a free port with a known admin token; stop it after.
    With `broker`, the embedded MQTT broker listens on free ports (`iotas up` prints them);
    with `generated_token`, the server makes the admin token and writes it to its data dir,
    as on a first `iotas up`; with `database_url`, it runs on that database (PostgreSQL, for
    several nodes on one)."""
    token = "iotas_e2e_" + secrets.token_urlsafe(18)
    port = free_port()
    data_dir = data_dir or workdir / "data"
    log_path = workdir / "server.log"
    mqtt = (
        ("--mqtt-port", str(free_port()), "--mqtts-port", str(free_port()))
        if broker
        else ("--no-broker",)
    )
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "iotas", "up", "--port", str(port)),
                *("--data-dir", str(data_dir), *mqtt),
                *(() if database_url is None else ("--database-url", database_url)),
            ],
            env=clean_env() if generated_token else clean_env(IOTAS_ADMIN_TOKEN=token),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log_path)
        if generated_token:
            token = (data_dir / "admin-token").read_text(encoding="utf-8").strip()
        yield ServerProcess(url, token, data_dir, process, log_path)
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
