"""Vectorised queries on a :class:`~sim_bridge.maps.road_map.RoadMap`: poses on lanes, projection of
points onto lanes, the drivable raster and spawn places.

A lane between two samples ``i`` and ``i + 1`` is the bilinear patch
``xy(t, l) = P_i + t (P_{i+1} - P_i) + l (N_i + t (N_{i+1} - N_i))`` with ``t ∈ [0, 1]`` the
fraction of the segment, ``l`` the lateral offset (+ left) and ``N`` the unit normals of the sample
headings: offsets vary smoothly around bends, and :func:`project` inverts :func:`pose_at` exactly
(solving a quadratic in ``t``). Derived arrays (keyed arc lengths, KD-trees, the raster) are built on
first use and kept in ``road_map.cache``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from PIL import Image, ImageDraw
from scipy.spatial import cKDTree

from sim_bridge.frames import wrap_angle
from sim_bridge.maps.road_map import LaneType, Projection

if TYPE_CHECKING:
    from sim_bridge.maps.road_map import RoadMap

#: resolution of the drivable raster [m/cell]
RASTER_RESOLUTION = 0.1
#: nearest centreline samples examined per projected point
PROJECT_NEIGHBOURS = 12
#: cost of a heading disagreement among lanes containing a point: ``HEADING_WEIGHT * (1 - cos(error))`` [m]
HEADING_WEIGHT = 30.0
#: added to the distance of candidate lanes that do not contain the point [m]
_OUTSIDE = 1e6


def _pose_arrays(road_map: RoadMap) -> dict[str, Any]:
    """Keyed arc lengths (one sorted array over all lanes) and sample normals, cached."""
    cached = road_map.cache.get("lookup_pose")
    if cached is None:
        stride = math.ceil(float(road_map.lane_length.max(initial=0.0))) + 2.0
        cached = {
            "stride": stride,
            "keyed_s": road_map.s + road_map.point_lane * stride,
            "normals": np.stack([-np.sin(road_map.headings), np.cos(road_map.headings)], axis=1),
        }
        road_map.cache["lookup_pose"] = cached
    return cached


def pose_at(
    road_map: RoadMap, lane: np.ndarray, s: np.ndarray | float, lateral: np.ndarray | float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Points on lanes: ``lane [N]``, ``s [N]`` [m] (clipped to the lane), ``lateral`` (+ left) [m]
    → ``xy [N, 2]`` [m], ``yaw [N]`` [rad] (the lane's heading there).

    Inputs broadcast together; any shape ``[...]`` gives ``[..., 2]`` and ``[...]``.
    """
    arrays = _pose_arrays(road_map)
    lane_b, s_b, lat_b = np.broadcast_arrays(np.asarray(lane, np.int64), np.asarray(s, np.float64), lateral)
    shape = lane_b.shape
    lane_f, s_f = lane_b.ravel(), s_b.ravel()
    lat_f = np.asarray(lat_b, np.float64).ravel()
    if lane_f.size and (lane_f.min() < 0 or lane_f.max() >= road_map.num_lanes):
        raise IndexError(
            f"lane indices must lie in [0, {road_map.num_lanes}); got {lane_f.min()}..{lane_f.max()}"
        )
    s_f = np.clip(s_f, 0.0, road_map.lane_length[lane_f])
    lo, hi = road_map.lane_start[lane_f], road_map.lane_start[lane_f + 1]
    i = np.searchsorted(arrays["keyed_s"], s_f + lane_f * arrays["stride"], side="right") - 1
    i = np.clip(i, lo, hi - 2)
    t = _fraction(road_map.s, i, s_f)
    xy, yaw = _patch(road_map, arrays["normals"], i, t, lat_f)
    return xy.reshape(*shape, 2), yaw.reshape(shape)


def _fraction(s: np.ndarray, i: np.ndarray, at: np.ndarray) -> np.ndarray:
    ds = s[i + 1] - s[i]
    return np.clip((at - s[i]) / np.where(ds > 0, ds, 1.0), 0.0, 1.0)


