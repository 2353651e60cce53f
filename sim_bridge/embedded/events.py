"""What the ego did each step: collisions, signal violations (per physics step), lane and road
compliance (per decision step). Criteria in ``scenarios/`` turn these into infractions.

Signal violations follow the CARLA Leaderboard tests: a red light is run when a point 0.8 half
lengths behind the ego's centre (its tail) crosses the stop line of a red light while driving along
the lane; a stop sign is run when that point crosses the line without the ego having come below
0.1 m/s with its front bumper within 4 m before the line.
"""

from __future__ import annotations

import numba
import numpy as np

from sim_bridge.api import LightState
from sim_bridge.embedded.fields import (
    K_AX,
    K_AY,
    K_BX,
    K_BY,
    K_HEADING,
    K_IS_LIGHT,
    K_SIGNAL,
    LENGTH,
    SPEED,
    YAW,
    X,
    Y,
)  # fmt: skip

_RED = int(LightState.RED)
STOP_SPEED = 0.1  # [m/s]
STOP_PROXIMITY = 4.0  # [m]
TAIL = 0.8  # fraction of the half length behind the centre


@numba.njit(cache=True)
def _cross(ax: float, ay: float, bx: float, by: float) -> float:
    return ax * by - ay * bx


@numba.njit(cache=True)
def segments_intersect(p0x, p0y, p1x, p1y, q0x, q0y, q1x, q1y) -> bool:
    """Do segments p0–p1 and q0–q1 intersect (touching counts)?"""
    rx = p1x - p0x
    ry = p1y - p0y
    sx = q1x - q0x
    sy = q1y - q0y
    den = _cross(rx, ry, sx, sy)
    qpx = q0x - p0x
    qpy = q0y - p0y
    if abs(den) < 1e-12:
        return False
    t = _cross(qpx, qpy, sx, sy) / den
    u = _cross(qpx, qpy, rx, ry) / den
    return 0.0 <= t <= 1.0 and 0.0 <= u <= 1.0


@numba.njit(cache=True)
def ego_events_world(
    m, F, I, light, stop_ok, prev_x: float, prev_y: float, red: np.ndarray, stop_run: np.ndarray,
    b: int,
) -> None:  # fmt: skip
    """After a physics step: record world ``b``'s red-light run and stop-sign run (its collisions
    are recorded by ``contact.resolve_contacts_world``, which sees them before they are resolved).

    ``prev_x, prev_y`` the ego centre before the step; outputs ``[B]`` are only written where still
    -1 (the first event of the decision step wins). ``stop_ok [B, K]`` is updated.
    """
    K = m.stop_f.shape[1]
    ex = F[X, b, 0]
    ey = F[Y, b, 0]
    c = np.cos(F[YAW, b, 0])
    s = np.sin(F[YAW, b, 0])
    half = 0.5 * F[LENGTH, b, 0]
    t0x = prev_x - TAIL * half * c
    t0y = prev_y - TAIL * half * s
    t1x = ex - TAIL * half * c
    t1y = ey - TAIL * half * s
    fx = ex + half * c
    fy = ey + half * s
    for k in range(K):
        ax = m.stop_f[K_AX, k]
        ay = m.stop_f[K_AY, k]
        bx = m.stop_f[K_BX, k]
        by = m.stop_f[K_BY, k]
        mx = 0.5 * (ax + bx)
        my = 0.5 * (ay + by)
        if abs(ex - mx) > 30.0 or abs(ey - my) > 30.0:
            continue
        hc = np.cos(m.stop_f[K_HEADING, k])
        hs = np.sin(m.stop_f[K_HEADING, k])
        if c * hc + s * hs <= 0.0:
            continue  # not driving along the controlled lane
        is_light = m.stop_i[K_IS_LIGHT, k] != 0
        if not is_light:
            before = (mx - fx) * hc + (my - fy) * hs
            across = abs(-(fx - mx) * hs + (fy - my) * hc)
            half_line = 0.5 * np.hypot(bx - ax, by - ay) + 0.5
            if 0.0 <= before <= STOP_PROXIMITY and across <= half_line and F[SPEED, b, 0] < STOP_SPEED:
                stop_ok[b, k] = True
        if segments_intersect(t0x, t0y, t1x, t1y, ax, ay, bx, by):
            if is_light:
                if light[b, k] == _RED and red[b] < 0:
                    red[b] = m.stop_i[K_SIGNAL, k]
            else:
                if not stop_ok[b, k] and stop_run[b] < 0:
                    stop_run[b] = m.stop_i[K_SIGNAL, k]
                stop_ok[b, k] = False
