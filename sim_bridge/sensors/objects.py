"""The object list: the nearest actors around each ego, in the ego frame (``Observation.objects``).

Columns follow :class:`~sim_bridge.sensors.layout.ObjectFeature`. Positions are relative to the
ego's centre and rotated into its frame (x forward, y left). ``COS_YAW, SIN_YAW`` give the actor's
heading relative to the ego's. ``VX, VY`` are the actor's own velocity (its speed along its yaw)
rotated into the ego frame: they are *not* relative to the ego's motion (a car driving alongside at
the ego's speed has ``VX`` = its speed, not 0). One small numba kernel loops over worlds and actor
slots (selection and sorting of ~N = 30-100 slots per world).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from sim_bridge.api import ActorKind
from sim_bridge.sensors.frame import ActorArrays
from sim_bridge.sensors.layout import OBJECT_DIM, ObjectFeature

__all__ = ["object_list"]

# plain ints: compile-time constants in the kernel
_X, _Y = int(ObjectFeature.X), int(ObjectFeature.Y)
_COS, _SIN = int(ObjectFeature.COS_YAW), int(ObjectFeature.SIN_YAW)
_VX, _VY = int(ObjectFeature.VX), int(ObjectFeature.VY)
_LEN, _WID = int(ObjectFeature.LENGTH), int(ObjectFeature.WIDTH)
_IS_VEHICLE, _IS_PEDESTRIAN = int(ObjectFeature.IS_VEHICLE), int(ObjectFeature.IS_PEDESTRIAN)
_IS_STATIC = int(ObjectFeature.IS_STATIC)
_VEHICLE, _PEDESTRIAN, _STATIC = int(ActorKind.VEHICLE), int(ActorKind.PEDESTRIAN), int(ActorKind.STATIC)


def object_list(
    actors: ActorArrays, max_objects: int = 32, radius: float = 50.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``max_objects`` nearest active actors other than the ego (slot 0) within ``radius`` [m]
    of the ego's centre, nearest first (ties by slot).

    ``actors``: boxes ``[B, N]`` in the map frame. Returns ``objects float32 [B, max_objects, F]``
    (``F`` = ``OBJECT_DIM``; columns per :class:`ObjectFeature`, see the module doc for frames),
    ``mask bool [B, max_objects]`` and ``ids int32 [B, max_objects]`` (the actors' ids, -1 where
    masked). Masked rows are all zero.
    """
    if max_objects < 0:
        raise ValueError(f"max_objects must be >= 0, got {max_objects}")
    b = actors.shape[0]
    objects = np.zeros((b, max_objects, OBJECT_DIM), dtype=np.float32)
    mask = np.zeros((b, max_objects), dtype=bool)
    ids = np.full((b, max_objects), -1, dtype=np.int32)
    _objects_kernel(
        np.asarray(actors.x, np.float64),
        np.asarray(actors.y, np.float64),
        np.asarray(actors.yaw, np.float64),
        np.asarray(actors.speed, np.float64),
        np.asarray(actors.length, np.float64),
        np.asarray(actors.width, np.float64),
        np.asarray(actors.kind, np.int64),
        np.asarray(actors.active, np.bool_),
        np.asarray(actors.ids, np.int64),
        float(radius),
        objects,
        mask,
        ids,
    )
    return objects, mask, ids


@numba.njit(cache=True)
def _objects_kernel(
    x: np.ndarray,  # [B, N]
    y: np.ndarray,
    yaw: np.ndarray,
    speed: np.ndarray,
    length: np.ndarray,
    width: np.ndarray,
    kind: np.ndarray,
    active: np.ndarray,
    actor_ids: np.ndarray,
    radius: float,
    objects: np.ndarray,  # [B, M, F] out, zeros
    mask: np.ndarray,  # [B, M] out, False
    ids: np.ndarray,  # [B, M] out, -1
) -> None:
    nb, n = x.shape
    m = objects.shape[1]
    r2 = radius * radius
    dist2 = np.empty(n)
    slot = np.empty(n, dtype=np.int64)
    for b in range(nb):
        ex, ey, eyaw = x[b, 0], y[b, 0], yaw[b, 0]
        c, s = math.cos(eyaw), math.sin(eyaw)
        k = 0
        for i in range(1, n):
            if not active[b, i]:
                continue
            dx, dy = x[b, i] - ex, y[b, i] - ey
            d2 = dx * dx + dy * dy
            if d2 <= r2:
                dist2[k] = d2
                slot[k] = i
                k += 1
        order = np.argsort(dist2[:k], kind="mergesort")  # stable: ties keep slot order
        for row in range(min(k, m)):
            i = slot[order[row]]
            dx, dy = x[b, i] - ex, y[b, i] - ey
            rel = yaw[b, i] - eyaw
            cr, sr = math.cos(rel), math.sin(rel)
            o = objects[b, row]
            o[_X] = c * dx + s * dy
            o[_Y] = -s * dx + c * dy
            o[_COS] = cr
            o[_SIN] = sr
            o[_VX] = speed[b, i] * cr
            o[_VY] = speed[b, i] * sr
            o[_LEN] = length[b, i]
            o[_WID] = width[b, i]
            kd = kind[b, i]
            if kd == _VEHICLE:
                o[_IS_VEHICLE] = 1.0
            elif kd == _PEDESTRIAN:
                o[_IS_PEDESTRIAN] = 1.0
            elif kd == _STATIC:
                o[_IS_STATIC] = 1.0
            mask[b, row] = True
            ids[b, row] = actor_ids[b, i]
