"""A lane follower: pure pursuit on the route targets of the ego vector, cruise at the speed limit.

It ignores other actors and traffic signals on purpose: it is the demo driver and the lower
reference that an exam must score far below the expert.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planning.base import Agent
from sim_bridge.api import NUM_ROUTE_TARGETS, EgoFeature, Observation


@dataclass
class LaneFollowerConfig:
    """Settings of :class:`LaneFollower`."""

    lookahead: float = 8.0
    """Pure-pursuit lookahead along the route [m]."""
    speed_fraction: float = 0.9
    """Cruise at this fraction of the speed limit."""
    max_lateral_accel: float = 2.5
    """Slow down in curves to keep v²·κ below this [m/s²]."""
    speed_gain: float = 0.5
    """Proportional gain of the speed controller [1/s, normalised accel per m/s]."""


class LaneFollower(Agent):
    """Follows the route at the speed limit; blind to everything else (see module doc)."""

    name = "lane_follower"

    def __init__(self, config: LaneFollowerConfig | None = None) -> None:
        self.config = config or LaneFollowerConfig()

    def _act(self, obs: Observation) -> np.ndarray:
        cfg = self.config
        ego = obs.ego
        idx = [int(EgoFeature.ROUTE_X0) + 2 * k for k in range(NUM_ROUTE_TARGETS)]
        tx = ego[:, idx]
        ty = ego[:, [i + 1 for i in idx]]
        dist = np.hypot(tx, ty)
        # the first target at least `lookahead` away (else the farthest)
        pick = np.argmax(dist >= cfg.lookahead, axis=1)
        pick = np.where((dist >= cfg.lookahead).any(axis=1), pick, NUM_ROUTE_TARGETS - 1)
        rows = np.arange(len(ego))
        x, y = tx[rows, pick], ty[rows, pick]
        ld = np.maximum(np.hypot(x, y), 1.0)
        curvature = 2.0 * y / (ld * ld)  # pure pursuit arc through the target [1/m]
        wheelbase = self.info.ego.wheelbase
        steer = np.arctan(wheelbase * curvature) / self.info.ego.max_steer
        # slow for the sharpest curvature among the targets
        kappa = np.max(np.abs(2.0 * ty / np.maximum(dist, 1.0) ** 2), axis=1)
        limit = ego[:, EgoFeature.SPEED_LIMIT] * cfg.speed_fraction
        v_curve = np.sqrt(cfg.max_lateral_accel / np.maximum(kappa, 1e-3))
        remaining = ego[:, EgoFeature.ROUTE_REMAINING]
        v_stop = np.sqrt(2.0 * 2.0 * np.maximum(remaining - 2.0, 0.0))  # stop at the route's end
        target = np.minimum(np.minimum(limit, v_curve), v_stop)
        accel = cfg.speed_gain * (target - ego[:, EgoFeature.SPEED])
        return np.stack([np.clip(accel, -1.0, 1.0), np.clip(steer, -1.0, 1.0)], axis=1)
