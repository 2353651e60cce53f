"""Procedural towns written as OpenDRIVE text with ``scenariogeneration``.

Every generator takes a ``seed`` and returns OpenDRIVE 1.5 text (``str``): the same seed gives
byte-identical text, other seeds give other valid maps. :data:`TOWNS` names them; :func:`make_town`
looks one up. Every map loads with the ``carla`` client parser (``carla.Map(name, text)``).

Conventions shared by every town:

- Right-hand traffic: lanes with negative ids drive along +s, positive ids along -s.
- Marks: solid centre line, broken lines between lanes of one direction (lane changes allowed),
  solid outer edge of the driving lanes; connecting roads inside junctions carry no marks.
- Junctions have one connecting road per legal lane-to-lane movement (straight lane to lane, left
  turns from the innermost lane, right turns from the outermost lane, at a corner every lane
  turns; no U-turns), built with :class:`xodr.CommonJunctionCreator`. No driving lane is a dead
  end except at the map's border.
- Signals stand on the approach roads, :data:`STOP_SETBACK` before the junction, in the middle
  of the sidewalk on the traffic's right: traffic lights (type :data:`TRAFFIC_LIGHT_TYPE`,
  dynamic) on every approach of a signalised junction, stop signs (type :data:`STOP_SIGN_TYPE`)
  on the minor approaches of a stop-controlled one. ``orientation`` is ``+`` for lanes driving
  along +s (negative ids), ``-`` otherwise, and ``<validity>`` names exactly the entering driving
  lanes. The lights of one junction share a ``<controller>`` (CARLA groups lights by controller).
- Road and junction ids never coincide: CARLA's parser takes a link to junction ``j`` for a link to
  road ``j`` when such a road exists (and then finds no successor lanes).

Sizes are in metres, speeds in km/h (as written in the ``<speed>`` records).
"""

from __future__ import annotations

import math
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scenariogeneration import xodr

from sim_bridge.maps.road_map import MapError

__all__ = [
    "STOP_SETBACK",
    "STOP_SIGN_TYPE",
    "TOWNS",
    "TRAFFIC_LIGHT_TYPE",
    "cross",
    "grid_town",
    "highway",
    "make_town",
    "straight",
    "tee",
]

TRAFFIC_LIGHT_TYPE = "1000001"
"""OpenDRIVE/CARLA signal type of a traffic light."""
STOP_SIGN_TYPE = "206"
"""German (``DE``) signal type of a stop sign, which CARLA reads as a stop."""
SIGNAL_COUNTRY = "DE"
STOP_SETBACK = 1.0
"""Distance of a signal before the end of its approach road [m]."""

_HEADER_DATE = "2000-01-01T00:00:00"  # fixed, so that the text depends on the seed only
_JUNCTION_MARGIN = 3.5  # clearance between the crossing road's outer edge and an approach's end [m]
_GRID_NODES = 4  # junctions per side of the grid town: 3 x 3 blocks
_GRID_BLOCK = (80.0, 120.0)  # junction spacing of the grid town [m]
_GRID_JUNCTIONS = 501  # first junction id of the grid town (streets are 1..24)
_GRID_CONNECTORS = 1000  # first connecting-road id of the grid town, 100 per junction
_STAR_JUNCTION = 10  # junction id of the unit maps (arms are roads 1..4, connecting roads 100..)
_FLAT = 1e-6  # curvature (change) below which a fitted spiral is an arc or a line [1/m]

# ``xodr.Signal`` keeps a class-level registry of used ids (shared by every map ever built in the
# process); it is cleared at the start of each build, under this lock, so ids depend on the seed only.
_BUILD_LOCK = threading.Lock()


# ------------------------------------------------------------------------------- cross-sections


@dataclass(frozen=True)
class _Profile:
    """Cross-section of a two-way street, symmetric about the reference line."""

    lanes: int
    """Driving lanes each way."""
    lane_width: float
    """[m]"""
    sidewalk: float
    """Sidewalk width on each outer side [m]; 0: none."""
    speed: float
    """Speed limit [km/h]."""

    @property
    def driving_width(self) -> float:
        """Width of one direction's driving lanes [m]."""
        return self.lanes * self.lane_width

    @property
    def half_width(self) -> float:
        """Reference line to outer edge, sidewalk included [m]."""
        return self.driving_width + self.sidewalk


