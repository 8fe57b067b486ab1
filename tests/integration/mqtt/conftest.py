"""Fixtures of the MQTT integration tests: a running iotas on either transport."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.mqtt.mqtt_support import (
    TRANSPORTS,
    Iotas,
    Transport,
    forget_tests_retained,
    require_mosquitto,
)


@pytest.fixture(scope="session", autouse=True)
def shared_broker_left_clean() -> Iterator[None]:
    """The shared Mosquitto holds no retained message of a test namespace when these tests
    start or end (see `forget_tests_retained`): tests that make Things without the `Iotas`
    fixture, and runs that were killed, leave their devices' presence behind."""
    forget_tests_retained()
    yield
    forget_tests_retained()


@pytest.fixture
def mosquitto() -> None:
    """Use with `pytest.mark.usefixtures`: the test needs the Mosquitto at 127.0.0.1:1883."""
    require_mosquitto()


@pytest.fixture(
    params=[
        "embedded",
        "mosquitto",
        pytest.param("mosquitto-postgresql", marks=[pytest.mark.mosquitto, pytest.mark.postgres]),
    ]
)
def iotas(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Iotas]:
    """iotas running in a subprocess: with the embedded broker on SQLite (embedded mode), and
    as a client of the Mosquitto at 127.0.0.1:1883 on SQLite and on PostgreSQL (production
    mode). A test may ask for some of them: `parametrize("iotas", ["embedded"], indirect=True)`.
    """
    transport, _, backend = str(request.param).partition("-")
    database_url = request.getfixturevalue("pg_database") if backend == "postgresql" else None
    yield from _running(_transport(transport), tmp_path, database_url)


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Iotas]:
    """iotas running in a subprocess with the embedded broker, shared by a module's tests
    (each uses Things of its own and counts what it changed)."""
    yield from _running("embedded", tmp_path_factory.mktemp("embedded"))


def _transport(name: str) -> Transport:
    assert name in TRANSPORTS, name
    return "embedded" if name == "embedded" else "mosquitto"


def _running(
    transport: Transport, tmp_path: Path, database_url: str | None = None
) -> Iterator[Iotas]:
    if transport == "mosquitto":
        require_mosquitto()
    node = Iotas(transport, tmp_path)
    if database_url is not None:
        node.settings["database_url"] = database_url
    node.start()
    try:
        yield node
    finally:
        node.stop()
        node.forget_retained()  # on the shared broker
