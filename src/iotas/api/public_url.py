"""Where clients reach this iotas, for the hrefs, `base` and `id` of the TDs it serves.

Never from the request's `Host` header: anyone can send one, and a TD (or a cache in front
of iotas) that took it would send clients' bearer tokens to the sender's host. In order:

1. the configured public URL (`--public-url`, `IOTAS_PUBLIC_URL`);
2. else, from a configured trusted proxy (`--trusted-proxies`), its `X-Forwarded-Host`
   and `X-Forwarded-Proto`;
3. else the address this server listens on (when it listens on every address, the one the
   connection came in on: an address of this machine, chosen by no header).

`ForwardedHeaders` is the ASGI middleware that honours `X-Forwarded-For` and
`X-Forwarded-Proto` (uvicorn's `ProxyHeadersMiddleware`, so the client address that rate
limits and logs see is the real one) and `X-Forwarded-Host`, only from trusted proxies.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from fastapi import Request
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from iotas.settings import Settings

# Where the middleware leaves a trusted proxy's X-Forwarded-Host (in the ASGI scope's state).
FORWARDED_HOST = "iotas.forwarded_host"
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252}))(:\d{1,5})?$")
# Listening on every address: no one address of them to name.
_WILDCARD = ("0.0.0.0", "::", "")  # noqa: S104


class ForwardedHeaders:
    def __init__(self, app: Any, trusted: tuple[str, ...]) -> None:
        self.inner = ProxyHeadersMiddleware(app, trusted_hosts=list(trusted))
        # The same trust test as uvicorn's (addresses, networks, "*").
        self.trusts = self.inner.trusted_hosts.__contains__

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket"):
            client = scope.get("client")
            if client and self.trusts(client[0]):
                for name, value in scope["headers"]:
                    if name == b"x-forwarded-host":
                        # A list when several proxies appended: the first is the client's.
                        host = value.decode("latin-1").split(",")[0].strip()
                        if _HOST.match(host):
                            scope.setdefault("state", {})[FORWARDED_HOST] = host
                        break
        await self.inner(scope, receive, send)


def public_base(request: Request) -> str:
    """The URL clients reach this iotas at, without a trailing slash."""
    settings: Settings = request.app.state.runtime.settings
    if settings.public_url:
        return settings.public_url.rstrip("/")
    forwarded = request.scope.get("state", {}).get(FORWARDED_HOST)
    if forwarded:
        # The scheme is the proxy's X-Forwarded-Proto when it sent one (ProxyHeadersMiddleware).
        return f"{request.url.scheme}://{forwarded}"
    scheme = "https" if settings.tls else "http"
    host, port = settings.host, settings.port
    server = request.scope.get("server")
    if host in _WILDCARD and server:
        host, port = server[0], server[1]
    return f"{scheme}://{_bracketed(host)}:{port}"


def public_host(request: Request) -> str:
    """The host name (or address) of `public_base`, for URLs of other services (the MQTT
    broker) on the same host."""
    base = public_base(request)
    authority = base.split("://", 1)[1].split("/", 1)[0]
    if authority.startswith("["):
        return authority[1 : authority.index("]")]
    return authority.rsplit(":", 1)[0] if ":" in authority else authority


def _bracketed(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host