_STREET = _Profile(lanes=1, lane_width=3.25, sidewalk=2.5, speed=50.0)
_AVENUE = _Profile(lanes=2, lane_width=3.5, sidewalk=3.0, speed=60.0)
_BOULEVARD = _Profile(lanes=2, lane_width=3.5, sidewalk=2.5, speed=50.0)


def _solid() -> xodr.RoadMark:
    """A solid line that forbids lane changes across it (CARLA's default would allow them)."""
    mark = xodr.std_roadmark_solid()
    mark.laneChange = xodr.LaneChange.none
    return mark


def _broken() -> xodr.RoadMark:
    """A broken line that allows lane changes both ways."""
    mark = xodr.std_roadmark_broken()
    mark.laneChange = xodr.LaneChange.both
    return mark


def _driving_lane(
    width: float, outermost: bool, width_b: float = 0.0, c: float = 0.0, d: float = 0.0
) -> xodr.Lane:
    """A driving lane; its (outer) mark is solid when ``outermost`` else broken."""
    lane = xodr.Lane(a=width, b=width_b, c=c, d=d)
    lane.add_roadmark(_solid() if outermost else _broken())
    return lane


def _street_lanes(profile: _Profile) -> xodr.Lanes:
    """One lane section: ``profile.lanes`` driving lanes each way and the sidewalks."""
    centre = xodr.Lane()
    centre.add_roadmark(_solid())
    section = xodr.LaneSection(0, centre)
    for add in (section.add_left_lane, section.add_right_lane):
        for k in range(1, profile.lanes + 1):
            add(_driving_lane(profile.lane_width, outermost=k == profile.lanes))
        if profile.sidewalk > 0:
            add(xodr.Lane(lane_type=xodr.LaneType.sidewalk, a=profile.sidewalk))
    lanes = xodr.Lanes()
    lanes.add_lanesection(section)
    return lanes


def _street(rid: int, x: float, y: float, heading: float, length: float, profile: _Profile) -> xodr.Road:
    """A straight two-way street starting at ``(x, y)`` [m] with ``heading`` [rad]."""
    plan = xodr.PlanView(x, y, heading)
    plan.add_geometry(xodr.Line(length))
    road = xodr.Road(rid, plan, _street_lanes(profile))
    road.add_type(xodr.RoadType.town, speed=profile.speed, speed_unit="km/h")
    return road


# ------------------------------------------------------------------------------------ junctions


@dataclass(frozen=True)
class _Arm:
    """One road meeting a junction."""

    road: xodr.Road
    profile: _Profile
    contact: str
    """``"successor"`` when the road ends at the junction, ``"predecessor"`` when it starts there."""
    bearing: float
    """Direction from the junction centre out along the arm [rad]."""
    distance: float
    """Junction centre to the road's end [m]."""
    length: float
    """Road length [m]."""

    def lane_ids(self, entering: bool) -> list[int]:
        """Driving lane ids entering (or leaving) the junction, innermost first."""
        sign = -1 if (self.contact == "successor") == entering else 1
        return [sign * k for k in range(1, self.profile.lanes + 1)]


def _turn(arm_in: _Arm, arm_out: _Arm) -> float:
    """Heading change of a movement from ``arm_in`` to ``arm_out``, wrapped to (-pi, pi] [rad]."""
    turn = arm_out.bearing - (arm_in.bearing + math.pi)
    return math.atan2(math.sin(turn), math.cos(turn))


def _movements(arm_in: _Arm, arm_out: _Arm, only_exit: bool) -> list[tuple[int, int]]:
    """Lane pairs ``(entering lane on arm_in, leaving lane on arm_out)`` of one legal movement.

    Straight movements go lane to lane, left turns innermost to innermost, right turns outermost
    to outermost. Where ``arm_out`` is the ``only_exit`` of ``arm_in`` (a corner) every entering
    lane turns and every leaving lane is fed (extra lanes pair with the outermost of the other
    side), so that no lane is a dead end and every lane can be reached.
    """
    turn = _turn(arm_in, arm_out)
    lanes_in, lanes_out = arm_in.lane_ids(entering=True), arm_out.lane_ids(entering=False)
    if abs(turn) > 0.75 * math.pi:  # U-turn
        return []
    if only_exit or abs(turn) < 0.25 * math.pi:
        n = max(len(lanes_in), len(lanes_out))
        return [
            (lanes_in[min(k, len(lanes_in) - 1)], lanes_out[min(k, len(lanes_out) - 1)]) for k in range(n)
        ]
    if turn > 0:
        return [(lanes_in[0], lanes_out[0])]
    return [(lanes_in[-1], lanes_out[-1])]


