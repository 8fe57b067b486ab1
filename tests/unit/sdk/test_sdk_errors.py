"""How SDK errors read, and how error responses become them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from iotas.sdk import ApiError, ConnectionFailed
from iotas.sdk._http import cause_header, problem_of, time_param


def test_api_error_reads_like_the_problem() -> None:
    error = ApiError(404, {"title": "Not found", "status": 404, "detail": "no Thing 'a:b'"})
    assert str(error) == "404 Not found: no Thing 'a:b'"
    assert error.title == "Not found" and error.detail == "no Thing 'a:b'"
    assert str(ApiError(500, {})) == "500 Error"


def test_connection_failed_is_an_api_error_without_status() -> None:
    error = ConnectionFailed("http://h:1", "connection refused")
    assert isinstance(error, ApiError) and error.status == 0
    assert str(error) == "Server unreachable: cannot reach iotas at http://h:1: connection refused"


def test_problem_documents_and_other_bodies() -> None:
    problem = httpx.Response(
        412,
        headers={"content-type": "application/problem+json"},
        content=b'{"title": "Precondition failed", "detail": "version moved"}',
    )
    assert problem_of(problem) == {
        "title": "Precondition failed",
        "detail": "version moved",
        "status": 412,
    }
    proxy_page = httpx.Response(502, headers={"content-type": "text/html"}, content=b"<h1>bad</h1>")
    assert problem_of(proxy_page)["detail"] == "<h1>bad</h1>"
    assert problem_of(proxy_page)["status"] == 502


def test_times_and_causes() -> None:
    plus2 = datetime(2026, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    assert time_param(plus2, "at") == "2026-05-01T08:00:00Z"
    assert time_param(datetime(2026, 5, 1, tzinfo=UTC), "at") == "2026-05-01T00:00:00Z"
    assert time_param("2026-05-01T00:00:00Z", "at") == "2026-05-01T00:00:00Z"
    with pytest.raises(ValueError, match="timezone-aware"):
        time_param(datetime(2026, 5, 1), "at")
    assert cause_header("rollout 7") == {"X-Iotas-Cause": "rollout 7"}
    with pytest.raises(ValueError):
        cause_header("line\nbreak")
