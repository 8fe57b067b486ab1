"""The CLI followed literally (issue 12, item 15): non-ASCII causes, causes shown whole, the
snapshot command quarantine points to, the 401 hint, and what `iotas up` prints."""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from e2e.e2e_server import ServerProcess, server_process
from iotas.cli.main import app

# Longer than the change column, with letters from outside ASCII, and its last word last.
CAUSE = (
    "Prüfung nach der Wartung — Ventil Nr. 4 getauscht, naïve Messwerte verworfen, Ticket Ω-4711"
)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with server_process(tmp_path_factory.mktemp("cli-edges")) as server:
        yield server


def iotas(live: ServerProcess, *args: str, token: str | None = "", columns: int = 100) -> Result:
    env = {
        "IOTAS_URL": live.url,
        "IOTAS_TOKEN": live.token if token == "" else token,
        "IOTAS_DATA_DIR": None,
        "COLUMNS": str(columns),
    }
    return CliRunner().invoke(app, list(args), env=env)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def new_thing(live: ServerProcess) -> str:
    thing_id = f"edge{secrets.token_hex(3)}:pump-1"
    ok(iotas(live, "things", "create", thing_id, "--kind", "pump"))
    return thing_id


def test_a_non_ascii_cause_is_recorded_as_given(live: ServerProcess) -> None:
    thing_id = new_thing(live)
    ok(iotas(live, "twin", "set", thing_id, '{"speed": 1200}', "--cause", CAUSE))
    events = json.loads(ok(iotas(live, "history", thing_id, "--json")).stdout)
    assert events[-1]["type"] == "desired_changed"
    assert events[-1]["cause"] == CAUSE


def test_a_control_character_in_a_cause_is_refused(live: ServerProcess) -> None:
    thing_id = new_thing(live)
    refused = iotas(live, "twin", "set", thing_id, '{"speed": 1}', "--cause", "a\x07b")
    assert refused.exit_code == 7
    assert "printable" in refused.stderr


def words_in_order(text: str, output: str) -> bool:
    """Every word of `text` in `output`, in order, whatever lines and padding the table
    wrapped them onto."""
    pattern = r"\s+(?:\S*\s+)*?".join(re.escape(word) for word in text.split())
    return re.search(pattern, output) is not None


@pytest.mark.parametrize("command", ["history", "journal tail"])
def test_the_cause_is_shown_whole(live: ServerProcess, command: str) -> None:
    thing_id = new_thing(live)
    ok(iotas(live, "twin", "set", thing_id, '{"speed": 1300}', "--cause", CAUSE))
    args = [thing_id] if command == "history" else ["-n", "1"]
    table = ok(iotas(live, *command.split(), *args, columns=100)).stdout
    assert "Ω-4711" in table, table
    assert words_in_order(CAUSE, table), table


def test_quarantine_points_to_a_command_that_fetches_the_snapshot(
    live: ServerProcess, tmp_path: Path
) -> None:
    thing_id = new_thing(live)
    told = ok(
        iotas(live, "things", "quarantine", thing_id, "--reason", "odd traffic", "--yes")
    ).stdout
    hint = re.search(r"\((iotas snapshots get [0-9a-f]{64}) --out (\S+)\)", " ".join(told.split()))
    assert hint, told
    sha256 = hint[1].split()[-1]
    out = tmp_path / hint[2]
    fetched = ok(iotas(live, *hint[1].split()[1:], "--out", str(out)))
    assert hashlib.sha256(out.read_bytes()).hexdigest() == sha256, fetched.output
    assert json.loads(out.read_bytes())["thing"]["id"] == thing_id

    listed = json.loads(ok(iotas(live, "snapshots", "ls", thing_id, "--json")).stdout)
    assert [item["sha256"] for item in listed] == [sha256]
    to_stdout = ok(iotas(live, "snapshots", "get", sha256))
    assert hashlib.sha256(to_stdout.stdout_bytes).hexdigest() == sha256


def test_without_a_token_the_401_says_how_to_give_one(
    live: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./iotas-data here
    refused = iotas(live, "things", "ls", token=None, columns=200)
    assert refused.exit_code == 5
    message = " ".join(refused.stderr.split())
    assert "401" in message
    assert "no API token was sent" in message
    assert "IOTAS_TOKEN" in message and "--token" in message
    assert "iotas-data/admin-token" in message and "IOTAS_DATA_DIR" in message

    wrong = iotas(live, "things", "ls", token="iotas_nope_" + "x" * 30, columns=200)
    assert wrong.exit_code == 5
    assert "the token from --token or IOTAS_TOKEN was refused" in " ".join(wrong.stderr.split())


def test_up_prints_its_url_and_mqtt_ports(tmp_path: Path) -> None:
    with server_process(tmp_path, broker=True) as server:
        printed = server.output()
    args = server.process.args
    assert isinstance(args, list)
    ports = re.search(r"--mqtt-port (\d+) --mqtts-port (\d+)", " ".join(args))
    assert ports
    assert f"iotas: serving {server.url}" in printed, printed
    assert f"MQTT   mqtt://127.0.0.1:{ports[1]}" in printed, printed
    assert f"MQTTS  mqtts://127.0.0.1:{ports[2]}" in printed, printed
