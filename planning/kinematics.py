"""The ego's kinematic bicycle in its own frame: what every agent may know of its own car
(``sim_bridge.api.EgoVehicle``: wheelbase, steer and acceleration limits), no world model needed.

Used by the route proposals (closed-loop pure pursuit) and, optionally, by the world-model planner
for the ego's own geometry (``PlannerConfig.ego_motion = "kinematic"``), leaving the model to judge
what it alone can: collisions, leaving the road, red lights, the gap to others.

Letters: ``B`` worlds, ``N`` sequences, ``H`` horizon.
"""

from __future__ import annotations

import numpy as np

from sim_bridge.api import EgoVehicle


def bicycle_step(
    x: np.ndarray,
    y: np.ndarray,
    yaw: np.ndarray,
    v: np.ndarray,
    accel: np.ndarray,
    steer: np.ndarray,
    vehicle: EgoVehicle,
    dt: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One step of a kinematic bicycle from normalised ``accel, steer``: acceleration
    ``accel · max_accel`` (``· max_brake`` when braking), wheel angle ``steer · max_steer``, speed
    floored at 0, midpoint heading for the displacement. Positions [m], yaw [rad], speed [m/s]."""
    a = np.where(accel >= 0.0, accel * vehicle.max_accel, accel * vehicle.max_brake)
    v_new = np.maximum(v + a * dt, 0.0)
    v_mid = 0.5 * (v + v_new)
    yaw_rate = v_mid * np.tan(steer * vehicle.max_steer) / vehicle.wheelbase
    yaw_mid = yaw + 0.5 * yaw_rate * dt
    return (
        x + v_mid * np.cos(yaw_mid) * dt,
        y + v_mid * np.sin(yaw_mid) * dt,
        yaw + yaw_rate * dt,
        v_new,
    )


def bicycle_rollout(
    actions: np.ndarray, speed: np.ndarray, vehicle: EgoVehicle, dt: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poses after each step of ``actions [B, N, H, 2]`` from the ego at the origin of its frame
    with ``speed [B]`` [m/s] → ``xy [B, N, H, 2]`` [m], ``yaw [B, N, H]`` [rad], ``speed [B, N, H]``
    [m/s] (``float32``)."""
    B, N, H, _ = actions.shape
    x = np.zeros((B, N), dtype=np.float32)
    y = np.zeros_like(x)
    yaw = np.zeros_like(x)
    v = np.broadcast_to(np.asarray(speed, dtype=np.float32)[:, None], (B, N)).copy()
    out = np.empty((4, B, N, H), dtype=np.float32)
    for h in range(H):
        x, y, yaw, v = bicycle_step(x, y, yaw, v, actions[:, :, h, 0], actions[:, :, h, 1], vehicle, dt)
        out[0, :, :, h], out[1, :, :, h], out[2, :, :, h], out[3, :, :, h] = x, y, yaw, v
    xy = np.stack([out[0], out[1]], axis=-1).astype(np.float32)
    return xy, out[2].astype(np.float32), out[3].astype(np.float32)


__all__ = ["bicycle_rollout", "bicycle_step"]
