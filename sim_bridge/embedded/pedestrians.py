"""Pedestrians: walk along sidewalks, cross at sidewalk ends to the opposite corner, scripted crossings.

Modes (``MODE``): WALK_SIDEWALK follows a sidewalk lane (turning back at its ends or crossing the
road to the sidewalk straight ahead); WALK_FREE walks straight along its yaw (a crossing,
background or scripted) and pauses while a moving vehicle is right in front; STAND waits (a
scripted crosser before its trigger); DOWN lies where a vehicle threw it (``contact``).

A vehicle standing still across a crossing walker's path (one that stopped for it) is walked
around, as people cross in front of a car that waits for them: the walker heads for the corner
of the box by which its way to the goal is shorter, until its path is clear, then heads for its
goal again. It never waits for a
stopped vehicle for good, and never walks into one.
"""

from __future__ import annotations

import numba
import numpy as np

from sim_bridge.embedded.fields import (
    ACTIVE,
    BACKGROUND,
    L_LENGTH,
    LANE,
    LENGTH,
    MODE,
    P_DIR,
    P_LAT,
    P_MAX_WALK,
    P_SPEED,
    P_TARGET_LANE,
    P_TARGET_S,
    P_WALKED,
    SPEED,
    STEP_COUNT,
    WIDTH,
    YAW,
    S,
    X,
    Y,
)  # fmt: skip
from sim_bridge.embedded.lanes import pose_on_lane
from sim_bridge.embedded.rng import hash_uniform
from sim_bridge.embedded.state import DOWN, STAND, WALK_FREE, WALK_SIDEWALK

#: chance a background pedestrian crosses when reaching a sidewalk end that has a crossing
CROSS_PROBABILITY = 0.3
#: a vehicle slower than this is walked around, not waited for [m/s]
STOPPED_SPEED = 0.5
#: clearance a walker keeps from a vehicle's box [m]
CLEARANCE = 0.3
#: :func:`_path_blocked`: path clear / a moving vehicle ahead (else: the slot of a stopped one)
FREE, MOVING = -1, -2
_S_CROSS = 21


@numba.njit(cache=True)
def _path_blocked(F, I, b: int, x: float, y: float, yaw: float, NV: int, skip: int) -> int:
    """What blocks a walker at ``(x, y)`` heading ``yaw``? :data:`MOVING`: a moving vehicle within
    4 m ahead; else the slot of a (stopped) vehicle whose box plus :data:`CLEARANCE` covers the
    next half metre of the path; :data:`FREE` if none. Vehicle ``skip`` is not looked at."""
    c = np.cos(yaw)
    s = np.sin(yaw)
    stopped = FREE
    for j in range(NV):
        if not I[ACTIVE, b, j] or j == skip:
            continue
        dx = F[X, b, j] - x
        dy = F[Y, b, j] - y
        lon = dx * c + dy * s
        lat = -dx * s + dy * c
        reach = 0.5 * max(F[LENGTH, b, j], F[WIDTH, b, j])
        if F[SPEED, b, j] > STOPPED_SPEED and -reach < lon < 4.0 + reach and abs(lat) < reach + 0.5:
            return MOVING
        # the point half a metre ahead, in the vehicle's frame
        px = x + 0.5 * c - F[X, b, j]
        py = y + 0.5 * s - F[Y, b, j]
        cj = np.cos(F[YAW, b, j])
        sj = np.sin(F[YAW, b, j])
        if (
            abs(px * cj + py * sj) < 0.5 * F[LENGTH, b, j] + CLEARANCE
            and abs(-px * sj + py * cj) < 0.5 * F[WIDTH, b, j] + CLEARANCE
        ):
            if F[SPEED, b, j] > STOPPED_SPEED:
                return MOVING
            stopped = j
    return stopped


@numba.njit(cache=True)
def _detour(F, b: int, x: float, y: float, gx: float, gy: float, j: int) -> tuple[float, float]:
    """``(heading [rad], distance [m])`` from a walker at ``(x, y)`` to the corner of vehicle
    ``j``'s box (plus :data:`CLEARANCE`, and 0.1 m more so that the walker stays outside it) by
    which it walks round the box towards its goal ``(gx, gy)``: of the two corners that bound
    the box as seen from the walker, the one whose direction turns less away from the goal's.
    From corner to corner the walker goes along the sides, never into the box."""
    cj = np.cos(F[YAW, b, j])
    sj = np.sin(F[YAW, b, j])
    hl = 0.5 * F[LENGTH, b, j] + CLEARANCE  # the box the walker keeps out of
    hw = 0.5 * F[WIDTH, b, j] + CLEARANCE
    grow = 0.1  # it walks round that box this much further out, so it is always outside
    cx0 = F[X, b, j] - x  # box centre from the walker
    cy0 = F[Y, b, j] - y
    best_left, best_right = -np.inf, np.inf
    lx = ly = rx = ry = 0.0
    for k in range(4):
        ex = hl if k < 2 else -hl
        ey = hw if k % 2 == 0 else -hw
        dx = cx0 + ex * cj - ey * sj  # corner from the walker
        dy = cy0 + ex * sj + ey * cj
        angle = np.arctan2(cx0 * dy - cy0 * dx, cx0 * dx + cy0 * dy)  # left of the centre: > 0
        gx_ = (grow if k < 2 else -grow) * cj - (grow if k % 2 == 0 else -grow) * sj
        gy_ = (grow if k < 2 else -grow) * sj + (grow if k % 2 == 0 else -grow) * cj
        if angle > best_left:
            best_left, lx, ly = angle, dx + gx_, dy + gy_
        if angle < best_right:
            best_right, rx, ry = angle, dx + gx_, dy + gy_
    goal = np.arctan2(gy - y, gx - x)
    off_left = abs(np.arctan2(np.sin(np.arctan2(ly, lx) - goal), np.cos(np.arctan2(ly, lx) - goal)))
    off_right = abs(np.arctan2(np.sin(np.arctan2(ry, rx) - goal), np.cos(np.arctan2(ry, rx) - goal)))
    if off_left <= off_right:
        return np.arctan2(ly, lx), np.hypot(lx, ly)
    return np.arctan2(ry, rx), np.hypot(rx, ry)


