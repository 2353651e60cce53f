"""The procedural highway (:func:`highway`): a divided 3 + 3 lane road with an on-ramp and an off-ramp.

Built with the shared parts of :mod:`sim_bridge.maps.town_parts`; registered in
:data:`sim_bridge.maps.towns.TOWNS` as ``"highway"``. Sizes are in metres, speeds in km/h.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scenariogeneration import xodr

from sim_bridge.maps.town_parts import (
    BUILD_LOCK,
    driving_lane,
    link_and_place,
    opendrive,
    seeded_rng,
    serialise,
    solid,
    strip_marks,
    tame_spirals,
)


@dataclass(frozen=True)
class _Carriageway:
    """Highway cross-section, each way: median half, driving lanes, shoulder."""

    lanes: int = 3
    lane_width: float = 3.5
    median: float = 1.0
    """Median lane on each side of the reference line [m]."""
    shoulder: float = 2.5

    @property
    def aux_offset(self) -> float:
        """Reference line to the inner edge of an auxiliary (ramp) lane [m]."""
        return self.median + self.lanes * self.lane_width

    @property
    def half_width(self) -> float:
        return self.aux_offset + self.shoulder


def _highway_section(s: float, way: _Carriageway, aux: str, length: float = 0.0) -> xodr.LaneSection:
    """One lane section of the divided highway starting at ``s`` [m].

    ``aux`` shapes the auxiliary lane outside the eastbound (right, negative-id) driving lanes:
    ``"none"``, ``"full"``, ``"taper"`` (narrows to 0 over ``length`` [m]) or ``"grow"`` (widens
    from 0 over ``length``). Widths change along cubics with zero slope at both ends.
    """
    centre = xodr.Lane()
    centre.add_roadmark(xodr.RoadMark(xodr.RoadMarkType.none, laneChange=xodr.LaneChange.none))
    section = xodr.LaneSection(s, centre)
    for add, eastbound in ((section.add_left_lane, False), (section.add_right_lane, True)):
        median = xodr.Lane(lane_type=xodr.LaneType.median, a=way.median)
        median.add_roadmark(solid())  # edge line of the fast lane
        add(median)
        has_aux = eastbound and aux != "none"
        for k in range(1, way.lanes + 1):
            add(driving_lane(way.lane_width, outermost=k == way.lanes and not has_aux))
        if has_aux:
            w = way.lane_width
            if aux == "full":
                add(driving_lane(w, outermost=True))
            elif aux == "taper":
                add(driving_lane(w, True, 0.0, -3.0 * w / length**2, 2.0 * w / length**3))
            else:
                add(driving_lane(0.0, True, 0.0, 3.0 * w / length**2, -2.0 * w / length**3))
        add(xodr.Lane(lane_type=xodr.LaneType.shoulder, a=way.shoulder))
    return section


def _link_sections(lanes: xodr.Lanes) -> None:
    """Lane links between consecutive sections of one road (shoulders shift id with the aux lane)."""
    for before, after in zip(lanes.lanesections[:-1], lanes.lanesections[1:], strict=False):
        for side_before, side_after in (
            (before.leftlanes, after.leftlanes),
            (before.rightlanes, after.rightlanes),
        ):
            kinds_after = [lane.lane_type for lane in side_after]
            for lane in side_before:
                if lane.lane_type == xodr.LaneType.shoulder:
                    nxt = side_after[kinds_after.index(xodr.LaneType.shoulder)]
                elif (
                    abs(lane.lane_id) <= len(side_after)
                    and side_after[abs(lane.lane_id) - 1].lane_type == lane.lane_type
                ):
                    nxt = side_after[abs(lane.lane_id) - 1]
                else:
                    continue  # an auxiliary lane that ends (width 0)
                lane.add_link("successor", nxt.lane_id)
                nxt.add_link("predecessor", lane.lane_id)


_Piece = tuple[float, float]
"""A piece of reference line: ``(length [m], curvature [1/m])``, curvature 0 for a line."""
_Pose = tuple[float, float, float]
"""``(x [m], y [m], heading [rad])``."""


def _geometries(pieces: list[_Piece]) -> list[xodr.Line | xodr.Arc]:
    return [xodr.Line(length) if k == 0.0 else xodr.Arc(k, length=length) for length, k in pieces]


def _advance(pose: _Pose, pieces: list[_Piece]) -> _Pose:
    """Pose at the end of ``pieces`` that start at ``pose``."""
    x, y, h = pose
    for length, k in pieces:
        if k == 0.0:
            x, y = x + length * math.cos(h), y + length * math.sin(h)
        else:
            h1 = h + k * length
            x, y, h = x + (math.sin(h1) - math.sin(h)) / k, y + (math.cos(h) - math.cos(h1)) / k, h1
    return x, y, h


def _retreat(pose: _Pose, pieces: list[_Piece]) -> _Pose:
    """Pose at the start of ``pieces`` that end at ``pose``."""
    x, y, h = pose
    for length, k in reversed(pieces):
        if k == 0.0:
            x, y = x - length * math.cos(h), y - length * math.sin(h)
        else:
            h0 = h - k * length
            x, y, h = x - (math.sin(h) - math.sin(h0)) / k, y - (math.cos(h0) - math.cos(h)) / k, h0
    return x, y, h


def _beside(pose: _Pose, forward: float, left: float) -> _Pose:
    """``pose`` moved ``forward`` along and ``left`` across its heading [m]."""
    x, y, h = pose
    c, s = math.cos(h), math.sin(h)
    return x + forward * c - left * s, y + forward * s + left * c, h


def _fixed_road(rid: int, pose: _Pose, pieces: list[_Piece], lanes: xodr.Lanes) -> xodr.Road:
    plan = xodr.PlanView(*pose)
    for geometry in _geometries(pieces):
        plan.add_geometry(geometry)
    return xodr.Road(rid, plan, lanes)


def _ramp_lanes(way: _Carriageway) -> xodr.Lanes:
    """A one-way ramp: one driving lane (-1) between a 1 m left and a 1.5 m right shoulder."""
    centre = xodr.Lane()
    centre.add_roadmark(solid())
    section = xodr.LaneSection(0, centre)
    section.add_left_lane(xodr.Lane(lane_type=xodr.LaneType.shoulder, a=1.0))
    section.add_right_lane(driving_lane(way.lane_width, outermost=True))
    section.add_right_lane(xodr.Lane(lane_type=xodr.LaneType.shoulder, a=1.5))
    lanes = xodr.Lanes()
    lanes.add_lanesection(section)
    return lanes


def highway(seed: int = 0) -> str:
    """A divided 3 + 3 lane highway of about 1.4 km with an on-ramp and an off-ramp (eastbound).

    Roads (ids): 1 west part (starts at the origin heading +x), 2 middle part, 3 east part,
    4 on-ramp, 5 off-ramp; junctions 10 (merge, between roads 1 and 2) and 20 (diverge, between
    2 and 3). The on-ramp's lane continues as an acceleration lane (road 2, lane -5) that runs
    full width, then narrows to zero and ends: its traffic changes left across a broken line.
    Before junction 20 a deceleration lane (road 2, lane -5 again) widens from zero and leads
    into the off-ramp. Eastbound lanes are -2..-4, westbound 2..4; lanes +-1 are the median, the
    outermost lanes shoulders. Ramps leave and join at 8 deg over a 400 m radius.

    Seeded: the speed limit (100, 110 or 120 km/h; ramps 60, 70 or 80), the direction and radius
    (1.5-3 km) of the gentle curves, and the lengths of the straights.
    """
    rng = seeded_rng(seed)
    way = _Carriageway()
    speed = float(rng.choice([100.0, 110.0, 120.0]))
    ramp_speed = float(rng.choice([60.0, 70.0, 80.0]))
    curve = float(rng.choice([-1.0, 1.0]) / rng.uniform(1500.0, 3000.0))
    west, east = (float(np.round(v, 1)) for v in rng.uniform(50.0, 100.0, 2))
    middle = float(np.round(rng.uniform(150.0, 200.0), 1))
    accel, taper, grow, decel = 120.0, 60.0, 50.0, 80.0  # aux lane parts of road 2 [m]
    gap = 40.0  # junction length along the main road [m]
    reach = way.half_width + 2.0  # ramp reference line (its left edge) right of the main one [m]
    bend = math.radians(8.0)
    ramp_radius = 400.0

    # the straights beside the ramps are longer than the ramps (no overlap), curves lie between
    pieces1 = [(west, 0.0), (150.0, curve), (200.0, 0.0)]
    pieces2 = [(accel + taper + 20.0, 0.0), (middle, -curve), (20.0 + grow + decel, 0.0)]
    pieces3 = [(200.0, 0.0), (150.0, curve), (east, 0.0)]
    on_pieces = [(150.0, 0.0), (ramp_radius * bend, -1.0 / ramp_radius)]
    off_pieces = [(ramp_radius * bend, -1.0 / ramp_radius), (150.0, 0.0)]
    start1 = (0.0, 0.0, 0.0)
    end1 = _advance(start1, pieces1)
    start2 = _beside(end1, gap, 0.0)
    end2 = _advance(start2, pieces2)
    start3 = _beside(end2, gap, 0.0)
    s_taper = accel
    s_plain = s_taper + taper
    s_grow = sum(length for length, _ in pieces2) - grow - decel
    s_decel = s_grow + grow

    with BUILD_LOCK:
        odr = opendrive(f"highway seed {seed}")
        road1 = _fixed_road(1, start1, pieces1, _highway_lanes([(0.0, "none")], way))
        sections2 = [
            (0.0, "full"),
            (s_taper, "taper"),
            (s_plain, "none"),
            (s_grow, "grow"),
            (s_decel, "full"),
        ]
        road2 = _fixed_road(
            2, start2, pieces2, _highway_lanes(sections2, way, {s_taper: taper, s_grow: grow})
        )
        road3 = _fixed_road(3, start3, pieces3, _highway_lanes([(0.0, "none")], way))
        on_ramp = _fixed_road(4, _retreat(_beside(end1, 0.0, -reach), on_pieces), on_pieces, _ramp_lanes(way))
        off_ramp = _fixed_road(5, _beside(end2, gap, -reach), off_pieces, _ramp_lanes(way))
        for road in (road1, road2, road3):
            road.add_type(xodr.RoadType.motorway, speed=speed, speed_unit="km/h")
        for road in (on_ramp, off_ramp):
            road.add_type(xodr.RoadType.motorway, speed=ramp_speed, speed_unit="km/h")
        for road in (road1, road2, road3, on_ramp, off_ramp):
            odr.add_road(road)

        through = [([-2, -3, -4], [-2, -3, -4]), ([2, 3, 4], [2, 3, 4])]  # eastbound, westbound
        merge = _highway_junction(
            10,
            [
                _HighwayArm(road1, "successor", (0.0, 0.0), 0.0),
                _HighwayArm(road2, "predecessor", (gap, 0.0), math.pi),
                _HighwayArm(on_ramp, "successor", (0.0, -reach), 0.0),
            ],
            [(1, 2, *through[0]), (2, 1, *through[1]), (4, 2, [-1], [-5])],
            speed,
            ramp_speed,
        )
        diverge = _highway_junction(
            20,
            [
                _HighwayArm(road2, "successor", (0.0, 0.0), 0.0),
                _HighwayArm(road3, "predecessor", (gap, 0.0), math.pi),
                _HighwayArm(off_ramp, "predecessor", (gap, -reach), math.pi),
            ],
            [(2, 3, *through[0]), (3, 2, *through[1]), (2, 5, [-5], [-1])],
            speed,
            ramp_speed,
        )
        for creator in (merge, diverge):
            odr.add_junction_creator(creator)
        link_and_place(odr, [merge, diverge])
        return serialise(odr)


@dataclass(frozen=True)
class _HighwayArm:
    road: xodr.Road
    contact: str
    position: tuple[float, float]
    """Road end in the junction frame [m]."""
    bearing: float
    """Direction from the road end into the junction [rad]."""


def _highway_lanes(
    sections: list[tuple[float, str]], way: _Carriageway, lengths: dict[float, float] | None = None
) -> xodr.Lanes:
    """Lane sections ``(s, aux)`` (see :func:`_highway_section`), linked lane to lane."""
    lanes = xodr.Lanes()
    for s, aux in sections:
        lanes.add_lanesection(_highway_section(s, way, aux, (lengths or {}).get(s, 0.0)))
    _link_sections(lanes)
    return lanes


def _highway_junction(
    jid: int,
    arms: list[_HighwayArm],
    connections: list[tuple[int, int, list[int], list[int]]],
    speed: float,
    ramp_speed: float,
    ramps: frozenset[int] = frozenset({4, 5}),
) -> xodr.CommonJunctionCreator:
    """A junction with explicit ``(road in, road out, lanes in, lanes out)`` connections; connecting
    roads to or from a road in ``ramps`` take ``ramp_speed``, the others ``speed`` [km/h]."""
    creator = xodr.CommonJunctionCreator(jid, f"junction {jid}", startnum=100 * jid)
    for arm in arms:
        creator.add_incoming_road_cartesian_geometry(arm.road, *arm.position, arm.bearing, arm.contact)
    for road_in, road_out, lanes_in, lanes_out in connections:
        creator.add_connection(road_in, road_out, lanes_in, lanes_out)
    for road in creator.get_connecting_roads():
        tame_spirals(road)
        strip_marks(road)
        on_ramp = {road.predecessor.element_id, road.successor.element_id} & ramps
        road.add_type(xodr.RoadType.motorway, speed=ramp_speed if on_ramp else speed, speed_unit="km/h")
    return creator
