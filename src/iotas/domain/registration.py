"""Registration information of a TD held by the directory (W3C WoT Discovery 1.0, 7.3.1.1).

A registered TD is stored exactly as given, without its `registration` member; the directory
keeps `created`, `modified` and the expiry beside it, and adds them back (an Enriched TD)
when it serves the TD. A client may assign `ttl` (relative expiry, seconds) or `expires`
(absolute); when both are given `ttl` wins and `expires` is computed from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from iotas.domain import clock
from iotas.domain.errors import InvalidInput
from iotas.domain.merge_patch import JSONObject

DISCOVERY_CONTEXT = "https://www.w3.org/2022/wot/discovery"
MEMBER = "registration"
# An upper limit on expiry (WoT Discovery lets a directory set one): ten years.
MAX_TTL_SECONDS = 10 * 366 * 86_400
_US = 1_000_000


@dataclass(frozen=True, slots=True)
class Requested:
    """What the client asked for in the TD's `registration` member."""

    ttl: float | None = None
    expires_us: int | None = None


@dataclass(frozen=True, slots=True)
class Registration:
    created_us: int
    modified_us: int
    expires_us: int | None = None
    ttl: float | None = None

    def expired(self, now_us: int) -> bool:
        return self.expires_us is not None and self.expires_us <= now_us

    def requested(self) -> Requested:
        """The client-assigned part, as the client would send it back: `ttl` if there is
        one (its `expires` is derived), else the absolute `expires`."""
        if self.ttl is not None:
            return Requested(ttl=self.ttl)
        return Requested(expires_us=self.expires_us)

    def to_json(self, now_us: int) -> JSONObject:
        doc: JSONObject = {
            "created": clock.to_rfc3339(self.created_us),
            "modified": clock.to_rfc3339(self.modified_us),
        }
        if self.expires_us is not None:
            doc["expires"] = clock.to_rfc3339(self.expires_us)
        if self.ttl is not None:
            doc["ttl"] = int(self.ttl) if self.ttl == int(self.ttl) else self.ttl
        doc["retrieved"] = clock.to_rfc3339(now_us)
        return doc


def split(doc: JSONObject, now_us: int) -> tuple[JSONObject, Requested]:
    """The TD to store (without `registration`) and what its `registration` asks for.
    Server-assigned members (`created`, `modified`, `retrieved`) are ignored, as WoT
    Discovery says; `ttl` and `expires` are checked."""
    if MEMBER not in doc:
        return doc, Requested()
    given = doc[MEMBER]
    td = {k: v for k, v in doc.items() if k != MEMBER}
    if not isinstance(given, dict):
        raise InvalidInput("registration must be a JSON object", field="/registration")
    ttl = given.get("ttl")
    if ttl is not None:
        if (
            isinstance(ttl, bool)
            or not isinstance(ttl, int | float)
            or not math.isfinite(ttl)
            or not 0 < ttl <= MAX_TTL_SECONDS
        ):
            raise InvalidInput(
                f"registration.ttl must be a number of seconds above 0 and at most "
                f"{MAX_TTL_SECONDS}",
                field="/registration/ttl",
            )
        return td, Requested(ttl=float(ttl))
    expires = given.get("expires")
    if expires is None:
        return td, Requested()
    if not isinstance(expires, str):
        raise InvalidInput(
            "registration.expires must be an RFC 3339 instant", field="/registration/expires"
        )
    expires_us = clock.parse_rfc3339(expires, name="/registration/expires")
    if expires_us <= now_us:
        raise InvalidInput(
            f"registration.expires {expires[:40]!r} is not in the future",
            field="/registration/expires",
        )
    if expires_us > now_us + MAX_TTL_SECONDS * _US:
        raise InvalidInput(
            "registration.expires is more than ten years away", field="/registration/expires"
        )
    return td, Requested(expires_us=expires_us)


def registered(previous: Registration | None, requested: Requested, now_us: int) -> Registration:
    """The registration after a create or an update at `now_us` (`ttl` counts from now)."""
    expires = requested.expires_us
    if requested.ttl is not None:
        expires = now_us + round(requested.ttl * _US)
    return Registration(
        created_us=now_us if previous is None else previous.created_us,
        modified_us=now_us,
        expires_us=expires,
        ttl=requested.ttl,
    )


def with_requested(td: JSONObject, requested: Requested) -> JSONObject:
    """The TD with its client-assigned registration members: what a merge patch applies to."""
    member: JSONObject = {}
    if requested.ttl is not None:
        member["ttl"] = requested.ttl
    elif requested.expires_us is not None:
        member["expires"] = clock.to_rfc3339(requested.expires_us)
    return {**td, MEMBER: member} if member else td


def enriched(td: JSONObject, registration: Registration, now_us: int) -> JSONObject:
    """The Enriched TD: every member as registered, `registration` added and the Discovery
    context appended to `@context` (which an Enriched TD must carry)."""
    doc = dict(td)
    context = doc.get("@context")
    if isinstance(context, list):
        if DISCOVERY_CONTEXT not in context:
            doc["@context"] = [*context, DISCOVERY_CONTEXT]
    elif context != DISCOVERY_CONTEXT:
        doc["@context"] = [context, DISCOVERY_CONTEXT] if context is not None else DISCOVERY_CONTEXT
    doc[MEMBER] = registration.to_json(now_us)
    return doc
