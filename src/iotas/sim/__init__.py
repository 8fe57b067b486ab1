"""The fleet simulator (`iotas simulate`): many simulated devices in one process."""

from iotas.sim.fleet import Fleet, FleetStats
from iotas.sim.plan import SimThing, plan_fleet

__all__ = ["Fleet", "FleetStats", "SimThing", "plan_fleet"]
