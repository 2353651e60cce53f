"""NPC drivers: lane following along a lane plan, IDM car following, signals, junction right of way,
lane changes. One compiled kernel decides every NPC vehicle of every world per decision step; a
second advances them along their lanes after each physics step.

Right of way at a junction: a vehicle about to enter waits while a conflicting junction lane is
occupied, and for conflicting vehicles that will arrive within ``yield_horizon`` and rank higher.
Rank: signal or no control (2), minus one for a left turn; stop sign (0). Ties go to the earlier
arrival, then the lower slot (the ego is slot 0). The order is total, so approaching vehicles
never wait for each other in a cycle. A vehicle at a stop sign accepts a gap in the priority
stream when every conflicting vehicle is farther than a critical gap from the junction
(``DriverModel.critical_gap``, shrinking with the time it has waited, as SUMO's impatience), and
does not wait for a priority vehicle that stands still (waiting for room or to turn): that one
checks the junction before it moves. A long vehicle also waits before a junction while its turn
would sweep over a vehicle standing beside the lane it turns into.

Steering: pure pursuit whose lookahead shortens where the plan bends (the chord of a bend of
radius R cuts its inside by about look² / 2R; see :data:`BEND_CHORD_ERROR`), so that cars keep
to their lane through tight corners instead of cutting into the oncoming one.

Obstacles: vehicles on the lanes of the plan by arc length; anything else in a corridor along the
steering aim, except vehicles that keep to a lane we do not use (or to a junction lane that does
not conflict with ours) and that our box, driven on with our own steering, would not touch: in a
turn the aim sweeps over them, and braking for them locked junctions up.

Lane changes: random ones (background traffic above ``LANE_CHANGE_MIN_SPEED``) only into a gap
where neither we nor the new follower (found on the target lane or the lanes before and after it)
must brake harder than ``LANE_CHANGE_SAFE_DECEL``, as MOBIL's safety criterion. A lane that tapers
away (an acceleration lane, ``L_MERGE_S``) is left by a mandatory change into such a gap; until
one opens the vehicle waits where the lane still holds it.

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
    L_MERGE_S,
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
    STEER,
    STEER_CMD,
    STEP_COUNT,
    STOP_DONE,
    STUCK,
    TRIGGERED,
    WHEELBASE,
    WIDTH,
    YAW,
    S,
    X,
    Y,
)  # fmt: skip
from sim_bridge.embedded.lanes import (
    LONG_VEHICLE,
    extend_plan,
    plan_point,
    pose_on_lane,
    project_local,
    shift_plan,
    width_on_lane,
)
from sim_bridge.embedded.map_arrays import CONTROL_STOP, MIN_LANE_WIDTH
from sim_bridge.embedded.rng import hash_uniform
from sim_bridge.geometry import boxes_overlap
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
#: conflicting vehicles this far from their junction are seen when judging a gap [m]
APPROACH_HORIZON = 90.0
#: pure pursuit cuts a bend of radius R by about look² / 2R: the lookahead is shortened to keep
#: that below this [m], but not below :data:`MIN_BEND_LOOKAHEAD` nor ``BEND_LOOKAHEAD_TIME`` × speed
BEND_CHORD_ERROR = 0.15
MIN_BEND_LOOKAHEAD = 2.0  # [m]
BEND_LOOKAHEAD_TIME = 0.45  # [s]
#: a priority vehicle standing still this long is waiting (for room, to turn), not arriving [s]
WAITING_TIME = 1.0
#: a vehicle that would need more than this to stop before a junction is committed to enter [m/s²]
COMMIT_DECEL = 4.5
#: a random lane change is refused if it makes us or the new follower brake harder than this [m/s²]
LANE_CHANGE_SAFE_DECEL = 4.0
#: background vehicles slower than this (queues) do not start random lane changes [m/s]
LANE_CHANGE_MIN_SPEED = 5.0
#: vehicles try to leave a lane that tapers away this far before its merge point [m]
MERGE_HORIZON = 200.0
#: clearance kept around a vehicle's box swept along its path when judging off-lane actors [m]
PATH_MARGIN = 0.3
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
    critical_gap: float
    min_critical_gap: float
    impatience_time: float
    stuck_timeout: float
    max_brake: float
    dt: float  # decision period [s]
    max_steer: float  # [rad]
    max_steer_rate: float  # [rad/s]

    @classmethod
    def make(cls, driver: DriverModel, limits: VehicleLimits, decision_dt: float) -> DriverParams:
        return cls(
            driver.accel, driver.comfort_brake, driver.headway, driver.min_gap, driver.lookahead_time,
            driver.min_lookahead, driver.max_lateral_accel, driver.lane_change_rate * decision_dt,
            driver.lane_change_time, driver.yield_horizon, driver.critical_gap, driver.min_critical_gap,
            driver.impatience_time, driver.stuck_timeout, limits.max_brake, decision_dt,
            limits.max_steer, limits.max_steer_rate,
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
def _idm_interaction(v: float, gap: float, v_lead: float, p: DriverParams) -> float:
    """The braking part of :func:`idm_accel` [m/s²] (>= 0) behind a leader ``gap`` [m] ahead."""
    s_star = p.min_gap + max(
        0.0, v * p.headway + v * (v - v_lead) / (2.0 * np.sqrt(p.accel * p.comfort_brake))
    )
    return p.accel * (s_star / max(gap, 0.05)) ** 2


@numba.njit(cache=True, inline="always")
def _smooth(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3.0 - 2.0 * u)


@numba.njit(cache=True)
def next_junction(m, plan: np.ndarray, n: int, s: float, horizon: float = HORIZON) -> tuple[int, float]:
    """First plan index on a junction lane within ``horizon`` [m] and the distance to its start [m].

    ``(0, 0.0)`` inside a junction; ``(-1, inf)`` if none.
    """
    off = -s
    for k in range(min(n, 5)):
        lane = plan[k]
        if lane < 0:
            break
        if k > 0 and off > horizon:
            break
        if m.lane_i[L_JUNCTION, lane] >= 0:
            return k, max(off, 0.0)
        off += m.lane_f[L_LENGTH, lane]
    return -1, _INF


@numba.njit(cache=True)
def _along(m, lane: int, s: float, tgt: int, s_t: float) -> float:
    """Signed distance [m] along the lane graph from ``s_t`` on lane ``tgt`` to ``s`` on ``lane``
    when ``lane`` is ``tgt``, one of its predecessors (behind, < 0) or successors (ahead);
    ``_INF`` otherwise."""
    if lane == tgt:
        return s - s_t
    for q in range(m.succ_start[lane], m.succ_start[lane + 1]):
        if m.succ_index[q] == tgt:
            return s - m.lane_f[L_LENGTH, lane] - s_t
    for q in range(m.succ_start[tgt], m.succ_start[tgt + 1]):
        if m.succ_index[q] == lane:
            return m.lane_f[L_LENGTH, tgt] - s_t + s
    return _INF


@numba.njit(cache=True)
def _merge_distance(m, plan: np.ndarray, n: int, s: float) -> float:
    """Distance [m] from arc length ``s`` on ``plan[0]`` to the point where a lane of the plan
    tapers away (``L_MERGE_S``) within the first ``n`` lanes; ``inf`` (``_INF``) if none."""
    off = -s
    for k in range(n):
        lane = plan[k]
        if lane < 0:
            break
        if m.lane_f[L_MERGE_S, lane] < _INF:
            return max(off + m.lane_f[L_MERGE_S, lane], 0.0)
        off += m.lane_f[L_LENGTH, lane]
    return _INF


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
        kj, d = next_junction(m, plan[b, j], I[PLAN_LEN, b, j], F[S, b, j], APPROACH_HORIZON)
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
    m, F, NV: int, b: int, i: int, jlane: np.ndarray, jdist: np.ndarray, jstate: np.ndarray, p: DriverParams
) -> bool:
    """Must vehicle ``i`` (about to enter junction lane ``jlane[i]``) wait? See the module doc.

    Conflicting vehicles of higher rank are yielded to while they arrive within
    ``p.yield_horizon`` [s]; at a stop sign within the critical gap, which shrinks linearly from
    ``p.critical_gap`` to ``p.min_critical_gap`` as ``i``'s standstill time reaches
    ``p.impatience_time``."""
    jl_i = jlane[i]
    rank_i = _rank(m, jl_i)
    eta_i = jdist[i] / max(F[SPEED, b, i], 1.0)
    gap = p.yield_horizon
    if rank_i == 0:
        impatience = min(F[STUCK, b, i] / max(p.impatience_time, 1e-3), 1.0)
        gap = p.critical_gap - impatience * (p.critical_gap - p.min_critical_gap)
        if F[SPEED, b, i] > 0.5:
            gap = p.min_critical_gap  # off the line: it took a gap, it does not stop again for the next
    for j in range(NV):
        if j == i or jlane[j] < 0 or jstate[j] == 4 or not _conflicts(m, jl_i, jlane[j]):
            continue
        if jstate[j] <= 2:
            return True  # inside the junction, or committed to enter
        rank_j = _rank(m, jlane[j])
        if rank_j > rank_i:
            if F[SPEED, b, j] < 0.1 and F[STUCK, b, j] > WAITING_TIME:
                continue  # waiting (for room, to turn); it yields to us once we are in
            if jdist[j] / max(F[SPEED, b, j], 1.0) < gap:
                return True
            continue
        eta_j = jdist[j] / max(F[SPEED, b, j], 1.0)
        if eta_j > p.yield_horizon:
            continue
        if rank_j > rank_i:
            return True
        if rank_j == rank_i and (eta_j < eta_i - 0.5 or (abs(eta_j - eta_i) <= 0.5 and j < i)):
            return True
    return False


@numba.njit(cache=True)
def _keeps_to_own_lane(m, F, I, b: int, j: int, i: int) -> bool:
    """Is vehicle ``j``'s box within its own lane, a lane outside junctions that vehicle ``i``
    is neither on nor leaving? Lanes of ``i``'s plan were checked by arc length already, and paths
    cross only inside junctions, so such a vehicle is not in ``i``'s way, whatever ``i``'s heading
    in a turn (e.g. one waiting at the stop line beside the lane ``i`` turns into)."""
    lane = I[LANE, b, j]
    if lane < 0 or lane == I[LANE_PREV, b, i] or I[LANE_PREV, b, j] >= 0 or m.lane_i[L_JUNCTION, lane] >= 0:
        return False
    length = m.lane_f[L_LENGTH, lane]
    # our centre must not be on that lane's surface (lanes stacked or overlapping in the plane)
    s, lat, _ = project_local(m, lane, F[S, b, j], F[X, b, i], F[Y, b, i])
    if 0.0 <= s <= length and abs(lat) < 0.5 * width_on_lane(m, lane, s):
        return False
    s, lat, h = project_local(m, lane, F[S, b, j], F[X, b, j], F[Y, b, j])
    dh = F[YAW, b, j] - h
    half_l = 0.5 * (abs(np.cos(dh)) * F[LENGTH, b, j] + abs(np.sin(dh)) * F[WIDTH, b, j])
    half_w = 0.5 * (abs(np.sin(dh)) * F[LENGTH, b, j] + abs(np.cos(dh)) * F[WIDTH, b, j])
    if s - half_l < 0.0 or s + half_l > length:
        return False  # sticks out into a junction (or beyond the lane's start)
    return abs(lat) + half_w <= 0.5 * width_on_lane(m, lane, s) + 0.2


@numba.njit(cache=True)
def _beside_in_junction(m, I, plan, b: int, i: int, j: int) -> bool:
    """Is vehicle ``j`` on a junction lane that conflicts with none of the first lanes of
    ``i``'s plan (the map says their paths do not cross, e.g. opposite left turns)?"""
    lane = I[LANE, b, j]
    if lane < 0 or m.lane_i[L_JUNCTION, lane] < 0 or I[LANE_PREV, b, j] >= 0:
        return False
    for k in range(min(I[PLAN_LEN, b, i], 4)):
        lk = plan[b, i, k]
        if lk < 0:
            break
        if lk == lane or (m.lane_i[L_JUNCTION, lk] >= 0 and _conflicts(m, lk, lane)):
            return False
    return True


