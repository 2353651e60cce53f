"""Per-lane attributes: neighbours and their marks, whether a lane change is allowed, speed limits,
and the turn a junction lane makes.

Marks come from CARLA's waypoints where it reports them, else from the XML's ``roadMark`` records;
speed limits from the lane's or road's ``<speed>`` records, else by OpenDRIVE road type.
"""

from __future__ import annotations

import math

import carla
import numpy as np

from sim_bridge.frames import wrap_angle
from sim_bridge.maps.road_map import MarkType
from sim_bridge.maps.sampling import Lane
from sim_bridge.maps.xodr import KMH, XML_MARKS, XMap, XRoad
from sim_bridge.sensors.layout import RouteCommand

#: heading change of a junction lane beyond which it is a turn [rad]
TURN_THRESHOLD = math.radians(30.0)

#: default speed limits by OpenDRIVE road type [m/s]
_DEFAULT_SPEED = {"motorway": 120 * KMH, "rural": 80 * KMH, "lowspeed": 30 * KMH}
_UNKNOWN_SPEED = 50 * KMH
#: CARLA's lane-marking types → the map's mark types
_CARLA_MARKS = {
    carla.LaneMarkingType.NONE: MarkType.NONE,
    carla.LaneMarkingType.Solid: MarkType.SOLID,
    carla.LaneMarkingType.Broken: MarkType.BROKEN,
    carla.LaneMarkingType.SolidSolid: MarkType.SOLID_SOLID,
    carla.LaneMarkingType.SolidBroken: MarkType.SOLID_BROKEN,
    carla.LaneMarkingType.BrokenSolid: MarkType.BROKEN_SOLID,
    carla.LaneMarkingType.BrokenBroken: MarkType.BROKEN_BROKEN,
}
#: marks a vehicle may cross to change lane (the side of a double mark nearer the lane counts)
_CROSSABLE = frozenset({MarkType.NONE, MarkType.BROKEN, MarkType.BROKEN_BROKEN, MarkType.BROKEN_SOLID})


def _xml_mark(records: list[tuple[float, str]], rel_s: float) -> MarkType:
    """The roadMark record active at ``rel_s`` [m] from its section's start."""
    if not records:
        return MarkType.NONE
    active = [t for s_off, t in records if s_off <= rel_s + 1e-6] or [records[0][1]]
    return XML_MARKS.get(active[-1], MarkType.OTHER)


def _marks(lane: Lane, road: XRoad) -> tuple[MarkType, MarkType]:
    """Left and right marks of a lane in its driving direction (CARLA's, else the XML roadMark).

    OpenDRIVE puts a lane's roadMark on its outer border, which is on its right in its driving
    direction; its left border is the outer border of the next lane towards the centre.
    """
    _, k, lid = lane.key
    sec = road.sections[k]
    rel_s = float(lane.mid.s) - sec.s0
    inner = lid + 1 if lid < 0 else lid - 1
    inner_marks = sec.center_marks if inner == 0 else (sec.lanes[inner].marks if inner in sec.lanes else [])
    xml = (_xml_mark(inner_marks, rel_s), _xml_mark(sec.lanes[lid].marks, rel_s))
    found = (lane.mid.left_lane_marking, lane.mid.right_lane_marking)
    left, right = (x if c is None else _CARLA_MARKS.get(c.type, MarkType.OTHER) for c, x in zip(found, xml))
    return left, right


def _speed_limit(lane: Lane, road: XRoad) -> tuple[float, bool]:
    """``(limit [m/s], explicit)``: the lane's or road's ``<speed>`` record, else by road type."""
    _, k, lid = lane.key
    sec = road.sections[k]
    mid_s = float(lane.road_s[len(lane.road_s) // 2])
    for s_off, lane_v in reversed(sec.lanes[lid].speeds):
        if s_off <= mid_s - sec.s0 + 1e-6:
            return lane_v, True
    if sec.lanes[lid].speeds:
        return sec.lanes[lid].speeds[0][1], True
    active = [t for t in road.types if t[0] <= mid_s + 1e-6] or road.types[:1]
    if active:
        _, rtype, road_v = active[-1]
        if road_v is not None:
            return road_v, True
        return _DEFAULT_SPEED.get(rtype, _UNKNOWN_SPEED), False
    return _UNKNOWN_SPEED, False


def turn(headings: np.ndarray) -> RouteCommand:
    change = float(np.sum(wrap_angle(np.diff(headings)))) if headings.size > 1 else 0.0
    if change > TURN_THRESHOLD:
        return RouteCommand.LEFT
    if change < -TURN_THRESHOLD:
        return RouteCommand.RIGHT
    return RouteCommand.STRAIGHT


def neighbours(
    xmap: XMap, lanes: list[Lane], index: dict[tuple[int, int, int], int]
) -> dict[str, np.ndarray]:
    """Left/right neighbours in the driving direction, their marks and whether a change is allowed."""
    num = len(lanes)
    out = {side: np.full(num, -1, dtype=np.int64) for side in ("left", "right")}
    for i, lane in enumerate(lanes):
        rid, k, lid = lane.key
        ids = {"left": lid + 1 if lid < 0 else lid - 1, "right": lid - 1 if lid < 0 else lid + 1}
        for side, nid in ids.items():
            j = index.get((rid, k, nid))
            if nid != 0 and j is not None and lanes[j].type == lane.type:
                out[side][i] = j
    marks = [_marks(lane, xmap.roads[lane.key[0]]) for lane in lanes]
    out["mark_left"] = np.array([m[0] for m in marks], dtype=np.int8)
    out["mark_right"] = np.array([m[1] for m in marks], dtype=np.int8)
    # the mark must be crossable, and CARLA's laneChange record (default "both") must agree
    carla_ok = {
        "left": (carla.LaneChange.Left, carla.LaneChange.Both),
        "right": (carla.LaneChange.Right, carla.LaneChange.Both),
    }
    for side in ("left", "right"):
        out[f"change_{side}"] = np.array(
            [
                out[side][i] >= 0
                and MarkType(out[f"mark_{side}"][i]) in _CROSSABLE
                and lane.mid.lane_change in carla_ok[side]
                for i, lane in enumerate(lanes)
            ],
            dtype=bool,
        )
    return out


def speed_limits(xmap: XMap, lanes: list[Lane], junction: np.ndarray, pred: list[list[int]]) -> np.ndarray:
    """``float [L]`` [m/s]; junction lanes without a record of their own take their entries' limit."""
    speeds = [_speed_limit(lane, xmap.roads[lane.key[0]]) for lane in lanes]
    limit = np.array([v for v, _ in speeds], dtype=np.float64)
    for i in np.flatnonzero(junction >= 0).tolist():
        if not speeds[i][1] and pred[i]:
            limit[i] = min(limit[p] for p in pred[i])
    return limit
