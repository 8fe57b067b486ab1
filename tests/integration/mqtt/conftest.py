"""Fixtures of the MQTT integration tests: a running iotas on either transport."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.mqtt.mqtt_support import TRANSPORTS, Iotas, Transport, require_mosquitto


@pytest.fixture
def mosquitto() -> None:
    """Use with `pytest.mark.usefixtures`: the test needs the Mosquitto at 127.0.0.1:1883."""
    require_mosquitto()


@pytest.fixture(params=TRANSPORTS)
def iotas(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Iotas]:
    """iotas running in a subprocess, once with the embedded broker and once as a client of
    the Mosquitto at 127.0.0.1:1883."""
    yield from _running(request.param, tmp_path)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Iotas]:
    """iotas running in a subprocess with the embedded broker, shared by a module's tests
    (each uses Things of its own and counts what it changed)."""
    yield from _running("embedded", tmp_path_factory.mktemp("embedded"))


def _running(transport: Transport, tmp_path: Path) -> Iterator[Iotas]:
    if transport == "mosquitto":
        require_mosquitto()
    node = Iotas(transport, tmp_path)
    node.start()
    try:
        yield node
    finally:
        node.stop()
        node.forget_retained()  # on the shared broker
