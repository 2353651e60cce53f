"""Kinematic bicycle model with actuator limits.

The reference point is the box centre with the rear axle ``wheelbase / 2`` behind it, so the slip
angle is ``beta = atan(tan(delta) / 2)``. Positions integrate the exact arc of constant curvature
over the step (trapezoidal arc length; the exact stopping distance when the car stops within the
step): a car at 10 m/s for 2 s is exactly 20 m further, and constant steering traces a circle of
radius ``(wheelbase / 2) / sin(beta)``.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np


class Limits(NamedTuple):
    """Actuator limits as the kernels read them (from ``VehicleLimits``)."""

    max_accel: float  # [m/s²]
    max_brake: float  # [m/s²]
    max_steer: float  # [rad]
    max_steer_rate: float  # [rad/s]
    max_speed: float  # [m/s]
    drag: float  # [1/s]

    @classmethod
    def of(cls, limits) -> Limits:  # limits: VehicleLimits
        return cls(
            float(limits.max_accel), float(limits.max_brake), float(limits.max_steer),
            float(limits.max_steer_rate), float(limits.max_speed), float(limits.drag),
        )  # fmt: skip


def action_to_commands(actions: np.ndarray, limits: Limits) -> tuple[np.ndarray, np.ndarray]:
    """Normalised ``[accel, steer] [B, 2]`` → acceleration command [m/s²] ``[B]`` and wheel angle [rad] ``[B]``.

    ``accel`` ≥ 0 scales ``max_accel``; < 0 scales ``max_brake``; ``steer`` scales ``max_steer``.
    """
    a = actions[:, 0]
    accel = np.where(a >= 0.0, a * limits.max_accel, a * limits.max_brake)
    return accel, actions[:, 1] * limits.max_steer


@numba.njit(cache=True)
def bicycle(
    x: float, y: float, yaw: float, speed: float, steer: float, accel_cmd: float, steer_cmd: float,
    wheelbase: float, lim: Limits, dt: float,
) -> tuple[float, float, float, float, float, float]:  # fmt: skip
    """One step of one vehicle: returns ``(x, y, yaw, speed, steer, applied acceleration)``.

    The wheel angle moves towards ``steer_cmd`` at most ``max_steer_rate``; acceleration is
    clipped to the limits, drag is added; speed stays in ``[0, max_speed]`` (braking at standstill
    holds the car, there is no reverse).
    """
    max_delta = lim.max_steer_rate * dt
    steer = min(
        max(steer + min(max(steer_cmd - steer, -max_delta), max_delta), -lim.max_steer), lim.max_steer
    )
    accel = min(max(accel_cmd, -lim.max_brake), lim.max_accel) - lim.drag * speed
    v_new = min(max(speed + accel * dt, 0.0), lim.max_speed)
    applied = (v_new - speed) / dt
    if v_new == 0.0 and accel < 0.0:
        arc = speed * speed / (-2.0 * accel)  # stops within the step
    else:
        arc = 0.5 * (speed + v_new) * dt
    tan_d = np.tan(steer)
    beta = np.arctan(0.5 * tan_d)
    dyaw = arc * np.cos(beta) * tan_d / wheelbase
    # chord of the arc of constant curvature; → arc as dyaw → 0
    if abs(dyaw) < 1e-6:
        chord = arc * (1.0 - dyaw * dyaw / 24.0)
    else:
        chord = arc * np.sin(0.5 * dyaw) / (0.5 * dyaw)
    heading = yaw + beta + 0.5 * dyaw
    yaw = (yaw + dyaw + np.pi) % (2.0 * np.pi) - np.pi
    return x + chord * np.cos(heading), y + chord * np.sin(heading), yaw, v_new, steer, applied


@numba.njit(cache=True)
def bicycle_step(
    x: np.ndarray, y: np.ndarray, yaw: np.ndarray, speed: np.ndarray, steer: np.ndarray,
    accel_cmd: np.ndarray, steer_cmd: np.ndarray, wheelbase: np.ndarray, lim: Limits, dt: float,
) -> np.ndarray:  # fmt: skip
    """:func:`bicycle` over 1-D arrays of vehicles, in place; returns the applied accelerations."""
    applied = np.empty(x.shape[0])
    for i in range(x.shape[0]):
        x[i], y[i], yaw[i], speed[i], steer[i], applied[i] = bicycle(
            x[i], y[i], yaw[i], speed[i], steer[i], accel_cmd[i], steer_cmd[i], wheelbase[i], lim, dt
        )
    return applied