@numba.njit(cache=True)
def _pursuit_steer(
    m, plan: np.ndarray, n: int, s: float, lat: float, x: float, y: float, yaw: float, wb: float, v: float,
    p: DriverParams,
) -> tuple[float, float]:  # fmt: skip
    """Pure pursuit: ``(wheel angle [rad], aim [rad])`` towards the point of the plan ``lookahead``
    ahead of arc length ``s`` [m], ``lat`` [m] left of the centreline; the rear axle (``wb / 2``
    behind the centre) aims at it. In a bend the lookahead shortens (see :data:`BEND_CHORD_ERROR`)."""
    look = max(p.min_lookahead, p.lookahead_time * v)
    # sharpest lane within the lookahead
    kmax = 0.0
    off = -s
    for q in range(n):
        lq = plan[q]
        if lq < 0 or off > look:
            break
        kmax = max(kmax, m.lane_f[L_CURVATURE, lq])
        off += m.lane_f[L_LENGTH, lq]
    if kmax > 1e-3:
        look = max(
            min(look, np.sqrt(2.0 * BEND_CHORD_ERROR / kmax)), MIN_BEND_LOOKAHEAD, BEND_LOOKAHEAD_TIME * v
        )
    k, sk = plan_point(m, plan, n, s + look)
    tx, ty, _ = pose_on_lane(m, plan[k], sk, lat)
    rx = x - 0.5 * wb * np.cos(yaw)
    ry = y - 0.5 * wb * np.sin(yaw)
    aim = np.arctan2(ty - ry, tx - rx)
    return np.arctan2(2.0 * wb * np.sin(aim - yaw), max(np.hypot(tx - rx, ty - ry), 1.0)), aim


