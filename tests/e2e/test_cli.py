"""The `iotas` command against a real server started with `python -m iotas up`."""

from __future__ import annotations

import functools
import json
import queue
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from typer.testing import CliRunner, Result

from e2e.e2e_server import ServerProcess, clean_env, server_process
from iotas.cli.main import app
from support import free_port


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with server_process(tmp_path_factory.mktemp("cli")) as server:
        yield server


def iotas(
    live: ServerProcess,
    *args: str,
    token: str | None = None,
    url: str | None = None,
    input: str | None = None,
) -> Result:
    env = {
        "IOTAS_URL": url or live.url,
        "IOTAS_TOKEN": token or live.token,
        "IOTAS_DATA_DIR": None,
        "COLUMNS": "200",
    }
    return CliRunner().invoke(app, list(args), env=env, input=input)


def ok_json(result: Result) -> Any:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def new_id(name: str) -> str:
    return f"cli{secrets.token_hex(3)}:{name}"


def test_things_create_get_list_patch_delete(live: ServerProcess) -> None:
    namespace = new_id("x").split(":")[0]
    gw, pump = f"{namespace}:gw-1", f"{namespace}:pump-1"
    created = iotas(live, "things", "create", gw, "--kind", "gateway")
    assert created.exit_code == 0, created.output
    assert f"Created {gw}" in created.stdout

    thing = ok_json(
        iotas(
            live,
            "things",
            "create",
            pump,
            "--kind",
            "pump",
            "--attr",
            "site=plant-7",
            "--attr",
            "max_rpm:=3000",
            "--label",
            "tier=edge",
            "--link",
            f"hosted-by={gw}",
            "--cause",
            "commissioning",
            "--json",
        )
    )
    assert thing["id"] == pump and thing["kind"] == "pump"
    assert thing["attributes"] == {"site": "plant-7", "max_rpm": 3000}
    assert thing["labels"] == {"tier": "edge"}
    assert thing["links"] == [{"rel": "hosted-by", "target": gw}]

    assert ok_json(iotas(live, "--json", "things", "get", pump)) == thing

    query = f'id ~ "{namespace}:*"'
    listed = ok_json(iotas(live, "things", "ls", "-q", query, "--json"))
    assert sorted(t["id"] for t in listed) == sorted([gw, pump])
    table = iotas(live, "things", "ls", "-q", query)
    assert table.exit_code == 0, table.output
    assert pump in table.stdout and "tier=edge" in table.stdout and "in_sync" in table.stdout
    limited = iotas(live, "things", "ls", "-q", query, "--limit", "1", "--json")
    assert len(ok_json(limited)) == 1

    patched = ok_json(
        iotas(live, "things", "patch", pump, '{"attributes": {"site": "plant-9"}}', "--json")
    )
    assert patched["attributes"]["site"] == "plant-9"
    then = ok_json(iotas(live, "things", "get", pump, "--at", thing["updated_at"], "--json"))
    assert then["attributes"]["site"] == "plant-7"

    removed = iotas(live, "things", "rm", pump, "--yes", "--json")
    assert ok_json(removed) == {"id": pump, "deleted": True}
    missing = iotas(live, "things", "get", pump)
    assert missing.exit_code == 3
    assert "404" in missing.stderr and pump in missing.stderr


def test_create_from_file_and_conflict(live: ServerProcess, tmp_path: Path) -> None:
    thing_id = new_id("meter-1")
    doc = {"id": thing_id, "kind": "meter", "labels": {"tier": "core"}, "attributes": {"a": 1}}
    path = tmp_path / "thing.json"
    path.write_text(json.dumps(doc))
    thing = ok_json(iotas(live, "things", "create", "--file", str(path), "--attr", "b=x", "--json"))
    assert thing["attributes"] == {"a": 1, "b": "x"} and thing["labels"] == {"tier": "core"}
    again = iotas(live, "things", "create", "--file", str(path))
    assert again.exit_code == 4, again.output


def test_rm_asks_first(live: ServerProcess) -> None:
    thing_id = new_id("x")
    assert iotas(live, "things", "create", thing_id, "--kind", "x").exit_code == 0
    declined = iotas(live, "things", "rm", thing_id, input="n\n")
    assert declined.exit_code == 1
    assert iotas(live, "things", "get", thing_id).exit_code == 0
    assert iotas(live, "things", "rm", thing_id, input="y\n").exit_code == 0
    assert iotas(live, "things", "get", thing_id).exit_code == 3


