"""What a backend hands the shared sensors each decision step: actor boxes, light states, routes.

Every backend (embedded, CARLA) fills a :class:`SensorFrame` from its own state; the sensors turn it
into the :class:`~sim_bridge.api.Observation` identically for all. Arrays are batched over ``B``
worlds and ``N`` actor slots; slot 0 of every world is the ego.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ActorArrays:
    """Actor boxes in the map frame, ``[B, N]`` each. Slot 0 is the ego.

    ``x, y`` box centre [m]; ``yaw`` [rad]; ``speed`` along ``yaw`` [m/s]; ``length, width`` [m];
    ``kind`` ``int8`` :class:`~sim_bridge.api.ActorKind`; ``active`` ``bool`` (inactive slots are
    ignored everywhere); ``ids`` ``int32`` stable actor ids within the world.
    """

    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray
    speed: np.ndarray
    length: np.ndarray
    width: np.ndarray
    kind: np.ndarray
    active: np.ndarray
    ids: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return self.x.shape

    def copy(self) -> ActorArrays:
        return ActorArrays(*(np.array(getattr(self, f), copy=True) for f in self.__dataclass_fields__))


@dataclass(frozen=True)
class EgoKinematics:
    """Ego motion the backend measures, ``[B]`` each (``prev_action`` ``[B, 2]``)."""

    accel_lon: np.ndarray
    """[m/s²]"""
    accel_lat: np.ndarray
    """[m/s²]"""
    yaw_rate: np.ndarray
    """[rad/s]"""
    prev_action: np.ndarray
    """The last normalised ``[accel, steer]`` applied."""


@dataclass(frozen=True)
class SensorFrame:
    """One decision step's input to the sensors.

    - ``actors``: current boxes; ``history``: earlier boxes, most recent first, 0.5 s apart (as many
      as the BEV geometry's ``history``; shorter at episode start, the oldest then repeats).
    - ``light_state``: ``int8 [B, K]`` :class:`~sim_bridge.api.LightState` of each stop line of the
      map (entries of stop-sign lines are ignored).
    - ``ego``: measured ego motion.
    """

    actors: ActorArrays
    history: tuple[ActorArrays, ...]
    light_state: np.ndarray
    ego: EgoKinematics