def _tame_spirals(road: xodr.Road) -> None:
    """Replace the near-constant-curvature spirals of a fitted connecting road by arcs and lines.

    ``CommonJunctionCreator`` fits G2 clothoids whose middle piece (and every piece of a straight
    movement) has equal start and end curvature; CARLA's spiral evaluation divides by the curvature
    change and returns NaN positions along such pieces. A run of straight pieces becomes one line.
    """
    plan = xodr.PlanView()
    straight_run = 0.0
    for geometry in road.planview._raw_geometries:
        if isinstance(geometry, xodr.Spiral) and abs(geometry.curvend - geometry.curvstart) < _FLAT:
            curvature = 0.5 * (geometry.curvstart + geometry.curvend)
            if abs(curvature) < _FLAT:
                straight_run += geometry.length
                continue
            geometry = xodr.Arc(curvature, length=geometry.length)
        if straight_run > 0.0:
            plan.add_geometry(xodr.Line(straight_run))
            straight_run = 0.0
        plan.add_geometry(geometry)
    if straight_run > 0.0:
        plan.add_geometry(xodr.Line(straight_run))
    road.planview = plan


def _strip_marks(road: xodr.Road) -> None:
    """Connecting roads carry no road marks (paths inside a junction cross freely)."""
    for section in road.lanes.lanesections:
        for lane in [section.centerlane, *section.leftlanes, *section.rightlanes]:
            lane.roadmark = []


def _junction(jid: int, arms: list[_Arm], startnum: int) -> xodr.CommonJunctionCreator:
    """A junction with a connecting road for every legal movement between ``arms``.

    Arm positions are given in a frame centred on the junction, so the connecting roads land
    exactly on the roads' ends wherever the roads are fixed in the map. Connecting roads are
    numbered from ``startnum`` and take the lower speed limit of the two roads they join.
    """
    creator = xodr.CommonJunctionCreator(jid, f"junction {jid}", startnum=startnum)
    for arm in arms:
        x, y = arm.distance * math.cos(arm.bearing), arm.distance * math.sin(arm.bearing)
        creator.add_incoming_road_cartesian_geometry(arm.road, x, y, arm.bearing + math.pi, arm.contact)
    for arm_in in arms:
        exits = [arm for arm in arms if arm is not arm_in and abs(_turn(arm_in, arm)) <= 0.75 * math.pi]
        for arm_out in exits:
            pairs = _movements(arm_in, arm_out, only_exit=len(exits) == 1)
            if pairs:
                creator.add_connection(
                    arm_in.road.id, arm_out.road.id, [p[0] for p in pairs], [p[1] for p in pairs]
                )
    limits = {arm.road.id: arm.profile.speed for arm in arms}
    for road in creator.get_connecting_roads():
        _tame_spirals(road)
        _strip_marks(road)
        limit = min(limits[road.predecessor.element_id], limits[road.successor.element_id])
        road.add_type(xodr.RoadType.town, speed=limit, speed_unit="km/h")
    return creator


# -------------------------------------------------------------------------------------- signals


