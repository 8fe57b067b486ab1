"""HTTPS with optional client certificates, and the certificate in each request's scope.

uvicorn verifies a client certificate against the CA but does not pass it to the app (the
ASGI TLS extension is not implemented there), so the HTTP protocol is subclassed: when a
connection is made, the peer's certificate is read from the TLS object once and every request
on that connection carries it as `scope["extensions"]["tls"]["client_cert_chain"]`, as the
ASGI TLS extension defines it.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

Scope = dict[str, Any]


class ClientCertProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    app: Any

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if der:
            self.app = _WithClientCert(self.app, ssl.DER_cert_to_PEM_cert(der))


class _WithClientCert:
    def __init__(self, app: Any, pem: str) -> None:
        self.app = app
        self.tls = {"client_cert_chain": [pem], "client_cert_name": None, "client_cert_error": None}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope = {**scope, "extensions": {**(scope.get("extensions") or {}), "tls": self.tls}}
        await self.app(scope, receive, send)


def client_certificate(scope: Mapping[str, Any]) -> str | None:
    """The PEM client certificate the connection presented (verified against the CA by the
    TLS layer), or None."""
    chain = ((scope.get("extensions") or {}).get("tls") or {}).get("client_cert_chain")
    return chain[0] if chain else None
