"""Lane samples through CARLA's OpenDRIVE parser: every lane of every lane section at <= 1 m.

:func:`sample_lanes` asks a ``carla.Map`` (no server needed) for waypoints along each lane of the
XML structure (:mod:`sim_bridge.maps.xodr`) and returns one :class:`Lane` per lane with a surface:
positions, headings and widths in the map frame, in its driving direction (right-hand traffic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import carla
import numpy as np

from sim_bridge.frames import carla_to_map
from sim_bridge.maps.road_map import LaneType, MapError
from sim_bridge.maps.xodr import LANE_TYPES, XMap, XSection

#: largest road-s step between two samples before refinement [m]
SAMPLE_STEP = 0.95
#: samples of a lane are refined until consecutive ones are at most this far apart [m]
MAX_SAMPLE_GAP = 1.0
#: lane samples stay this far inside their lane section [m] (CARLA is ambiguous at the boundary)
SECTION_EPS = 1e-3
#: lanes narrower than this everywhere are dropped [m]
MIN_LANE_WIDTH = 0.05


@dataclass
class Lane:
    """One sampled lane; ``key`` is ``(road id, lane-section index, lane id)`` as in the XML."""

    key: tuple[int, int, int]
    type: LaneType
    points: np.ndarray  # [n, 2] driving order
    headings: np.ndarray  # [n]
    widths: np.ndarray  # [n]
    road_s: np.ndarray  # [n] OpenDRIVE s of each sample
    mid: carla.Waypoint
    end: carla.Waypoint
    """The last sample in driving order."""

    @property
    def forward(self) -> bool:
        """The lane runs along its road's s (right-hand traffic: negative lane ids)."""
        return self.key[2] < 0


def _sample_lane(cmap: carla.Map, rid: int, sec_idx: int, sec: XSection, lid: int) -> Lane | None:
    eps = min(SECTION_EPS, (sec.s1 - sec.s0) / 4.0)
    a, b = sec.s0 + eps, sec.s1 - eps
    if b - a <= 1e-6:
        return None
    s_vals = np.linspace(a, b, max(2, math.ceil((b - a) / SAMPLE_STEP) + 1))
    wps: dict[float, carla.Waypoint] = {}
    tried: set[float] = set()

    def evaluate(ss: np.ndarray) -> None:
        for s in ss.tolist():
            if s in tried:
                continue
            tried.add(s)
            w = cmap.get_waypoint_xodr(rid, lid, s)
            if w is not None and w.road_id == rid and w.lane_id == lid and w.section_id == sec_idx:
                wps[s] = w

    evaluate(s_vals)
    for _ in range(8):  # refine until lane-space gaps are small (outer lanes of curves are longer)
        s_vals = np.array(sorted(wps))
        if s_vals.size < 2:
            return None
        loc = np.array([[wps[s].transform.location.x, wps[s].transform.location.y] for s in s_vals.tolist()])
        gaps = np.hypot(*np.diff(loc, axis=0).T)
        bad = np.flatnonzero(gaps > MAX_SAMPLE_GAP)
        if bad.size == 0:
            break
        parts = np.ceil(gaps[bad] / (0.9 * MAX_SAMPLE_GAP)).astype(np.int64)
        extra = parts - 1
        first = np.repeat(np.cumsum(extra) - extra, extra)
        j = np.arange(int(extra.sum())) - first + 1
        ds = np.repeat((s_vals[bad + 1] - s_vals[bad]) / parts, extra)
        evaluate(np.repeat(s_vals[bad], extra) + j * ds)
    s_vals = np.array(sorted(wps))
    w_list = [wps[s] for s in s_vals.tolist()]
    widths = np.array([w.lane_width for w in w_list], dtype=np.float64)
    if widths.max() < MIN_LANE_WIDTH:
        return None
    x = np.array([w.transform.location.x for w in w_list], dtype=np.float64)
    y = np.array([w.transform.location.y for w in w_list], dtype=np.float64)
    yaw = np.array([w.transform.rotation.yaw for w in w_list], dtype=np.float64)
    if not (np.isfinite(x).all() and np.isfinite(y).all() and np.isfinite(yaw).all()):
        raise MapError(
            f"CARLA evaluated non-finite positions on road {rid}, lane section {sec_idx}, lane {lid}: "
            "its <planView> geometry cannot be evaluated; check that road's geometry records"
        )
    mx, my, myaw = carla_to_map(x, y, yaw)
    points = np.stack([mx, my], axis=1)
    road_s = s_vals.astype(np.float64)
    if lid > 0:  # against the road's s: store in driving order (CARLA's yaw already points along travel)
        points, myaw, widths, road_s = points[::-1], myaw[::-1], widths[::-1], road_s[::-1]
    return Lane(
        (rid, sec_idx, lid),
        LANE_TYPES.get(sec.lanes[lid].type, LaneType.OTHER),
        np.ascontiguousarray(points),
        np.ascontiguousarray(myaw),
        np.ascontiguousarray(widths),
        np.ascontiguousarray(road_s),
        w_list[len(w_list) // 2],
        w_list[-1] if lid < 0 else w_list[0],
    )


def sample_lanes(cmap: carla.Map, xmap: XMap) -> list[Lane]:
    lanes = []
    for rid in sorted(xmap.roads):
        road = xmap.roads[rid]
        for k, sec in enumerate(road.sections):
            for lid in sorted(sec.lanes, key=lambda i: (i > 0, abs(i))):
                lane = _sample_lane(cmap, rid, k, sec, lid)
                if lane is not None:
                    lanes.append(lane)
    return lanes
