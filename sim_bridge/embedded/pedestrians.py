"""Pedestrians: walk along sidewalks, cross at sidewalk ends to the opposite corner, scripted crossings.

Modes (``MODE``): WALK_SIDEWALK follows a sidewalk lane (turning back at its ends or crossing the
road to the sidewalk straight ahead); WALK_FREE walks straight along its yaw (a crossing,
background or scripted) and pauses while a vehicle is right in front; STAND waits (a scripted
crosser before its trigger).
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
from sim_bridge.embedded.state import STAND, WALK_FREE, WALK_SIDEWALK

#: chance a background pedestrian crosses when reaching a sidewalk end that has a crossing
CROSS_PROBABILITY = 0.3
_S_CROSS = 21


@numba.njit(cache=True)
def _path_blocked(F, I, b: int, x: float, y: float, yaw: float, NV: int) -> bool:
    """Should a walker at ``(x, y)`` heading ``yaw`` wait? A moving vehicle within 4 m ahead, or any
    vehicle whose box (plus 0.3 m) covers the next half metre of the path."""
    c = np.cos(yaw)
    s = np.sin(yaw)
    for j in range(NV):
        if not I[ACTIVE, b, j]:
            continue
        dx = F[X, b, j] - x
        dy = F[Y, b, j] - y
        lon = dx * c + dy * s
        lat = -dx * s + dy * c
        reach = 0.5 * max(F[LENGTH, b, j], F[WIDTH, b, j])
        if F[SPEED, b, j] > 0.5 and -reach < lon < 4.0 + reach and abs(lat) < reach + 0.5:
            return True
        # the point half a metre ahead, in the vehicle's frame
        px = x + 0.5 * c - F[X, b, j]
        py = y + 0.5 * s - F[Y, b, j]
        cj = np.cos(F[YAW, b, j])
        sj = np.sin(F[YAW, b, j])
        if (
            abs(px * cj + py * sj) < 0.5 * F[LENGTH, b, j] + 0.3
            and abs(-px * sj + py * cj) < 0.5 * F[WIDTH, b, j] + 0.3
        ):
            return True
    return False


@numba.njit(cache=True)
def walk_world(m, F, I, seed, W, NV: int, NP: int, dt: float, b: int) -> None:
    """Advance every active pedestrian (slots NV..NV+NP-1) of world ``b`` by ``dt`` [s]."""
    for a in range(NV, NV + NP):
        if not I[ACTIVE, b, a]:
            continue
        mode = I[MODE, b, a]
        if mode == STAND:
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
            if _path_blocked(F, I, b, F[X, b, a], F[Y, b, a], F[YAW, b, a], NV):
                F[SPEED, b, a] = 0.0
                continue
            step = min(v * dt, max(F[P_MAX_WALK, b, a] - F[P_WALKED, b, a], 0.0))
            F[X, b, a] += step * np.cos(F[YAW, b, a])
            F[Y, b, a] += step * np.sin(F[YAW, b, a])
            F[P_WALKED, b, a] += step
            F[SPEED, b, a] = step / dt
            if F[P_WALKED, b, a] >= F[P_MAX_WALK, b, a] - 1e-9:
                tgt = I[P_TARGET_LANE, b, a]
                if tgt >= 0:  # joined the far sidewalk: walk on, away from its end
                    I[MODE, b, a] = WALK_SIDEWALK
                    I[LANE, b, a] = tgt
                    F[S, b, a] = F[P_TARGET_S, b, a]
                    F[P_DIR, b, a] = 1.0 if F[P_TARGET_S, b, a] < 0.5 * m.lane_f[L_LENGTH, tgt] else -1.0
                    I[P_TARGET_LANE, b, a] = -1
                else:
                    I[MODE, b, a] = STAND
                    F[SPEED, b, a] = 0.0
