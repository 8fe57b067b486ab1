"""The TD's security schemes turned into what each protocol sends: HTTP headers or query
parameters, MQTT connection credentials. Schemes iotas does not speak are refused by name
rather than skipped, so a Thing is never sent a request that can only fail."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from iotas.adapters.wot.errors import NoUsableForm
from iotas.domain.td_model import SecurityScheme

SUPPORTED = ("nosec", "basic", "bearer", "apikey")


@dataclass(frozen=True, slots=True)
class ThingSecrets:
    """What the operator gave iotas to reach a Thing; which part is used depends on the
    schemes its TD names."""

    username: str | None = None
    password: str | None = None
    token: str | None = None

    def __repr__(self) -> str:  # never in a log line
        return "ThingSecrets(...)"


@dataclass(frozen=True, slots=True)
class HttpAuth:
    headers: dict[str, str]
    query: dict[str, str]


def _unsupported(scheme: SecurityScheme, protocol: str) -> NoUsableForm:
    return NoUsableForm(
        f"the TD's security scheme {scheme.name!r} is {scheme.scheme!r}, which iotas does not "
        f"speak over {protocol} (it speaks {', '.join(SUPPORTED)})"
    )


def _basic(scheme: SecurityScheme, secrets: ThingSecrets | None) -> tuple[str, str]:
    if secrets is None or not secrets.username or secrets.password is None:
        raise NoUsableForm(
            f"the TD's {scheme.name!r} scheme is basic: give the Thing's credentials "
            "(username and password) when adopting it"
        )
    return secrets.username, secrets.password


def _token(scheme: SecurityScheme, secrets: ThingSecrets | None) -> str:
    if secrets is None or not secrets.token:
        raise NoUsableForm(
            f"the TD's {scheme.name!r} scheme is {scheme.scheme}: give the Thing's token "
            "when adopting it"
        )
    return secrets.token


def http_auth(schemes: tuple[SecurityScheme, ...], secrets: ThingSecrets | None) -> HttpAuth:
    """Headers and query parameters that satisfy every scheme in force (a TD's security list
    is conjunctive: all of them apply)."""
    headers: dict[str, str] = {}
    query: dict[str, str] = {}
    for scheme in schemes:
        kind = scheme.scheme.lower()
        if kind == "nosec":
            continue
        if kind == "basic":
            if scheme.in_ not in ("header", "auto"):
                raise _unsupported(scheme, f"HTTP with the credential in {scheme.in_!r}")
            user, password = _basic(scheme, secrets)
            pair = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers[scheme.key or "Authorization"] = f"Basic {pair}"
        elif kind in ("bearer", "apikey"):
            token = _token(scheme, secrets)
            name = scheme.key or ("Authorization" if kind == "bearer" else "X-API-Key")
            # Into the Authorization header a bearer token goes with its type; under a name of
            # the TD's own choosing (`in: header, name: X-Token`, or a query parameter) bare.
            bearer = kind == "bearer" and name.lower() == "authorization"
            value = f"Bearer {token}" if bearer else token
            if scheme.in_ in ("header", "auto"):
                headers[name] = value
            elif scheme.in_ == "query":
                query[name] = token
            else:
                raise _unsupported(scheme, f"HTTP with the credential in {scheme.in_!r}")
        else:
            raise _unsupported(scheme, "HTTP")
    return HttpAuth(headers, query)


def mqtt_credentials(
    schemes: tuple[SecurityScheme, ...], secrets: ThingSecrets | None
) -> tuple[str, str] | None:
    """The connection's user name and password: `basic` is MQTT's own CONNECT credentials."""
    credentials: tuple[str, str] | None = None
    for scheme in schemes:
        kind = scheme.scheme.lower()
        if kind == "nosec":
            continue
        if kind != "basic":
            raise _unsupported(scheme, "MQTT")
        credentials = _basic(scheme, secrets)
    return credentials


def coap_check(schemes: tuple[SecurityScheme, ...]) -> None:
    """CoAP has no standard place for basic or bearer credentials (it has OSCORE and DTLS,
    which iotas does not speak yet): only nosec forms are usable."""
    for scheme in schemes:
        if scheme.scheme.lower() != "nosec":
            raise _unsupported(scheme, "CoAP")
