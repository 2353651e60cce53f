"""Distance of predicted positions to the route polyline, and their arc length along it.

The planner asks this of every candidate position of every decision (``B × N × H`` points against
``R`` route targets, several times per decision: the route and lanes costs, the kinematic ego
motion's progress), so it is one compiled loop (:func:`_project`) rather than a ``[B, N, H, R]``
numpy broadcast: the broadcast spent ~1.5 ms of a 10 ms decision building temporaries.

Letters: ``B`` worlds, ``P`` points per world, ``R`` polyline vertices.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _project(points: np.ndarray, poly: np.ndarray, dist: np.ndarray, arc: np.ndarray) -> None:
    """``points [B, P, 2]``, ``poly [B, R, 2]`` (R ≥ 2) → ``dist``, ``arc`` ``[B, P]`` (filled).

    The first segment extends backwards and the last forwards without end; a segment shorter than
    1 mm counts as its start point; the nearest segment wins, the earlier one on a tie."""
    B, P = points.shape[0], points.shape[1]
    S = poly.shape[1] - 1
    for b in range(B):
        for p in range(P):
            px, py = points[b, p, 0], points[b, p, 1]
            best, best_arc, start = np.inf, 0.0, 0.0
            for s in range(S):
                ax, ay = poly[b, s, 0], poly[b, s, 1]
                dx, dy = poly[b, s + 1, 0] - ax, poly[b, s + 1, 1] - ay
                len2 = dx * dx + dy * dy
                seg = np.sqrt(len2)
                t = 0.0
                if len2 > 1e-6:
                    t = ((px - ax) * dx + (py - ay) * dy) / len2
                    if s > 0 and t < 0.0:
                        t = 0.0
                    if s < S - 1 and t > 1.0:
                        t = 1.0
                ex, ey = px - (ax + t * dx), py - (ay + t * dy)
                d2 = ex * ex + ey * ey
                if d2 < best:
                    best, best_arc = d2, start + t * seg
                start += seg
            dist[b, p] = np.sqrt(best)
            arc[b, p] = best_arc


def polyline_projection(points: np.ndarray, polyline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distance ``[B, ...]`` of ``points [B, ..., 2]`` to each world's polyline ``[B, R, 2]`` [m],
    and the arc length of the nearest point along it from the first vertex [m]. The first segment
    extends backwards and the last forwards without end (the targets start a few metres ahead of
    the ego and stop at the horizon of the ego vector), so the arc length is negative behind the
    first vertex; coincident vertices (the route's end) count as points. ``R = 1``: that point."""
    points = np.asarray(points, dtype=np.float32)
    B = polyline.shape[0]
    lead = points.shape[:-1]
    if polyline.shape[1] < 2:
        rel = points - np.asarray(polyline, dtype=np.float32)[:, :1].reshape(B, *([1] * (points.ndim - 2)), 2)
        return np.linalg.norm(rel, axis=-1), np.zeros(lead, dtype=np.float32)
    flat = np.ascontiguousarray(points.reshape(B, -1, 2))
    dist = np.empty(flat.shape[:2], dtype=np.float32)
    arc = np.empty(flat.shape[:2], dtype=np.float32)
    _project(flat, np.ascontiguousarray(polyline, dtype=np.float32), dist, arc)
    return dist.reshape(lead), arc.reshape(lead)


def polyline_distance(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """Distance of ``points [B, ..., 2]`` to each world's polyline ``[B, R, 2]`` [m]
    (:func:`polyline_projection`)."""
    return polyline_projection(points, polyline)[0]


__all__ = ["polyline_distance", "polyline_projection"]
