"""A ``RoadMap`` flattened into contiguous arrays the compiled kernels read (built once per map)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sim_bridge.embedded import fields as fl
from sim_bridge.maps.lookup import drivable_raster
from sim_bridge.maps.road_map import LaneType, RoadMap, SignalKind
from sim_bridge.violations import stop_lines

#: how a lane entering a junction is controlled (``MapArrays.lane_control``)
CONTROL_NONE, CONTROL_LIGHT, CONTROL_STOP = 0, 1, 2
#: a lane narrower than this cannot hold a vehicle (spawning, lane-change targets, merges) [m]
MIN_LANE_WIDTH = 2.5


class MapArrays(NamedTuple):
    """Everything per lane ``[L]``, per sample ``[P]`` and per stop line ``[K]`` the kernels need.

    Lane and stop-line attributes are packed field-major (``lane_i[L_JUNCTION, lane]``, columns in
    :mod:`sim_bridge.embedded.fields`) to keep kernel signatures short.
    """

    lane_start: np.ndarray  # int64 [L+1] CSR offsets into the samples
    points: np.ndarray  # float64 [P, 2]
    s: np.ndarray  # float64 [P]
    widths: np.ndarray  # float64 [P]
    lane_i: np.ndarray  # int64 [NUM_LANE_INT, L]
    lane_f: np.ndarray  # float64 [NUM_LANE_FLOAT, L]
    succ_start: np.ndarray  # int64 [L+1]
    succ_index: np.ndarray  # int64 [*]
    conflict_start: np.ndarray  # int64 [L+1]
    conflict_index: np.ndarray  # int64 [*]
    stop_f: np.ndarray  # float64 [NUM_STOP_FLOAT, K]
    stop_i: np.ndarray  # int64 [NUM_STOP_INT, K]
    spawn: np.ndarray  # float64 [M, 3] x, y, s of vehicle spawn places
    spawn_lane: np.ndarray  # int64 [M]
    walk: np.ndarray  # float64 [Q, 3] x, y, s of pedestrian spawn places (sidewalks)
    walk_lane: np.ndarray  # int64 [Q]
    cross_lane: np.ndarray  # int64 [L, 2] sidewalk reached by crossing from the (start, end), -1 none
    cross_s: np.ndarray  # float64 [L, 2] where on it
    drive_bits: np.ndarray  # uint8 [H, ceil(W / 8)] drivable raster, bit-packed along x
    drive_grid: np.ndarray  # float64 [5] x0, y0 [m], resolution [m], H, W of that raster


def _csr(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    start = np.zeros(len(lists) + 1, dtype=np.int64)
    start[1:] = np.cumsum([len(x) for x in lists])
    index = np.array([i for x in lists for i in x], dtype=np.int64)
    return start, index


def _lane_curvature(rm: RoadMap) -> np.ndarray:
    """Max |curvature| [1/m] of each lane, from heading change over ~3 m windows."""
    out = np.zeros(rm.num_lanes)
    for lane in range(rm.num_lanes):
        a, b = rm.lane_start[lane], rm.lane_start[lane + 1]
        h = np.unwrap(rm.headings[a:b])
        s = rm.s[a:b]
        if len(s) < 2:
            continue
        j = np.searchsorted(s, s + 3.0).clip(max=len(s) - 1)
        ds = s[j] - s
        ok = ds > 1.0
        if ok.any():
            out[lane] = float(np.max(np.abs(h[j] - h)[ok] / ds[ok]))
    return out


def _merge_points(rm: RoadMap) -> np.ndarray:
    """Per lane: for a dead end that narrows below :data:`MIN_LANE_WIDTH` (an acceleration lane
    tapering into its neighbour), the arc length where it does [m]; ``inf`` for other lanes.
    Vehicles must leave such a lane before that point."""
    out = np.full(rm.num_lanes, np.inf)
    for lane in rm.driving_lanes:
        if rm.lane_successors[lane]:
            continue
        a, b = rm.lane_start[lane], rm.lane_start[lane + 1]
        wide = rm.widths[a:b] >= MIN_LANE_WIDTH
        if wide.all():
            continue
        # the end of the last wide stretch (0 if the lane is narrow from its start)
        last_wide = np.flatnonzero(wide)
        out[lane] = float(rm.s[a + last_wide[-1]]) if len(last_wide) else 0.0
    return out


def _crossings(rm: RoadMap) -> tuple[np.ndarray, np.ndarray]:
    """For each sidewalk end, the sidewalk a pedestrian reaches walking straight on across a road."""
    cross_lane = np.full((rm.num_lanes, 2), -1, dtype=np.int64)
    cross_s = np.zeros((rm.num_lanes, 2))
    walks = rm.sidewalk_lanes
    if len(walks) < 2:
        return cross_lane, cross_s
    starts = rm.lane_start[walks]
    ends = rm.lane_start[walks + 1] - 1
    cand_xy = np.concatenate([rm.points[starts], rm.points[ends]])
    cand_lane = np.concatenate([walks, walks])
    cand_s = np.concatenate([np.zeros(len(walks)), rm.lane_length[walks]])
    for lane in walks:
        a, b = rm.lane_start[lane], rm.lane_start[lane + 1] - 1
        for side, (idx, sign) in enumerate(((a, -1.0), (b, 1.0))):
            h = rm.headings[idx] + (np.pi if sign < 0 else 0.0)
            d = cand_xy - rm.points[idx]
            dist = np.hypot(d[:, 0], d[:, 1])
            along = d[:, 0] * np.cos(h) + d[:, 1] * np.sin(h)
            ok = (cand_lane != lane) & (dist > 5.0) & (dist < 30.0) & (along > 0.9 * dist)
            if ok.any():
                k = np.flatnonzero(ok)[np.argmin(dist[ok])]
                cross_lane[lane, side] = cand_lane[k]
                cross_s[lane, side] = cand_s[k]
    return cross_lane, cross_s


def _opposites(rm: RoadMap) -> np.ndarray:
    """Innermost driving lane of the other direction on the same road section, per lane (-1 none)."""
    index = {key: i for i, key in enumerate(rm.lane_keys)}
    out = np.full(rm.num_lanes, -1, dtype=np.int64)
    for i, (road, section, lane_id) in enumerate(rm.lane_keys):
        j = index.get((road, section, 1 if lane_id < 0 else -1), -1)
        if j >= 0 and rm.lane_type[i] == LaneType.DRIVING and rm.lane_type[j] == LaneType.DRIVING:
            out[i] = j
    return out


def build_map_arrays(rm: RoadMap) -> MapArrays:
    """Flatten ``rm`` (cached in ``rm.cache['embedded_arrays']``)."""
    cached = rm.cache.get("embedded_arrays")
    if cached is not None:
        return cached
    L = rm.num_lanes
    i64 = np.int64
    succ_start, succ_index = _csr(rm.lane_successors)
    conflict_start, conflict_index = _csr(rm.conflicts)

    lane_stop = np.full(L, -1, dtype=i64)
    stop_is_light = np.asarray(rm.signal_kind, dtype=i64)[np.asarray(rm.stop_signal, dtype=i64)] == int(
        SignalKind.TRAFFIC_LIGHT
    )
    lane_control = np.zeros(L, dtype=i64)
    for k, lane in enumerate(np.asarray(rm.stop_lane, dtype=i64)):
        lane_stop[lane] = k
        control = CONTROL_LIGHT if stop_is_light[k] else CONTROL_STOP
        lane_control[lane] = control
        for nxt in rm.lane_successors[lane]:
            if rm.lane_junction[nxt] >= 0:
                lane_control[nxt] = control

    spawn_lane, spawn_s = rm.spawn_points(spacing=8.0, margin=4.0)
    merge_s = _merge_points(rm)
    if len(spawn_lane):  # not where a lane is too narrow for a car (tapers) or must be left
        # the sample at each spawn place: samples sorted by (lane, s), searched in one call
        key = np.asarray(rm.point_lane, dtype=np.float64) * 1e5 + rm.s
        sample = np.searchsorted(key, np.asarray(spawn_lane) * 1e5 + spawn_s).clip(max=len(key) - 1)
        ok = (rm.widths[sample] >= MIN_LANE_WIDTH) & (spawn_s < merge_s[spawn_lane] - 40.0)
        spawn_lane, spawn_s = spawn_lane[ok], spawn_s[ok]
    spawn_xy, _ = rm.pose_at(spawn_lane, spawn_s) if len(spawn_lane) else (np.zeros((0, 2)), None)
    walk_lanes = rm.sidewalk_lanes
    wl, ws = [], []
    for lane in walk_lanes:
        n = int(rm.lane_length[lane] // 6.0)
        wl.extend([lane] * n)
        ws.extend(list(3.0 + 6.0 * np.arange(n)))
    walk_lane = np.array(wl, dtype=i64)
    walk_s = np.array(ws, dtype=np.float64)
    walk_xy, _ = rm.pose_at(walk_lane, walk_s) if len(walk_lane) else (np.zeros((0, 2)), None)
    cross_lane, cross_s = _crossings(rm)

    lane_i = np.zeros((fl.NUM_LANE_INT, L), dtype=i64)
    lane_i[fl.L_TYPE] = rm.lane_type
    lane_i[fl.L_JUNCTION] = rm.lane_junction
    lane_i[fl.L_TURN] = rm.lane_turn
    lane_i[fl.L_LEFT] = rm.lane_left
    lane_i[fl.L_RIGHT] = rm.lane_right
    lane_i[fl.L_CHANGE_LEFT] = rm.lane_change_left
    lane_i[fl.L_CHANGE_RIGHT] = rm.lane_change_right
    lane_i[fl.L_STOP] = lane_stop
    lane_i[fl.L_CONTROL] = lane_control
    lane_i[fl.L_OPPOSITE] = _opposites(rm)
    lane_i[fl.L_MARK_LEFT] = rm.lane_mark_left
    lane_i[fl.L_MARK_RIGHT] = rm.lane_mark_right
    lane_f = np.zeros((fl.NUM_LANE_FLOAT, L))
    lane_f[fl.L_LENGTH] = rm.lane_length
    lane_f[fl.L_SPEED] = rm.lane_speed_limit
    lane_f[fl.L_CURVATURE] = _lane_curvature(rm)
    lane_f[fl.L_MERGE_S] = merge_s
    stop_f, stop_i = stop_lines(rm)
    raster = drivable_raster(rm)
    arrays = MapArrays(
        lane_start=np.ascontiguousarray(rm.lane_start, dtype=i64),
        points=np.ascontiguousarray(rm.points, dtype=np.float64),
        s=np.ascontiguousarray(rm.s, dtype=np.float64),
        widths=np.ascontiguousarray(rm.widths, dtype=np.float64),
        lane_i=lane_i,
        lane_f=lane_f,
        succ_start=succ_start,
        succ_index=succ_index,
        conflict_start=conflict_start,
        conflict_index=conflict_index,
        stop_f=stop_f,
        stop_i=stop_i,
        spawn=np.column_stack([np.asarray(spawn_xy).reshape(-1, 2), spawn_s]).astype(np.float64),
        spawn_lane=np.ascontiguousarray(spawn_lane, dtype=i64),
        walk=np.column_stack([np.asarray(walk_xy).reshape(-1, 2), walk_s]).astype(np.float64),
        walk_lane=walk_lane,
        cross_lane=cross_lane,
        cross_s=cross_s,
        drive_bits=np.ascontiguousarray(raster["bits"]),
        drive_grid=np.array([raster["x0"], raster["y0"], raster["res"], *raster["shape"]], dtype=np.float64),
    )
    rm.cache["embedded_arrays"] = arrays
    return arrays


__all__ = [
    "CONTROL_LIGHT",
    "CONTROL_NONE",
    "CONTROL_STOP",
    "MIN_LANE_WIDTH",
    "LaneType",
    "MapArrays",
    "build_map_arrays",
]
