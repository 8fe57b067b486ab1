"""Every error leaves as RFC 9457 problem+json; unexpected ones are logged, never leaked."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

from iotas.api.responses import from_error, problem
from iotas.domain.errors import IotasError

log = logging.getLogger("iotas.api")


def install(app: FastAPI) -> None:
    @app.exception_handler(IotasError)
    async def _iotas(request: Request, exc: IotasError) -> Response:
        return from_error(exc, request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg', 'invalid')}"
            for err in exc.errors()
        ]
        return problem(
            400,
            "Invalid input",
            "; ".join(problems) or "the request is not valid",
            slug="invalid-input",
            instance=request.url.path,
        )

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        titles = {404: "Not found", 405: "Method not allowed"}
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"there is no route {request.method} {request.url.path}"
        headers = dict(exc.headers) if exc.headers else {}
        if exc.status_code == 405:
            # Starlette names only the first route that matched the path; a path served by
            # several routes (GET and DELETE apart) allows what all of them do.
            headers["Allow"] = ", ".join(_allowed(request))
        return problem(
            exc.status_code,
            titles.get(exc.status_code, "Request refused"),
            detail,
            slug="http",
            instance=request.url.path,
            headers=headers or None,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(
            500,
            "Internal error",
            "iotas failed to handle this request; the server log has the details",
            slug="internal",
            instance=request.url.path,
        )


def _allowed(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)
