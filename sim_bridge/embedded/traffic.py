"""NPC drivers: lane following along a lane plan, IDM car following, signals, junction right of way,
lane changes. One compiled kernel decides every NPC vehicle of every world per decision step; a
second advances them along their lanes after each physics step.

Right of way at a junction: a vehicle about to enter waits while a conflicting junction lane is
occupied, and for conflicting vehicles that will arrive within ``yield_horizon`` and rank higher.
Rank: signal or no control (2), minus one for a left turn; stop sign (0). Ties go to the earlier
arrival, then the lower slot (the ego is slot 0). The order is total, so approaching vehicles
never wait for each other in a cycle.

Kernel arguments: ``m`` map arrays, ``F``/``I`` actor tables, ``plan [B, NV, R]``, ``seed [B]``,
``W`` world counters, ``light [B, K]`` (see :mod:`sim_bridge.embedded.state`).
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from sim_bridge.api import BehaviourKind, LightState
from sim_bridge.embedded.config import DriverModel, VehicleLimits
from sim_bridge.embedded.fields import (
    ACCEL_CMD,
    ACTIVE,
    BACKGROUND,
    BEH_DECEL,
    BEH_DIR,
    BEH_KIND,
    BEH_TIME,
    CRUISE,
    IGNORE_ACTORS,
    IGNORE_SIGNALS,
    K_IS_LIGHT,
    K_S,
    L_CHANGE_LEFT,
    L_CHANGE_RIGHT,
    L_CONTROL,
    L_CURVATURE,
    L_JUNCTION,
    L_LEFT,
    L_LENGTH,
    L_RIGHT,
    L_SPEED,
    L_STOP,
    L_TURN,
    LANE,
    LANE_PREV,
    LAT0,
    LAT_BIAS,
    LC_DURATION,
    LC_ELAPSED,
    LENGTH,
    PLAN_LEN,
    ROUTE_PLAN,
    SPEED,
    SPEED_FACTOR,
    STEER_CMD,
    STEP_COUNT,
    STOP_DONE,
    TRIGGERED,
    WHEELBASE,
    WIDTH,
    YAW,
    S,
    X,
    Y,
)  # fmt: skip
from sim_bridge.embedded.lanes import extend_plan, plan_point, pose_on_lane, project_local, shift_plan
from sim_bridge.embedded.map_arrays import CONTROL_STOP
from sim_bridge.embedded.rng import hash_uniform
from sim_bridge.sensors.layout import RouteCommand

_INF = 1e9
_RED = int(LightState.RED)
_YELLOW = int(LightState.YELLOW)
_LEFT = int(RouteCommand.LEFT)
_BRAKE = int(BehaviourKind.BRAKE)
_STOPPED = int(BehaviourKind.STOPPED)
_CUT_IN = int(BehaviourKind.CUT_IN)
_CRUISE = int(BehaviourKind.CRUISE)
#: look this far ahead for junctions, stop lines and curves [m]
HORIZON = 45.0
#: a vehicle that would need more than this to stop before a junction is committed to enter [m/s²]
COMMIT_DECEL = 4.5
# rng streams
_S_LC, _S_SIDE, _S_PLAN = 11, 12, 13


class DriverParams(NamedTuple):
    """Scalars the kernels read (from :class:`DriverModel` and :class:`VehicleLimits`)."""

    accel: float
    comfort_brake: float
    headway: float
    min_gap: float
    lookahead_time: float
    min_lookahead: float
    max_lateral_accel: float
    lane_change_prob: float  # per decision step
    lane_change_time: float
    yield_horizon: float
    max_brake: float
    dt: float  # decision period [s]

    @classmethod
    def make(cls, driver: DriverModel, limits: VehicleLimits, decision_dt: float) -> DriverParams:
        return cls(
            driver.accel, driver.comfort_brake, driver.headway, driver.min_gap, driver.lookahead_time,
            driver.min_lookahead, driver.max_lateral_accel, driver.lane_change_rate * decision_dt,
            driver.lane_change_time, driver.yield_horizon, limits.max_brake, decision_dt,
        )  # fmt: skip


@numba.njit(cache=True, inline="always")
def idm_accel(v: float, v0: float, gap: float, v_lead: float, p: DriverParams) -> float:
    """Intelligent Driver Model acceleration [m/s²] for speed ``v``, desired ``v0``, bumper ``gap``."""
    free = 1.0 - (v / max(v0, 0.1)) ** 4 if v0 > 0.05 else -1.0
    if gap >= _INF:
        return p.accel * free
    s_star = p.min_gap + max(
        0.0, v * p.headway + v * (v - v_lead) / (2.0 * np.sqrt(p.accel * p.comfort_brake))
    )
    g = max(gap, 0.05)
    return p.accel * (free - (s_star / g) ** 2)


@numba.njit(cache=True, inline="always")
def _smooth(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


@numba.njit(cache=True)
def next_junction(m, plan: np.ndarray, n: int, s: float) -> tuple[int, float]:
    """First plan index on a junction lane within the horizon and the distance to its start [m].

    ``(0, 0.0)`` inside a junction; ``(-1, inf)`` if none.
    """
    off = -s
    for k in range(min(n, 5)):
        lane = plan[k]
        if lane < 0:
            break
        if k > 0 and off > HORIZON:
            break
        if m.lane_i[L_JUNCTION, lane] >= 0:
            return k, max(off, 0.0)
        off += m.lane_f[L_LENGTH, lane]
    return -1, _INF


@numba.njit(cache=True, inline="always")
def _conflicts(m, a: int, b: int) -> bool:
    for q in range(m.conflict_start[a], m.conflict_start[a + 1]):
        if m.conflict_index[q] == b:
            return True
    return False


@numba.njit(cache=True, inline="always")
def _rank(m, junction_lane: int) -> int:
    if m.lane_i[L_CONTROL, junction_lane] == CONTROL_STOP:
        return 0
    return 1 if m.lane_i[L_TURN, junction_lane] == _LEFT else 2


@numba.njit(cache=True)
def _held_by_signal(m, I, light, b: int, j: int, entry_lane: int) -> bool:
    """Will vehicle ``j`` wait at the stop line of ``entry_lane`` (red light, stop sign not yet done)?"""
    k = m.lane_i[L_STOP, entry_lane]
    if k < 0 or I[IGNORE_SIGNALS, b, j]:
        return False
    if m.stop_i[K_IS_LIGHT, k]:
        return light[b, k] == _RED
    return I[STOP_DONE, b, j] == 0


@numba.njit(cache=True)
def _junction_approaches(
    m,
    F,
    I,
    plan,
    light,
    NV: int,
    b: int,
    jlane: np.ndarray,
    jdist: np.ndarray,
    jstate: np.ndarray,
) -> None:
    """Per vehicle of world ``b``: the junction lane it is in or about to enter (``jlane``, -1 none),
    the distance to that junction [m] and its state: 0 none, 1 inside, 2 committed (too close to
    stop), 3 approaching freely, 4 held at a red light or a stop sign not yet done."""
    for j in range(NV):
        jlane[j] = -1
        jstate[j] = 0
        if not I[ACTIVE, b, j] or I[LANE, b, j] < 0:
            continue
        lane = I[LANE, b, j]
        if m.lane_i[L_JUNCTION, lane] >= 0:
            jlane[j] = lane
            jdist[j] = 0.0
            jstate[j] = 1
            continue
        kj, d = next_junction(m, plan[b, j], I[PLAN_LEN, b, j], F[S, b, j])
        if kj <= 0:
            continue
        jlane[j] = plan[b, j, kj]
        jdist[j] = d
        v = F[SPEED, b, j]
        if d - 0.5 * F[LENGTH, b, j] < v * v / (2.0 * COMMIT_DECEL) - 1.0:
            jstate[j] = 2
        elif _held_by_signal(m, I, light, b, j, plan[b, j, kj - 1]):
            jstate[j] = 4
        else:
            jstate[j] = 3


@numba.njit(cache=True)
def _must_yield(
    m, F, NV: int, b: int, i: int, jlane: np.ndarray, jdist: np.ndarray, jstate: np.ndarray, horizon: float
) -> bool:
    """Must vehicle ``i`` (about to enter junction lane ``jlane[i]``) wait? See the module doc."""
    jl_i = jlane[i]
    rank_i = _rank(m, jl_i)
    eta_i = jdist[i] / max(F[SPEED, b, i], 1.0)
    for j in range(NV):
        if j == i or jlane[j] < 0 or jstate[j] == 4 or not _conflicts(m, jl_i, jlane[j]):
            continue
        if jstate[j] <= 2:
            return True  # inside the junction, or committed to enter
        eta_j = jdist[j] / max(F[SPEED, b, j], 1.0)
        if eta_j > horizon:
            continue
        rank_j = _rank(m, jlane[j])
        if rank_j > rank_i:
            return True
        if rank_j == rank_i and (eta_j < eta_i - 0.5 or (abs(eta_j - eta_i) <= 0.5 and j < i)):
            return True
    return False


@numba.njit(cache=True)
def _lead_obstacle(
    m, F, I, plan, NV: int, b: int, i: int, heading: float, corridor: float
) -> tuple[float, float]:
    """Nearest actor ahead of vehicle ``i``: ``(bumper gap [m], its speed along our heading [m/s])``.

    Vehicles on the lanes of our plan are found by arc length (curves, junctions); anything else
    (pedestrians, obstacles, vehicles off our lanes) by a corridor along ``heading``.
    """
    N = F.shape[2]
    n = I[PLAN_LEN, b, i]
    s_i = F[S, b, i]
    half_i = 0.5 * F[LENGTH, b, i]
    gap = _INF
    v_lead = 0.0
    ch = np.cos(heading)
    sh = np.sin(heading)
    for j in range(N):
        if j == i or not I[ACTIVE, b, j]:
            continue
        matched = False
        if j < NV:
            lane_j = I[LANE, b, j]
            prev_j = I[LANE_PREV, b, j]
            off = -s_i
            for k in range(min(n, 4)):
                lk = plan[b, i, k]
                if lk == lane_j or lk == prev_j:
                    d = off + F[S, b, j]
                    if d > 0.0:
                        g = d - half_i - 0.5 * F[LENGTH, b, j]
                        matched = True
                        if g < gap:
                            gap = g
                            v_lead = F[SPEED, b, j]
                    break
                off += m.lane_f[L_LENGTH, lk]
                if off > HORIZON:
                    break
        if matched:
            continue
        dx = F[X, b, j] - F[X, b, i]
        dy = F[Y, b, j] - F[Y, b, i]
        lon = dx * ch + dy * sh
        if lon <= 0.0 or lon > corridor + half_i:
            continue
        lat = -dx * sh + dy * ch
        if abs(lat) > 0.5 * (F[WIDTH, b, i] + F[LENGTH, b, j] + F[WIDTH, b, j]) + 0.4:
            continue  # clear of our corridor whatever its orientation
        c = np.cos(F[YAW, b, j] - heading)
        s_ = np.sin(F[YAW, b, j] - heading)
        half_len_j = 0.5 * (abs(c) * F[LENGTH, b, j] + abs(s_) * F[WIDTH, b, j])
        half_wid_j = 0.5 * (abs(s_) * F[LENGTH, b, j] + abs(c) * F[WIDTH, b, j])
        if abs(lat) > 0.5 * F[WIDTH, b, i] + half_wid_j + 0.4:
            continue
        if j < NV and c < -0.5 and lon > 12.0:
            continue  # oncoming on a bend: not in our way yet
        g = lon - half_i - half_len_j
        if j < NV and g < -0.5 and abs(c) < 0.7:
            continue  # already tangled with a crossing vehicle: drive out rather than lock up
        if g < gap:
            gap = g
            v_lead = max(F[SPEED, b, j] * c, 0.0)
    return gap, v_lead


@numba.njit(cache=True)
def _try_lane_change(
    m, F, I, plan, seed, W, NV: int, b: int, i: int, side: int, forced: bool, duration: float
) -> bool:
    """Switch vehicle ``i`` to its left (+1) or right (-1) neighbour lane; the offset then decays."""
    lane = I[LANE, b, i]
    tgt = m.lane_i[L_LEFT, lane] if side > 0 else m.lane_i[L_RIGHT, lane]
    if tgt < 0:
        return False
    if not forced:
        allowed = m.lane_i[L_CHANGE_LEFT, lane] if side > 0 else m.lane_i[L_CHANGE_RIGHT, lane]
        if not allowed or m.lane_f[L_LENGTH, tgt] - F[S, b, i] < 40.0:
            return False
    s_t = F[S, b, i] * m.lane_f[L_LENGTH, tgt] / max(m.lane_f[L_LENGTH, lane], 1e-6)
    s_t, lat, _ = project_local(m, tgt, s_t, F[X, b, i], F[Y, b, i])
    if not forced:
        v = F[SPEED, b, i]
        for j in range(NV):
            if j == i or not I[ACTIVE, b, j]:
                continue
            if I[LANE, b, j] == tgt or I[LANE_PREV, b, j] == tgt:
                d = F[S, b, j] - s_t
                if -(8.0 + 1.0 * v) < d < 8.0 + 0.5 * v:
                    return False
    I[LANE_PREV, b, i] = lane
    I[LANE, b, i] = tgt
    F[S, b, i] = s_t
    F[LAT0, b, i] = lat
    F[LC_ELAPSED, b, i] = 0.0
    F[LC_DURATION, b, i] = duration
    plan[b, i, :] = -1
    plan[b, i, 0] = tgt
    I[PLAN_LEN, b, i] = extend_plan(m, plan[b, i], 1, seed[b], W[STEP_COUNT, b], _S_PLAN * 1000 + i)
    I[ROUTE_PLAN, b, i] = 0
    return True


@numba.njit(cache=True)
def drive_world(m, F, I, plan, seed, W, light, NV: int, p: DriverParams, b: int) -> None:
    """Set ``ACCEL_CMD`` [m/s²] and ``STEER_CMD`` [rad] of every active NPC vehicle (slots 1..NV-1)
    of world ``b``."""
    jlane = np.empty(NV, dtype=np.int64)
    jdist = np.empty(NV)
    jstate = np.empty(NV, dtype=np.int64)
    _junction_approaches(m, F, I, plan, light, NV, b, jlane, jdist, jstate)
    for i in range(1, NV):
        if not I[ACTIVE, b, i] or I[LANE, b, i] < 0:
            continue
        v = F[SPEED, b, i]
        # --- lane changes: scripted cut-ins, then random ones of background traffic
        if I[BEH_KIND, b, i] == _CUT_IN and I[TRIGGERED, b, i]:
            if _try_lane_change(
                m, F, I, plan, seed, W, NV, b, i, int(F[BEH_DIR, b, i]), True, F[BEH_TIME, b, i]
            ):
                I[BEH_KIND, b, i] = _CRUISE
        elif (
            I[BACKGROUND, b, i]
            and I[LANE_PREV, b, i] < 0
            and m.lane_i[L_JUNCTION, I[LANE, b, i]] < 0
            and hash_uniform(seed[b], W[STEP_COUNT, b], _S_LC, i) < p.lane_change_prob
        ):
            kj, dj = next_junction(m, plan[b, i], I[PLAN_LEN, b, i], F[S, b, i])
            if kj < 0 or dj > 40.0:
                side = 1 if hash_uniform(seed[b], W[STEP_COUNT, b], _S_SIDE, i) < 0.5 else -1
                if not _try_lane_change(m, F, I, plan, seed, W, NV, b, i, side, False, p.lane_change_time):
                    _try_lane_change(m, F, I, plan, seed, W, NV, b, i, -side, False, p.lane_change_time)
        if I[LANE_PREV, b, i] >= 0 or F[LAT0, b, i] != 0.0:
            F[LC_ELAPSED, b, i] += p.dt
            if F[LC_ELAPSED, b, i] >= F[LC_DURATION, b, i]:
                I[LANE_PREV, b, i] = -1
                F[LAT0, b, i] = 0.0

        pl = plan[b, i]
        n = I[PLAN_LEN, b, i]
        lane = I[LANE, b, i]
        s = F[S, b, i]
        # --- steering: pure pursuit to a point on the plan, offset by the lane change in progress
        look = max(p.min_lookahead, p.lookahead_time * v)
        dur = max(F[LC_DURATION, b, i], 1e-3)
        lat = F[LAT_BIAS, b, i] + F[LAT0, b, i] * (
            1.0 - _smooth((F[LC_ELAPSED, b, i] + look / max(v, 2.0)) / dur)
        )
        k, sk = plan_point(m, pl, n, s + look)
        tx, ty, _ = pose_on_lane(m, pl[k], sk, lat)
        wb = F[WHEELBASE, b, i]
        rx = F[X, b, i] - 0.5 * wb * np.cos(F[YAW, b, i])
        ry = F[Y, b, i] - 0.5 * wb * np.sin(F[YAW, b, i])
        aim = np.arctan2(ty - ry, tx - rx)
        alpha = aim - F[YAW, b, i]
        F[STEER_CMD, b, i] = np.arctan2(2.0 * wb * np.sin(alpha), max(np.hypot(tx - rx, ty - ry), 1.0))

        # --- desired speed: cruise, slowed for curves ahead and at a dead end
        v0 = F[CRUISE, b, i] if F[CRUISE, b, i] > 0.0 else F[SPEED_FACTOR, b, i] * m.lane_f[L_SPEED, lane]
        off = -s
        for q in range(min(n, 4)):
            lq = pl[q]
            if q > 0 and off > HORIZON:
                break
            if m.lane_f[L_CURVATURE, lq] > 1e-3:
                vc = np.sqrt(p.max_lateral_accel / m.lane_f[L_CURVATURE, lq])
                v0 = min(v0, np.sqrt(vc * vc + 2.0 * p.comfort_brake * max(off, 0.0)))
            off += m.lane_f[L_LENGTH, lq]
        gap = _INF
        v_lead = 0.0
        last = pl[n - 1]
        if n < 4 and m.succ_start[last + 1] == m.succ_start[last] and not I[BACKGROUND, b, i]:
            gap = (
                off - 0.5 * F[LENGTH, b, i] - 1.0
            )  # dead end ahead: stop (background cars drive off the map)

        # --- other actors
        if not I[IGNORE_ACTORS, b, i]:
            g, vl = _lead_obstacle(m, F, I, plan, NV, b, i, aim, min(max(10.0, 2.5 * look), 30.0))
            if g < gap:
                gap = g
                v_lead = vl

        # --- signals and right of way at the next junction
        kj, dist_entry = next_junction(m, pl, n, s)
        half = 0.5 * F[LENGTH, b, i]
        if kj > 0 and not I[IGNORE_SIGNALS, b, i]:
            entry = pl[kj - 1]
            ks = m.lane_i[L_STOP, entry]
            if ks >= 0:
                line_gap = dist_entry - (m.lane_f[L_LENGTH, entry] - m.stop_f[K_S, ks]) - half
                stop_here = False
                if m.stop_i[K_IS_LIGHT, ks]:
                    state = light[b, ks]
                    stop_here = state == _RED or (
                        state == _YELLOW and line_gap > v * v / (2.0 * p.comfort_brake)
                    )
                elif not I[STOP_DONE, b, i]:
                    if v < 0.3 and line_gap < 4.0:
                        I[STOP_DONE, b, i] = 1
                    else:
                        stop_here = True
                if stop_here and line_gap > -1.0 and line_gap < gap:
                    gap = max(line_gap, 0.0)
                    v_lead = 0.0
            jl = pl[kj]
            entry_gap = dist_entry - half
            can_stop = entry_gap > v * v / (2.0 * COMMIT_DECEL) - 1.0
            if can_stop and dist_entry < 30.0 and entry_gap < gap:
                # don't block the box: enter only with room beyond the junction's exit
                exit_dist = dist_entry + m.lane_f[L_LENGTH, jl]
                no_room = gap < _INF and v_lead < 3.0 and gap + half < exit_dist + 2.0 * half + p.min_gap
                if no_room or (
                    jlane[i] == jl and _must_yield(m, F, NV, b, i, jlane, jdist, jstate, p.yield_horizon)
                ):
                    gap = max(entry_gap - 0.5, 0.0)
                    v_lead = 0.0

        acc = idm_accel(v, v0, gap, v_lead, p)
        beh = I[BEH_KIND, b, i]
        if beh == _BRAKE and I[TRIGGERED, b, i]:
            acc = min(acc, -F[BEH_DECEL, b, i])
        elif beh == _STOPPED and not I[TRIGGERED, b, i]:
            acc = -p.max_brake
        F[ACCEL_CMD, b, i] = max(acc, -p.max_brake)


@numba.njit(cache=True)
def advance_world(m, F, I, plan, seed, W, NV: int, b: int) -> None:
    """After a physics step: re-project world ``b``'s NPC vehicles on their lanes and move them
    along their plans. Background vehicles that reach a dead end are deactivated (they respawn
    elsewhere)."""
    for i in range(1, NV):
        if not I[ACTIVE, b, i] or I[LANE, b, i] < 0:
            continue
        s, _, _ = project_local(m, I[LANE, b, i], F[S, b, i], F[X, b, i], F[Y, b, i])
        F[S, b, i] = max(s, 0.0)
        length = m.lane_f[L_LENGTH, I[LANE, b, i]]
        while F[S, b, i] > length:
            if I[PLAN_LEN, b, i] <= 1:
                if I[BACKGROUND, b, i]:
                    I[ACTIVE, b, i] = 0
                F[S, b, i] = length
                break
            F[S, b, i] -= length
            I[PLAN_LEN, b, i] = shift_plan(plan[b, i], I[PLAN_LEN, b, i])
            I[LANE, b, i] = plan[b, i, 0]
            I[STOP_DONE, b, i] = 0
            if not I[ROUTE_PLAN, b, i] or I[PLAN_LEN, b, i] < 2:
                I[PLAN_LEN, b, i] = extend_plan(
                    m, plan[b, i], I[PLAN_LEN, b, i], seed[b], W[STEP_COUNT, b], _S_PLAN * 1000 + i
                )
            length = m.lane_f[L_LENGTH, I[LANE, b, i]]