@numba.njit(cache=True)
def _path_hits(m, F, I, plan, p: DriverParams, b: int, i: int, j: int, dist: float) -> bool:
    """Would vehicle ``i``'s box, driven on along its plan for ``dist`` [m], overlap actor ``j``'s
    box (with :data:`PATH_MARGIN` around ours)? The drive is predicted with the steering the
    driver uses (pure pursuit, steering limits, at least 2 m/s), so a long vehicle's front
    swinging out of a tight turn is foreseen."""
    n = I[PLAN_LEN, b, i]
    if n <= 0:
        return True
    x, y, yaw, steer = F[X, b, i], F[Y, b, i], F[YAW, b, i], F[STEER, b, i]
    wb = F[WHEELBASE, b, i]
    length = F[LENGTH, b, i] + 2.0 * PATH_MARGIN
    width = F[WIDTH, b, i] + 2.0 * PATH_MARGIN
    v = max(F[SPEED, b, i], 2.0)
    dt = max(p.dt, 1.0 / v)  # steps of at least 1 m
    s = F[S, b, i]
    travelled = 0.0
    reach = 0.5 * (np.hypot(length, width) + np.hypot(F[LENGTH, b, j], F[WIDTH, b, j]))
    while True:
        d = np.hypot(F[X, b, j] - x, F[Y, b, j] - y)
        if d - reach > dist - travelled:
            return False  # out of reach for the rest of the drive
        if d <= reach and boxes_overlap(
            x, y, yaw, length, width, F[X, b, j], F[Y, b, j], F[YAW, b, j], F[LENGTH, b, j], F[WIDTH, b, j]
        ):
            return True
        if travelled >= dist:
            return False
        cmd, _ = _pursuit_steer(m, plan[b, i], n, s, 0.0, x, y, yaw, wb, v, p)
        rate = p.max_steer_rate * dt
        steer = min(max(steer + min(max(cmd - steer, -rate), rate), -p.max_steer), p.max_steer)
        ds = v * dt
        tan_d = np.tan(steer)
        beta = np.arctan(0.5 * tan_d)
        dyaw = ds * np.cos(beta) * tan_d / wb
        heading = yaw + beta + 0.5 * dyaw
        x += ds * np.cos(heading)
        y += ds * np.sin(heading)
        yaw += dyaw
        s += ds
        travelled += ds