def _patch(
    road_map: RoadMap, normals: np.ndarray, i: np.ndarray, t: np.ndarray, lateral: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    p, n = road_map.points, normals
    tt = t[..., None]
    xy = p[i] + tt * (p[i + 1] - p[i]) + lateral[..., None] * (n[i] + tt * (n[i + 1] - n[i]))
    h = road_map.headings
    yaw = wrap_angle(h[i] + t * wrap_angle(h[i + 1] - h[i]))
    return xy, np.asarray(yaw, np.float64)


def _tree(road_map: RoadMap, lane_types: tuple[LaneType, ...]) -> tuple[cKDTree | None, np.ndarray]:
    """KD-tree over the centreline samples of lanes of ``lane_types`` and their global indices."""
    types = sorted({int(t) for t in lane_types})
    key = "lookup_tree:" + ",".join(map(str, types))
    cached = road_map.cache.get(key)
    if cached is None:
        wanted = np.isin(road_map.lane_type[road_map.point_lane], np.array(types, dtype=np.int64))
        idx = np.flatnonzero(wanted)
        cached = (cKDTree(road_map.points[idx]) if idx.size else None, idx)
        road_map.cache[key] = cached
    return cached


def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _solve_t(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The root of ``a t² + b t + c = 0`` nearest to ``[0, 1]`` (stable when ``a`` → 0)."""
    sq = np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0))
    denom = -b - np.where(b >= 0, 1.0, -1.0) * sq
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = np.where(np.abs(denom) > 1e-300, 2.0 * c / denom, 0.0)
        t2 = np.where(np.abs(a) > 1e-300, denom / (2.0 * a), np.inf)
    off1 = np.maximum(-t1, t1 - 1.0)
    off2 = np.where(np.isfinite(t2), np.maximum(-t2, t2 - 1.0), np.inf)
    return np.where(off2 < off1, t2, t1)


def _candidates(
    road_map: RoadMap,
    pts: np.ndarray,
    yaw: np.ndarray | None,
    lane_types: tuple[LaneType, ...],
    max_distance: float,
) -> dict[str, np.ndarray] | None:
    """Projections of ``pts [N, 2]`` onto the segments at their nearest samples: arrays ``[N, k]``.

    Keys: ``seg`` (segment start sample), ``t`` (fraction in ``[0, 1]``), ``lateral``, ``distance``,
    ``heading_error``, ``contains`` (within the lane's width and extent), ``cost`` (see
    :func:`project`; ``inf`` for missing candidates). ``None`` when no lane has the asked types.
    """
    tree, idx = _tree(road_map, tuple(lane_types))
    n_pts = pts.shape[0]
    if tree is None:
        return None
    k = min(PROJECT_NEIGHBOURS, idx.size)
    _, nn = tree.query(pts, k=k, distance_upper_bound=max_distance + 1.5)
    nn = np.asarray(nn).reshape(n_pts, k)
    found = nn < idx.size
    g = idx[np.where(found, nn, 0)]  # [N, k] global sample index
    lane_of = road_map.point_lane[g]
    lo, hi = road_map.lane_start[lane_of], road_map.lane_start[lane_of + 1]
    # the segment starting at each sample (ending there for a lane's last sample): consecutive
    # samples of a lane are among the neighbours, so together they cover the segments on both sides
    seg = np.clip(g, lo, np.maximum(hi - 2, lo))
    valid = found & (hi - lo >= 2)

    normals = _pose_arrays(road_map)["normals"]
    p = road_map.points
    A, B = p[seg], p[seg + 1] - p[seg]
    C, D = normals[seg], normals[seg + 1] - normals[seg]
    q = pts[:, None, :] - A
    t = _solve_t(-_cross(B, D), _cross(q, D) - _cross(B, C), _cross(q, C))
    tc = np.clip(t, 0.0, 1.0)
    n_at = C + tc[..., None] * D
    r = q - tc[..., None] * B
    lateral = np.einsum("...i,...i->...", r, n_at) / np.maximum(
        np.einsum("...i,...i->...", n_at, n_at), 1e-12
    )
    within = (t >= -1e-9) & (t <= 1.0 + 1e-9)
    distance = np.where(within, np.abs(lateral), np.hypot(r[..., 0], r[..., 1]))
    h = road_map.headings
    heading = wrap_angle(h[seg] + tc * wrap_angle(h[seg + 1] - h[seg]))
    width = road_map.widths[seg] + tc * (road_map.widths[seg + 1] - road_map.widths[seg])
    contains = within & (np.abs(lateral) <= 0.5 * width)
    if yaw is not None:
        heading_error = wrap_angle(yaw[:, None] - heading)
    else:
        heading_error = np.zeros_like(heading)
    # lanes containing the point first (the heading picks among overlapping ones), then the nearest
    cost = np.where(
        contains, np.abs(lateral) + HEADING_WEIGHT * (1.0 - np.cos(heading_error)), _OUTSIDE + distance
    )
    cost = np.where(valid & (distance <= max_distance), cost, np.inf)
    return {
        "seg": seg,
        "t": tc,
        "lateral": lateral,
        "distance": distance,
        "heading_error": heading_error,
        "contains": contains,
        "cost": cost,
    }


def _empty_projection(n_pts: int) -> Projection:
    return Projection(
        lane=np.full(n_pts, -1, dtype=np.int64),
        s=np.zeros(n_pts),
        lateral=np.zeros(n_pts),
        heading_error=np.zeros(n_pts),
        distance=np.full(n_pts, np.inf),
        inside=np.zeros(n_pts, dtype=bool),
    )


def project(
    road_map: RoadMap,
    xy: np.ndarray,
    yaw: np.ndarray | None = None,
    lane_types: tuple[LaneType, ...] = (LaneType.DRIVING,),
    max_distance: float = 10.0,
) -> Projection:
    """Project points ``xy [N, 2]`` [m] onto the nearest lane of ``lane_types`` (see :class:`Projection`).

    Candidates are the segments at the ``PROJECT_NEIGHBOURS`` nearest centreline samples. Lanes
    whose surface contains the point win over those that do not; among them the smallest
    ``|lateral| + HEADING_WEIGHT * (1 - cos(heading error))`` wins when ``yaw [N]`` [rad] is given
    (so overlapping junction lanes resolve to the one driven along, while a car driving against its
    lane still projects onto that lane), the smallest ``|lateral|`` otherwise; points inside no lane
    go to the nearest one. Points farther than ``max_distance`` [m] from every lane of
    ``lane_types``, and non-finite points, get ``lane = -1`` and ``distance = inf``.
    """
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    n_pts = pts.shape[0]
    yaw_arr = None if yaw is None else np.broadcast_to(np.asarray(yaw, np.float64).ravel(), (n_pts,))
    result = _empty_projection(n_pts)
    finite = np.isfinite(pts).all(axis=1)  # NaN/inf points lie on no lane
    if yaw_arr is not None:
        finite &= np.isfinite(yaw_arr)
    rows = np.flatnonzero(finite)
    cand = None
    if rows.size:
        cand = _candidates(
            road_map, pts[rows], None if yaw_arr is None else yaw_arr[rows], tuple(lane_types), max_distance
        )
    if cand is None:
        return result
    best = np.argmin(cand["cost"], axis=1)
    pick = {name: a[np.arange(rows.size), best] for name, a in cand.items()}
    ok = np.isfinite(pick["cost"])
    seg, t, out = pick["seg"][ok], pick["t"][ok], rows[ok]
    result.lane[out] = road_map.point_lane[seg]
    result.s[out] = road_map.s[seg] + t * (road_map.s[seg + 1] - road_map.s[seg])
    result.lateral[out] = pick["lateral"][ok]
    result.heading_error[out] = pick["heading_error"][ok]
    result.distance[out] = pick["distance"][ok]
    result.inside[out] = pick["contains"][ok]
    return result


def lane_candidates(
    road_map: RoadMap,
    xy: np.ndarray,
    lane_types: tuple[LaneType, ...] = (LaneType.DRIVING,),
    max_distance: float = 10.0,
) -> Projection:
    """Every lane near one point ``xy [2]`` [m], best projection per lane, best first.

    Where lanes overlap (junctions) a point lies on several; routing uses this to pick the one that
    makes the shortest route. Fields as :class:`Projection`, one entry per lane (``heading_error`` 0).
    """
    pts = np.asarray(xy, dtype=np.float64).reshape(1, 2)
    cand = (
        _candidates(road_map, pts, None, tuple(lane_types), max_distance) if np.isfinite(pts).all() else None
    )
    if cand is None:
        return _empty_projection(0)
    flat = {name: a[0] for name, a in cand.items()}
    order = np.argsort(flat["cost"], kind="stable")
    order = order[np.isfinite(flat["cost"][order])]
    lanes = road_map.point_lane[flat["seg"][order]]
    _, first = np.unique(lanes, return_index=True)
    keep = order[np.sort(first)]
    seg, t = flat["seg"][keep], flat["t"][keep]
    return Projection(
        lane=road_map.point_lane[seg].astype(np.int64),
        s=road_map.s[seg] + t * (road_map.s[seg + 1] - road_map.s[seg]),
        lateral=flat["lateral"][keep],
        heading_error=np.zeros(keep.size),
        distance=flat["distance"][keep],
        inside=flat["contains"][keep],
    )


# ------------------------------------------------------------------------------------------ raster


def drivable_raster(road_map: RoadMap) -> dict[str, Any]:
    """The drivable area at ``RASTER_RESOLUTION``, bit-packed along x, built once per map.

    Cells are filled where their centre lies inside ``drivable_area`` (PIL's scan-line fill).
    """
    cached = road_map.cache.get("drivable_raster")
    if cached is not None:
        return cached
    res = RASTER_RESOLUTION
    xmin, ymin, xmax, ymax = road_map.bounds
    x0, y0 = math.floor(xmin) - 1.0, math.floor(ymin) - 1.0
    width = math.ceil((xmax + 1.0 - x0) / res)
    height = math.ceil((ymax + 1.0 - y0) / res)
    img = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(img)

    def ring_px(coords: np.ndarray) -> list[tuple[float, float]]:
        # PIL puts pixel (i, j)'s centre at integer coordinates (i, j)
        cols = (coords[:, 0] - x0) / res - 0.5
        rows = (coords[:, 1] - y0) / res - 0.5
        return list(zip(cols.tolist(), rows.tolist()))

    for part in shapely.get_parts(road_map.drivable_area):
        if part.geom_type != "Polygon" or part.is_empty:
            continue
        draw.polygon(ring_px(np.asarray(part.exterior.coords)), fill=1, outline=None)
        for ring in part.interiors:
            draw.polygon(ring_px(np.asarray(ring.coords)), fill=0, outline=None)
    grid = np.asarray(img, dtype=bool)
    cached = {"x0": x0, "y0": y0, "res": res, "shape": grid.shape, "bits": np.packbits(grid, axis=1)}
    road_map.cache["drivable_raster"] = cached
    return cached


def on_drivable(road_map: RoadMap, xy: np.ndarray) -> np.ndarray:
    """``bool [...]`` for points ``xy [..., 2]`` [m]: inside the drivable area (raster lookup; NaN → False)."""
    r = drivable_raster(road_map)
    pts = np.asarray(xy, dtype=np.float64)
    h, w = r["shape"]
    fx = (pts[..., 0] - r["x0"]) / r["res"]
    fy = (pts[..., 1] - r["y0"]) / r["res"]
    inside = (fx >= 0) & (fx < w) & (fy >= 0) & (fy < h)  # False for NaN too
    col = np.where(inside, fx, 0.0).astype(np.int64)
    row = np.where(inside, fy, 0.0).astype(np.int64)
    byte = r["bits"][row, col >> 3]
    bit = (byte >> (7 - (col & 7)).astype(np.uint8)) & 1
    return inside & (bit == 1)


# ------------------------------------------------------------------------------------------- spawns


def spawn_points(
    road_map: RoadMap, spacing: float = 10.0, margin: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    """Places on driving lanes outside junctions: ``lane [M]``, ``s [M]`` [m], ``spacing`` [m] apart
    along each lane and at least ``margin`` [m] from its ends (lanes too short give none)."""
    if spacing <= 0:
        raise ValueError(f"spacing must be > 0 m, got {spacing}")
    lanes = road_map.driving_lanes
    lanes = lanes[(road_map.lane_junction[lanes] < 0) & (road_map.lane_length[lanes] >= 2.0 * margin)]
    usable = road_map.lane_length[lanes] - 2.0 * margin
    counts = np.floor(usable / spacing + 1e-9).astype(np.int64) + 1
    lane_out = np.repeat(lanes, counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    s_out = margin + (np.arange(int(counts.sum())) - first) * spacing
    return lane_out.astype(np.int64), s_out.astype(np.float64)
