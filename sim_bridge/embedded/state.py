"""The embedded simulator's state: packed structure-of-arrays over worlds and actor slots.

Actor slots per world: ``[0, NV)`` vehicles (slot 0 is the ego), ``[NV, NV + NP)`` pedestrians,
``[NV + NP, N)`` static obstacles. Per-actor fields live in two field-major tables, ``F``
(``float64 [NUM_FLOAT, B, N]``) and ``I`` (``int64 [NUM_INT, B, N]``), indexed with the constants
of :mod:`sim_bridge.embedded.fields`; Python reads them through named views (``state.x`` is
``F[X]``, a ``[B, N]`` array). Kernels take the tables themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from sim_bridge.api import ActorKind
from sim_bridge.embedded import fields as f

#: lanes a vehicle plans ahead (its current lane is ``plan[..., 0]``)
PLAN_LEN = 16

# pedestrian modes (DOWN: knocked down by a vehicle, lies still; see ``contact``)
WALK_SIDEWALK, WALK_FREE, STAND, DOWN = 0, 1, 2, 3

_FLOAT_INDEX = {name: i for i, name in enumerate(f.FLOAT_NAMES)}
_INT_INDEX = {name: i for i, name in enumerate(f.INT_NAMES)}
#: fields whose worlds are on axis 1 (the field-major tables); every other array has them on axis 0
_WORLD_AXIS_1 = ("F", "I", "W")


@dataclass
class WorldState:
    """All mutable simulator state (arrays modified in place). Allocate with :meth:`allocate`."""

    F: np.ndarray
    """``float64 [NUM_FLOAT, B, N]`` per-actor floats."""
    I: np.ndarray
    """``int64 [NUM_INT, B, N]`` per-actor ints (booleans as 0/1)."""
    plan: np.ndarray
    """``int64 [B, NV, PLAN_LEN]`` lanes ahead of each vehicle, ``plan[..., 0]`` its lane."""
    W: np.ndarray
    """``int64 [NUM_WORLD_INT, B]`` per-world counters."""
    seed: np.ndarray
    """``uint64 [B]`` world seeds."""
    time: np.ndarray
    """``float64 [B]`` simulated time [s]."""
    light: np.ndarray
    """``int8 [B, K]`` state of each stop line (LightState)."""
    stop_ok: np.ndarray
    """``bool [B, K]`` the ego has stopped within 4 m before this stop line."""
    sig_timing: np.ndarray
    """``float64 [B, 3]`` green, yellow, all-red [s]."""
    signal_offset: np.ndarray
    """``float64 [B, S]`` start offset of each signal's junction cycle [s]."""
    frozen_light: np.ndarray
    """``int8 [B, S]`` LightState frozen by the spec, -1 = cycle."""
    num_vehicles: int
    num_pedestrians: int
    num_statics: int

    def __getattr__(self, name: str) -> np.ndarray:
        # named [B, N] views of the actor tables (only called for names not found normally)
        if name in _FLOAT_INDEX:
            return self.F[_FLOAT_INDEX[name]]
        if name in _INT_INDEX:
            return self.I[_INT_INDEX[name]]
        raise AttributeError(name)

    @property
    def num_worlds(self) -> int:
        return int(self.F.shape[1])

    @classmethod
    def allocate(cls, B: int, NV: int, NP: int, NS: int, num_signals: int, num_stop_lines: int) -> WorldState:
        """Zeroed state, every slot inactive, kinds set by slot range."""
        N = NV + NP + NS
        F = np.zeros((f.NUM_FLOAT, B, N))
        I = np.zeros((f.NUM_INT, B, N), dtype=np.int64)
        I[f.KIND, :, :NV] = ActorKind.VEHICLE
        I[f.KIND, :, NV : NV + NP] = ActorKind.PEDESTRIAN
        I[f.KIND, :, NV + NP :] = ActorKind.STATIC
        for col in (f.LANE, f.LANE_PREV, f.P_TARGET_LANE):
            I[col] = -1
        F[f.WHEELBASE] = 2.8
        F[f.LENGTH] = 1.0
        F[f.WIDTH] = 1.0
        return cls(
            F=F,
            I=I,
            plan=np.full((B, NV, PLAN_LEN), -1, dtype=np.int64),
            W=np.zeros((f.NUM_WORLD_INT, B), dtype=np.int64),
            seed=np.zeros(B, dtype=np.uint64),
            time=np.zeros(B),
            light=np.zeros((B, num_stop_lines), dtype=np.int8),
            stop_ok=np.zeros((B, num_stop_lines), dtype=bool),
            sig_timing=np.zeros((B, 3)),
            signal_offset=np.zeros((B, num_signals)),
            frozen_light=np.full((B, num_signals), -1, dtype=np.int8),
            num_vehicles=NV,
            num_pedestrians=NP,
            num_statics=NS,
        )

    def _arrays(self) -> dict[str, np.ndarray]:
        return {
            fd.name: getattr(self, fd.name)
            for fd in fields(self)
            if isinstance(getattr(self, fd.name), np.ndarray)
        }

    def clear_worlds(self, worlds: np.ndarray) -> None:
        """Reset every field of ``worlds`` to its allocated value (slots inactive)."""
        fresh = WorldState.allocate(
            len(worlds), self.num_vehicles, self.num_pedestrians, self.num_statics,
            self.signal_offset.shape[1], self.light.shape[1],
        )  # fmt: skip
        for name, arr in self._arrays().items():
            axis = 1 if name in _WORLD_AXIS_1 else 0
            idx = (slice(None), worlds) if axis == 1 else (worlds,)
            arr[idx] = getattr(fresh, name)

    def take(self, worlds: np.ndarray) -> WorldState:
        """A copy of ``worlds``' state (a ``len(worlds)``-world state)."""
        worlds = np.asarray(worlds, dtype=np.int64)  # fancy indexing: every array below is a copy
        arrays = {
            name: arr[:, worlds] if name in _WORLD_AXIS_1 else arr[worlds]
            for name, arr in self._arrays().items()
        }
        return WorldState(
            **arrays,
            num_vehicles=self.num_vehicles,
            num_pedestrians=self.num_pedestrians,
            num_statics=self.num_statics,
        )

    def put(self, source: WorldState, rows: np.ndarray, worlds: np.ndarray) -> None:
        """Overwrite ``worlds`` with ``source``'s worlds ``rows`` (in place; ``rows`` has one entry,
        copied into every world, or one per world). Both states must share capacities and map."""
        for name, arr in self._arrays().items():
            src = getattr(source, name)
            axis = 1 if name in _WORLD_AXIS_1 else 0
            if src.shape[:axis] + src.shape[axis + 1 :] != arr.shape[:axis] + arr.shape[axis + 1 :]:
                raise ValueError(
                    f"state field {name!r} is {src.shape} in the source and {arr.shape} here: the two "
                    "simulators differ in actor capacities or map (give them the same sim settings)"
                )
            if name in _WORLD_AXIS_1:
                arr[:, worlds] = src[:, rows]
            else:
                arr[worlds] = src[rows]

    def snapshot(self) -> dict[str, np.ndarray]:
        """A copy of every array (for determinism checks and replays)."""
        return {name: arr.copy() for name, arr in self._arrays().items()}
