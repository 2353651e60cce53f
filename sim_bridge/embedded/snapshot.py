"""``SimSnapshot``: everything the future of some worlds of an :class:`EmbeddedSimulator` depends on.

A world's future is not only its state arrays (:class:`WorldState`, which hold the per-world RNG
seeds and step counters): it also depends on the route and its tracked progress (``RouteBatch``),
the previous action, the yaw-rate and acceleration estimates, the ego's lane projection, the BEV
history frames, the background density targets and the route objects. A snapshot copies all of
them for ``M`` worlds, so that :meth:`EmbeddedSimulator.restore` (back into the same worlds) or
:meth:`EmbeddedSimulator.fork` (one world into many, possibly of another simulator on the same
map with the same capacities) replays bit for bit: same actions, same observations and events.

Map objects (``RoadMap``, its arrays, the signal plan) are read-only and shared by reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim_bridge.embedded.map_arrays import MapArrays
from sim_bridge.embedded.state import WorldState
from sim_bridge.maps.road_map import Projection, RoadMap, Route
from sim_bridge.routes import RouteBatch
from sim_bridge.sensors.frame import ActorArrays
from sim_bridge.signals import SignalPlan

__all__ = ["SimSnapshot", "take_actors", "take_projection"]


@dataclass(frozen=True)
class SimSnapshot:
    """A copy of ``M`` worlds of an embedded simulator (see module doc). ``N`` actor slots."""

    worlds: np.ndarray
    """``int64 [M]``: the worlds it was taken from (the default target of ``restore``)."""
    layout: tuple
    """Capacities and rates the state arrays assume; a simulator restores only its own layout."""
    map_key: str
    road_map: RoadMap
    map_arrays: MapArrays
    signals: SignalPlan
    state: WorldState
    """The state arrays of the ``M`` worlds (seeds, step counters, lights, actors)."""
    routes: RouteBatch
    """The ``M`` ego routes with their tracked progress."""
    route_objects: tuple[Route | None, ...]
    history: tuple[ActorArrays, ...]
    """BEV history frames ``[M, N]``, most recent first."""
    projection: Projection | None
    """The ego's lane projection ``[M]`` as of the last step (None before any)."""
    targets: np.ndarray
    """``int64 [M, 2]`` background vehicles and pedestrians kept around the ego."""
    radius: np.ndarray
    """``[M]`` radius of that background traffic [m]."""
    prev_action: np.ndarray
    """``[M, 2]`` the last action applied."""
    yaw_rate: np.ndarray
    """``[M]`` [rad/s]"""
    accel_lon: np.ndarray
    """``[M]`` [m/s²]"""
    progress: np.ndarray
    """``[M]`` route progress [m]."""

    @property
    def num_worlds(self) -> int:
        return len(self.worlds)

    def row(self, world: int) -> int:
        """The row holding world ``world`` (raises if the snapshot did not take it)."""
        hits = np.flatnonzero(self.worlds == world)
        if len(hits) == 0:
            raise ValueError(
                f"world {world} is not in this snapshot (it holds worlds {self.worlds.tolist()})"
            )
        return int(hits[0])


def take_actors(frame: ActorArrays, worlds: np.ndarray) -> ActorArrays:
    """A copy of ``worlds``' rows of ``frame``."""
    return ActorArrays(*(getattr(frame, name)[worlds] for name in ActorArrays.__dataclass_fields__))


def put_actors(frame: ActorArrays, source: ActorArrays, rows: np.ndarray, worlds: np.ndarray) -> None:
    """Overwrite ``worlds`` of ``frame`` with ``source``'s ``rows`` (in place)."""
    for name in ActorArrays.__dataclass_fields__:
        getattr(frame, name)[worlds] = getattr(source, name)[rows]


def take_projection(projection: Projection, worlds: np.ndarray) -> Projection:
    """A copy of ``worlds``' entries of ``projection``."""
    return Projection(*(getattr(projection, name)[worlds] for name in Projection.__dataclass_fields__))


def put_projection(projection: Projection, source: Projection, rows: np.ndarray, worlds: np.ndarray) -> None:
    """Overwrite ``worlds`` of ``projection`` with ``source``'s ``rows`` (in place)."""
    for name in Projection.__dataclass_fields__:
        getattr(projection, name)[worlds] = getattr(source, name)[rows]
