"""N HTTP thermostats in one process, for bench/converge.py: each with its own TD and
property URLs, served by a bare ASGI app under uvicorn (httptools), so the Things cost as
little as possible and iotas, not they, is what the benchmark measures.

    python bench/converge_things.py --port 8090 --things 1000

    GET  /things/{name}/td                      the Thing's TD 1.1 (nosec)
    GET  /things/{name}/properties/{property}   its value (JSON)
    PUT  /things/{name}/properties/{property}   set it (204); counted per Thing
    GET  /stats                                 {"puts": total, "things_written": n}
    POST /reset                                 forget the counts
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import Any

import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def thing_name(i: int) -> str:
    return f"t-{i:05d}"


def td(base: str, name: str) -> dict[str, Any]:
    href = f"{base}/things/{name}/properties"
    return {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "@type": "bench-thermostat",
        "id": f"urn:bench:{name}",
        "title": f"Thermostat {name}",
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "properties": {
            "setpoint": {
                "type": "number",
                "forms": [{"href": f"{href}/setpoint", "op": ["readproperty", "writeproperty"]}],
            },
            "temperature": {
                "type": "number",
                "readOnly": True,
                "forms": [{"href": f"{href}/temperature", "op": ["readproperty"]}],
            },
        },
    }


class Things:
    def __init__(self, count: int, base: str) -> None:
        self.base = base
        self.values = {thing_name(i): {"setpoint": 20.0, "temperature": 19.5} for i in range(count)}
        self.puts: dict[str, int] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, parts = scope["method"], scope["path"].strip("/").split("/")
        if parts == ["stats"]:
            body = {"puts": sum(self.puts.values()), "things_written": len(self.puts)}
            return await _answer(send, 200, body)
        if parts == ["reset"] and method == "POST":
            self.puts.clear()
            return await _answer(send, 204)
        if len(parts) < 3 or parts[0] != "things" or parts[1] not in self.values:
            return await _answer(send, 404, {"error": "no such Thing"})
        name, values = parts[1], self.values[parts[1]]
        if parts[2:] == ["td"]:
            return await _answer(send, 200, td(self.base, name))
        if len(parts) == 4 and parts[2] == "properties" and parts[3] in values:
            prop = parts[3]
            if method == "GET":
                return await _answer(send, 200, values[prop])
            if method == "PUT" and prop != "temperature":
                raw = b""
                while True:
                    message = await receive()
                    raw += message.get("body", b"")
                    if not message.get("more_body"):
                        break
                values[prop] = json.loads(raw)
                self.puts[name] = self.puts.get(name, 0) + 1
                return await _answer(send, 204)
            return await _answer(send, 405, {"error": "method not allowed"})
        return await _answer(send, 404, {"error": "no such resource"})


async def _answer(send: Send, status: int, body: Any = None) -> None:
    payload = b"" if body is None else json.dumps(body).encode()
    headers = [(b"content-length", str(len(payload)).encode())]
    if payload:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--things", type=int, required=True)
    args = parser.parse_args()
    app = Things(args.things, f"http://127.0.0.1:{args.port}")
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        http="httptools",
        loop="uvloop",
        log_level="warning",
        access_log=False,
        backlog=4096,
        timeout_keep_alive=60,
    )


if __name__ == "__main__":
    main()
