"""`/api/v1/docs`: Swagger UI over the OpenAPI document, served from this process.

FastAPI's own page loads Swagger UI from a CDN, so it is blank offline (a plant network, a
laptop on a train). The assets come from the `swagger-ui-bundle-v2` package instead (Swagger
UI 5, which reads the OpenAPI 3.1 documents FastAPI writes); nothing is fetched from
elsewhere.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from iotas.api.security import Permission, requires

DOCS = "/api/v1/docs"
ASSETS = f"{DOCS}/assets"


def install(app: FastAPI, openapi_url: str) -> None:
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get(DOCS, include_in_schema=False, dependencies=[requires(Permission.PUBLIC)])
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
        )
