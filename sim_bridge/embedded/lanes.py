"""Compiled lane geometry for the kernels: poses on lanes, local projection, lane plans.

``m`` is always a :class:`~sim_bridge.embedded.map_arrays.MapArrays`.
"""

from __future__ import annotations

import numba
import numpy as np

from sim_bridge.embedded.fields import L_CURVATURE, L_LENGTH
from sim_bridge.embedded.rng import hash_uniform


@numba.njit(cache=True, inline="always")
def segment_index(lane_start: np.ndarray, ss: np.ndarray, lane: int, s: float) -> int:
    """Index ``i`` of the sample starting the segment ``[i, i + 1]`` of ``lane`` that contains ``s``."""
    lo = lane_start[lane]
    hi = lane_start[lane + 1] - 1
    if hi <= lo:
        return lo
    if s <= ss[lo]:
        return lo
    if s >= ss[hi]:
        return hi - 1
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ss[mid] <= s:
            lo = mid
        else:
            hi = mid
    return lo


@numba.njit(cache=True)
def pose_on_lane(m, lane: int, s: float, lat: float) -> tuple[float, float, float]:
    """``(x, y, yaw)`` at arc length ``s`` [m] of ``lane`` shifted ``lat`` [m] to the left."""
    i = segment_index(m.lane_start, m.s, lane, s)
    j = min(i + 1, m.lane_start[lane + 1] - 1)
    x0 = m.points[i, 0]
    y0 = m.points[i, 1]
    dx = m.points[j, 0] - x0
    dy = m.points[j, 1] - y0
    seg = m.s[j] - m.s[i]
    t = 0.0
    if seg > 1e-9:
        t = min(max((s - m.s[i]) / seg, 0.0), 1.0)
    yaw = np.arctan2(dy, dx)
    return x0 + t * dx - np.sin(yaw) * lat, y0 + t * dy + np.cos(yaw) * lat, yaw


@numba.njit(cache=True)
def width_on_lane(m, lane: int, s: float) -> float:
    return m.widths[segment_index(m.lane_start, m.s, lane, s)]


@numba.njit(cache=True)
def project_local(m, lane: int, s_guess: float, x: float, y: float) -> tuple[float, float, float]:
    """Project ``(x, y)`` on ``lane`` near ``s_guess``: ``(s, lateral (+ left), lane heading)``.

    Searches a few segments around the guess; ``s`` may fall outside ``[0, length]`` when the
    point lies beyond the lane's ends (extrapolated along the end segments).
    """
    a = m.lane_start[lane]
    last = m.lane_start[lane + 1] - 1
    i0 = segment_index(m.lane_start, m.s, lane, s_guess)
    best_d = 1e18
    best_s = s_guess
    best_lat = 0.0
    best_h = 0.0
    for i in range(max(a, i0 - 3), min(last, i0 + 4)):
        dx = m.points[i + 1, 0] - m.points[i, 0]
        dy = m.points[i + 1, 1] - m.points[i, 1]
        seg2 = dx * dx + dy * dy
        if seg2 < 1e-12:
            continue
        px = x - m.points[i, 0]
        py = y - m.points[i, 1]
        t = (px * dx + py * dy) / seg2
        tc = min(max(t, 0.0), 1.0)
        if (i == a and t < 0.0) or (i == last - 1 and t > 1.0):
            tc = t  # extrapolate beyond the lane's ends
        qx = px - tc * dx
        qy = py - tc * dy
        d = qx * qx + qy * qy
        if d < best_d:
            seg = np.sqrt(seg2)
            best_d = d
            best_s = m.s[i] + tc * seg
            best_lat = (dx * py - dy * px) / seg
            best_h = np.arctan2(dy, dx)
    return best_s, best_lat, best_h


#: vehicles longer than this [m] ("trucks") avoid tight junction turns when they have a choice
LONG_VEHICLE = 6.0
#: the tightest lane curvature such a vehicle turns into by choice [1/m] (10 m radius)
LONG_VEHICLE_MAX_CURVATURE = 0.1


