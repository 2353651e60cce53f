"""The ``Agent`` interface: ``reset(info)`` once per episode, ``act(obs) -> actions [B, 2]`` each step.

The public ``act`` is concrete: it checks the agent's output (shape, finiteness, range) so that a
NaN from a model is reported as an :class:`AgentError` naming the agent and the worlds, and never
reaches a simulator. Subclasses implement ``_act``.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any

import numpy as np

from sim_bridge.api import EgoVehicle, Observation


class AgentError(RuntimeError):
    """An agent produced an unusable action (NaN/inf or a wrong shape)."""


@dataclass(frozen=True)
class AgentInfo:
    """What an agent may know at the start of an episode."""

    num_worlds: int
    dt: float
    """Decision period [s]."""
    ego: EgoVehicle
    road_map: Any = None
    """The map (``sim_bridge.maps.RoadMap``); privileged agents only."""


class Agent(abc.ABC):
    """A driver for ``B`` worlds at once."""

    name: str = "agent"

    def reset(self, info: AgentInfo) -> None:
        """Start an episode (override to clear internal state; call super)."""
        self.info = info

    def act(self, obs: Observation) -> np.ndarray:
        """Normalised ``[accel, steer]`` for every world: ``float32 [B, 2]`` in ``[-1, 1]``."""
        out = np.asarray(self._act(obs), dtype=np.float32)
        if out.shape != (obs.num_worlds, 2):
            raise AgentError(f"agent {self.name!r} returned actions of shape {out.shape}; expected ({obs.num_worlds}, 2)")
        finite = np.isfinite(out).all(axis=1)
        if not finite.all():
            raise AgentError(
                f"agent {self.name!r} returned non-finite actions for world(s) {np.flatnonzero(~finite).tolist()}"
            )
        return np.clip(out, -1.0, 1.0)

    @abc.abstractmethod
    def _act(self, obs: Observation) -> np.ndarray: ...
