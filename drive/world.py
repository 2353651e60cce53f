"""The ``world`` config group: which map and how much traffic, turned into a ``WorldSpec``."""

from __future__ import annotations

from dataclasses import dataclass, field

from sim_bridge.api import MapRef, SignalTiming, WorldSpec


@dataclass
class WorldConfig:
    """A world without scripted actors: a map, traffic densities, a random route."""

    town: str = "grid"
    """Procedural town (grid, highway, straight, cross, tee); ignored when ``xodr`` is set."""
    map_seed: int = field(default=0, metadata={"min": 0})
    """Seed of the procedural town."""
    xodr: str | None = None
    """Path to an OpenDRIVE file to drive on instead of a procedural town."""
    vehicles: int = field(default=20, metadata={"min": 0})
    """Background vehicles around the ego."""
    pedestrians: int = field(default=10, metadata={"min": 0})
    """Background pedestrians around the ego."""
    traffic_radius: float = field(default=120.0, metadata={"gt": 0})
    """Background actors live within this distance of the ego [m]."""
    route_length: float = field(default=300.0, metadata={"gt": 0})
    """Length of the ego's random route [m]."""
    green: float = field(default=10.0, metadata={"gt": 0})
    """Traffic-light green time per phase [s]."""
    yellow: float = field(default=3.0, metadata={"min": 0})
    """Yellow time [s]."""
    all_red: float = field(default=1.0, metadata={"min": 0})
    """All-red clearance [s]."""

    def to_spec(self) -> WorldSpec:
        return WorldSpec(
            map=MapRef(town=self.town, seed=self.map_seed, xodr=self.xodr),
            vehicles=self.vehicles,
            pedestrians=self.pedestrians,
            traffic_radius=self.traffic_radius,
            route_length=self.route_length,
            signals=SignalTiming(green=self.green, yellow=self.yellow, all_red=self.all_red),
        )
