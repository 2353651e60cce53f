"""What the ego's situation is after a step: its lane (tracked from the previous one, no global
search per step), lane invasion, wrong way, off road, the speed of traffic around it.

Candidates: the previous lane, its neighbours, the innermost lane of the other direction, its
successors and predecessors, and the next lanes of the ego's plan. As in
``RoadMap.project``, lanes whose surface contains the ego's centre win; among them the cost is
``|lateral| + 30 m · (1 − cos heading error)`` minus a small bonus for lanes of the plan (so a
junction lane of the route wins over an overlapping one). Worlds where no candidate lies within
a few metres are flagged for a global projection.
"""

from __future__ import annotations

import numba
import numpy as np

from sim_bridge.embedded.fields import (
    ACTIVE,
    BACKGROUND,
    ID,
    KIND,
    L_JUNCTION,
    L_LEFT,
    L_LENGTH,
    L_MARK_LEFT,
    L_MARK_RIGHT,
    L_OPPOSITE,
    L_RIGHT,
    L_SPEED,
    LANE,
    LENGTH,
    PLAN_LEN,
    SPEED,
    WIDTH,
    YAW,
    S,
    X,
    Y,
)  # fmt: skip
from sim_bridge.embedded.lanes import project_local, width_on_lane

#: heading weight of the lane choice [m per unit (1 − cos)] (same as RoadMap.project)
HEADING_WEIGHT = 30.0
#: a candidate farther than this from the ego is "lost" [m]
LOST_DISTANCE = 4.0
_MAX_CANDIDATES = 24


@numba.njit(cache=True)
def _wrap(a: float) -> float:
    return (a + np.pi) % (2.0 * np.pi) - np.pi


@numba.njit(cache=True)
def track_ego(m, F, I, plan, lane_out, s_out, lat_out, he_out, width_out, invasion_out) -> np.ndarray:
    """Update ``I[LANE, :, 0]`` / ``F[S, :, 0]`` and fill ``[B]`` outputs: lane, s [m], lateral [m]
    (+ left), heading error [rad], lane width [m], lane invasion (footprint over a painted edge
    outside junctions). Returns ``bool [B]``: worlds that need a global projection."""
    B = F.shape[1]
    lost = np.zeros(B, dtype=np.bool_)
    cand = np.empty(_MAX_CANDIDATES, dtype=np.int64)
    guess = np.empty(_MAX_CANDIDATES)
    for b in range(B):
        lane = I[LANE, b, 0]
        if lane < 0:
            lost[b] = True
            continue
        x, y, yaw = F[X, b, 0], F[Y, b, 0], F[YAW, b, 0]
        s0 = F[S, b, 0]
        length = m.lane_f[L_LENGTH, lane]
        n = 0
        cand[n] = lane
        guess[n] = s0
        n += 1
        for nb in (m.lane_i[L_LEFT, lane], m.lane_i[L_RIGHT, lane]):
            if nb >= 0:
                cand[n] = nb
                guess[n] = s0 * m.lane_f[L_LENGTH, nb] / max(length, 1e-6)
                n += 1
        opp = m.lane_i[L_OPPOSITE, lane]
        if opp >= 0:
            cand[n] = opp
            guess[n] = m.lane_f[L_LENGTH, opp] * (1.0 - s0 / max(length, 1e-6))
            n += 1
        for q in range(m.succ_start[lane], m.succ_start[lane + 1]):
            if n < _MAX_CANDIDATES - 6:
                cand[n] = m.succ_index[q]
                guess[n] = 0.0
                n += 1
        for k in range(1, min(I[PLAN_LEN, b, 0], 4)):
            if plan[b, 0, k] >= 0 and n < _MAX_CANDIDATES - 2:
                cand[n] = plan[b, 0, k]
                guess[n] = 0.0
                n += 1
        best_cost = 1e18
        best = -1
        best_s = 0.0
        best_lat = 0.0
        best_he = 0.0
        best_in = False
        best_w = 0.0
        for c in range(n):
            ln = cand[c]
            s, lat, h = project_local(m, ln, guess[c], x, y)
            ln_len = m.lane_f[L_LENGTH, ln]
            if s < -1.0 or s > ln_len + 1.0:
                continue
            w = width_on_lane(m, ln, min(max(s, 0.0), ln_len))
            inside = abs(lat) <= 0.5 * w and 0.0 <= s <= ln_len
            he = _wrap(yaw - h)
            cost = abs(lat) + HEADING_WEIGHT * (1.0 - np.cos(he))
            for k in range(min(I[PLAN_LEN, b, 0], 4)):
                if plan[b, 0, k] == ln:
                    cost -= 0.5
            if inside:
                cost -= 1e6
            if cost < best_cost:
                best_cost = cost
                best = ln
                best_s = s
                best_lat = lat
                best_he = he
                best_in = inside
                best_w = w
        if best < 0 or (not best_in and abs(best_lat) > LOST_DISTANCE):
            lost[b] = True
            continue
        I[LANE, b, 0] = best
        F[S, b, 0] = min(max(best_s, 0.0), m.lane_f[L_LENGTH, best])
        lane_out[b] = best
        s_out[b] = F[S, b, 0]
        lat_out[b] = best_lat
        he_out[b] = best_he
        width_out[b] = best_w
        half = 0.5 * F[WIDTH, b, 0] * abs(np.cos(best_he)) + 0.5 * F[LENGTH, b, 0] * abs(np.sin(best_he))
        over_left = best_lat + half > 0.5 * best_w and m.lane_i[L_MARK_LEFT, best] != 0
        over_right = best_lat - half < -0.5 * best_w and m.lane_i[L_MARK_RIGHT, best] != 0
        invasion_out[b] = m.lane_i[L_JUNCTION, best] < 0 and (over_left or over_right)
    return lost


