"""Oriented-box collision tests (separating axis theorem), compiled and batched over worlds."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True)
def _projected_radius(
    cos_t: float, sin_t: float, half_l: float, half_w: float, ax: float, ay: float
) -> float:
    """Half-extent of a box (heading ``cos_t, sin_t``) projected on unit axis ``(ax, ay)``."""
    return half_l * abs(cos_t * ax + sin_t * ay) + half_w * abs(-sin_t * ax + cos_t * ay)


@numba.njit(cache=True)
def boxes_overlap(
    x1: float,
    y1: float,
    yaw1: float,
    l1: float,
    w1: float,
    x2: float,
    y2: float,
    yaw2: float,
    l2: float,
    w2: float,
) -> bool:
    """Do two oriented boxes (centre [m], yaw [rad], length × width [m]) overlap? Touching counts."""
    dx = x2 - x1
    dy = y2 - y1
    # quick reject on circumscribed circles
    r1 = 0.5 * np.sqrt(l1 * l1 + w1 * w1)
    r2 = 0.5 * np.sqrt(l2 * l2 + w2 * w2)
    if dx * dx + dy * dy > (r1 + r2) * (r1 + r2):
        return False
    c1 = np.cos(yaw1)
    s1 = np.sin(yaw1)
    c2 = np.cos(yaw2)
    s2 = np.sin(yaw2)
    axes = ((c1, s1), (-s1, c1), (c2, s2), (-s2, c2))
    for ax, ay in axes:
        dist = abs(dx * ax + dy * ay)
        r = _projected_radius(c1, s1, 0.5 * l1, 0.5 * w1, ax, ay) + _projected_radius(
            c2, s2, 0.5 * l2, 0.5 * w2, ax, ay
        )
        if dist > r:
            return False
    return True


@numba.njit(cache=True)
def ego_collisions(
    x: np.ndarray,
    y: np.ndarray,
    yaw: np.ndarray,
    length: np.ndarray,
    width: np.ndarray,
    active: np.ndarray,
) -> np.ndarray:
    """Index of the first actor the ego (slot 0) overlaps in each world, -1 if none.

    Inputs ``[B, N]``; output ``int32 [B]``.
    """
    B, N = x.shape
    hit = np.full(B, -1, dtype=np.int32)
    for b in range(B):
        for j in range(1, N):
            if not active[b, j]:
                continue
            if boxes_overlap(
                x[b, 0], y[b, 0], yaw[b, 0], length[b, 0], width[b, 0],
                x[b, j], y[b, j], yaw[b, j], length[b, j], width[b, j],
            ):  # fmt: skip
                hit[b] = j
                break
    return hit