@dataclass
class _Signals:
    """Allocates signal ids and remembers which lights each junction's controller groups."""

    next_id: int = 1
    controllers: dict[int, list[str]] = field(default_factory=dict)

    def add(self, arm: _Arm, junction: int, light: bool) -> None:
        """A traffic light (``light``) or a stop sign at the junction end of ``arm``."""
        sid = str(self.next_id)
        self.next_id += 1
        towards_end = arm.contact == "successor"  # traffic enters the junction along +s
        t = arm.profile.driving_width + 0.5 * arm.profile.sidewalk
        signal = xodr.Signal(
            s=arm.length - STOP_SETBACK if towards_end else STOP_SETBACK,
            t=-t if towards_end else t,
            country=SIGNAL_COUNTRY,
            Type=TRAFFIC_LIGHT_TYPE if light else STOP_SIGN_TYPE,
            subtype="-1",
            id=sid,
            name=f"{'light' if light else 'stop'} {sid} junction {junction}",
            dynamic=xodr.Dynamic.yes if light else xodr.Dynamic.no,
            orientation=xodr.Orientation.positive if towards_end else xodr.Orientation.negative,
            zOffset=2.5 if light else 1.5,
            height=1.0 if light else 0.8,
            width=0.4 if light else 0.8,
        )
        lanes = arm.lane_ids(entering=True)
        signal.add_validity(min(lanes), max(lanes))
        arm.road.add_signal(signal)
        if light:
            self.controllers.setdefault(junction, []).append(sid)


def _minor_arms(arms: list[_Arm]) -> list[_Arm]:
    """Approaches that stop at a stop-controlled junction.

    Arms narrower than the widest stop; with equal arms a T junction's stem stops, a 4-way stops
    all round.
    """
    widest = max(arm.profile.lanes for arm in arms)
    minor = [arm for arm in arms if arm.profile.lanes < widest]
    if minor:
        return minor
    if len(arms) == 3:
        for arm in arms:  # the stem has no arm straight across
            if all(abs(_turn(arm, other)) > 0.25 * math.pi for other in arms if other is not arm):
                return [arm]
    return list(arms)


def _control(arms: list[_Arm], junction: int, kind: str, signals: _Signals) -> None:
    """Put ``kind`` (``"signal"``, ``"stop"`` or ``"none"``) signals on a junction's approaches."""
    if kind == "signal":
        for arm in arms:
            signals.add(arm, junction, light=True)
    elif kind == "stop":
        for arm in _minor_arms(arms):
            signals.add(arm, junction, light=False)


# ------------------------------------------------------------------------------------ assembling


def _serialise(odr: xodr.OpenDrive, signals: _Signals | None = None) -> str:
    """OpenDRIVE text with a fixed header date and one ``<controller>`` per signalised junction."""
    root = odr.get_element()
    header = root.find("header")
    assert header is not None
    header.set("date", _HEADER_DATE)
    if signals is not None and signals.controllers:
        first_junction = next(i for i, child in enumerate(root) if child.tag == "junction")
        for k, (jid, ids) in enumerate(sorted(signals.controllers.items())):
            controller = ET.Element(
                "controller", {"id": str(jid), "name": f"lights of junction {jid}", "sequence": "0"}
            )
            for sid in ids:
                ET.SubElement(controller, "control", {"signalId": sid, "type": "0"})
            root.insert(first_junction + k, controller)
            junction = root.find(f"junction[@id='{jid}']")
            assert junction is not None
            ET.SubElement(junction, "controller", {"id": str(jid), "type": "0", "sequence": "0"})
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _link_and_place(odr: xodr.OpenDrive, creators: list[xodr.CommonJunctionCreator]) -> None:
    """Place every road from the fixed ones and link the lanes of connecting roads.

    Like ``OpenDrive.adjust_roads_and_lanes`` but links only the road pairs that meet (that one
    tries every pair of roads, quadratic in the number of roads).
    """
    odr.adjust_startpoints()
    for creator in creators:
        for road in creator.get_connecting_roads():
            for link in (road.predecessor, road.successor):
                xodr.create_lane_links(road, odr.roads[str(link.element_id)])


def _opendrive(name: str) -> xodr.OpenDrive:
    """A fresh ``OpenDrive`` whose signal ids start afresh (caller holds :data:`_BUILD_LOCK`)."""
    for registry in (xodr.Signal._usedIDs, xodr.Signal._IDCounter):
        registry.pop("Signal", None)
    return xodr.OpenDrive(name)


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(int(seed) % 2**63)


# ----------------------------------------------------------------------------------------- grid