@numba.njit(cache=True)
def _turn_blocked(m, F, I, plan, NV: int, p: DriverParams, b: int, i: int, dist: float) -> bool:
    """Would vehicle ``i`` (a long one, before a junction), driving ``dist`` [m] on along its plan,
    sweep over a vehicle standing in its own lane beside the path (waiting at a stop line next
    to the lane we turn into)? Then it waits before the junction rather than get stuck in it."""
    for j in range(NV):
        if j == i or not I[ACTIVE, b, j] or F[SPEED, b, j] > 1.0:
            continue
        if np.hypot(F[X, b, j] - F[X, b, i], F[Y, b, j] - F[Y, b, i]) > dist + F[LENGTH, b, j]:
            continue
        on_plan = False
        for k in range(min(I[PLAN_LEN, b, i], 4)):
            if plan[b, i, k] == I[LANE, b, j]:
                on_plan = True
        if (
            not on_plan
            and _keeps_to_own_lane(m, F, I, b, j, i)
            and _path_hits(m, F, I, plan, p, b, i, j, dist)
        ):
            return True
    return False


@numba.njit(cache=True)
def _lead_obstacle(
    m, F, I, plan, NV: int, p: DriverParams, b: int, i: int, heading: float, corridor: float
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
        if g >= gap:
            continue  # not nearer than the nearest so far (the costlier tests below are skipped)
        if j < NV and g < -0.5:
            # already tangled: drive out rather than lock up, if crossing or if we are the one
            # further ahead (``j`` lies less ahead of us than we lie ahead of it)
            lon_ji = -dx * np.cos(F[YAW, b, j]) - dy * np.sin(F[YAW, b, j])
            if abs(c) < 0.7 or lon < lon_ji or (lon == lon_ji and i < j):
                continue
        if (
            j < NV
            and F[LAT_BIAS, b, i] == 0.0
            and I[LANE_PREV, b, i] < 0
            and (_keeps_to_own_lane(m, F, I, b, j, i) or _beside_in_junction(m, I, plan, b, i, j))
            and not _path_hits(m, F, I, plan, p, b, i, j, lon + half_len_j + F[LENGTH, b, i] + 2.0)
        ):
            continue  # on a path that does not cross ours and clear of our swept box (waiting at
            # the stop line beside the lane we turn into; turning left opposite us): whatever
            # our heading in the turn, not in our way
        gap = g
        v_lead = max(F[SPEED, b, j] * c, 0.0)
    return gap, v_lead


@numba.njit(cache=True)
def _try_lane_change(
    m, F, I, plan, seed, W, NV: int, p: DriverParams, b: int, i: int, side: int, checked: bool, mandatory: bool,
    duration: float,
) -> bool:  # fmt: skip
    """Switch vehicle ``i`` to its left (+1) or right (-1) neighbour lane; the offset then decays.

    ``checked``: only into a gap that is safe (see :data:`LANE_CHANGE_SAFE_DECEL`) on a target wide
    enough for a car. A discretionary change (not ``mandatory``) also needs the road marks to allow
    it and 40 m of the target lane ahead. A scripted cut-in is neither checked nor mandatory.
    """
    lane = I[LANE, b, i]
    tgt = m.lane_i[L_LEFT, lane] if side > 0 else m.lane_i[L_RIGHT, lane]
    if tgt < 0:
        return False
    if checked and not mandatory:
        allowed = m.lane_i[L_CHANGE_LEFT, lane] if side > 0 else m.lane_i[L_CHANGE_RIGHT, lane]
        if not allowed or min(m.lane_f[L_LENGTH, tgt], m.lane_f[L_MERGE_S, tgt]) - F[S, b, i] < 40.0:
            return False
    s_t = F[S, b, i] * m.lane_f[L_LENGTH, tgt] / max(m.lane_f[L_LENGTH, lane], 1e-6)
    s_t, lat, _ = project_local(m, tgt, s_t, F[X, b, i], F[Y, b, i])
    if checked:
        if width_on_lane(m, tgt, min(max(s_t, 0.0), m.lane_f[L_LENGTH, tgt])) < MIN_LANE_WIDTH:
            return False
        v = F[SPEED, b, i]
        for j in range(NV):
            if j == i or not I[ACTIVE, b, j] or I[LANE, b, j] < 0:
                continue
            d = _along(m, I[LANE, b, j], F[S, b, j], tgt, s_t)
            if d >= _INF and I[LANE_PREV, b, j] == tgt:
                d = F[S, b, j] - s_t
            if d < _INF:
                if -(8.0 + 1.0 * v) < d < 8.0 + 0.5 * v:
                    return False
                # safety (as MOBIL): neither the new follower nor we may need to brake harder
                # than LANE_CHANGE_SAFE_DECEL; a fixed window alone lets a fast car behind ram us
                gap = abs(d) - 0.5 * (F[LENGTH, b, i] + F[LENGTH, b, j])
                if d < 0.0:
                    decel = _idm_interaction(F[SPEED, b, j], gap, v, p)
                else:
                    decel = _idm_interaction(v, gap, F[SPEED, b, j], p)
                if decel > LANE_CHANGE_SAFE_DECEL:
                    return False
    I[LANE_PREV, b, i] = lane
    I[LANE, b, i] = tgt
    F[S, b, i] = s_t
    F[LAT0, b, i] = lat
    F[LC_ELAPSED, b, i] = 0.0
    F[LC_DURATION, b, i] = duration
    plan[b, i, :] = -1
    plan[b, i, 0] = tgt
    I[PLAN_LEN, b, i] = extend_plan(
        m, plan[b, i], 1, seed[b], W[STEP_COUNT, b], _S_PLAN * 1000 + i, F[LENGTH, b, i]
    )
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
        merge = _merge_distance(m, plan[b, i], I[PLAN_LEN, b, i], F[S, b, i])
        if I[BEH_KIND, b, i] == _CUT_IN and I[TRIGGERED, b, i]:
            if _try_lane_change(
                m, F, I, plan, seed, W, NV, p, b, i, int(F[BEH_DIR, b, i]), False, True, F[BEH_TIME, b, i]
            ):
                I[BEH_KIND, b, i] = _CRUISE
        elif merge < MERGE_HORIZON and I[LANE_PREV, b, i] < 0 and not I[ROUTE_PLAN, b, i]:
            # our lane tapers away ahead (an acceleration lane): merge into the neighbour
            side = 1 if m.lane_i[L_LEFT, I[LANE, b, i]] >= 0 else -1
            if _try_lane_change(m, F, I, plan, seed, W, NV, p, b, i, side, True, True, p.lane_change_time):
                merge = _INF
        elif (
            I[BACKGROUND, b, i]
            and I[LANE_PREV, b, i] < 0
            and v >= LANE_CHANGE_MIN_SPEED
            and m.lane_i[L_JUNCTION, I[LANE, b, i]] < 0
            and hash_uniform(seed[b], W[STEP_COUNT, b], _S_LC, i) < p.lane_change_prob
        ):
            kj, dj = next_junction(m, plan[b, i], I[PLAN_LEN, b, i], F[S, b, i])
            if kj < 0 or dj > 40.0:
                side = 1 if hash_uniform(seed[b], W[STEP_COUNT, b], _S_SIDE, i) < 0.5 else -1
                if not _try_lane_change(
                    m, F, I, plan, seed, W, NV, p, b, i, side, True, False, p.lane_change_time
                ):
                    _try_lane_change(
                        m, F, I, plan, seed, W, NV, p, b, i, -side, True, False, p.lane_change_time
                    )
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
        F[STEER_CMD, b, i], aim = _pursuit_steer(
            m, pl, n, s, lat, F[X, b, i], F[Y, b, i], F[YAW, b, i], F[WHEELBASE, b, i], v, p
        )

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
        if merge < _INF:  # wait where the lane still holds us until we can merge
            gap = min(gap, max(merge - 0.5 * F[LENGTH, b, i] - 1.0, 0.0))

        # --- other actors
        if not I[IGNORE_ACTORS, b, i]:
            g, vl = _lead_obstacle(m, F, I, plan, NV, p, b, i, aim, min(max(10.0, 2.5 * look), 30.0))
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
                if (
                    no_room
                    or (jlane[i] == jl and _must_yield(m, F, NV, b, i, jlane, jdist, jstate, p))
                    or (
                        F[LENGTH, b, i] > LONG_VEHICLE
                        and entry_gap < 15.0
                        and _turn_blocked(m, F, I, plan, NV, p, b, i, exit_dist + 2.0 * half)
                    )
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
                    m, plan[b, i], I[PLAN_LEN, b, i], seed[b], W[STEP_COUNT, b], _S_PLAN * 1000 + i,
                    F[LENGTH, b, i],
                )  # fmt: skip
            length = m.lane_f[L_LENGTH, I[LANE, b, i]]
