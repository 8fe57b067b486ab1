"""What each route needs, declared on the route (`requires(Permission.X)`), and the check
of it: authentication, roles and namespaces, and the request's journal context.

Headers are read here and documented in the OpenAPI document by `openapi.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, TypeVar
from urllib.parse import unquote

from fastapi import Depends, Request
from starlette.routing import BaseRoute

from iotas.api.dependencies import calls
from iotas.api.tls import client_certificate
from iotas.domain.errors import Forbidden, InvalidInput, NotFound
from iotas.domain.ids import thing_id_for_uri
from iotas.runtime import Runtime
from iotas.services.context import Actor, Context

MAX_CAUSE = 500
CAUSE_HEADER = "x-iotas-cause"


class Permission(StrEnum):
    """What a route needs, declared where the route is defined (`requires`); a test walks
    every route for one (tests/unit/api/test_route_permissions.py)."""

    PUBLIC = "public"  # no credential: the route carries no data (decision 19)
    CLAIM = "claim"  # a provisioning claim token instead of an operator's (routers/claims.py)
    READ = "read"  # viewer, operator, admin
    OPERATE = "operate"  # operator, admin: desired state and actions
    ADMIN = "admin"  # admin only


# The roles that hold each operator permission.
ROLES: dict[Permission, frozenset[str]] = {
    Permission.READ: frozenset({"viewer", "operator", "admin"}),
    Permission.OPERATE: frozenset({"operator", "admin"}),
    Permission.ADMIN: frozenset({"admin"}),
}


@dataclass(frozen=True, slots=True)
class Requirement:
    """A permission and the two rules that cut across roles: `device`, a Thing's own client
    certificate may call the route on its own id (a report, telemetry, its twin, a renewal);
    `installation`, the route speaks of the whole installation rather than of any namespace
    (a journal head, counters, tokens, claims that may make Things anywhere), so a
    namespace-limited token is refused."""

    permission: Permission
    device: bool = False
    installation: bool = False


Check = Callable[[Request], Awaitable[Context]]
F = TypeVar("F", bound=Callable[..., Any])
# Every dependency that states a route's requirement (functions rather than callable objects:
# FastAPI reads a dependency's annotations in its function's module).
_DECLARED: dict[Callable[..., Any], Requirement] = {}


def declare(requirement: Requirement) -> Callable[[F], F]:
    """Mark a dependency as the one that states (and checks) its routes' requirement."""

    def mark(dependency: F) -> F:
        _DECLARED[dependency] = requirement
        return dependency

    return mark


async def context(request: Request, requirement: Requirement) -> Context:
    """Authenticate the request, check `requirement`, and give the journal context."""
    rt: Runtime = request.app.state.runtime
    source = request.client.host if request.client else "-"
    authorization = request.headers.get("authorization")
    certificate = client_certificate(request.scope) if authorization is None else None
    if certificate is not None:
        actor = await rt.auth.authenticate_device(
            certificate, source, rt.credentials.verify_certificate
        )
    else:
        actor = await rt.auth.authenticate(authorization, source)
    await authorize(actor, request, requirement)
    return Context(actor, _cause(request) or f"{request.method} {request.scope['path']}")


@cache
def guard(permission: Permission, *, device: bool = False, installation: bool = False) -> Check:
    """The dependency for an operator permission: one per requirement, so FastAPI's
    per-request cache of dependencies (keyed by the callable) runs it once even when a
    router and its route both name it. It only takes the Request: FastAPI resolves each
    declared parameter and sub-dependency on every request, and on the hot write routes that
    resolution cost more than the database work."""
    if permission in (Permission.PUBLIC, Permission.CLAIM):
        raise ValueError(f"{permission} routes declare their own dependency, not a guard")
    requirement = Requirement(permission, device=device, installation=installation)

    async def check(request: Request) -> Context:
        return await context(request, requirement)

    return declare(requirement)(check)


