"""The operator SDK: an asyncio client for the iotas REST API.

    async with Client("http://127.0.0.1:8080", token) as iotas:
        await iotas.create_thing("acme:pump-1", "pump", labels={"tier": "edge"})
        await iotas.set_desired("acme:pump-1", {"speed": 1200})
        async for event in iotas.events(types=["reported_changed"]):
            ...

Every method returns plain JSON (`dict[str, Any]`), or a `Page` for lists; errors raise
`ApiError` (see `iotas.sdk.errors`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx
import orjson

from iotas import __version__
from iotas.sdk._http import cause_header, connection_failed, error_of, json_body, time_param
from iotas.sdk.events import stream_events
from iotas.sdk.rollouts import Rollouts

DEFAULT_URL = "http://127.0.0.1:8080"
API = "/api/v1"
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a list: the items and the cursor of the next page (None on the last)."""

    items: list[Json]
    next: str | None


class Client:
    """An async client for one iotas server. Use it as an async context manager, or call
    `aclose()` when done. `url` and `token` default to `IOTAS_URL` and `IOTAS_TOKEN`."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("IOTAS_URL") or DEFAULT_URL).rstrip("/")
        if token is None:
            token = os.environ.get("IOTAS_TOKEN") or None
        headers = {"Accept": JSON, "User-Agent": f"iotas-sdk/{__version__}"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- health --------------------------------------------------------------------------

    @property
    def rollouts(self) -> Rollouts:
        """Rollouts: create, get, list, things, pause, resume, cancel (`iotas.sdk.rollouts`)."""
        return Rollouts(self._json, self._page)

    async def health(self) -> Json:
        return await self._json("GET", "/healthz")

    # -- things --------------------------------------------------------------------------

    async def create_thing(
        self,
        id: str,
        kind: str,
        *,
        attributes: Json | None = None,
        labels: dict[str, str] | None = None,
        links: Sequence[dict[str, str]] | None = None,
        description: Json | None = None,
        cause: str | None = None,
    ) -> Json:
        body: Json = {"id": id, "kind": kind}
        if attributes is not None:
            body["attributes"] = attributes
        if labels is not None:
            body["labels"] = labels
        if links is not None:
            body["links"] = list(links)
        if description is not None:
            body["description"] = description
        return await self._json("POST", f"{API}/things", body=body, headers=cause_header(cause))

    async def get_thing(self, id: str, *, at: datetime | str | None = None) -> Json:
        return await self._json("GET", _thing(id), params={"at": time_param(at, "at")})

    async def list_things(
        self, q: str | None = None, *, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        return await self._page(f"{API}/things", {"q": q, "limit": limit, "cursor": cursor})

    async def iter_things(
        self, q: str | None = None, *, page_size: int = 500
    ) -> AsyncIterator[Json]:
        """Every Thing matching `q`, following the pages."""
        cursor: str | None = None
        while True:
            page = await self.list_things(q, limit=page_size, cursor=cursor)
            for item in page.items:
                yield item
            if not page.next:
                return
            cursor = page.next

    async def patch_thing(self, id: str, patch: Json, *, cause: str | None = None) -> Json:
        return await self._json(
            "PATCH", _thing(id), body=patch, content_type=MERGE_PATCH, headers=cause_header(cause)
        )

    async def delete_thing(self, id: str, *, cause: str | None = None) -> None:
        await self._request("DELETE", _thing(id), headers=cause_header(cause))

    # -- twin ----------------------------------------------------------------------------

    async def get_twin(self, id: str) -> Json:
        return await self._json("GET", f"{_thing(id)}/twin")

    async def set_desired(
        self,
        id: str,
        patch: Json,
        *,
        if_match: int | str | None = None,
        cause: str | None = None,
    ) -> Json:
        """Merge `patch` into the desired state; with `if_match`, only if the twin is still
        at that version (otherwise `ApiError` with status 412)."""
        headers = cause_header(cause)
        if if_match is not None:
            headers["If-Match"] = str(if_match)
        return await self._json(
            "PATCH",
            f"{_thing(id)}/twin/desired",
            body=patch,
            content_type=MERGE_PATCH,
            headers=headers,
        )

    async def set_reported(self, id: str, patch: Json, *, cause: str | None = None) -> Json:
        return await self._json(
            "PATCH",
            f"{_thing(id)}/twin/reported",
            body=patch,
            content_type=MERGE_PATCH,
            headers=cause_header(cause),
        )

    # -- Web of Things -------------------------------------------------------------------

    async def adopt(
        self,
        *,
        td_url: str | None = None,
        td: Json | None = None,
        id: str | None = None,
        poll_interval: float | None = None,
        credentials: dict[str, str] | None = None,
        cause: str | None = None,
    ) -> Json:
        """Manage a third-party WoT Thing through its TD (by URL, or the TD itself):
        `{"thing": ..., "adoption": ...}`."""
        body: Json = {"td_url": td_url, "td": td, "id": id, "poll_interval": poll_interval}
        if credentials:
            body["credentials"] = credentials
        return await self._json(
            "POST",
            f"{API}/adoptions",
            body={k: v for k, v in body.items() if v is not None},
            headers=cause_header(cause),
        )

    async def get_td(self, id: str) -> Json:
        """The Thing Description the directory serves for a Thing (or TD id)."""
        return await self._json("GET", f"/tdd/things/{quote(id, safe=':')}")

    async def graph(
        self, id: str, *, rel: str | None = None, depth: int = 1, direction: str = "out"
    ) -> Json:
        params = {"rel": rel, "depth": depth, "direction": direction}
        return await self._json("GET", f"{_thing(id)}/graph", params=params)

    # -- actions -------------------------------------------------------------------------

    async def invoke(
        self,
        id: str,
        action: str,
        input: Any = None,
        *,
        ttl: float | None = None,
        idempotency_key: str | None = None,
        wait: float | None = None,
        cause: str | None = None,
    ) -> Json:
        """Invoke an action of a Thing (any kind: an MQTT device, an HTTP one, an adopted WoT
        Thing): the invocation, queued (`status` "queued"), with its `id`. `ttl`: seconds it
        may wait for the Thing before it ends `expired`; the same `idempotency_key` within
        24 h returns the same invocation. With `wait` (seconds), returns once it ended (or
        that long passed: then its status is not final yet)."""
        body: Json = {"input": input}
        if ttl is not None:
            body["ttl"] = ttl
        if idempotency_key is not None:
            body["idempotency_key"] = idempotency_key
        created = await self._json(
            "POST",
            f"{_thing(id)}/actions/{quote(action, safe='')}",
            body=body,
            headers=cause_header(cause),
        )
        if wait is None or created.get("status") in FINAL:
            return created
        return await self.invocation(str(created["id"]), wait=wait)

    async def invocation(self, id: str, *, wait: float | None = None) -> Json:
        """One invocation; with `wait` (seconds), once it ended or that long passed."""
        params = {"wait": None if wait is None else _wait(wait)}
        return await self._json("GET", _invocation(id), params=params, read_limit=_read_for(wait))

    async def invocations(
        self,
        *,
        thing: str | None = None,
        status: Sequence[str] | str | None = None,
        rollout: str | None = None,
        limit: int | None = None,
        after: str | None = None,
    ) -> Page:
        """Invocations, oldest first; `status` one or several (`["queued", "delivered"]`);
        the next page is `after=page.next`."""
        states = status if status is None or isinstance(status, str) else ",".join(status)
        params = {
            "thing": thing,
            "status": states,
            "rollout": rollout,
            "limit": limit,
            "after": after,
        }
        return await self._page(f"{API}/invocations", params)

    async def cancel_invocation(self, id: str, *, cause: str | None = None) -> Json:
        """Cancel an invocation that has not ended (409 if it has)."""
        return await self._json("POST", f"{_invocation(id)}/cancel", headers=cause_header(cause))

    # -- credentials ---------------------------------------------------------------------

    async def create_credential(
        self,
        thing_id: str,
        *,
        type: str = "password",
        csr: str | None = None,
        cause: str | None = None,
    ) -> Json:
        """A new credential for the Thing: `{"id", "thing_id", "type", "created_at",
        "revoked_at"}` and `"secret"` (password) or `"certificate"`, `"ca_certificate"` and,
        without a `csr`, `"private_key"` (x509). Secrets and keys are in this answer only."""
        return await self._json(
            "POST",
            f"{_thing(thing_id)}/credentials",
            body=_credential(type, csr),
            headers=cause_header(cause),
        )

    async def ca_certificate(self) -> str:
        """The PEM certificate of iotas' CA."""
        return (await self._request("GET", f"{API}/ca")).text

    async def ca_crl(self) -> str:
        """The PEM certificate revocation list of iotas' CA (certificates no longer accepted)."""
        return (await self._request("GET", f"{API}/ca/crl")).text

    async def issue_server_certificate(self, hosts: list[str]) -> Json:
        """A TLS server certificate from iotas' CA for `hosts` (admin token): `certificate`,
        `private_key` (shown once), `ca_certificate`, `serial`, `not_after`."""
        return await self._json("POST", f"{API}/ca/server-certificates", body={"hosts": hosts})

    async def list_credentials(self, thing_id: str) -> list[Json]:
        """The Thing's credentials, revoked ones too (`revoked_at` set); never secrets."""
        page = await self._page(f"{_thing(thing_id)}/credentials", {})
        return page.items

    async def revoke_credential(
        self, thing_id: str, credential_id: str, *, cause: str | None = None
    ) -> None:
        await self._request(
            "DELETE",
            f"{_thing(thing_id)}/credentials/{quote(credential_id, safe='')}",
            headers=cause_header(cause),
        )

    # -- operators' tokens (admin) -------------------------------------------------------

    async def create_token(
        self,
        subject: str,
        role: str,
        *,
        namespaces: list[str] | None = None,
        expires: datetime | str | None = None,
    ) -> Json:
        """An API token for `subject` with `role` (viewer, operator, admin), optionally
        limited to `namespaces`; `"token"` is in this answer only."""
        body: Json = {"subject": subject, "role": role}
        if namespaces is not None:
            body["namespaces"] = namespaces
        if expires is not None:
            body["expires"] = time_param(expires, "expires")
        return await self._json("POST", f"{API}/tokens", body=body)

    async def list_tokens(self) -> list[Json]:
        """Every token's subject, role, namespaces and times; never a token."""
        return (await self._page(f"{API}/tokens", {})).items

    async def revoke_token(self, token_id: str) -> None:
        await self._request("DELETE", f"{API}/tokens/{quote(token_id, safe='')}")

    # -- provisioning claims (admin) -----------------------------------------------------

    async def create_claim(
        self,
        template: Json,
        *,
        max_uses: int | None = 1,
        expires: datetime | str | None = None,
    ) -> Json:
        """A provisioning claim bound to `template` (`namespace`, `kind`, `labels`,
        `attributes`, `desired`, `name_pattern`); `"token"` is in this answer only. A
        `max_uses` of None is no limit."""
        body: Json = {"template": template, "max_uses": max_uses}
        if expires is not None:
            body["expires"] = time_param(expires, "expires")
        return await self._json("POST", f"{API}/claims", body=body)

    async def list_claims(self) -> list[Json]:
        """Every claim with its template, uses and state; never a token."""
        return (await self._page(f"{API}/claims", {})).items

    async def get_claim(self, claim_id: str) -> Json:
        return await self._json("GET", f"{API}/claims/{quote(claim_id, safe='')}")

    async def revoke_claim(self, claim_id: str) -> None:
        """No device can provision with the claim any more; what it made stays."""
        await self._request("DELETE", f"{API}/claims/{quote(claim_id, safe='')}")

    # -- snapshots -----------------------------------------------------------------------

    async def snapshots(self, thing_id: str) -> list[Json]:
        """The forensic snapshots of a Thing, oldest first (each names its `sha256`)."""
        items = (await self._json("GET", f"{_thing(thing_id)}/snapshots")).get("items")
        return list(items) if isinstance(items, list) else []

    async def snapshot(self, sha256: str) -> bytes:
        """A snapshot's exact bytes (their sha256 is its name)."""
        return (await self._request("GET", f"{API}/snapshots/{quote(sha256, safe='')}")).content

    # -- quarantine ----------------------------------------------------------------------

    async def quarantine(self, thing_id: str, reason: str, *, cause: str | None = None) -> Json:
        """Quarantine the Thing (admin): snapshot, revoke its credentials, freeze it. Returns
        the Thing, whose `quarantine` names the snapshot."""
        return await self._json(
            "POST",
            f"{_thing(thing_id)}/quarantine",
            body={"reason": reason},
            headers=cause_header(cause),
        )

    async def release(
        self,
        thing_id: str,
        *,
        type: str = "x509",
        csr: str | None = None,
        cause: str | None = None,
    ) -> Json:
        """Release the Thing from quarantine with a new credential: `{"thing", "credential"}`,
        the credential's secret or key in this answer only."""
        return await self._json(
            "POST",
            f"{_thing(thing_id)}/quarantine/release",
            body={"credential": _credential(type, csr)},
            headers=cause_header(cause),
        )

    async def broker_credentials(self) -> Json:
        """Active password hashes of every Thing, for an external broker (admin token):
        `{"generated_at", "credentials": [{"thing_id", "secret_hash"}], "certificates":
        [{"thing_id"}]}` (the Things with an active certificate)."""
        return await self._json("GET", f"{API}/broker/credentials")

    # -- journal -------------------------------------------------------------------------

    async def history(
        self,
        id: str,
        *,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page:
        params = {
            "since": time_param(since, "since"),
            "until": time_param(until, "until"),
            "limit": limit,
            "cursor": cursor,
        }
        return await self._page(f"{_thing(id)}/history", params)

    async def journal(
        self, after: int = 0, *, limit: int | None = None, cursor: str | None = None
    ) -> Page:
        """The global change feed: events with a sequence number above `after`, in order."""
        return await self._page(
            f"{API}/journal", {"after": after, "limit": limit, "cursor": cursor}
        )

    async def journal_head(self) -> Json:
        """`{"seq", "hash", "ts"}` of the newest event (seq 0 when the journal is empty)."""
        return await self._json("GET", f"{API}/journal/head")

    async def verify_journal(self) -> Json:
        return await self._json("GET", f"{API}/journal/verify")

    def events(
        self,
        q: str | None = None,
        *,
        types: Sequence[str] | str | None = None,
        after: int | None = None,
        idle_timeout: float = 60.0,
        give_up_after: float | None = None,
    ) -> AsyncGenerator[Json, None]:
        """Live journal events (Server-Sent Events), optionally filtered by a query and types.

        With `after`, events with a higher sequence number are replayed first. A dropped or
        idle (`idle_timeout` seconds) connection is reopened with `Last-Event-ID`, so no event
        is lost or repeated; once connected, reconnecting goes on until the server has been
        unreachable for `give_up_after` seconds (None: forever), then `ConnectionFailed`.
        Close the iterator (`contextlib.aclosing`) when you stop early.
        """
        if isinstance(types, str):
            types = [t for t in types.split(",") if t.strip()]
        params = {"q": q, "types": ",".join(t.strip() for t in types) if types else None}
        return stream_events(
            self._http,
            f"{API}/events",
            {k: v for k, v in params.items() if v is not None},
            after=after,
            connect_timeout=self._timeout,
            idle_timeout=idle_timeout,
            give_up_after=give_up_after,
        )

    # -- plumbing ------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = JSON,
        headers: dict[str, str] | None = None,
        read_limit: httpx.Timeout | None = None,
    ) -> httpx.Response:
        request_headers = dict(headers or {})
        content: bytes | None = None
        if body is not None:
            content = orjson.dumps(body)
            request_headers["Content-Type"] = content_type
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        try:
            response = await self._http.request(
                method,
                path,
                params=query,
                content=content,
                headers=request_headers,
                timeout=read_limit if read_limit is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError as exc:
            raise connection_failed(self.url, exc) from exc
        if response.is_error:
            raise error_of(response)
        return response

    async def _json(self, method: str, path: str, **kwargs: Any) -> Json:
        result = json_body(await self._request(method, path, **kwargs))
        return result if isinstance(result, dict) else {"value": result}

    async def _page(self, path: str, params: dict[str, Any]) -> Page:
        body = await self._json("GET", path, params=params)
        items = body.get("items")
        next_cursor = body.get("next")
        return Page(
            items=list(items) if isinstance(items, list) else [],
            next=str(next_cursor) if next_cursor else None,
        )


# The statuses an invocation ends in.
FINAL = frozenset({"succeeded", "failed", "expired", "cancelled", "rejected"})
# The longest wait the API takes in one request (it answers with the invocation as it is then).
MAX_WAIT = 60.0


def _wait(seconds: float) -> str:
    return f"{max(0.0, min(seconds, MAX_WAIT)):g}"


def _read_for(wait: float | None) -> httpx.Timeout | None:
    """A long poll's read may take its wait, plus the usual time."""
    return None if wait is None else httpx.Timeout(10.0, read=min(wait, MAX_WAIT) + 10.0)


def _invocation(id: str) -> str:
    return f"{API}/invocations/{quote(id, safe='')}"


def _credential(type: str, csr: str | None) -> Json:
    return {"type": type} if csr is None else {"type": type, "csr": csr}


def _thing(id: str) -> str:
    return f"{API}/things/{quote(id, safe=':')}"