def grid_town(seed: int = 0) -> str:
    """A 3 x 3-block grid town: 4 x 4 = 16 junctions, every street connected at both ends.

    Seeded: block sizes (junction spacing 80-120 m), which rows and columns are 4-lane avenues
    (one or two of each, 60 km/h, 2 lanes each way) rather than 2-lane streets (50 km/h), and which
    junctions are signalised (3 to 7 of the 12 T and 4-way junctions; the others are
    stop-controlled, the 4 corner bends are uncontrolled). Every street has sidewalks on both
    sides. Streets run east (+x) along rows and north (+y) along columns; the south-west junction
    is at the origin.
    """
    n = _GRID_NODES
    rng = _rng(seed)
    xs = np.concatenate([[0.0], np.cumsum(np.round(rng.uniform(*_GRID_BLOCK, n - 1), 1))])
    ys = np.concatenate([[0.0], np.cumsum(np.round(rng.uniform(*_GRID_BLOCK, n - 1), 1))])
    avenue_rows = set(rng.choice(n, int(rng.integers(1, 3)), replace=False).tolist())
    avenue_cols = set(rng.choice(n, int(rng.integers(1, 3)), replace=False).tolist())
    row = [_AVENUE if j in avenue_rows else _STREET for j in range(n)]  # streets along y = ys[j]
    col = [_AVENUE if i in avenue_cols else _STREET for i in range(n)]  # streets along x = xs[i]

    def reach_x(i: int) -> float:  # centre of a junction in column i to the ends of its row streets
        return col[i].half_width + _JUNCTION_MARGIN

    def reach_y(j: int) -> float:  # centre of a junction in row j to the ends of its column streets
        return row[j].half_width + _JUNCTION_MARGIN

    def jid(i: int, j: int) -> int:
        return _GRID_JUNCTIONS + i + n * j

    with _BUILD_LOCK:
        odr = _opendrive(f"grid_town seed {seed}")
        arms: dict[int, list[_Arm]] = {jid(i, j): [] for i in range(n) for j in range(n)}
        rid = 1
        for j in range(n):  # row streets, west to east
            for i in range(n - 1):
                x0, x1 = xs[i] + reach_x(i), xs[i + 1] - reach_x(i + 1)
                road = _street(rid, float(x0), float(ys[j]), 0.0, float(x1 - x0), row[j])
                odr.add_road(road)
                arms[jid(i, j)].append(_Arm(road, row[j], "predecessor", 0.0, reach_x(i), x1 - x0))
                arms[jid(i + 1, j)].append(_Arm(road, row[j], "successor", math.pi, reach_x(i + 1), x1 - x0))
                rid += 1
        for i in range(n):  # column streets, south to north
            for j in range(n - 1):
                y0, y1 = ys[j] + reach_y(j), ys[j + 1] - reach_y(j + 1)
                road = _street(rid, float(xs[i]), float(y0), 0.5 * math.pi, float(y1 - y0), col[i])
                odr.add_road(road)
                arms[jid(i, j)].append(_Arm(road, col[i], "predecessor", 0.5 * math.pi, reach_y(j), y1 - y0))
                arms[jid(i, j + 1)].append(
                    _Arm(road, col[i], "successor", -0.5 * math.pi, reach_y(j + 1), y1 - y0)
                )
                rid += 1

        controlled = [k for k in sorted(arms) if len(arms[k]) >= 3]
        lit = set(rng.choice(controlled, int(rng.integers(3, 8)), replace=False).tolist())
        signals = _Signals()
        creators = []
        for k in sorted(arms):
            kind = "none" if k not in controlled else ("signal" if k in lit else "stop")
            _control(arms[k], k, kind, signals)
            creator = _junction(k, arms[k], startnum=_GRID_CONNECTORS + 100 * (k - _GRID_JUNCTIONS))
            odr.add_junction_creator(creator)
            creators.append(creator)
        _link_and_place(odr, creators)
        return _serialise(odr, signals)


