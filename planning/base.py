"""The ``Agent`` interface: ``reset(info)`` once per episode, ``act(obs) -> actions [B, 2]`` each step,
``seed(worlds, seeds)`` before a reset for agents that draw at random.

The public ``act`` is concrete: it checks the agent's output (shape, finiteness, range) so that a
NaN from a model is reported as an :class:`AgentError` naming the agent and the worlds, and never
reaches a simulator. Subclasses implement ``_act``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
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
    routes: tuple[Any, ...] = ()
    """Each world's ego route (``sim_bridge.maps.Route``); privileged agents only."""
    simulator: Any = None
    """The live simulator of these worlds, for the oracle planner, which forks it to roll its
    candidate sequences out (``planning.oracle``: an ``EmbeddedSimulator``); the closed-loop runner
    passes it, and no other agent may read it."""


class Agent(abc.ABC):
    """A driver for ``B`` worlds at once."""

    name: str = "agent"
    info: AgentInfo

    def reset(self, info: AgentInfo, worlds: Sequence[int] | None = None) -> None:
        """Start episodes: all worlds, or only ``worlds`` (the others go on). ``info`` describes
        every world (routes of the restarted ones updated). Override ``_reset`` for state."""
        self.info = info
        self._reset(list(range(info.num_worlds)) if worlds is None else [int(w) for w in worlds])

    def _reset(self, worlds: list[int]) -> None:
        """Clear per-world state of ``worlds`` (default: nothing to clear)."""

    def seed(self, worlds: Sequence[int], seeds: Sequence[int]) -> None:
        """Seed the randomness of ``worlds`` for their next episode (call it before the ``reset``
        that starts them, e.g. with the episodes' seeds, so that an episode replays from its seed).
        Default: nothing (a deterministic agent)."""
        if len(worlds) != len(seeds):
            raise ValueError(f"seed got {len(worlds)} worlds and {len(seeds)} seeds")

    def episode_stats(self, world: int) -> dict[str, float]:
        """What the agent reports about ``world``'s episode so far, for the pipeline to record
        (e.g. the planner's mean cost per term and its shield overrides). Default: nothing."""
        return {}

    def act(self, obs: Observation) -> np.ndarray:
        """Normalised ``[accel, steer]`` for every world: ``float32 [B, 2]`` in ``[-1, 1]``."""
        out = np.asarray(self._act(obs), dtype=np.float32)
        if out.shape != (obs.num_worlds, 2):
            raise AgentError(
                f"agent {self.name!r} returned actions of shape {out.shape}; expected ({obs.num_worlds}, 2)"
            )
        finite = np.isfinite(out).all(axis=1)
        if not finite.all():
            raise AgentError(
                f"agent {self.name!r} returned non-finite actions for world(s) {np.flatnonzero(~finite).tolist()}"
            )
        return np.clip(out, -1.0, 1.0)

    @abc.abstractmethod
    def _act(self, obs: Observation) -> np.ndarray: ...
