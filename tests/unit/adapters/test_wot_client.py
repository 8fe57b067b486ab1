"""The pure parts of the WoT protocol client: choosing a form, applying security schemes,
decoding payloads, parsing Server-Sent Events. (Exchanges are tested against real servers in
tests/integration/wot_client.)"""

from __future__ import annotations

import base64

import pytest

from iotas.adapters.wot.client import _form
from iotas.adapters.wot.errors import BadThingResponse, NoUsableForm
from iotas.adapters.wot.http_forms import SseParser, _origin
from iotas.adapters.wot.payloads import decode, encode
from iotas.adapters.wot.security import (
    ThingSecrets,
    coap_check,
    http_auth,
    mqtt_credentials,
)
from iotas.domain import td_model as ops
from iotas.domain.td_model import Form, Interactions, PropertyAffordance, SecurityScheme

R = ops.READ_PROPERTY


def things(*forms: Form) -> Interactions:
    return Interactions(
        id=None,
        title="t",
        base=None,
        security=(),
        security_definitions={},
        properties={"p": PropertyAffordance("p", {}, forms)},
        actions={},
        events={},
    )


def test_form_preference_http_then_coap_then_mqtt_json_first() -> None:
    mqtt = Form("mqtt://b/t", (R,))
    coap = Form("coap://h/p", (R,))
    http_cbor = Form("http://h/p", (R,), content_type="application/cbor")
    http_json = Form("http://h/p", (R,))
    ws = Form("ws://h/p", (R,))
    assert _form(things(mqtt, coap), "property", "p", R) is coap
    assert _form(things(ws, mqtt), "property", "p", R) is mqtt
    assert _form(things(mqtt, http_cbor, coap, http_json), "property", "p", R) is http_json
    # A form is only a candidate for the ops it lists.
    assert (
        _form(things(Form("http://h/w", (ops.WRITE_PROPERTY,)), coap), "property", "p", R) is coap
    )


def test_no_usable_form_says_what_was_offered() -> None:
    with pytest.raises(NoUsableForm, match="the TD offers coaps, ws"):
        _form(things(Form("ws://h/p", (R,)), Form("coaps://h/p", (R,))), "property", "p", R)
    with pytest.raises(NoUsableForm, match="no form for it"):
        _form(things(Form("http://h/p", (ops.WRITE_PROPERTY,))), "property", "p", R)
    with pytest.raises(NoUsableForm, match="the TD has no action 'go'"):
        _form(things(), "action", "go", ops.INVOKE_ACTION)


SECRETS = ThingSecrets(username="u", password="p:w", token="tk")


def test_http_auth_schemes() -> None:
    basic = SecurityScheme("b", "basic")
    auth = http_auth((basic,), SECRETS)
    assert auth.headers["Authorization"] == "Basic " + base64.b64encode(b"u:p:w").decode()
    assert http_auth((SecurityScheme("n", "nosec"),), None).headers == {}
    assert http_auth((SecurityScheme("t", "bearer"),), SECRETS).headers == {
        "Authorization": "Bearer tk"
    }
    in_query = http_auth((SecurityScheme("t", "bearer", in_="query", key="access_token"),), SECRETS)
    assert in_query.query == {"access_token": "tk"} and in_query.headers == {}
    named = http_auth((SecurityScheme("t", "bearer", key="X-Token"),), SECRETS)
    assert named.headers == {"X-Token": "tk"}
    with pytest.raises(NoUsableForm, match="'oauth2', which iotas does not speak over HTTP"):
        http_auth((SecurityScheme("o", "oauth2"),), SECRETS)
    with pytest.raises(NoUsableForm, match="give the Thing's token"):
        http_auth((SecurityScheme("t", "bearer"),), ThingSecrets(username="u", password="p"))
    with pytest.raises(NoUsableForm, match="cookie"):
        http_auth((SecurityScheme("t", "bearer", in_="cookie"),), SECRETS)


def test_mqtt_and_coap_security() -> None:
    assert mqtt_credentials((SecurityScheme("b", "basic"),), SECRETS) == ("u", "p:w")
    assert mqtt_credentials((SecurityScheme("n", "nosec"),), SECRETS) is None
    with pytest.raises(NoUsableForm, match="over MQTT"):
        mqtt_credentials((SecurityScheme("t", "bearer"),), SECRETS)
    coap_check((SecurityScheme("n", "nosec"),))
    with pytest.raises(NoUsableForm, match="over CoAP"):
        coap_check((SecurityScheme("b", "basic"),))


def test_secrets_never_print() -> None:
    assert "tk" not in repr(SECRETS) and "p:w" not in repr(SECRETS)


def test_decode_follows_the_forms_content_type() -> None:
    assert decode(b'{"a": 1}', "application/json", "text/plain", "x") == {"a": 1}
    assert decode(b"[1]", "application/td+json", None, "x") == [1]
    assert decode(b"hello", "text/plain", "application/json", "x") == "hello"
    assert decode(b"", "application/json", None, "x") is None
    assert decode(b"2", "application/cbor", "application/json", "x") == 2
    with pytest.raises(BadThingResponse, match="should answer JSON but sent text/html"):
        decode(b"<html>", "application/json", "text/html; charset=utf-8", "GET x")
    with pytest.raises(BadThingResponse, match="iotas reads JSON and text"):
        decode(b"\xa1", "application/cbor", "application/cbor", "GET x")


def test_encode() -> None:
    assert encode(None, "application/json") == b"null"
    assert encode("on", "text/plain") == b"on"
    assert encode("on", "application/json") == b'"on"'
    with pytest.raises(BadThingResponse, match="cannot be sent as JSON"):
        encode({1, 2}, "application/json")


def test_sse_parser_events_and_bounds() -> None:
    parser = SseParser(64, "GET x")
    assert parser.feed(b": comment\n\nevent: e\nda") == []
    assert parser.feed(b"ta: 1\r\ndata:2\r\n\r\ndata: three\rid: 4\r\r") == ["1\n2", "three"]
    with pytest.raises(BadThingResponse, match="a line over 64 bytes"):
        parser.feed(b"data: " + b"x" * 100)
    parser = SseParser(64, "GET x")
    with pytest.raises(BadThingResponse, match="an event over 64 bytes"):
        parser.feed(b"data: " + b"x" * 40 + b"\n" + b"data: " + b"x" * 40 + b"\n")


def test_origin() -> None:
    assert _origin("http://H:80/a") == _origin("http://h/b")
    assert _origin("http://h/a") != _origin("https://h/a")
    assert _origin("http://h:8080/a") != _origin("http://h/a")
    assert _origin("http://h/a") != _origin("http://127.0.0.2/a")