# -------------------------------------------------------------------------------------- highway


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
        median.add_roadmark(_solid())  # edge line of the fast lane
        add(median)
        has_aux = eastbound and aux != "none"
        for k in range(1, way.lanes + 1):
            add(_driving_lane(way.lane_width, outermost=k == way.lanes and not has_aux))
        if has_aux:
            w = way.lane_width
            if aux == "full":
                add(_driving_lane(w, outermost=True))
            elif aux == "taper":
                add(_driving_lane(w, True, 0.0, -3.0 * w / length**2, 2.0 * w / length**3))
            else:
                add(_driving_lane(0.0, True, 0.0, 3.0 * w / length**2, -2.0 * w / length**3))
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
    centre.add_roadmark(_solid())
    section = xodr.LaneSection(0, centre)
    section.add_left_lane(xodr.Lane(lane_type=xodr.LaneType.shoulder, a=1.0))
    section.add_right_lane(_driving_lane(way.lane_width, outermost=True))
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
    rng = _rng(seed)
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

    with _BUILD_LOCK:
        odr = _opendrive(f"highway seed {seed}")
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
        _link_and_place(odr, [merge, diverge])
        return _serialise(odr)


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
        _tame_spirals(road)
        _strip_marks(road)
        on_ramp = {road.predecessor.element_id, road.successor.element_id} & ramps
        road.add_type(xodr.RoadType.motorway, speed=ramp_speed if on_ramp else speed, speed_unit="km/h")
    return creator


# ------------------------------------------------------------------------------------ unit maps


def _star(name: str, bearings: list[float], profile: _Profile, kind: str, approach: float = 100.0) -> str:
    """One junction at the origin with an arm of ``approach`` m along each bearing [rad].

    Arms pointing west or south run towards the junction (it is their successor), the others away
    from it, so both signal orientations occur. ``kind`` controls the junction (see ``_control``).
    """
    reach = profile.half_width + _JUNCTION_MARGIN
    with _BUILD_LOCK:
        odr = _opendrive(name)
        arms = []
        for rid, bearing in enumerate(bearings, start=1):
            ux, uy = math.cos(bearing), math.sin(bearing)
            towards = ux < -0.5 or uy < -0.5
            if towards:
                start, heading = reach + approach, bearing + math.pi
            else:
                start, heading = reach, bearing
            heading = math.atan2(math.sin(heading), math.cos(heading))
            road = _street(rid, start * ux, start * uy, heading, approach, profile)
            odr.add_road(road)
            arms.append(
                _Arm(road, profile, "successor" if towards else "predecessor", bearing, reach, approach)
            )
        signals = _Signals()
        _control(arms, _STAR_JUNCTION, kind, signals)
        creator = _junction(_STAR_JUNCTION, arms, startnum=100)
        odr.add_junction_creator(creator)
        _link_and_place(odr, [creator])
        return _serialise(odr, signals)


def straight(seed: int = 0) -> str:
    """One straight 300 m road along +x from the origin: 2 lanes each way (3.5 m), 2.5 m sidewalks,
    50 km/h. ``seed`` is ignored (the map is fixed)."""
    del seed
    with _BUILD_LOCK:
        odr = _opendrive("straight")
        odr.add_road(_street(1, 0.0, 0.0, 0.0, 300.0, _BOULEVARD))
        odr.adjust_startpoints()
        return _serialise(odr)


def cross(seed: int = 0) -> str:
    """One signalised 4-way junction at the origin of 2-lane streets (1 lane each way, sidewalks),
    approaches 100 m long. ``seed`` is ignored (the map is fixed)."""
    del seed
    return _star("cross", [0.0, 0.5 * math.pi, math.pi, -0.5 * math.pi], _STREET, "signal")


def tee(seed: int = 0) -> str:
    """One stop-controlled T junction at the origin: a through street east-west and a stem to the
    south that stops, approaches 100 m long. ``seed`` is ignored (the map is fixed)."""
    del seed
    return _star("tee", [0.0, math.pi, -0.5 * math.pi], _STREET, "stop")


# ------------------------------------------------------------------------------------- registry

TOWNS: dict[str, Callable[[int], str]] = {
    "grid": grid_town,
    "highway": highway,
    "straight": straight,
    "cross": cross,
    "tee": tee,
}
"""Procedural maps by name; each maps a seed to OpenDRIVE text."""


def make_town(name: str, seed: int) -> str:
    """OpenDRIVE text of town ``name`` with ``seed``; :class:`MapError` for an unknown name."""
    try:
        generator = TOWNS[name]
    except KeyError:
        raise MapError(f"unknown town {name!r}; procedural towns are: {', '.join(sorted(TOWNS))}") from None
    return generator(seed)
