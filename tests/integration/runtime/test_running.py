"""`iotas.runtime.running`: adapters start in the table's order and stop in reverse, one that
fails to start is undone with those before it, and a node on SQLite leads every cluster-wide
controller. The table here is of recording adapters; the real table is checked to hold only
adapters that keep the contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from iotas.adapters.base import Adapter, Setup
from iotas.controllers.supervisor import Controllers
from iotas.runtime import running
from iotas.runtime.table import ADAPTERS
from iotas.services.bundle import Services
from iotas.settings import Settings

CLUSTER_WIDE = [
    "invocation-expiry",
    "rollouts",
    "tdd-expiry",
    "telemetry-compaction",
    "telemetry-retention",
    "wot-reconciler",
]


class Recording:
    def __init__(self, name: str, calls: list[str], *, fails: bool = False) -> None:
        self.name = name
        self.calls = calls
        self.fails = fails

    async def start(self) -> None:
        self.calls.append(f"start {self.name}")
        if self.fails:
            raise RuntimeError(f"{self.name} cannot start")

    async def stop(self) -> None:
        self.calls.append(f"stop {self.name}")

    def health(self) -> dict[str, Any]:
        return {"ok": True}


def _setup(name: str, calls: list[str], *, fails: bool = False) -> Setup:
    def setup(services: Services, controllers: Controllers) -> Adapter:
        return Recording(name, calls, fails=fails)

    return setup


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "d", database_url=f"sqlite:///{tmp_path / 'i.db'}")


async def test_adapters_start_in_order_and_stop_in_reverse(tmp_path: Path) -> None:
    calls: list[str] = []
    table = [("a", _setup("a", calls)), ("none", lambda s, c: None), ("b", _setup("b", calls))]
    async with running(_settings(tmp_path), table) as rt:
        assert calls == ["start a", "start b"]
        assert rt.adapters.health() == {"a": {"ok": True}, "b": {"ok": True}}
        assert isinstance(rt.adapters.get(Recording), Recording)
        assert rt.controllers.leading() == CLUSTER_WIDE[:-1]  # no WoT adapter in this table
    assert calls == ["start a", "start b", "stop b", "stop a"]


async def test_an_adapter_that_fails_to_start_is_undone_with_those_before_it(
    tmp_path: Path,
) -> None:
    calls: list[str] = []
    table = [("a", _setup("a", calls)), ("b", _setup("b", calls, fails=True))]
    with pytest.raises(RuntimeError, match="b cannot start"):
        async with running(_settings(tmp_path), table):
            pytest.fail("the node must not run")
    assert calls == ["start a", "start b", "stop b", "stop a"]


async def test_the_real_table_on_sqlite_leads_everything(tmp_path: Path) -> None:
    async with running(_settings(tmp_path)) as rt:
        assert [a.name for a in rt.adapters] == ["wot"]  # no MQTT port: no MQTT adapter
        assert rt.controllers.leading() == CLUSTER_WIDE
    assert [name for name, _ in ADAPTERS] == ["mqtt", "wot"]
