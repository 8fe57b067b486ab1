"""The OpenAPI document against the running API, checked by schemathesis (a third-party
generator of requests from the document): no 500, no status code, content type or header the
document does not name, and bodies that match their schemas. Plus what the document must say
that schemathesis does not check: the public routes are unsecured, FastAPI's 422 (which iotas
never answers) is gone, and /api/v1/docs needs nothing from outside.

Bounded: a few examples per operation (about a minute on the 2-core machine). The event
streams never end, so they are left out here; their errors are tested in
test_positions_and_preconditions.py. Checks left out: `positive_data_acceptance` (a query,
a cursor or a JSONPath expression cannot be described by a schema, so a schema-valid value
is often a 400) and `negative_data_rejection` (the document is narrower than what iotas
accepts in places, see `_PARAMETERS` in api/openapi.py).
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.core.result import Err

from iotas.api.app import create_app
from iotas.api.openapi import _SERVED, PUBLIC_PATHS
from iotas.settings import Settings
from support import free_port

TOKEN = "iotas_conformance_" + secrets.token_urlsafe(24)
STREAMS = r"/events"
EXAMPLES = 10
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.ignored_auth,
]


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """iotas over loopback HTTP on a SQLite file, in a thread (schemathesis calls are
    synchronous)."""
    data = Path(tmp_path_factory.mktemp("conformance"))
    port = free_port()
    app_settings = Settings(
        data_dir=data,
        database_url=f"sqlite:///{data / 'iotas.db'}",
        port=port,
        admin_token=TOKEN,
        log_level="warning",
        # schemathesis sends wrong tokens on purpose, many: let them be 401s (the 429 past
        # the allowance is tested in tests/unit/services/test_auth_realms.py).
        auth_failure_burst=1e9,
    )
    server = uvicorn.Server(
        uvicorn.Config(create_app(app_settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="iotas-conformance", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    # Something for the operations on one Thing to find.
    headers = {"Authorization": f"Bearer {TOKEN}"}
    thing = {"id": "acme:pump-17", "kind": "pump", "attributes": {"site": "a"}}
    assert httpx.post(f"{url}/api/v1/things", json=thing, headers=headers).status_code == 201
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(30)


def test_every_answer_is_documented(api_url: str) -> None:
    """Every operation but the streams, a few generated requests each. (Through hypothesis
    directly: schemathesis' pytest plugin does not run under pytest 9.)"""
    schema = schemathesis.openapi.from_url(f"{api_url}/api/v1/openapi.json")
    failures: list[str] = []
    tested = 0
    for result in schema.exclude(path_regex=STREAMS).get_all_operations():
        assert not isinstance(result, Err), result.err()
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,  # the same requests every run: a failure is reproducible
            database=None,
        )
        def check(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(
                base_url=api_url,
                headers={"Authorization": f"Bearer {TOKEN}"},
                checks=CHECKS,
                timeout=20,
            )

        try:
            check()
        except Exception as exc:  # each operation's failure reported, not only the first
            failures.append(f"{operation.label}: {exc}")
        tested += 1
    assert tested >= 50  # the document was read, not an empty one
    assert not failures, "\n\n".join(failures)


def test_the_document_says_what_schemathesis_does_not_check(api_url: str) -> None:
    spec = httpx.get(f"{api_url}/api/v1/openapi.json").json()
    operations = [(p, m, op) for p, ops in spec["paths"].items() for m, op in ops.items()]
    for path, method, op in operations:
        assert "422" not in op["responses"], (method, path)
        if path in PUBLIC_PATHS:
            assert op["security"] == [], path
        else:
            assert op["security"], path
            for status in ("400", "401", "403", "429"):
                content = op["responses"][status]["content"]
                assert list(content) == ["application/problem+json"], (method, path, status)
    assert spec["paths"]["/.well-known/wot"]["get"]["security"] == []
    twin = spec["paths"]["/api/v1/things/{thing_id}/twin/desired"]["patch"]
    assert {"404", "409", "412", "415"} <= set(twin["responses"])
    assert "application/merge-patch+json" in twin["requestBody"]["content"]
    assert list(spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain"]
    assert (
        "text/event-stream" in spec["paths"]["/api/v1/events"]["get"]["responses"]["200"]["content"]
    )
    # The routes named in the central table exist (a renamed route would leave it stale).
    for method, path in _SERVED:
        assert method in spec["paths"].get(path, {}), (method, path)


def test_the_docs_page_works_offline(api_url: str) -> None:
    page = httpx.get(f"{api_url}/api/v1/docs")
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(a.startswith("/api/v1/docs/assets/") for a in assets), assets
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    for asset in assets:
        assert httpx.get(f"{api_url}{asset}").status_code == 200, asset
    assert "url: '/api/v1/openapi.json'" in page.text


def test_a_405_names_every_method_of_the_path(api_url: str) -> None:
    """GET and DELETE of one path are two routes; Starlette's 405 named only the first."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    refused = httpx.request("OPTIONS", f"{api_url}/api/v1/claims/c1", headers=headers)
    assert refused.status_code == 405
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["allow"] == "DELETE, GET"
