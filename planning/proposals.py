"""Prior action sequences for the optimiser, from the ego vector alone (no privileged knowledge).

Like PDM-Closed's proposals: follow the route at several target speeds and lateral offsets. Each
proposal is a pure-pursuit controller on the ego vector's route targets, shifted sideways by an
offset, with a P controller towards a fraction of the speed limit (capped in curves), run in
closed loop on a kinematic bicycle in the ego frame for ``H`` steps; the sequence of its
normalised ``[accel, steer]`` commands is the proposal. The speed controller brakes at most
``max_brake`` (the fraction 0 proposals stop comfortably); a full-brake sequence is added for
emergencies. The optimiser scores them beside its samples, so a
good prior is never lost to sampling noise.

Letters: ``B`` worlds, ``P`` proposals, ``R`` route targets, ``H`` horizon.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from planning.kinematics import bicycle_step
from planning.route_geometry import polyline_distance
from sim_bridge.api import NUM_ROUTE_TARGETS, EgoFeature, EgoVehicle

ROUTE_X = [int(EgoFeature.ROUTE_X0) + 2 * k for k in range(NUM_ROUTE_TARGETS)]
ROUTE_Y = [x + 1 for x in ROUTE_X]
#: how far the last route target is extended along the route's last direction [m]
EXTENSION = 40.0


@dataclass
class ProposalConfig:
    """Settings of :func:`route_proposals` (``agent.proposals.*``)."""

    speed_fractions: list[float] = field(default_factory=lambda: [0.0, 0.3, 0.6, 0.8, 1.0])
    """Target speeds as fractions of the speed limit (0: come to a stop)."""
    lateral_offsets: list[float] = field(default_factory=lambda: [-1.0, 0.0, 1.0])
    """Offsets of the followed path from the route, + left [m]."""
    hold_offset: bool = True
    """Also follow the route at the ego's own lateral offset from it, at every speed fraction: the
    lane it is in, when that is not the route's (passing a parked car in the next lane, the route
    still in the blocked one). Without it a planner standing beside an obstacle mid-pass only had
    proposals steering back into it and samples around "stay stopped" (measured on the exam's
    ``parked_obstacle``, with the obstacle handled by ``geometry.statics=bev``)."""
    full_brake: bool = True
    """Add a sequence of full braking, straight ahead."""
    lookahead: float = 5.0
    """Minimum pure-pursuit lookahead [m] …"""
    lookahead_time: float = 0.8
    """… growing with speed: ``max(lookahead, lookahead_time · v)`` [s]."""
    speed_gain: float = 0.5
    """P gain of the speed controller [normalised accel per m/s]."""
    max_brake: float = 0.5
    """Deepest braking of the speed controller [normalised]: 0.5 is 4 m/s² on the default ego."""
    max_lateral_accel: float = 2.5
    """Cap of the target speed in curves: ``v² · κ`` below this [m/s²]."""

    @property
    def count(self) -> int:
        """``P``, the number of proposals."""
        offsets = len(self.lateral_offsets) + int(self.hold_offset)
        return len(self.speed_fractions) * offsets + int(self.full_brake)


def pursuit_steer(tx: np.ndarray, ty: np.ndarray, lookahead: np.ndarray, vehicle: EgoVehicle) -> np.ndarray:
    """Normalised steer of pure pursuit on targets ``tx, ty [..., R]`` in the vehicle frame: the
    first target at least ``lookahead [...]`` away (else the farthest) defines the arc
    ``κ = 2 y / d²`` and the wheel angle ``atan(L κ)`` over ``max_steer``."""
    dist = np.hypot(tx, ty)
    far = (dist >= lookahead[..., None]) & (tx > 0.0)
    pick = np.where(far.any(axis=-1), np.argmax(far, axis=-1), tx.shape[-1] - 1)
    x = np.take_along_axis(tx, pick[..., None], axis=-1)[..., 0]
    y = np.take_along_axis(ty, pick[..., None], axis=-1)[..., 0]
    d2 = np.maximum(x * x + y * y, 1.0)
    curvature = 2.0 * y / d2
    return np.clip(np.arctan(vehicle.wheelbase * curvature) / vehicle.max_steer, -1.0, 1.0)


def route_curvature(route: np.ndarray) -> np.ndarray:
    """Largest curvature of the circle through the origin and each target ``[B, R, 2]`` → ``[B]``
    [1/m] (the curve-speed cap of :class:`planning.lane_follower.LaneFollower`)."""
    d = np.maximum(np.hypot(route[..., 0], route[..., 1]), 1.0)
    return np.max(np.abs(2.0 * route[..., 1] / d**2), axis=-1)


def lateral_offset(route: np.ndarray) -> np.ndarray:
    """``[B]`` signed distance of the ego (the origin) from the route targets' polyline ``[B, R, 2]``,
    + left [m]: the distance to the polyline, signed by the side of the first segment (extended
    backwards: the targets start a few metres ahead) the ego is on."""
    dist = polyline_distance(np.zeros((route.shape[0], 1, 2), dtype=np.float32), route)[:, 0]
    a = route[:, 0]
    d = route[:, 1] - a if route.shape[1] > 1 else a
    side = d[:, 0] * (0.0 - a[:, 1]) - d[:, 1] * (0.0 - a[:, 0])  # cross(d, origin - a)
    return np.where(side >= 0.0, 1.0, -1.0) * dist


def offset_paths(route: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The route targets ``[B, R, 2]`` shifted by each lateral offset ``[O]`` (or per world
    ``[B, O]``) along the route's normal (+ left), with one extra point :data:`EXTENSION` m beyond
    the last target → ``[B, O, R + 1, 2]``."""
    ahead = np.diff(route, axis=1)  # [B, R-1, 2]
    seg = np.concatenate([route[:, :1], ahead], axis=1)  # the first target's direction: from the ego
    norm = np.linalg.norm(seg, axis=-1, keepdims=True)
    unit = np.where(norm > 1e-3, seg / np.maximum(norm, 1e-3), 0.0)
    # a degenerate step (targets clamped at the route's end) keeps the direction before it
    for k in range(1, unit.shape[1]):
        stale = norm[:, k, 0] <= 1e-3
        unit[stale, k] = unit[stale, k - 1]
    unit[np.linalg.norm(unit, axis=-1) < 0.5] = (1.0, 0.0)
    extended = np.concatenate([route, route[:, -1:] + EXTENSION * unit[:, -1:]], axis=1)
    unit = np.concatenate([unit, unit[:, -1:]], axis=1)
    normal = np.stack([-unit[..., 1], unit[..., 0]], axis=-1)  # [B, R+1, 2]
    per_world = np.broadcast_to(offsets, (route.shape[0], offsets.shape[-1]))
    return extended[:, None] + per_world[:, :, None, None] * normal[:, None]


