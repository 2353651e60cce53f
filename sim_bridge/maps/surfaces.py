"""Lane surfaces as shapely polygons and their unions (the drivable area, the sidewalks)."""

from __future__ import annotations

import numpy as np
import shapely

#: gaps narrower than twice this between adjacent lane polygons are closed [m]
SEAM_TOLERANCE = 0.05
#: enclosed holes smaller than this in a surface are filled (junction centres no lane crosses) [m²]
MAX_FILLED_HOLE = 25.0


def lane_polygon(points: np.ndarray, headings: np.ndarray, widths: np.ndarray) -> shapely.Geometry:
    """Surface between a lane's edges; its ends pushed out 1 cm so lanes in a row touch."""
    normal = np.stack([-np.sin(headings), np.cos(headings)], axis=1)
    half = (widths / 2.0)[:, None]
    left, right = points + half * normal, points - half * normal
    tangent = np.stack([np.cos(headings), np.sin(headings)], axis=1)
    push = np.zeros_like(points)
    push[0], push[-1] = -0.01 * tangent[0], 0.01 * tangent[-1]
    ring = np.concatenate([left + push, (right + push)[::-1]])
    poly = shapely.Polygon(ring)
    if not poly.is_valid:
        poly = shapely.make_valid(poly)
        parts = [g for g in shapely.get_parts(poly) if g.geom_type in ("Polygon", "MultiPolygon")]
        poly = shapely.union_all(parts) if parts else shapely.Polygon()
    return poly


def union(polys: list[shapely.Geometry]) -> shapely.Geometry:
    """The surface of ``polys``: seams between adjacent lanes closed, small enclosed holes filled."""
    if not polys:
        return shapely.Polygon()
    grown = shapely.union_all([shapely.buffer(p, SEAM_TOLERANCE, join_style="mitre") for p in polys])
    area = shapely.buffer(grown, -SEAM_TOLERANCE, join_style="mitre")
    if not area.is_valid:
        area = shapely.make_valid(area)
    parts = []
    for part in shapely.get_parts(area):
        if part.geom_type != "Polygon" or part.is_empty:
            continue
        holes = [ring for ring in part.interiors if shapely.Polygon(ring).area >= MAX_FILLED_HOLE]
        parts.append(shapely.Polygon(part.exterior, holes))
    return shapely.union_all(parts) if parts else shapely.Polygon()
