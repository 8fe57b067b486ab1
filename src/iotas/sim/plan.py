"""Which Things a simulated fleet has and how each behaves. Pure: no I/O.

Ids, kinds and attributes depend only on the namespace and the device's index, so running the
simulator again (with any seed, or more devices) finds the Things it created before. Roles
(transmit-only, flaky) are runtime behaviour, drawn from the seed, and not stored.
"""

from __future__ import annotations

import random
import zlib
from dataclasses import dataclass
from typing import Any

# Out of every 10 devices: 6 sensors, 3 pumps, 1 gateway, interleaved so any prefix of the
# fleet has the same mix.
KIND_CYCLE = (
    "sensor",
    "pump",
    "sensor",
    "sensor",
    "pump",
    "sensor",
    "gateway",
    "sensor",
    "pump",
    "sensor",
)
MODELS = {"sensor": ("TH-100", "TH-210"), "pump": ("P-300", "P-550"), "gateway": ("EG-400",)}
FIRMWARE = {"sensor": "1.4.2", "pump": "2.0.4", "gateway": "3.2.1"}
DEVICES_PER_SITE = 250


@dataclass(frozen=True, slots=True)
class SimThing:
    id: str
    kind: str
    attributes: dict[str, Any]
    labels: dict[str, str]
    transmit_only: bool = False
    flaky: bool = False

    @property
    def firmware(self) -> str:
        return FIRMWARE[self.kind]


def thing_at(index: int, namespace: str, devices: int) -> SimThing:
    """The Thing at `index` (0-based) of a fleet, without roles."""
    kind = KIND_CYCLE[index % len(KIND_CYCLE)]
    # Attributes from a per-index generator: stable across runs and seeds.
    rng = random.Random(zlib.crc32(f"{namespace}:{index}".encode()))
    sites = max(1, -(-devices // DEVICES_PER_SITE))
    attributes: dict[str, Any] = {
        "site": f"site-{rng.randrange(sites) + 1}",
        "model": rng.choice(MODELS[kind]),
        "floor": rng.randint(0, 4),
        "simulated": True,
    }
    tier = "core" if kind == "gateway" else "edge"
    return SimThing(f"{namespace}:{kind}-{index + 1:05d}", kind, attributes, {"tier": tier})


def pick(count: int, share: float, rng: random.Random) -> set[int]:
    """`round(count * share)` distinct indices out of `range(count)`."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"a share is between 0 and 1, not {share}")
    return set(rng.sample(range(count), round(count * share)))


def plan_fleet(
    devices: int,
    *,
    namespace: str = "sim",
    seed: int | None = None,
    transmit_only_share: float = 0.1,
    flaky_share: float = 0.05,
) -> list[SimThing]:
    """The fleet's Things with their roles: exactly `round(devices * share)` of each role,
    drawn independently (a device can be both)."""
    if devices < 1:
        raise ValueError("a fleet has at least one device")
    rng = random.Random(seed)
    transmit_only = pick(devices, transmit_only_share, rng)
    flaky = pick(devices, flaky_share, rng)
    fleet = []
    for index in range(devices):
        thing = thing_at(index, namespace, devices)
        fleet.append(
            SimThing(
                thing.id,
                thing.kind,
                thing.attributes,
                thing.labels,
                transmit_only=index in transmit_only,
                flaky=index in flaky,
            )
        )
    return fleet