def route_proposals(
    ego: np.ndarray, vehicle: EgoVehicle, dt: float, horizon: int, config: ProposalConfig
) -> np.ndarray:
    """``float32 [B, P, H, 2]`` proposals for every world from ``ego [B, E]`` (see the module doc).
    Order: for each speed fraction, each lateral offset (then the ego's own, ``hold_offset``);
    then the full brake."""
    cfg = config
    ego = np.asarray(ego, dtype=np.float64)
    B = ego.shape[0]
    route = np.stack([ego[:, ROUTE_X], ego[:, ROUTE_Y]], axis=-1)  # [B, R, 2]
    fractions = np.asarray(cfg.speed_fractions, dtype=np.float64)
    offsets = np.broadcast_to(
        np.asarray(cfg.lateral_offsets, dtype=np.float64), (B, len(cfg.lateral_offsets))
    )
    if cfg.hold_offset:
        offsets = np.concatenate([offsets, lateral_offset(route)[:, None]], axis=1)
    F, O = len(fractions), offsets.shape[1]
    paths = offset_paths(route, offsets)  # [B, O, R+1, 2]
    paths = np.broadcast_to(paths[:, None], (B, F, O, *paths.shape[2:])).reshape(B, F * O, -1, 2)
    limit = ego[:, EgoFeature.SPEED_LIMIT]
    v_curve = np.sqrt(cfg.max_lateral_accel / np.maximum(route_curvature(route), 1e-3))
    remaining = ego[:, EgoFeature.ROUTE_REMAINING]
    v_end = np.sqrt(2.0 * 2.0 * np.maximum(remaining - 2.0, 0.0))  # stop at the route's end
    cap = np.minimum(v_curve, v_end)[:, None]  # [B, 1]
    target = np.minimum(fractions[None, :] * limit[:, None], cap)  # [B, F]
    target = np.repeat(target, O, axis=1)  # [B, F·O]
    x = np.zeros((B, F * O))
    y = np.zeros_like(x)
    yaw = np.zeros_like(x)
    v = np.broadcast_to(ego[:, EgoFeature.SPEED, None], x.shape).copy()
    out = np.zeros((B, F * O, horizon, 2), dtype=np.float32)
    for h in range(horizon):
        # the path in the frame of the simulated pose
        c, s = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
        px, py = paths[..., 0] - x[..., None], paths[..., 1] - y[..., None]
        tx, ty = c * px + s * py, -s * px + c * py
        steer = pursuit_steer(tx, ty, np.maximum(cfg.lookahead, cfg.lookahead_time * v), vehicle)
        accel = np.clip(cfg.speed_gain * (target - v), -cfg.max_brake, 1.0)
        out[..., h, 0], out[..., h, 1] = accel, steer
        x, y, yaw, v = bicycle_step(x, y, yaw, v, accel, steer, vehicle, dt)
    if cfg.full_brake:
        brake = np.zeros((B, 1, horizon, 2), dtype=np.float32)
        brake[..., 0] = -1.0
        out = np.concatenate([out, brake], axis=1)
    return out


__all__ = [
    "ProposalConfig",
    "bicycle_step",
    "lateral_offset",
    "offset_paths",
    "pursuit_steer",
    "route_curvature",
    "route_proposals",
]