@declare(Requirement(Permission.PUBLIC))
async def public() -> None:
    """No credential asked for: the route says so rather than saying nothing."""


def requires(permission: Permission, *, device: bool = False, installation: bool = False) -> Any:
    """The route needs `permission`: `ctx: Annotated[Context, requires(Permission.OPERATE)]`,
    or `dependencies=[requires(Permission.PUBLIC)]` on a route that takes no credential."""
    if permission is Permission.PUBLIC:
        return Depends(public)
    return Depends(guard(permission, device=device, installation=installation))


def requirement_of(route: BaseRoute) -> Requirement | None:
    """The requirement a route declared (None: it declared none, which a test refuses)."""
    found = {_DECLARED[call] for call in calls(route) if call in _DECLARED}
    if len(found) > 1:
        raise ValueError(f"{getattr(route, 'path', route)} declares {found}")
    return next(iter(found), None)


def guard_of(route: BaseRoute) -> Check:
    """The guard a route declared (for `fast_twin.py`, which answers it without FastAPI)."""
    for call in calls(route):
        if call in _DECLARED and _DECLARED[call].permission in ROLES:
            checked: Check = call
            return checked
    raise ValueError(f"{getattr(route, 'path', route)} declares no operator permission")


async def authorize(actor: Actor, request: Request, requirement: Requirement) -> None:
    """Roles and namespaces, checked for every route before its code runs. (Lists, streams
    and bodies that name Things filter or check in their services, which get the actor.)"""
    method = request.method
    route = request.scope.get("route")
    template = getattr(route, "path", request.scope["path"])
    thing_id = request.path_params.get("thing_id")
    if actor.role == "device":
        if not requirement.device:
            raise Forbidden(f"a device may not {method} {template}")
        if thing_id != actor.subject:
            raise Forbidden(f"a device reaches only its own Thing, {actor.subject!r}")
        return
    if actor.namespaces is not None:
        if requirement.installation:
            raise Forbidden(f"a namespace-limited token may not {method} {template}")
        if isinstance(thing_id, str):
            actor.must_see(thing_id)
    if actor.role in ROLES[requirement.permission]:
        return
    td_id = request.path_params.get("td_id")
    if actor.namespaces is not None and isinstance(td_id, str):
        # A directory TD of another namespace does not exist for a limited token, whatever
        # its role (docs/security.md): 404 before a refusal could tell that it does.
        await _must_see_td(request.app.state.runtime, actor, td_id)
    raise Forbidden(
        f"a {actor.role} token may not {method} {template}"
        + (
            " (operators change desired state and invoke actions)"
            if actor.role == "operator"
            else ""
        )
    )


async def _must_see_td(rt: Runtime, actor: Actor, td_id: str) -> None:
    """404 if the TD `td_id` is another namespace's, or would be made in one."""
    try:
        thing = await rt.directory.thing(td_id)
    except NotFound:
        actor.must_see(thing_id_for_uri(td_id))
    else:
        actor.must_see(thing.id)


def _cause(request: Request) -> str | None:
    """X-Iotas-Cause is percent-encoded UTF-8 (HTTP header values are bytes, not text)."""
    raw = request.headers.get(CAUSE_HEADER)
    if raw is None:
        return None
    try:
        cause = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise InvalidInput("X-Iotas-Cause must be percent-encoded UTF-8 text") from None
    if len(cause) > MAX_CAUSE:
        raise InvalidInput(f"X-Iotas-Cause is longer than {MAX_CAUSE} characters")
    if not cause.isprintable():
        raise InvalidInput("X-Iotas-Cause must be printable text (no control characters)")
    return cause


async def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


Rt = Annotated[Runtime, Depends(runtime)]
# The requirements most routes declare, by name: `ctx: CanRead` on a route is its permission.
CanRead = Annotated[Context, requires(Permission.READ)]
CanOperate = Annotated[Context, requires(Permission.OPERATE)]
CanAdminister = Annotated[Context, requires(Permission.ADMIN)]
