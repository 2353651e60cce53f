"""Kinematic bicycle model with actuator limits, for every vehicle of every world at once.

The reference point is the box centre with the rear axle ``wheelbase / 2`` behind it, so the slip
angle is ``beta = atan(tan(delta) / 2)``. Positions integrate the exact arc of constant curvature over
the step (trapezoidal arc length, exact stopping distance): a car at 10 m/s for 2 s is exactly 20 m further,
and constant steering traces a circle of radius ``(wheelbase / 2) / sin(beta)``.
"""

from __future__ import annotations

import numpy as np

from sim_bridge.embedded.config import VehicleLimits


def action_to_commands(actions: np.ndarray, limits: VehicleLimits) -> tuple[np.ndarray, np.ndarray]:
    """Normalised ``[accel, steer] [B, 2]`` → acceleration command [m/s²] ``[B]`` and wheel angle [rad] ``[B]``.

    ``accel`` ≥ 0 scales ``max_accel``; < 0 scales ``max_brake``; ``steer`` scales ``max_steer``.
    """
    a = actions[:, 0]
    accel = np.where(a >= 0.0, a * limits.max_accel, a * limits.max_brake)
    return accel, actions[:, 1] * limits.max_steer


def bicycle_step(
    x: np.ndarray,
    y: np.ndarray,
    yaw: np.ndarray,
    speed: np.ndarray,
    steer: np.ndarray,
    accel_cmd: np.ndarray,
    steer_cmd: np.ndarray,
    wheelbase: np.ndarray,
    limits: VehicleLimits,
    dt: float,
) -> np.ndarray:
    """Advance vehicles in place by ``dt`` [s]; returns the applied acceleration [m/s²] (same shape).

    All arrays share one shape (e.g. ``[B, NV]``). ``steer`` (wheel angle [rad]) moves towards
    ``steer_cmd`` at most ``max_steer_rate``; acceleration is clipped to the limits, drag is added,
    and speed stays in ``[0, max_speed]`` (no reverse: braking at standstill holds the car).
    """
    max_delta = limits.max_steer_rate * dt
    np.clip(steer + np.clip(steer_cmd - steer, -max_delta, max_delta), -limits.max_steer, limits.max_steer, out=steer)
    accel = np.clip(accel_cmd, -limits.max_brake, limits.max_accel) - limits.drag * speed
    v_new = np.clip(speed + accel * dt, 0.0, limits.max_speed)
    applied = (v_new - speed) / dt
    # arc length: trapezoid, or the exact stopping distance when the car stops within the step
    stops = (v_new == 0.0) & (accel < 0.0)
    arc = np.where(stops, speed * speed / np.maximum(-2.0 * accel, 1e-9), 0.5 * (speed + v_new) * dt)

    beta = np.arctan(0.5 * np.tan(steer))
    dyaw = arc * np.cos(beta) * np.tan(steer) / wheelbase
    heading = yaw + beta
    # exact arc for constant curvature over the step; chord → arc as dyaw → 0
    small = np.abs(dyaw) < 1e-6
    safe = np.where(small, 1.0, dyaw)
    sinc = np.where(small, 1.0 - dyaw**2 / 24.0, np.sin(0.5 * safe) / (0.5 * safe))
    dist = arc * sinc
    mid_heading = heading + 0.5 * dyaw
    x += dist * np.cos(mid_heading)
    y += dist * np.sin(mid_heading)
    yaw += dyaw
    np.remainder(yaw + np.pi, 2.0 * np.pi, out=yaw)
    yaw -= np.pi
    speed[...] = v_new
    return applied
