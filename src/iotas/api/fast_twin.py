"""The twin PATCH routes without FastAPI's per-request machinery.

`PATCH /api/v1/things/{id}/twin/reported` and `.../desired` carry nearly every change a
fleet makes, and on the embedded store one core serves both HTTP and the database: measured
with bench/registry.py, FastAPI's dependency resolution, parameter parsing and middleware
layers cost about a fifth of such a request. This ASGI middleware answers exactly those two
routes with the same code the FastAPI routes run (the guard each route declares, from
`security.guard_of`, for authentication, roles and namespaces; `things.twin_patch_response`;
problem+json from `responses.from_error`) and hands everything else on. The FastAPI routes
stay: they describe the API in the OpenAPI document and answer any request this does not take.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from iotas.api.bodies import check, json_body
from iotas.api.models import MergePatch
from iotas.api.responses import from_error
from iotas.api.routers.things import twin_patch_response
from iotas.api.security import guard_of
from iotas.domain.errors import IotasError
from iotas.domain.twin import Side

# Starlette's own pattern for a `{thing_id}` path parameter: one segment.
_PATH = re.compile(r"^/api/v1/things/([^/]+)/twin/(desired|reported)$")
_TEMPLATE = "/api/v1/things/{thing_id}/twin/%s"


class FastTwinPatch:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._routes: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = (
            _PATH.match(scope["path"])
            if scope["type"] == "http" and scope["method"] == "PATCH"
            else None
        )
        route = self._route(scope, match[2]) if match is not None else None
        if match is None or route is None:
            await self.app(scope, receive, send)
            return
        thing_id = match[1]
        side: Side = "desired" if match[2] == "desired" else "reported"
        # What routing would have set: `security` checks roles by the route's template.
        scope = {**scope, "route": route, "endpoint": route.endpoint}
        scope["path_params"] = {"thing_id": thing_id}
        request = Request(scope, receive)
        try:
            ctx = await guard_of(route)(request)
            patch = check(MergePatch, await json_body(request))
            response = await twin_patch_response(side, thing_id, request, ctx, patch)
        except IotasError as exc:
            response = from_error(exc, scope["path"])
        await response(scope, receive, send)

    def _route(self, scope: Scope, side: str) -> Any:
        if side not in self._routes:
            template = _TEMPLATE % side
            routes = getattr(scope.get("app"), "routes", [])
            self._routes[side] = next(
                (
                    r
                    for r in routes
                    if isinstance(r, APIRoute) and r.path == template and "PATCH" in r.methods
                ),
                None,
            )
        return self._routes[side]