@numba.njit(cache=True)
def walk_world(m, F, I, seed, W, NV: int, NP: int, dt: float, b: int) -> None:
    """Advance every active pedestrian (slots NV..NV+NP-1) of world ``b`` by ``dt`` [s]."""
    for a in range(NV, NV + NP):
        if not I[ACTIVE, b, a]:
            continue
        mode = I[MODE, b, a]
        if mode == STAND or mode == DOWN:
            F[SPEED, b, a] = 0.0
            continue
        v = F[P_SPEED, b, a]
        if mode == WALK_SIDEWALK:
            lane = I[LANE, b, a]
            length = m.lane_f[L_LENGTH, lane]
            s = F[S, b, a] + F[P_DIR, b, a] * v * dt
            if s > length or s < 0.0:
                end = 1 if s > length else 0
                s = min(max(s, 0.0), length)
                tgt = m.cross_lane[lane, end]
                u = hash_uniform(seed[b], W[STEP_COUNT, b], _S_CROSS, a)
                if tgt >= 0 and I[BACKGROUND, b, a] and u < CROSS_PROBABILITY:
                    tx, ty, _ = pose_on_lane(m, tgt, m.cross_s[lane, end], 0.0)
                    I[MODE, b, a] = WALK_FREE
                    I[P_TARGET_LANE, b, a] = tgt
                    F[P_TARGET_S, b, a] = m.cross_s[lane, end]
                    F[P_WALKED, b, a] = 0.0
                    F[P_MAX_WALK, b, a] = np.hypot(tx - F[X, b, a], ty - F[Y, b, a])
                    F[YAW, b, a] = np.arctan2(ty - F[Y, b, a], tx - F[X, b, a])
                    F[SPEED, b, a] = v
                    continue
                F[P_DIR, b, a] = -F[P_DIR, b, a]
            F[S, b, a] = s
            x, y, yaw = pose_on_lane(m, lane, s, F[P_LAT, b, a])
            if F[P_DIR, b, a] < 0.0:
                yaw = yaw + np.pi if yaw < 0.0 else yaw - np.pi
            F[X, b, a] = x
            F[Y, b, a] = y
            F[YAW, b, a] = yaw
            F[SPEED, b, a] = v
        else:  # WALK_FREE
            x = F[X, b, a]
            y = F[Y, b, a]
            tgt = I[P_TARGET_LANE, b, a]
            blocker = _path_blocked(F, I, b, x, y, F[YAW, b, a], NV, -1)
            if blocker == MOVING:
                F[SPEED, b, a] = 0.0
                continue
            if blocker >= 0:  # a stopped vehicle across the path: step along its side
                remaining = max(F[P_MAX_WALK, b, a] - F[P_WALKED, b, a], 1.0)
                gx = x + remaining * np.cos(F[YAW, b, a])
                gy = y + remaining * np.sin(F[YAW, b, a])
                side, reach = _detour(F, b, x, y, gx, gy, blocker)
                if _path_blocked(F, I, b, x, y, side, NV, blocker) != FREE:
                    F[SPEED, b, a] = 0.0
                    continue
                step = min(v * dt, reach)
                F[X, b, a] = x + step * np.cos(side)
                F[Y, b, a] = y + step * np.sin(side)
                F[SPEED, b, a] = step / dt
                if tgt >= 0:  # heading for a sidewalk: aim at the goal again from here
                    gx, gy, _ = pose_on_lane(m, tgt, F[P_TARGET_S, b, a], 0.0)
                    F[P_MAX_WALK, b, a] = F[P_WALKED, b, a] + np.hypot(gx - F[X, b, a], gy - F[Y, b, a])
                    F[YAW, b, a] = np.arctan2(gy - F[Y, b, a], gx - F[X, b, a])
                continue
            step = min(v * dt, max(F[P_MAX_WALK, b, a] - F[P_WALKED, b, a], 0.0))
            F[X, b, a] = x + step * np.cos(F[YAW, b, a])
            F[Y, b, a] = y + step * np.sin(F[YAW, b, a])
            F[P_WALKED, b, a] += step
            F[SPEED, b, a] = step / dt
            if F[P_WALKED, b, a] >= F[P_MAX_WALK, b, a] - 1e-9:
                if tgt >= 0:  # joined the far sidewalk: walk on, away from its end
                    I[MODE, b, a] = WALK_SIDEWALK
                    I[LANE, b, a] = tgt
                    F[S, b, a] = F[P_TARGET_S, b, a]
                    F[P_DIR, b, a] = 1.0 if F[P_TARGET_S, b, a] < 0.5 * m.lane_f[L_LENGTH, tgt] else -1.0
                    I[P_TARGET_LANE, b, a] = -1
                else:
                    I[MODE, b, a] = STAND
                    F[SPEED, b, a] = 0.0
