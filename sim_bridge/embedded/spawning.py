"""Background traffic density: despawn far actors, spawn new ones at free places around the ego.

Spawn places are the map's precomputed spawn points (vehicles) and sidewalk points (pedestrians),
drawn with the counter RNG so each world is reproducible on its own. After reset, new actors
appear at least ``min_ego_distance`` from the ego so they do not pop up in view. A world whose
``target`` is negative is left untouched.
"""

from __future__ import annotations

import numba
import numpy as np

from sim_bridge.embedded.fields import (
    ACCEL,
    ACTIVE,
    BACKGROUND,
    BEH_KIND,
    CRUISE,
    FIRST_BG_PEDESTRIAN,
    FIRST_BG_VEHICLE,
    ID,
    IGNORE_ACTORS,
    IGNORE_SIGNALS,
    L_JUNCTION,
    L_LENGTH,
    L_SPEED,
    L_STOP,
    LANE,
    LANE_PREV,
    LAT0,
    LAT_BIAS,
    LC_ELAPSED,
    LENGTH,
    MODE,
    NEXT_ID,
    P_DIR,
    P_LAT,
    P_SPEED,
    P_TARGET_LANE,
    PLAN_LEN,
    ROUTE_PLAN,
    SPEED,
    SPEED_FACTOR,
    STEER,
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
from sim_bridge.embedded.lanes import extend_plan, pose_on_lane, width_on_lane
from sim_bridge.embedded.rng import hash_uniform
from sim_bridge.embedded.state import WALK_SIDEWALK

_S_SPAWN, _S_TYPE, _S_SPEED, _S_PSPAWN, _S_PLAN = 31, 32, 33, 34, 13
#: (length, width) [m] of background vehicle types and their cumulative probabilities
VEHICLE_TYPES = np.array([[4.6, 1.9], [4.2, 1.8], [5.2, 2.0], [7.0, 2.4]])
VEHICLE_TYPE_CDF = np.array([0.45, 0.75, 0.92, 1.0])
#: attempts per free slot to find a spawn place
_TRIES = 24
#: minimum distance between a new vehicle and any other vehicle [m]
VEHICLE_CLEARANCE = 10.0


@numba.njit(cache=True)
def _enters_junction(m, lane: int) -> bool:
    """Does ``lane`` end at a junction (a stop line, or a successor inside a junction)?"""
    if m.lane_i[L_STOP, lane] >= 0:
        return True
    for q in range(m.succ_start[lane], m.succ_start[lane + 1]):
        if m.lane_i[L_JUNCTION, m.succ_index[q]] >= 0:
            return True
    return False


@numba.njit(cache=True)
def _despawn_far(F, I, b: int, lo: int, hi: int, radius: float) -> int:
    """Deactivate actors in slots ``[lo, hi)`` farther than ``radius`` from the ego; count the rest."""
    count = 0
    for i in range(lo, hi):
        if I[ACTIVE, b, i]:
            if np.hypot(F[X, b, i] - F[X, b, 0], F[Y, b, i] - F[Y, b, 0]) > radius:
                I[ACTIVE, b, i] = 0
            else:
                count += 1
    return count


@numba.njit(cache=True)
def spawn_vehicles_world(
    m, F, I, plan, seed, W, NV: int, target: int, radius: float, min_ego_distance: float,
    max_new: int, speed_spread: float, b: int,
) -> None:  # fmt: skip
    """Despawn world ``b``'s background vehicles beyond ``radius`` [m] of the ego, then spawn up to
    ``max_new`` until ``target`` background vehicles are active."""
    M = m.spawn_lane.shape[0]
    if target >= 0:
        first = W[FIRST_BG_VEHICLE, b]
        count = _despawn_far(F, I, b, first, NV, radius)
        new = 0
        for i in range(first, NV):
            if count >= target or new >= max_new or M == 0:
                break
            if I[ACTIVE, b, i]:
                continue
            for t in range(_TRIES):
                u = hash_uniform(seed[b], W[STEP_COUNT, b], _S_SPAWN, i * _TRIES + t)
                k = min(int(u * M), M - 1)
                px = m.spawn[k, 0]
                py = m.spawn[k, 1]
                d_ego = np.hypot(px - F[X, b, 0], py - F[Y, b, 0])
                if d_ego > radius or d_ego < min_ego_distance:
                    continue
                nearest = 1e9
                for j in range(NV):
                    if I[ACTIVE, b, j]:
                        nearest = min(nearest, np.hypot(F[X, b, j] - px, F[Y, b, j] - py))
                if nearest < VEHICLE_CLEARANCE:
                    continue
                lane = m.spawn_lane[k]
                x, y, yaw = pose_on_lane(m, lane, m.spawn[k, 2], 0.0)
                # start no faster than what stops comfortably (3 m/s²) behind the nearest vehicle
                # ahead, and never where a vehicle behind could not stop for us
                ahead = 1e9
                blocked = False
                for j in range(NV):
                    if I[ACTIVE, b, j] and j != i and np.cos(F[YAW, b, j] - yaw) > 0.7:
                        dx = F[X, b, j] - x
                        dy = F[Y, b, j] - y
                        lon = dx * np.cos(yaw) + dy * np.sin(yaw)
                        # in our lane, or changing into it (still beside it)
                        if abs(-dx * np.sin(yaw) + dy * np.cos(yaw)) < 2.5 or I[LANE, b, j] == lane:
                            if lon > 0.0:
                                ahead = min(ahead, lon)
                            elif -lon < VEHICLE_CLEARANCE + F[SPEED, b, j] ** 2 / 6.0:
                                blocked = True
                if blocked:
                    continue
                safe = np.sqrt(2.0 * 3.0 * max(ahead - VEHICLE_CLEARANCE + 2.0, 0.0))
                if _enters_junction(m, lane):  # a junction ahead: be able to stop before it
                    safe = min(
                        safe, np.sqrt(2.0 * 3.0 * max(m.lane_f[L_LENGTH, lane] - m.spawn[k, 2] - 5.0, 0.0))
                    )
                ut = hash_uniform(seed[b], W[STEP_COUNT, b], _S_TYPE, i)
                kind = 0
                while VEHICLE_TYPE_CDF[kind] < ut:
                    kind += 1
                us = hash_uniform(seed[b], W[STEP_COUNT, b], _S_SPEED, i)
                I[ACTIVE, b, i] = 1
                I[ID, b, i] = W[NEXT_ID, b]
                W[NEXT_ID, b] += 1
                F[X, b, i] = x
                F[Y, b, i] = y
                F[YAW, b, i] = yaw
                F[LENGTH, b, i] = VEHICLE_TYPES[kind, 0]
                F[WIDTH, b, i] = VEHICLE_TYPES[kind, 1]
                F[WHEELBASE, b, i] = 0.6 * VEHICLE_TYPES[kind, 0]
                F[STEER, b, i] = 0.0
                F[ACCEL, b, i] = 0.0
                F[SPEED_FACTOR, b, i] = 1.0 + speed_spread * (2.0 * us - 1.0)
                F[SPEED, b, i] = min(0.8 * F[SPEED_FACTOR, b, i] * m.lane_f[L_SPEED, lane], safe)
                F[CRUISE, b, i] = -1.0
                F[S, b, i] = m.spawn[k, 2]
                F[LAT0, b, i] = 0.0
                F[LAT_BIAS, b, i] = 0.0
                F[STUCK, b, i] = 0.0
                F[LC_ELAPSED, b, i] = 0.0
                I[LANE, b, i] = lane
                plan[b, i, :] = -1
                plan[b, i, 0] = lane
                I[PLAN_LEN, b, i] = extend_plan(
                    m, plan[b, i], 1, seed[b], W[STEP_COUNT, b], _S_PLAN * 1000 + i, F[LENGTH, b, i]
                )
                I[ROUTE_PLAN, b, i] = 0
                I[LANE_PREV, b, i] = -1
                I[BACKGROUND, b, i] = 1
                I[IGNORE_SIGNALS, b, i] = 0
                I[IGNORE_ACTORS, b, i] = 0
                I[BEH_KIND, b, i] = 0
                I[TRIGGERED, b, i] = 0
                I[STOP_DONE, b, i] = 0
                count += 1
                new += 1
                break


@numba.njit(cache=True)
def spawn_pedestrians_world(
    m, F, I, seed, W, NV: int, NP: int, target: int, radius: float, min_ego_distance: float, max_new: int,
    b: int,
) -> None:  # fmt: skip
    """As :func:`spawn_vehicles_world` for background pedestrians on sidewalks."""
    M = m.walk_lane.shape[0]
    if target >= 0:
        first = W[FIRST_BG_PEDESTRIAN, b]
        count = _despawn_far(F, I, b, first, NV + NP, radius)
        new = 0
        for a in range(first, NV + NP):
            if count >= target or new >= max_new or M == 0:
                break
            if I[ACTIVE, b, a]:
                continue
            for t in range(_TRIES):
                u = hash_uniform(seed[b], W[STEP_COUNT, b], _S_PSPAWN, a * _TRIES + t)
                k = min(int(u * M), M - 1)
                d_ego = np.hypot(m.walk[k, 0] - F[X, b, 0], m.walk[k, 1] - F[Y, b, 0])
                if d_ego > radius or d_ego < min_ego_distance:
                    continue
                lane = m.walk_lane[k]
                u2 = hash_uniform(seed[b], W[STEP_COUNT, b], _S_PSPAWN + 1, a)
                u3 = hash_uniform(seed[b], W[STEP_COUNT, b], _S_PSPAWN + 2, a)
                lat = (u2 - 0.5) * 0.5 * width_on_lane(m, lane, m.walk[k, 2])
                x, y, yaw = pose_on_lane(m, lane, m.walk[k, 2], lat)
                I[ACTIVE, b, a] = 1
                I[ID, b, a] = W[NEXT_ID, b]
                W[NEXT_ID, b] += 1
                F[X, b, a] = x
                F[Y, b, a] = y
                F[YAW, b, a] = yaw
                F[LENGTH, b, a] = 0.6
                F[WIDTH, b, a] = 0.6
                I[MODE, b, a] = WALK_SIDEWALK
                I[LANE, b, a] = lane
                F[S, b, a] = m.walk[k, 2]
                F[P_DIR, b, a] = 1.0 if u3 < 0.5 else -1.0
                F[P_LAT, b, a] = lat
                F[P_SPEED, b, a] = 1.1 + 0.6 * u3
                F[SPEED, b, a] = F[P_SPEED, b, a]
                I[BACKGROUND, b, a] = 1
                I[P_TARGET_LANE, b, a] = -1
                I[BEH_KIND, b, a] = 0
                count += 1
                new += 1
                break
