"""The simulated fleet's Things and roles."""

from __future__ import annotations

from collections import Counter

import pytest

from iotas.domain.ids import THING_ID_RE
from iotas.sim.plan import plan_fleet


def test_ids_kinds_and_mix() -> None:
    fleet = plan_fleet(1000, namespace="plant")
    assert fleet[0].id == "plant:sensor-00001"
    assert fleet[1].id == "plant:pump-00002"
    assert len({t.id for t in fleet}) == 1000
    assert all(THING_ID_RE.match(t.id) for t in fleet)
    assert Counter(t.kind for t in fleet) == {"sensor": 600, "pump": 300, "gateway": 100}
    for thing in fleet:
        assert set(thing.attributes) == {"site", "model", "floor", "simulated"}
        assert thing.labels == {"tier": "core" if thing.kind == "gateway" else "edge"}
    assert len({t.attributes["site"] for t in fleet}) == 4  # about 250 devices a site


def test_roles_come_in_exact_shares() -> None:
    fleet = plan_fleet(200, transmit_only_share=0.1, flaky_share=0.05, seed=1)
    assert sum(t.transmit_only for t in fleet) == 20
    assert sum(t.flaky for t in fleet) == 10
    quiet = plan_fleet(50, transmit_only_share=0, flaky_share=0)
    assert not any(t.flaky or t.transmit_only for t in quiet)


def test_the_same_seed_gives_the_same_fleet_and_things_never_depend_on_it() -> None:
    a, b = plan_fleet(300, seed=5), plan_fleet(300, seed=5)
    assert a == b
    other = plan_fleet(300, seed=6)
    assert [t.transmit_only for t in other] != [t.transmit_only for t in a]
    # A rerun, with any seed or a bigger fleet, finds the Things it created before.
    bigger = plan_fleet(400, seed=6)
    assert [(t.id, t.kind) for t in bigger[:300]] == [(t.id, t.kind) for t in a]
    assert [t.attributes["model"] for t in other] == [t.attributes["model"] for t in a]


@pytest.mark.parametrize(("devices", "share"), [(0, 0.1), (10, 1.5), (10, -0.1)])
def test_bad_sizes_and_shares(devices: int, share: float) -> None:
    with pytest.raises(ValueError):
        plan_fleet(devices, flaky_share=share)
