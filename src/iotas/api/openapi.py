"""What the OpenAPI document says that FastAPI cannot infer: bearer auth and our headers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

IF_MATCH: dict[str, Any] = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "description": 'The twin version you read ("7"); 412 if it has moved on since',
    "schema": {"type": "string"},
}
CAUSE: dict[str, Any] = {
    "name": "X-Iotas-Cause",
    "in": "header",
    "required": False,
    "description": (
        "Why this change is made, percent-encoded UTF-8 (at most 500 characters once decoded); "
        "recorded as the journal event's cause"
    ),
    "schema": {"type": "string", "maxLength": 500},
}
PUBLIC_PATHS = frozenset({"/healthz"})


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                routes=app.routes,
            )
            components = schema.setdefault("components", {})
            components.setdefault("securitySchemes", {})["bearer"] = {
                "type": "http",
                "scheme": "bearer",
                "description": "An iotas API token",
            }
            # A device's claim token, on the one route that takes it (routers/claims.py).
            components["securitySchemes"]["claim"] = {
                "type": "http",
                "scheme": "bearer",
                "description": "A provisioning claim token",
            }
            for path, operations in schema.get("paths", {}).items():
                if path in PUBLIC_PATHS:
                    continue
                for method, operation in operations.items():
                    operation.setdefault("security", [{"bearer": []}])
                    if method in ("post", "put", "patch", "delete"):
                        operation.setdefault("parameters", []).append(CAUSE)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
