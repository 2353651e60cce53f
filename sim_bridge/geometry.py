"""Oriented boxes: overlap, gap and contact normal by the separating-axis theorem, compiled.

One implementation for everything that asks whether two boxes touch or how far apart they are: the
embedded simulator's contacts (``sim_bridge.embedded.contact``) and the privileged expert's
clearance checks. A box is its centre ``x, y`` [m], heading ``yaw`` [rad, counter-clockwise from
+x] and ``length × width`` [m]. (The criteria's time-to-collision sweeps the same four axes over
time in closed form, vectorised over rows: ``scenarios.criteria.ttc_of_rows``.) A parked car's
opened door is one box too, the car's widened on the door's side (:func:`open_door`).
"""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def projected_radius(c: float, s: float, half_l: float, half_w: float, ax: float, ay: float) -> float:
    """Half-extent of a box with heading ``(c, s)`` and half sizes [m] projected on the unit axis ``(ax, ay)``."""
    return half_l * abs(c * ax + s * ay) + half_w * abs(-s * ax + c * ay)


@numba.njit(cache=True)
def box_gap(
    x1: float, y1: float, yaw1: float, l1: float, w1: float,
    x2: float, y2: float, yaw2: float, l2: float, w2: float,
) -> tuple[float, float, float]:  # fmt: skip
    """``(gap [m], nx, ny)``: the largest separation of the two boxes' projections over the four
    axes of their sides, and that unit axis pointing from box 1 to box 2.

    ``gap > 0``: apart, and the gap is a lower bound of their distance (exact when a side faces
    the other box). ``gap <= 0``: they overlap (0: touching) and ``-gap`` is the penetration depth
    along the axis of least penetration, the direction that separates them soonest.
    """
    dx = x2 - x1
    dy = y2 - y1
    c1 = math.cos(yaw1)
    s1 = math.sin(yaw1)
    c2 = math.cos(yaw2)
    s2 = math.sin(yaw2)
    best = -math.inf
    bx = 1.0
    by = 0.0
    for k in range(4):
        if k == 0:
            ax, ay = c1, s1
        elif k == 1:
            ax, ay = -s1, c1
        elif k == 2:
            ax, ay = c2, s2
        else:
            ax, ay = -s2, c2
        d = dx * ax + dy * ay
        sep = (
            abs(d)
            - projected_radius(c1, s1, 0.5 * l1, 0.5 * w1, ax, ay)
            - projected_radius(c2, s2, 0.5 * l2, 0.5 * w2, ax, ay)
        )
        if sep > best:
            best = sep
            sign = 1.0 if d >= 0.0 else -1.0
            bx = sign * ax
            by = sign * ay
    return best, bx, by


@numba.njit(cache=True)
def boxes_overlap(
    x1: float, y1: float, yaw1: float, l1: float, w1: float,
    x2: float, y2: float, yaw2: float, l2: float, w2: float,
) -> bool:  # fmt: skip
    """Do the two boxes overlap? Touching counts. Far-apart pairs are rejected on their
    circumscribed circles first."""
    dx = x2 - x1
    dy = y2 - y1
    reach = 0.5 * (math.sqrt(l1 * l1 + w1 * w1) + math.sqrt(l2 * l2 + w2 * w2))
    if dx * dx + dy * dy > reach * reach:
        return False
    return box_gap(x1, y1, yaw1, l1, w1, x2, y2, yaw2, l2, w2)[0] <= 0.0


def open_door(x, y, yaw, width, door, side):
    """A car's box with a door open: ``width`` grows by ``door`` [m] on the ``side`` (+1 left, -1
    right, of the car's own frame), the other side staying in place. Takes and returns the box
    centre ``x, y`` [m] and ``width`` [m] (scalars or arrays of one shape), ``yaw`` [rad].

    One rule for every backend: the embedded OPEN_DOOR behaviour, the CARLA-protocol server's
    ``open_vehicle_door`` and the CARLA bridge's view of the car with its door open."""
    shift = 0.5 * door * side
    return x - np.sin(yaw) * shift, y + np.cos(yaw) * shift, width + door