def test_twin_set_get_and_if_match(live: ServerProcess) -> None:
    thing_id = new_id("pump")
    assert iotas(live, "things", "create", thing_id, "--kind", "pump").exit_code == 0
    twin = ok_json(iotas(live, "twin", "set", thing_id, '{"speed": 1200}', "--json"))
    assert twin["desired"] == {"speed": 1200} and twin["status"] == "pending"
    version = twin["version"]

    stale = iotas(live, "twin", "set", thing_id, '{"speed": 1300}', "--if-match", "0")
    assert stale.exit_code == 4, stale.output
    fresh = iotas(live, "twin", "set", thing_id, '{"speed": 1300}', "--if-match", str(version))
    assert fresh.exit_code == 0, fresh.output

    reported = ok_json(
        iotas(live, "twin", "set", thing_id, '{"speed": 1300}', "--reported", "--json")
    )
    assert reported["status"] == "in_sync" and reported["delta"] == {}
    shown = iotas(live, "twin", "get", thing_id)
    assert shown.exit_code == 0 and '"in_sync"' in shown.stdout
    assert ok_json(iotas(live, "twin", "get", thing_id, "--json")) == reported


def test_history_and_journal(live: ServerProcess) -> None:
    thing_id = new_id("valve")
    assert iotas(live, "things", "create", thing_id, "--kind", "valve").exit_code == 0
    assert iotas(live, "twin", "set", thing_id, '{"open": true}', "--cause", "test").exit_code == 0
    assert iotas(live, "things", "rm", thing_id, "--yes").exit_code == 0

    events = ok_json(iotas(live, "history", thing_id, "--json"))
    assert [e["type"] for e in events] == ["thing_created", "desired_changed", "thing_deleted"]
    assert events[1]["cause"] == "test" and events[1]["actor"]
    table = iotas(live, "history", thing_id)
    assert table.exit_code == 0 and "desired_changed" in table.stdout
    assert '{"open":true}' in table.stdout
    since = iotas(live, "history", thing_id, "--since", events[1]["ts"], "--json")
    assert [e["seq"] for e in ok_json(since)] == [e["seq"] for e in events[1:]]
    assert len(ok_json(iotas(live, "history", thing_id, "--limit", "2", "--json"))) == 2

    first = events[0]["seq"]
    after = ok_json(iotas(live, "journal", "tail", "--after", str(first - 1), "--json"))
    assert after[0] == events[0]
    latest = ok_json(iotas(live, "journal", "tail", "--limit", "2", "--json"))
    assert len(latest) == 2 and latest[-1]["seq"] >= events[-1]["seq"]
    human = iotas(live, "journal", "tail", "--limit", "3")
    assert human.exit_code == 0 and "SEQ" in human.stdout


def test_journal_verify_ok(live: ServerProcess) -> None:
    result = iotas(live, "journal", "verify")
    assert result.exit_code == 0, result.output
    assert "intact" in result.stdout
    report = ok_json(iotas(live, "journal", "verify", "--json"))
    assert report["ok"] is True and report["first_bad_seq"] is None


def test_exit_codes_for_invalid_input(live: ServerProcess) -> None:
    refused = iotas(live, "things", "create", "not an id", "--kind", "pump")
    assert refused.exit_code == 7 and "400" in refused.stderr
    thing_id = new_id("p")
    assert iotas(live, "things", "create", thing_id, "--kind", "p").exit_code == 0
    assert iotas(live, "things", "patch", thing_id, "{not json").exit_code == 7
    assert iotas(live, "things", "create", new_id("q"), "-k", "q", "-a", "n:={").exit_code == 7
    assert iotas(live, "things", "patch", thing_id, '{"id": "x:y"}').exit_code == 7
    assert iotas(live, "things", "get", thing_id, "--at", "yesterday-ish").exit_code == 7
    assert iotas(live, "things", "ls", "-q", "kind ==").exit_code == 7
    assert iotas(live, "watch", "--types", "nonsense", "--count", "1").exit_code == 7


def test_usage_errors_exit_2(live: ServerProcess) -> None:
    assert iotas(live, "things", "get").exit_code == 2
    assert iotas(live, "things", "create", "a:b", "--label", "novalue").exit_code == 2
    assert iotas(live, "no-such-command").exit_code == 2
    assert iotas(live, "things", "ls", url="localhost:8080").exit_code == 2


