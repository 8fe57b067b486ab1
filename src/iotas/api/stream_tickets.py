"""Stream tickets: how a client that cannot send an Authorization header (the browser's and
node's EventSource) opens a Thing's Server-Sent Events streams (docs/decisions.md 46).

A ticket is got with the bearer token (`GET /api/v1/things/{id}/stream-ticket`) and sent as
`?ticket=` on that Thing's stream URLs. It is sealed (Fernet: encrypted and authenticated
with the node's secret key, which every node of a cluster shares), names the Thing and the
token it was got with, and opens streams for `TICKET_SECONDS`: a URL that ends up in a log
is of no use a minute later, and the long-lived token never appears in a URL. Opening a
stream with it checks that the token is still valid, so a revoked token's tickets die with
it.
"""

from __future__ import annotations

from fastapi import Request

from iotas.domain import clock
from iotas.domain.errors import Unauthenticated
from iotas.domain.td import TICKET_SECONDS
from iotas.runtime import Runtime
from iotas.services.context import Actor
from iotas.services.secret_box import SecretBox
from iotas.store import tokens_repo

USE = "stream"
MAX_TICKET_CHARS = 2000


def _box(request: Request) -> SecretBox:
    box: SecretBox | None = getattr(request.app.state, "stream_ticket_box", None)
    if box is None:
        settings = request.app.state.runtime.settings
        box = SecretBox.open(settings.data_dir, settings.secret_key)
        request.app.state.stream_ticket_box = box
    return box


def issue(request: Request, thing_id: str) -> tuple[str, int]:
    """A ticket for `thing_id`'s streams, for the bearer token of this (authenticated,
    authorised) request; and when it expires (µs)."""
    rt: Runtime = request.app.state.runtime
    token = rt.auth.bearer_digest(request.headers.get("authorization"))
    expires_us = clock.now_us() + TICKET_SECONDS * 1_000_000
    ticket = _box(request).seal({"use": USE, "thing": thing_id, "token": token, "exp": expires_us})
    return ticket, expires_us


async def redeem(request: Request, ticket: str, thing_id: str) -> Actor:
    """The actor a ticket stands for, if it is one of ours, for `thing_id`, not expired, and
    its token is still valid; otherwise Unauthenticated."""
    refused = Unauthenticated(
        "the stream ticket is not valid for this Thing, or has expired: get a new one "
        f"(GET /api/v1/things/{{id}}/stream-ticket, valid {TICKET_SECONDS} s)"
    )
    if len(ticket) > MAX_TICKET_CHARS:
        raise refused
    try:
        claims = _box(request).open_sealed(ticket)
    except ValueError:
        raise refused from None
    if (
        claims.get("use") != USE
        or claims.get("thing") != thing_id
        or not isinstance(claims.get("exp"), int)
        or claims["exp"] <= clock.now_us()
        or not isinstance(claims.get("token"), str)
    ):
        raise refused
    rt: Runtime = request.app.state.runtime
    digest: str = claims["token"]
    record = await rt.store.read(lambda conn: tokens_repo.by_digest(conn, digest))
    if (
        record is None
        or record.revoked_us is not None
        or (record.expires_us is not None and record.expires_us <= clock.now_us())
    ):
        raise Unauthenticated("the token this stream ticket was got with is no longer valid")
    namespaces = tuple(record.namespaces) if record.namespaces is not None else None
    return Actor(record.subject, record.role, namespaces)
