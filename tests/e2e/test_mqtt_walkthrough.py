"""docs/mqtt.md's mosquitto walkthrough, run as written with the real mosquitto_pub and
mosquitto_sub against `iotas up` with its embedded broker on free ports.

Before, every command connected with the Thing's id while a background subscriber held that
id's session, so each publish took the subscriber's place, and the port was 1883 whatever the
server had printed (issue 12, item 15). The only edits a reader makes are the ones the page
asks for: the URL and MQTT port the server printed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.docs_blocks import code_blocks
from e2e.e2e_server import clean_env, server_process

# The walkthrough's own tools; CI (.ci/run) installs them, and a skip there fails the run.
pytestmark = [
    pytest.mark.mosquitto,
    pytest.mark.skipif(
        not (
            shutil.which("mosquitto_pub") and shutil.which("mosquitto_sub") and shutil.which("jq")
        ),
        reason="needs mosquitto_pub, mosquitto_sub and jq (apt-get install mosquitto-clients jq)",
    ),
]

RUN_TIMEOUT = 120.0


def test_the_walkthrough_works_as_written(tmp_path: Path) -> None:
    setup, device = code_blocks("docs/mqtt.md", "Try it with mosquitto_pub and mosquitto_sub")
    with server_process(
        tmp_path, broker=True, data_dir=tmp_path / "iotas-data", generated_token=True
    ) as server:
        printed = server.output()
        url = re.search(r"^iotas: serving (\S+)", printed, re.M)
        mqtt = re.search(r"^\s+MQTT\s+mqtt://127\.0\.0\.1:(\d+)", printed, re.M)
        assert url and mqtt, printed
        # What the page asks the reader to fill in: the URL and MQTT port printed at start.
        assert "http://127.0.0.1:8080" in setup and "MQTT_PORT=1883" in setup, setup
        setup = setup.replace("http://127.0.0.1:8080", url[1])
        setup = setup.replace("MQTT_PORT=1883", f"MQTT_PORT={mqtt[1]}")

        env = clean_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        ran = subprocess.run(
            ["bash", "-c", f"set -euo pipefail\n{setup}\n{device}"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    output = f"{ran.stdout}\n{ran.stderr}"
    assert ran.returncode == 0, output
    # The subscriber got the desired state the operator set, and the twin is in sync.
    desired = re.search(r"^things/acme:pump-17/desired (\{.*\})$", ran.stdout, re.M)
    assert desired, output
    assert '"setpoint":22' in desired[1].replace(" ", ""), output
    assert "in_sync" in ran.stdout, output