@numba.njit(cache=True)
def extend_plan(
    m, plan: np.ndarray, n: int, seed: np.uint64, counter: int, stream: int, length: float = 0.0
) -> int:
    """Append random successors to ``plan[:n]`` until it holds 4 lanes (or a dead end); returns the new length.

    A vehicle of ``length`` [m] above :data:`LONG_VEHICLE` picks among the successors no more
    curved than :data:`LONG_VEHICLE_MAX_CURVATURE` when there are any: its body would sweep
    over the neighbouring lanes in a tight turn.
    """
    k = 0
    while 0 < n < 4 and n < plan.shape[0]:
        last = plan[n - 1]
        a = m.succ_start[last]
        c = m.succ_start[last + 1] - a
        if c == 0:
            break
        wide = 0
        if length > LONG_VEHICLE:
            for q in range(a, a + c):
                if m.lane_f[L_CURVATURE, m.succ_index[q]] <= LONG_VEHICLE_MAX_CURVATURE:
                    wide += 1
        u = hash_uniform(seed, counter, stream, k)
        if wide == 0 or wide == c:
            plan[n] = m.succ_index[a + min(int(u * c), c - 1)]
        else:  # the pick-th successor that is wide enough
            pick = min(int(u * wide), wide - 1)
            for q in range(a, a + c):
                if m.lane_f[L_CURVATURE, m.succ_index[q]] <= LONG_VEHICLE_MAX_CURVATURE:
                    if pick == 0:
                        plan[n] = m.succ_index[q]
                        break
                    pick -= 1
        n += 1
        k += 1
    return n


@numba.njit(cache=True)
def shift_plan(plan: np.ndarray, n: int) -> int:
    """Drop ``plan[0]`` (the lane just left); returns the new length."""
    for k in range(n - 1):
        plan[k] = plan[k + 1]
    if n > 0:
        plan[n - 1] = -1
    return max(n - 1, 0)


@numba.njit(cache=True)
def plan_point(m, plan: np.ndarray, n: int, dist: float) -> tuple[int, float]:
    """Walk ``dist`` [m] along the plan from the start of ``plan[0]``: ``(plan index, s on that lane)``."""
    k = 0
    while k + 1 < n and dist > m.lane_f[L_LENGTH, plan[k]]:
        dist -= m.lane_f[L_LENGTH, plan[k]]
        k += 1
    return k, min(dist, m.lane_f[L_LENGTH, plan[k]])


@numba.njit(cache=True)
def plans_from_routes(
    point_lane: np.ndarray,
    valid: np.ndarray,
    index: np.ndarray,
    lane0: np.ndarray,
    plan: np.ndarray,
    plan_len: np.ndarray,
) -> None:
    """Lane plans ``plan [B, R]`` of route followers (the ego): the route's distinct lanes from
    the progress point ``index [B]`` on, with ``plan[:, 0]`` replaced by the lane actually
    occupied (``lane0 [B]``, when known)."""
    B, P = point_lane.shape
    R = plan.shape[1]
    for b in range(B):
        n = 0
        last = -2
        for i in range(index[b], P):
            if not valid[b, i] or n >= R:
                break
            lane = point_lane[b, i]
            if lane != last and lane >= 0:
                plan[b, n] = lane
                n += 1
                last = lane
        if lane0[b] >= 0:
            if n == 0:
                n = 1
            elif plan[b, 0] != lane0[b] and _passed(point_lane[b], valid[b], index[b], lane0[b]):
                # the progress point has run ahead into the route's next lane (entering a junction)
                # before the tracker moved there: keep that lane in the plan, after the occupied one
                n = min(n + 1, R)
                for k in range(n - 1, 0, -1):
                    plan[b, k] = plan[b, k - 1]
            plan[b, 0] = lane0[b]
        for k in range(n, R):
            plan[b, k] = -1
        plan_len[b] = n


@numba.njit(cache=True)
def _passed(point_lane: np.ndarray, valid: np.ndarray, index: int, lane: int) -> bool:
    """Is ``lane`` the route's lane at one of the few points just before the progress ``index``?"""
    for i in range(max(index - 8, 0), index):
        if valid[i] and point_lane[i] == lane:
            return True
    return False
