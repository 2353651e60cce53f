"""Hazard moments: the states of a collection episode worth forking into counterfactual branches.

A world is at a hazard moment when its observation shows one of the :data:`TRIGGERS` (each named in
``branches.triggers``, thresholds in :class:`HazardConfig`):

- ``close_ahead``: an actor's box reaches into the ego's forward corridor with a free gap of less
  than ``ahead`` [m] (``world_model.proximity.gap_ahead``: the gap the model's proximity head
  learns);
- ``pedestrian``: a pedestrian's centre within ``pedestrian`` [m] ahead of the ego's centre (and no
  more than 2 m behind it) and ``pedestrian_lateral`` [m] to either side: near the ego's path;
- ``ttc``: a collision within ``ttc`` [s] if the ego and the actors ahead keep their velocities
  (``scenarios.criteria.ttc_of_rows``: nuPlan's time-to-collision, checked at 0.1 s up to 3 s);
- ``stop_line``: the next stop line on the route (a red or yellow light, or a stop sign) within
  ``stop_line`` [m] while the ego moves faster than ``standstill_speed``;
- ``standstill``: the ego slower than ``standstill_speed`` [m/s] (what braking and accelerating do
  from rest is what a 1 h model gets wrong: it predicts metres of motion under full braking).

Only the observation is read (the ego vector and the object list), never the simulator, so the rule
works for any backend's data. Vectorised over worlds and objects.

Letters: ``B`` worlds, ``N`` listed objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from scenarios.criteria import STOPPED_SPEED, TTC_HORIZON, ttc_of_rows
from sim_bridge.api import EgoFeature, Observation
from sim_bridge.api import ObjectFeature as OF
from world_model.proximity import EGO_HALF_LENGTH, EGO_HALF_WIDTH, gap_ahead

#: the hazard kinds, in the order of :func:`hazard_flags`' columns
TRIGGERS = ("close_ahead", "pedestrian", "ttc", "stop_line", "standstill")


@dataclass
class HazardConfig:
    """Thresholds of the hazard moments (``branches.hazards.*``; see :mod:`drive.pipelines.hazards`)."""

    ahead: float = field(default=8.0, metadata={"min": 0})
    """``close_ahead``: free gap in the ego's corridor below this [m] (a few car lengths: at
    10 m/s the ego needs ~6 m to stop at full braking)."""
    pedestrian: float = field(default=12.0, metadata={"min": 0})
    """``pedestrian``: a walker within this distance ahead of the ego's centre [m]."""
    pedestrian_lateral: float = field(default=4.0, metadata={"min": 0})
    """… and within this distance to either side [m] (the ego's lane and the kerb beside it)."""
    ttc: float = field(default=2.0, metadata={"gt": 0, "max": TTC_HORIZON})
    """``ttc``: time to collision below this [s] (at most 3: the horizon of the TTC check)."""
    stop_line: float = field(default=15.0, metadata={"min": 0})
    """``stop_line``: a red or yellow light's or a stop sign's line this close on the route [m]."""
    standstill_speed: float = field(default=0.5, metadata={"min": 0})
    """``standstill``: the ego slower than this [m/s]; ``stop_line`` needs it faster."""


def hazard_flags(obs: Observation, cfg: HazardConfig) -> np.ndarray:
    """``bool [B, len(TRIGGERS)]``: which hazard of :data:`TRIGGERS` each world's observation shows."""
    if not 0.0 < cfg.ttc <= TTC_HORIZON:
        raise ValueError(f"hazards.ttc={cfg.ttc}: must lie in (0, {TTC_HORIZON}] s (the TTC check's horizon)")
    ego, objects, mask = obs.ego, obs.objects, obs.objects_mask
    B = ego.shape[0]
    speed = ego[:, EgoFeature.SPEED].astype(np.float64)
    out = np.zeros((B, len(TRIGGERS)), dtype=bool)

    # --- an actor close ahead in the corridor
    out[:, 0] = gap_ahead(objects, mask) < cfg.ahead

    # --- a pedestrian near the path ahead
    x, y = objects[..., OF.X], objects[..., OF.Y]
    walker = mask & (objects[..., OF.IS_PEDESTRIAN] > 0.5)
    near = walker & (x > -2.0) & (x < cfg.pedestrian) & (np.abs(y) < cfg.pedestrian_lateral)
    out[:, 1] = near.any(axis=1)

    # --- time to collision with an actor ahead (nuPlan's candidates: centre ahead, ego moving)
    ahead = mask & (x > 0.0) & (speed[:, None] >= STOPPED_SPEED)
    world, row = np.nonzero(ahead)
    if len(world):
        ttc = ttc_of_rows(speed[world], 2.0 * EGO_HALF_LENGTH, 2.0 * EGO_HALF_WIDTH, objects[world, row])
        soon = np.zeros(B, dtype=bool)
        np.logical_or.at(soon, world, ttc < cfg.ttc)
        out[:, 2] = soon

    # --- a stop line close ahead (red or yellow light, stop sign)
    stop = (ego[:, EgoFeature.STOP_IS_RED] > 0.5) | (ego[:, EgoFeature.STOP_IS_SIGN] > 0.5)
    moving = speed >= cfg.standstill_speed
    out[:, 3] = stop & moving & (ego[:, EgoFeature.STOP_DISTANCE] < cfg.stop_line)

    # --- at a standstill
    out[:, 4] = ~moving
    return out


def at_hazard(obs: Observation, cfg: HazardConfig, triggers: tuple[str, ...] | list[str]) -> np.ndarray:
    """``bool [B]``: the worlds at one of the hazard moments named in ``triggers``."""
    unknown = [t for t in triggers if t not in TRIGGERS]
    if unknown:
        raise ValueError(f"unknown hazard triggers {unknown}; choose among {', '.join(TRIGGERS)}")
    columns = [TRIGGERS.index(t) for t in triggers]
    return np.asarray(hazard_flags(obs, cfg)[:, columns].any(axis=1), dtype=bool)
