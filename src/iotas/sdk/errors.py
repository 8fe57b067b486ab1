"""The errors the operator SDK raises.

    ApiError                  the server answered with an error; `.status` and `.problem`
    │                         (the RFC 9457 problem document, or one made from the response)
    └── ConnectionFailed      no answer at all: the server cannot be reached, the connection
                              broke or timed out; `.status` is 0

Catch `ApiError` for both; catch `ConnectionFailed` first to tell "the server said no" from
"there was nobody to ask".
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """The server refused a request. `str()` gives `404 Not found: <detail>`."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        super().__init__(self._message())

    @property
    def title(self) -> str:
        return str(self.problem.get("title") or "Error")

    @property
    def detail(self) -> str | None:
        detail = self.problem.get("detail")
        return None if detail is None else str(detail)

    def _message(self) -> str:
        head = f"{self.status} {self.title}" if self.status else self.title
        return f"{head}: {self.detail}" if self.detail else head

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.status!r}, {self.problem!r})"


class ConnectionFailed(ApiError):
    """No response: wrong URL, server down, network failure or timeout."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(
            0,
            {
                "type": "about:blank",
                "title": "Server unreachable",
                "status": 0,
                "detail": f"cannot reach iotas at {url}: {reason}",
            },
        )
