"""A lamp exposed by wotpy 0.18 (HTTP and CoAP bindings) on 127.0.0.1, for iotas' tests to
adopt by its TD URL: `python tests/peers/wotpy_lamp.py --port N --coap-port M --catalogue-port C`.

wotpy binds every interface by default; as /work/shared/PEERS.md describes, tornado's listen
and wotpy's CoAP server are pointed at loopback here. Commands on stdin act "outside iotas":
`set <property> <json>` and `emit <event> <json>`. Prints `READY <td url>` when exposed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import tornado.tcpserver
from wotpy.protocols.coap.server import CoAPServer
from wotpy.protocols.http.server import HTTPServer
from wotpy.wot.servient import Servient

HOST = "127.0.0.1"

_listen = tornado.tcpserver.TCPServer.listen


def _loopback_listen(self, port, address=HOST, *args, **kwargs):  # type: ignore[no-untyped-def]
    return _listen(self, port, address or HOST, *args, **kwargs)


tornado.tcpserver.TCPServer.listen = _loopback_listen  # type: ignore[method-assign]


class LoopbackCoAPServer(CoAPServer):  # type: ignore[misc]
    def _get_bind_address(self):  # type: ignore[no-untyped-def]
        return HOST, self.port


TD = {
    "@context": ["https://www.w3.org/2019/wot/td/v1"],
    "title": "lamp",
    "id": "urn:wotpy:lamp",
    "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
    "security": ["nosec_sc"],
    "properties": {
        "brightness": {"type": "integer", "minimum": 0, "maximum": 100, "observable": True},
        "on": {"type": "boolean", "observable": True},
        "status": {"type": "string", "readOnly": True, "observable": True},
    },
    "actions": {"toggle": {"output": {"type": "boolean"}}},
    "events": {"overheat": {"data": {"type": "string"}}},
}


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--coap-port", type=int, required=True)
    parser.add_argument("--catalogue-port", type=int, required=True)
    args = parser.parse_args()

    servient = Servient(hostname=HOST, catalogue_port=args.catalogue_port)
    servient.add_server(HTTPServer(port=args.port))
    servient.add_server(LoopbackCoAPServer(port=args.coap_port))
    wot = await servient.start()
    lamp = wot.produce(json.dumps(TD))
    for name, value in (("brightness", 50), ("on", False), ("status", "ok")):
        await lamp.write_property(name, value)

    async def toggle(parameters):  # type: ignore[no-untyped-def]
        now = not await lamp.read_property("on")
        await lamp.write_property("on", now)
        return now

    lamp.set_action_handler("toggle", toggle)
    lamp.expose()
    print(f"READY http://{HOST}:{args.catalogue_port}/lamp", flush=True)

    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            await asyncio.Event().wait()  # stdin closed: serve until killed
        parts = line.strip().split(" ", 2)
        if len(parts) == 3 and parts[0] == "set":
            await lamp.write_property(parts[1], json.loads(parts[2]))
        elif len(parts) == 3 and parts[0] == "emit":
            lamp.emit_event(parts[1], json.loads(parts[2]))
        print(f"DONE {line.strip()}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
