"""TD hrefs, `base` and `id` come from the configured public URL, or the address iotas
listens on; never from the request's Host header; X-Forwarded-Host and -Proto only from a
trusted proxy."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from iotas.cli.main import app as cli
from iotas.settings import Settings
from support import free_port
from td_check import assert_valid_td

from .conftest import THING, Live, Start, make_lamp

ATTACKER = "attacker.example:666"
FORWARDED = {"X-Forwarded-Host": "iotas.example.com", "X-Forwarded-Proto": "https"}


async def _served(live: Live, headers: dict[str, str]) -> list[str]:
    """Every document that carries this iotas' URL, fetched with `headers`."""
    c = live.server.client
    bodies = []
    for path, params in (
        ("/.well-known/wot", None),
        ("/tdd/things", None),
        ("/tdd/things", {"format": "collection"}),
        (f"/tdd/things/{THING}", None),
        ("/tdd/search/jsonpath", {"query": "$[*].properties"}),
    ):
        got = await c.get(path, params=params, headers=headers)
        assert got.status_code == 200, (path, got.text)
        bodies.append(got.text)
    return bodies


async def test_the_host_header_never_reaches_a_td(start_iotas: Start) -> None:
    live = await start_iotas()
    await make_lamp(live.server.client)
    own = live.server.url  # http://127.0.0.1:<port>: where it listens
    for body in await _served(live, {"Host": ATTACKER, **FORWARDED}):
        assert "attacker.example" not in body and "iotas.example.com" not in body
        assert own in body
    directory = (
        await live.server.client.get("/.well-known/wot", headers={"Host": ATTACKER})
    ).json()
    assert directory["base"] == own and directory["id"] == f"{own}/.well-known/wot"
    assert_valid_td(directory)
    assert_valid_td((await live.server.client.get(f"/tdd/things/{THING}")).json())


async def test_the_public_url_is_used(start_iotas: Start) -> None:
    live = await start_iotas(public_url="https://iot.example.org/iotas/")
    await make_lamp(live.server.client)
    for body in await _served(live, {"Host": ATTACKER, **FORWARDED}):
        assert "attacker.example" not in body and live.server.url not in body
        assert "https://iot.example.org/iotas/" in body
    td = (await live.server.client.get(f"/tdd/things/{THING}")).json()
    href = td["properties"]["brightness"]["forms"][0]["href"]
    assert href == f"https://iot.example.org/iotas/api/v1/things/{THING}/properties/brightness"
    invoke = td["actions"]["toggle"]["forms"][0]["href"]
    assert invoke == f"https://iot.example.org/iotas/api/v1/things/{THING}/actions/toggle/invoke"


async def test_forwarded_headers_from_a_trusted_proxy(start_iotas: Start) -> None:
    trusted = await start_iotas(trusted_proxies=("127.0.0.1",))
    directory = (await trusted.server.client.get("/.well-known/wot", headers=FORWARDED)).json()
    assert directory["base"] == "https://iotas.example.com"
    # A bad X-Forwarded-Host is no host: the own address instead.
    odd = {"X-Forwarded-Host": "evil.example/path?x", "X-Forwarded-Proto": "http"}
    directory = (await trusted.server.client.get("/.well-known/wot", headers=odd)).json()
    assert directory["base"] == trusted.server.url


async def test_forwarded_headers_from_anyone_else(start_iotas: Start) -> None:
    elsewhere = await start_iotas(trusted_proxies=("10.0.0.0/8",))
    directory = (await elsewhere.server.client.get("/.well-known/wot", headers=FORWARDED)).json()
    assert directory["base"] == elsewhere.server.url


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"public_url": "ftp://x"}, "public URL"),
        ({"public_url": "https://u:p@x"}, "public URL"),
        ({"public_url": "https://x/?q=1"}, "public URL"),
        ({"trusted_proxies": ("proxy.example",)}, "trusted proxy"),
    ],
)
def test_settings_refuse_bad_values(overrides: dict[str, object], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Settings(**overrides)  # type: ignore[arg-type]


def test_iotas_up_refuses_a_bad_public_url() -> None:
    result = CliRunner().invoke(cli, ["up", "--public-url", "nope"])
    assert result.exit_code == 2
    assert "public URL" in result.output


async def test_provisioning_answers_name_the_public_host(start_iotas: Start) -> None:
    """The broker a device is told to connect to is on the public host, never the Host header
    of the provisioning request (a device would send its new credential there)."""
    port = free_port()
    live = await start_iotas(mqtt_port=port)
    c = live.server.client
    claim = await c.post(
        "/api/v1/claims", json={"template": {"namespace": "acme", "kind": "meter"}}
    )
    assert claim.status_code == 201, claim.text
    async with live.server.anonymous() as anon:
        answer = await anon.post(
            "/api/v1/provision",
            json={"serial": "SN-host"},
            headers={"Authorization": f"Bearer {claim.json()['token']}", "Host": ATTACKER},
        )
    assert answer.status_code == 201, answer.text
    assert "attacker.example" not in answer.text
    assert answer.json()["endpoints"]["mqtt"] == f"mqtt://127.0.0.1:{port}"
