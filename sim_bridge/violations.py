"""Signal violations as the CARLA Leaderboard defines them, computed the same way by every backend
(the embedded simulator each physics step, the CARLA bridge each server tick).

A red light is run when a point 0.8 half lengths behind the ego's centre (its tail) crosses the
stop line of a red light while driving along the controlled lane (RunningRedLightTest); a stop
sign is run when that point crosses the line without the ego having come below 0.1 m/s with its
front bumper within 4 m before the line (RunningStopTest).

Stop lines are a pair of tables built once per map by :func:`stop_lines`: floats ``[6, K]`` (rows
``K_S`` … ``K_BY``) and ints ``[3, K]`` (rows ``K_IS_LIGHT``, ``K_SIGNAL``, ``K_LANE``).
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from sim_bridge.api import LightState

#: float rows of the stop-line table: position along the lane [m], the lane's heading there [rad],
#: the line's end points a and b [m]
K_S, K_HEADING, K_AX, K_AY, K_BX, K_BY = range(6)
NUM_STOP_FLOAT = 6
#: int rows: 1 for a traffic light (0: stop sign), the signal index, the controlled lane
K_IS_LIGHT, K_SIGNAL, K_LANE = range(3)
NUM_STOP_INT = 3

_RED = int(LightState.RED)
STOP_SPEED = 0.1  # [m/s]
STOP_PROXIMITY = 4.0  # [m]
TAIL = 0.8  # fraction of the half length behind the centre


class StopLines(NamedTuple):
    """A map's stop lines as the kernels read them."""

    f: np.ndarray  # float64 [NUM_STOP_FLOAT, K]
    i: np.ndarray  # int64 [NUM_STOP_INT, K]


def stop_lines(rm) -> StopLines:  # rm: sim_bridge.maps.RoadMap
    """The stop-line tables of a map (cached in ``rm.cache['stop_lines']``)."""
    cached = rm.cache.get("stop_lines")
    if cached is not None:
        return cached
    from sim_bridge.maps.road_map import SignalKind

    lane = np.asarray(rm.stop_lane, dtype=np.int64)
    K = len(lane)
    heading = rm.pose_at(lane, np.asarray(rm.stop_s))[1] if K else np.zeros(0)
    seg = np.asarray(rm.stop_segment, dtype=np.float64).reshape(-1, 2, 2)
    f = np.zeros((NUM_STOP_FLOAT, K))
    f[K_S] = rm.stop_s
    f[K_HEADING] = heading
    f[K_AX], f[K_AY], f[K_BX], f[K_BY] = seg[:, 0, 0], seg[:, 0, 1], seg[:, 1, 0], seg[:, 1, 1]
    i = np.zeros((NUM_STOP_INT, K), dtype=np.int64)
    signal = np.asarray(rm.stop_signal, dtype=np.int64)
    i[K_IS_LIGHT] = np.asarray(rm.signal_kind, dtype=np.int64)[signal] == int(SignalKind.TRAFFIC_LIGHT)
    i[K_SIGNAL] = signal
    i[K_LANE] = lane
    out = StopLines(f, i)
    rm.cache["stop_lines"] = out
    return out


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
def signal_violations(
    stop_f: np.ndarray, stop_i: np.ndarray, light: np.ndarray, stop_ok: np.ndarray, prev_x: float,
    prev_y: float, x: float, y: float, yaw: float, speed: float, length: float,
) -> tuple[int, int]:  # fmt: skip
    """One move of the ego, from centre ``(prev_x, prev_y)`` to ``(x, y)`` with heading ``yaw``
    [rad], speed [m/s] and length [m] at its end: ``(red-light signal index, stop-sign signal
    index)`` it ran, -1 for none. ``light int8 [K]``: each stop line's state during the move;
    ``stop_ok bool [K]``: whether the ego has stopped properly before each stop sign, updated in
    place (keep it per episode)."""
    K = stop_f.shape[1]
    c = np.cos(yaw)
    s = np.sin(yaw)
    half = 0.5 * length
    t0x = prev_x - TAIL * half * c
    t0y = prev_y - TAIL * half * s
    t1x = x - TAIL * half * c
    t1y = y - TAIL * half * s
    fx = x + half * c
    fy = y + half * s
    red = -1
    run = -1
    for k in range(K):
        ax = stop_f[K_AX, k]
        ay = stop_f[K_AY, k]
        bx = stop_f[K_BX, k]
        by = stop_f[K_BY, k]
        mx = 0.5 * (ax + bx)
        my = 0.5 * (ay + by)
        if abs(x - mx) > 30.0 or abs(y - my) > 30.0:
            continue
        hc = np.cos(stop_f[K_HEADING, k])
        hs = np.sin(stop_f[K_HEADING, k])
        if c * hc + s * hs <= 0.0:
            continue  # not driving along the controlled lane
        is_light = stop_i[K_IS_LIGHT, k] != 0
        if not is_light:
            before = (mx - fx) * hc + (my - fy) * hs
            across = abs(-(fx - mx) * hs + (fy - my) * hc)
            half_line = 0.5 * np.hypot(bx - ax, by - ay) + 0.5
            if 0.0 <= before <= STOP_PROXIMITY and across <= half_line and speed < STOP_SPEED:
                stop_ok[k] = True
        if segments_intersect(t0x, t0y, t1x, t1y, ax, ay, bx, by):
            if is_light:
                if light[k] == _RED and red < 0:
                    red = stop_i[K_SIGNAL, k]
            else:
                if not stop_ok[k] and run < 0:
                    run = stop_i[K_SIGNAL, k]
                stop_ok[k] = False
    return red, run
