"""Builders every procedural town shares (:mod:`sim_bridge.maps.towns`, :mod:`sim_bridge.maps.highway`):
street cross-sections and roads, junctions with their connecting roads, signals, and the final text.

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
from dataclasses import dataclass, field

import numpy as np
from scenariogeneration import xodr

from sim_bridge.maps.xodr import DEFAULT_GEOREFERENCE

TRAFFIC_LIGHT_TYPE = "1000001"
"""OpenDRIVE/CARLA signal type of a traffic light."""
STOP_SIGN_TYPE = "206"
"""German (``DE``) signal type of a stop sign, which CARLA reads as a stop."""
SIGNAL_COUNTRY = "DE"
STOP_SETBACK = 1.0
"""Distance of a signal before the end of its approach road [m]."""

_HEADER_DATE = "2000-01-01T00:00:00"  # fixed, so that the text depends on the seed only
_FLAT = 1e-6  # curvature (change) below which a fitted spiral is an arc or a line [1/m]

# ``xodr.Signal`` keeps a class-level registry of used ids (shared by every map ever built in the
# process); it is cleared at the start of each build, under this lock, so ids depend on the seed only.
BUILD_LOCK = threading.Lock()


# ------------------------------------------------------------------------------- cross-sections


@dataclass(frozen=True)
class Profile:
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


def solid() -> xodr.RoadMark:
    """A solid line that forbids lane changes across it (CARLA's default would allow them)."""
    mark = xodr.std_roadmark_solid()
    mark.laneChange = xodr.LaneChange.none
    return mark


def _broken() -> xodr.RoadMark:
    """A broken line that allows lane changes both ways."""
    mark = xodr.std_roadmark_broken()
    mark.laneChange = xodr.LaneChange.both
    return mark


def driving_lane(
    width: float, outermost: bool, width_b: float = 0.0, c: float = 0.0, d: float = 0.0
) -> xodr.Lane:
    """A driving lane; its (outer) mark is solid when ``outermost`` else broken."""
    lane = xodr.Lane(a=width, b=width_b, c=c, d=d)
    lane.add_roadmark(solid() if outermost else _broken())
    return lane


def _street_lanes(profile: Profile) -> xodr.Lanes:
    """One lane section: ``profile.lanes`` driving lanes each way and the sidewalks."""
    centre = xodr.Lane()
    centre.add_roadmark(solid())
    section = xodr.LaneSection(0, centre)
    for add in (section.add_left_lane, section.add_right_lane):
        for k in range(1, profile.lanes + 1):
            add(driving_lane(profile.lane_width, outermost=k == profile.lanes))
        if profile.sidewalk > 0:
            add(xodr.Lane(lane_type=xodr.LaneType.sidewalk, a=profile.sidewalk))
    lanes = xodr.Lanes()
    lanes.add_lanesection(section)
    return lanes


def street(rid: int, x: float, y: float, heading: float, length: float, profile: Profile) -> xodr.Road:
    """A straight two-way street starting at ``(x, y)`` [m] with ``heading`` [rad]."""
    plan = xodr.PlanView(x, y, heading)
    plan.add_geometry(xodr.Line(length))
    road = xodr.Road(rid, plan, _street_lanes(profile))
    road.add_type(xodr.RoadType.town, speed=profile.speed, speed_unit="km/h")
    return road


# ------------------------------------------------------------------------------------ junctions


@dataclass(frozen=True)
class Arm:
    """One road meeting a junction."""

    road: xodr.Road
    profile: Profile
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


def _turn(arm_in: Arm, arm_out: Arm) -> float:
    """Heading change of a movement from ``arm_in`` to ``arm_out``, wrapped to (-pi, pi] [rad]."""
    turn = arm_out.bearing - (arm_in.bearing + math.pi)
    return math.atan2(math.sin(turn), math.cos(turn))


def _movements(arm_in: Arm, arm_out: Arm, only_exit: bool) -> list[tuple[int, int]]:
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


def tame_spirals(road: xodr.Road) -> None:
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


def strip_marks(road: xodr.Road) -> None:
    """Connecting roads carry no road marks (paths inside a junction cross freely)."""
    for section in road.lanes.lanesections:
        for lane in [section.centerlane, *section.leftlanes, *section.rightlanes]:
            lane.roadmark = []


def junction(jid: int, arms: list[Arm], startnum: int) -> xodr.CommonJunctionCreator:
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
        tame_spirals(road)
        strip_marks(road)
        limit = min(limits[road.predecessor.element_id], limits[road.successor.element_id])
        road.add_type(xodr.RoadType.town, speed=limit, speed_unit="km/h")
    return creator


# -------------------------------------------------------------------------------------- signals


@dataclass
class Signals:
    """Allocates signal ids and remembers which lights each junction's controller groups."""

    next_id: int = 1
    controllers: dict[int, list[str]] = field(default_factory=dict)

    def add(self, arm: Arm, junction: int, light: bool) -> None:
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


def _minor_arms(arms: list[Arm]) -> list[Arm]:
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


def control(arms: list[Arm], junction: int, kind: str, signals: Signals) -> None:
    """Put ``kind`` (``"signal"``, ``"stop"`` or ``"none"``) signals on a junction's approaches."""
    if kind == "signal":
        for arm in arms:
            signals.add(arm, junction, light=True)
    elif kind == "stop":
        for arm in _minor_arms(arms):
            signals.add(arm, junction, light=False)


# ------------------------------------------------------------------------------------ assembling


def serialise(odr: xodr.OpenDrive, signals: Signals | None = None) -> str:
    """OpenDRIVE text with a fixed header date and one ``<controller>`` per signalised junction."""
    root = odr.get_element()
    header = root.find("header")
    assert header is not None
    header.set("date", _HEADER_DATE)
    geo = ET.Element("geoReference")
    geo.text = DEFAULT_GEOREFERENCE
    header.insert(0, geo)
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


def link_and_place(odr: xodr.OpenDrive, creators: list[xodr.CommonJunctionCreator]) -> None:
    """Place every road from the fixed ones and link the lanes of connecting roads.

    Like ``OpenDrive.adjust_roads_and_lanes`` but links only the road pairs that meet (that one
    tries every pair of roads, quadratic in the number of roads).
    """
    odr.adjust_startpoints()
    for creator in creators:
        for road in creator.get_connecting_roads():
            for link in (road.predecessor, road.successor):
                xodr.create_lane_links(road, odr.roads[str(link.element_id)])


def opendrive(name: str) -> xodr.OpenDrive:
    """A fresh ``OpenDrive`` whose signal ids start afresh (caller holds :data:`BUILD_LOCK`)."""
    for registry in (xodr.Signal._usedIDs, xodr.Signal._IDCounter):
        registry.pop("Signal", None)
    return xodr.OpenDrive(name)


def seeded_rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(int(seed) % 2**63)
