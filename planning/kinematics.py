"""The ego's kinematic bicycle in its own frame: what every agent may know of its own car
(``sim_bridge.api.EgoVehicle``: wheelbase, steer and acceleration limits), no world model needed.

Used by the route proposals (closed-loop pure pursuit) and, optionally, by the world-model planner
for the ego's own geometry (``PlannerConfig.ego_motion = "kinematic"``), leaving the model to judge
what it alone can: collisions, leaving the road, red lights, the gap to others.

Letters: ``B`` worlds, ``N`` sequences, ``H`` horizon.
"""

from __future__ import annotations

import numba
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


@numba.njit(cache=True, nogil=True)
def _rollout(
    actions: np.ndarray, speed: np.ndarray, max_accel: float, max_brake: float, max_steer: float,
    wheelbase: float, dt: float, out: np.ndarray,
) -> None:  # fmt: skip
    """:func:`bicycle_step` over ``actions [B, N, H, 2]`` into ``out [4, B, N, H]`` (x, y, yaw, v)."""
    B, N, H = actions.shape[0], actions.shape[1], actions.shape[2]
    for b in range(B):
        for n in range(N):
            x = y = yaw = 0.0
            v = speed[b]
            for h in range(H):
                accel, steer = actions[b, n, h, 0], actions[b, n, h, 1]
                a = accel * max_accel if accel >= 0.0 else accel * max_brake
                v_new = max(v + a * dt, 0.0)
                v_mid = 0.5 * (v + v_new)
                yaw_rate = v_mid * np.tan(steer * max_steer) / wheelbase
                yaw_mid = yaw + 0.5 * yaw_rate * dt
                x += v_mid * np.cos(yaw_mid) * dt
                y += v_mid * np.sin(yaw_mid) * dt
                yaw += yaw_rate * dt
                v = v_new
                out[0, b, n, h], out[1, b, n, h], out[2, b, n, h], out[3, b, n, h] = x, y, yaw, v


def bicycle_rollout(
    actions: np.ndarray, speed: np.ndarray, vehicle: EgoVehicle, dt: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poses after each step of ``actions [B, N, H, 2]`` from the ego at the origin of its frame
    with ``speed [B]`` [m/s] → ``xy [B, N, H, 2]`` [m], ``yaw [B, N, H]`` [rad], ``speed [B, N, H]``
    [m/s] (``float32``). The steps of :func:`bicycle_step`, compiled (the planner calls this for
    every candidate of every decision)."""
    B, N, H, _ = actions.shape
    out = np.empty((4, B, N, H), dtype=np.float32)
    v0 = np.broadcast_to(np.asarray(speed, dtype=np.float64).reshape(-1), (B,)).copy()
    _rollout(np.ascontiguousarray(actions, dtype=np.float32), v0, float(vehicle.max_accel),
             float(vehicle.max_brake), float(vehicle.max_steer), float(vehicle.wheelbase), float(dt), out)  # fmt: skip
    return np.stack([out[0], out[1]], axis=-1), out[2], out[3]


__all__ = ["bicycle_rollout", "bicycle_step"]