def test_wrong_token_exits_5(live: ServerProcess) -> None:
    result = iotas(live, "things", "ls", token="wrong-token")
    assert result.exit_code == 5
    assert "401" in result.stderr


def test_unreachable_server_exits_6(live: ServerProcess) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = iotas(live, "things", "ls", url=url)
    assert result.exit_code == 6
    assert "cannot reach iotas" in result.stderr
    assert iotas(live, "watch", url=url).exit_code == 6


def test_errors_in_json_mode_keep_stdout_clean(live: ServerProcess) -> None:
    result = iotas(live, "--json", "things", "get", new_id("nobody"))
    assert result.exit_code == 3 and result.stdout == ""
    problem = json.loads(result.stderr)
    assert problem["status"] == 404 and problem["title"]


def test_token_found_in_local_data_dir(
    live: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "iotas-data").mkdir()
    (tmp_path / "iotas-data" / "admin-token").write_text(live.token + "\n")
    monkeypatch.chdir(tmp_path)
    env = {"IOTAS_URL": live.url, "IOTAS_TOKEN": None, "IOTAS_DATA_DIR": None}
    result = CliRunner().invoke(app, ["things", "ls", "--json"], env=env)
    assert result.exit_code == 0, result.output


def test_watch_replays_after_a_seq(live: ServerProcess) -> None:
    thing_id = new_id("w")
    thing = ok_json(iotas(live, "things", "create", thing_id, "--kind", "w", "--json"))
    iotas(live, "twin", "set", thing_id, '{"a": 1}')
    start = ok_json(iotas(live, "history", thing_id, "--json"))[0]["seq"] - 1
    ns = thing["namespace"]
    result = iotas(
        live, "watch", "--json", "--after", str(start), "-q", f'id ~ "{ns}:*"', "--count", "2"
    )
    lines = [json.loads(line) for line in ok_lines(result)]
    assert [e["type"] for e in lines] == ["thing_created", "desired_changed"]
    assert all(e["thing_id"] == thing_id for e in lines)


def ok_lines(result: Result) -> list[str]:
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_watch_streams_live_events_until_ctrl_c(live: ServerProcess) -> None:
    head = ok_json(iotas(live, "journal", "tail", "--limit", "1", "--json"))[-1]["seq"]
    env = clean_env(IOTAS_URL=live.url, IOTAS_TOKEN=live.token)
    command = [sys.executable, "-m", "iotas", "watch", "--json", "--after", str(head)]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as w:
        assert w.stdout is not None
        thing_id = new_id("live")
        assert iotas(live, "things", "create", thing_id, "--kind", "live").exit_code == 0
        event = json.loads(w.stdout.readline())
        assert event["type"] == "thing_created" and event["thing_id"] == thing_id
        w.send_signal(signal.SIGINT)
        assert w.wait(10) == 0


def test_python_dash_m_and_help(live: ServerProcess) -> None:
    version = subprocess.run(
        [sys.executable, "-m", "iotas", "--version"], capture_output=True, text=True, check=False
    )
    assert version.returncode == 0 and version.stdout.startswith("iotas ")
    helped = iotas(live, "--help")
    assert helped.exit_code == 0
    for command in ("up", "demo", "things", "twin", "history", "journal", "watch"):
        assert command in helped.stdout