@numba.njit(cache=True)
def on_drivable(m, x: float, y: float) -> bool:
    """Is ``(x, y)`` [m] on the drivable raster?"""
    x0, y0, res, h, w = m.drive_grid[0], m.drive_grid[1], m.drive_grid[2], m.drive_grid[3], m.drive_grid[4]
    fx = (x - x0) / res
    fy = (y - y0) / res
    if not (0.0 <= fx < w and 0.0 <= fy < h):
        return False
    col = int(fx)
    return (m.drive_bits[int(fy), col >> 3] >> (7 - (col & 7))) & 1 == 1


#: columns of the float table :func:`ego_situation` fills
(E_OFF_ROAD, E_WRONG_WAY, E_TRAFFIC_SPEED, E_ON_ROUTE, E_COLLISION, E_HIT_ID, E_HIT_KIND, E_HIT_SPEED,
 E_HIT_BEARING, E_SPEED_LIMIT, E_IN_JUNCTION) = range(11)  # fmt: skip
NUM_SITUATION = 11


@numba.njit(cache=True)
def ego_situation(
    m, F, I, lane, lateral, width, heading_error, hit, hit_facts, route_lanes, NV: int, radius: float, out
) -> None:
    """After the lane tracking: every per-world fact of the step's events in one pass, into
    ``out [B, NUM_SITUATION]`` (columns ``E_*``): off road (a corner of the ego's box off the
    drivable raster), wrong way (inside a lane outside junctions, heading > 90° off), mean speed of
    background vehicles within ``radius`` [m] (NaN if none), on a route lane, the collision with slot
    ``hit [B]`` (id, kind; speed and bearing in the ego frame at contact from ``hit_facts [B, 2]``), the lane's speed limit, in a junction."""
    for b in range(F.shape[1]):
        x, y, yaw = F[X, b, 0], F[Y, b, 0], F[YAW, b, 0]
        c = np.cos(yaw)
        s = np.sin(yaw)
        hl = 0.5 * F[LENGTH, b, 0]
        hw = 0.5 * F[WIDTH, b, 0]
        off = 0.0
        for lon, lat in ((hl, hw), (hl, -hw), (-hl, -hw), (-hl, hw)):
            if not on_drivable(m, x + lon * c - lat * s, y + lon * s + lat * c):
                off = 1.0
        out[b, E_OFF_ROAD] = off
        ln = lane[b]
        junction = ln >= 0 and m.lane_i[L_JUNCTION, ln] >= 0
        out[b, E_IN_JUNCTION] = 1.0 if junction else 0.0
        inside = ln >= 0 and abs(lateral[b]) <= 0.5 * width[b]
        out[b, E_WRONG_WAY] = 1.0 if inside and not junction and np.cos(heading_error[b]) < 0.0 else 0.0
        out[b, E_SPEED_LIMIT] = m.lane_f[L_SPEED, ln] if ln >= 0 else 0.0
        on_route = 0.0
        if ln >= 0:
            for k in range(route_lanes.shape[1]):
                if route_lanes[b, k] == ln:
                    on_route = 1.0
                    break
        out[b, E_ON_ROUTE] = on_route
        total = 0.0
        count = 0
        for j in range(1, NV):
            if I[ACTIVE, b, j] and I[BACKGROUND, b, j] and np.hypot(F[X, b, j] - x, F[Y, b, j] - y) < radius:
                total += F[SPEED, b, j]
                count += 1
        out[b, E_TRAFFIC_SPEED] = total / count if count > 0 else np.nan
        j = hit[b]
        if j >= 0:
            out[b, E_COLLISION] = 1.0
            out[b, E_HIT_ID] = I[ID, b, j]
            out[b, E_HIT_KIND] = I[KIND, b, j]
            out[b, E_HIT_SPEED] = hit_facts[b, 0]
            out[b, E_HIT_BEARING] = hit_facts[b, 1]
        else:
            out[b, E_COLLISION] = 0.0
            out[b, E_HIT_ID] = -1.0
            out[b, E_HIT_KIND] = -1.0
            out[b, E_HIT_SPEED] = 0.0
            out[b, E_HIT_BEARING] = 0.0