def test_journal_tail_follow(live: ServerProcess) -> None:
    env = clean_env(IOTAS_URL=live.url, IOTAS_TOKEN=live.token)
    command = [sys.executable, "-m", "iotas", "journal", "tail", "--follow", "--limit", "1"]
    with subprocess.Popen(
        [*command, "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as tail:
        assert tail.stdout is not None
        last = json.loads(tail.stdout.readline())
        thing_id = new_id("followed")
        assert iotas(live, "things", "create", thing_id, "--kind", "f").exit_code == 0
        event = json.loads(tail.stdout.readline())
        assert event["seq"] > last["seq"] and event["thing_id"] == thing_id
        tail.send_signal(signal.SIGINT)
        assert tail.wait(10) == 0


def read_until(stream: IO[str], marker: str, timeout: float = 30.0) -> str:
    """Lines of a child's output up to the one containing `marker` (in a thread, bounded)."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not seen or marker not in seen[-1]:
        seen.append(lines.get(timeout=max(0.1, deadline - time.monotonic())))
    return "".join(seen)


def test_demo_seeds_a_fleet_and_keeps_it_on_the_next_run(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo-data"
    twins: list[dict[str, Any]] = []
    for run in (1, 2):
        port = free_port()
        command = [sys.executable, "-m", "iotas", "demo", "--port", str(port)]
        with subprocess.Popen(
            [*command, "--data-dir", str(data_dir), "--devices", "12", "--rate", "30"],
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        ) as demo:
            try:
                assert demo.stdout is not None
                banner = read_until(demo.stdout, "Ctrl-C to stop")
                token = (data_dir / "admin-token").read_text().strip()
                url = f"http://127.0.0.1:{port}"
                assert token in banner and url in banner
                assert ("created 8 example Things" if run == 1 else "already there") in banner
                mqtt = re.search(r"mqtt://127\.0\.0\.1:(\d+)", banner)
                assert mqtt is not None and "12 simulated devices" in banner
                things = ok_json(_cli(url, token, "things", "ls", "-q", 'namespace == "demo"'))
                # The simulated fleet connects to the embedded broker with its credentials and
                # its telemetry lands: the demo's parts work together.
                online = _wait_for(
                    functools.partial(
                        _cli_json, url, token, "things", "ls", "-q", "connected == true"
                    ),
                    lambda items: len(items) >= 6,
                )
                assert all(t["namespace"] == "sim" for t in online)
                demo.send_signal(signal.SIGINT)
                assert demo.wait(15) == 0
            finally:
                if demo.poll() is None:  # a failure above must not leave it running
                    demo.kill()
        assert len(things) == 8
        by_id = {t["id"]: t for t in things}
        assert by_id["demo:pump-1"]["twin"]["status"] == "in_sync"
        assert by_id["demo:pump-2"]["twin"]["status"] == "pending"
        assert {"rel": "hosted-by", "target": "demo:gw-1"} in by_id["demo:temp-1"]["links"]
        twins.append({t["id"]: t["twin"] for t in things})
    assert twins[0] == twins[1]


def _cli(url: str, token: str, *args: str) -> Any:
    return CliRunner().invoke(app, ["--url", url, "--token", token, *args, "--json"])


def _cli_json(url: str, token: str, *args: str) -> Any:
    return ok_json(_cli(url, token, *args))


def _wait_for(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value) or time.monotonic() > deadline:
            assert done(value), f"not reached in {timeout} s: {value!r}"
            return value
        time.sleep(0.3)


@pytest.fixture
def lamp_thing() -> Iterator[tuple[str, dict[str, Any]]]:
    """A third-party HTTP Thing (nosec) served from a thread: its base URL and its values."""
    import asyncio

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    values: dict[str, Any] = {"level": 3}

    async def prop(request: Request) -> Response:
        if request.method == "PUT":
            values["level"] = json.loads(await request.body())
            return Response(status_code=204)
        return JSONResponse(values["level"])

    async def blink(request: Request) -> Response:
        return JSONResponse({"blinked": json.loads(await request.body())})

    port = free_port()
    app_ = Starlette(
        routes=[
            Route("/level", prop, methods=["GET", "PUT"]),
            Route("/blink", blink, methods=["POST"]),
        ]
    )
    server = uvicorn.Server(uvicorn.Config(app_, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", values
    server.should_exit = True
    thread.join(10)


def test_things_adopt_td_and_invoke(
    live: ServerProcess, tmp_path: Path, lamp_thing: tuple[str, dict[str, Any]]
) -> None:
    base, values = lamp_thing
    thing_id = new_id("lamp")
    td = {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "title": "Lamp",
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "base": base,
        "properties": {"level": {"type": "integer", "forms": [{"href": "/level"}]}},
        "actions": {"blink": {"input": {"type": "integer"}, "forms": [{"href": "/blink"}]}},
    }
    file = tmp_path / "lamp.td.json"
    file.write_text(json.dumps(td))
    adopted = ok_json(
        iotas(live, "things", "adopt", str(file), "--id", thing_id, "--poll", "1", "--json")
    )
    assert adopted["thing"]["id"] == thing_id and adopted["adoption"]["poll_interval"] == 1
    served = ok_json(iotas(live, "things", "td", thing_id, "--json"))
    assert served["title"] == "Lamp" and served["base"] == base

    ok_json(iotas(live, "twin", "set", thing_id, '{"level": 7}', "--json"))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and values["level"] != 7:
        time.sleep(0.1)
    assert values["level"] == 7

    result = ok_json(iotas(live, "invoke", thing_id, "blink", "--input", "2", "--wait", "--json"))
    assert (result["status"], result["output"]) == ("succeeded", {"blinked": 2}), result
    listed = ok_json(iotas(live, "invocations", "ls", "--thing", thing_id, "--json"))
    assert [i["id"] for i in listed["items"]] == [result["id"]]
    again = ok_json(iotas(live, "invocations", "get", result["id"], "--json"))
    assert again["status"] == "succeeded"
    done = iotas(live, "invocations", "cancel", result["id"], "--json")
    assert done.exit_code == 4  # it has ended: 409
    moved = iotas(live, "things", "invoke", thing_id, "blink")
    assert moved.exit_code == 2 and "iotas invoke" in moved.output
    refused = iotas(live, "things", "adopt", str(tmp_path / "missing.json"))
    assert refused.exit_code != 0
    no_password = iotas(live, "things", "adopt", str(file), "--username", "u")
    assert no_password.exit_code == 7 and "--password-env" in no_password.output


def test_ca_init_and_show(live: ServerProcess, tmp_path: Path) -> None:
    made = iotas(live, "ca", "init", "--data-dir", str(tmp_path), "--json")
    body = ok_json(made)
    assert body["created"] is True and body["certificate"].startswith("-----BEGIN CERTIFICATE")
    assert (tmp_path / "ca" / "ca.key").stat().st_mode & 0o777 == 0o600
    again = ok_json(iotas(live, "ca", "init", "--data-dir", str(tmp_path), "--json"))
    assert again["created"] is False and again["certificate"] == body["certificate"]
    shown = iotas(live, "ca", "show")
    assert shown.exit_code == 0 and shown.stdout.startswith("-----BEGIN CERTIFICATE-----")


def test_quarantine_and_release(live: ServerProcess, tmp_path: Path) -> None:
    thing_id = new_id("cam-1")
    ok_json(iotas(live, "things", "create", thing_id, "--kind", "camera", "--json"))
    ok_json(iotas(live, "things", "credentials", "add", thing_id, "--json"))
    asks = iotas(live, "things", "quarantine", thing_id, "--reason", "tamper", input="n\n")
    assert asks.exit_code != 0
    assert ok_json(iotas(live, "things", "get", thing_id, "--json"))["quarantine"] is None

    thing = ok_json(
        iotas(live, "things", "quarantine", thing_id, "--reason", "tamper", "--yes", "--json")
    )
    assert thing["quarantine"]["reason"] == "tamper"
    assert len(thing["quarantine"]["snapshot"]) == 64
    twice = iotas(live, "things", "quarantine", thing_id, "--reason", "again", "--yes")
    assert twice.exit_code != 0 and "quarantined already" in twice.output
    listed = ok_json(iotas(live, "things", "credentials", "ls", thing_id, "--json"))
    assert all(item["revoked_at"] for item in listed)

    out = tmp_path / "device"
    released = iotas(live, "things", "release", thing_id, "--out", str(out))
    assert released.exit_code == 0, released.output
    assert (tmp_path / "device.crt").read_text().startswith("-----BEGIN CERTIFICATE")
    assert (tmp_path / "device.key").stat().st_mode & 0o777 == 0o600
    assert ok_json(iotas(live, "things", "get", thing_id, "--json"))["quarantine"] is None


def test_tokens_create_list_revoke(live: ServerProcess) -> None:
    made = iotas(
        live,
        "tokens",
        "create",
        "plant-7-ops",
        "--role",
        "operator",
        "-n",
        "plant-7",
        "--expires",
        "30d",
    )
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    listed = ok_json(iotas(live, "tokens", "ls", "--json"))
    mine = next(t for t in listed if t["subject"] == "plant-7-ops")
    assert mine["namespaces"] == ["plant-7"] and mine["role"] == "operator"
    assert mine["expires_at"] is not None
    thing_id = new_id("x")
    ok_json(iotas(live, "things", "create", thing_id, "--kind", "k", "--json"))
    # Limited to plant-7: another namespace's Thing does not exist for it (exit 3).
    hidden = iotas(live, "things", "get", thing_id, token=token)
    assert hidden.exit_code == 3, hidden.output
    assert ok_json(iotas(live, "things", "ls", "--json", token=token)) == []
    gone = iotas(live, "tokens", "rm", mine["id"], "--yes")
    assert gone.exit_code == 0, gone.output
    assert iotas(live, "things", "ls", token=token).exit_code == 5
