"""CARLA Leaderboard route files (``routes_*.xml``) → :class:`~scenarios.spec.ScenarioSpec`.

Both layouts are read:

- Leaderboard 2.0: ``<routes><route id town><waypoints><position x y z/>…</waypoints>
  <scenarios><scenario name type><trigger_point x y z yaw/><distance value="40"/>…</scenario>…
  </scenarios><weathers>…</weathers></route></routes>``;
- Leaderboard 1.0: ``<routes><route id town><waypoint x y z pitch roll yaw/>…</route></routes>``
  (its scenarios live in a separate JSON file, which is not read).

Positions are CARLA's (left-handed, degrees) and are converted with
:func:`sim_bridge.frames.carla_to_map` only; ``z``, pitch, roll and weathers are ignored. Each route
is mapped onto its town's OpenDRIVE map: the ego starts on the lane centre at the first waypoint,
facing the lane's driving direction; the ego route is the remaining waypoints (checked reachable).
Waypoints inside junctions, where overlapping lanes make them ambiguous, are left out of the route
when the route through the others passes them within :data:`PASS_TOLERANCE` anyway (routing leg by
leg through such a waypoint can pick an overlapping lane that turns the wrong way and detour back).

Each ``<scenario>`` of a type in :data:`SCENARIO_BUILDERS` becomes actors placed along the ego's
route relative to its trigger point (the route point nearest to it), with our behaviours:

=====================================================  ===============================================
ParkedObstacle(TwoWays)                                a parked car ``distance`` ahead, its centre on
                                                       the ``direction`` edge of the ego lane
Accident(TwoWays)                                      three cars ``distance``, +10, +16 m ahead,
                                                       0.75 half-widths toward ``direction``
ConstructionObstacle(TwoWays)                          three cones tapering in, then a work-zone
                                                       block covering that half of the lane
HardBreakRoute, FollowLeadingVehicle                   a lead car ``distance`` ahead that BRAKEs
PedestrianCrossing, DynamicObjectCrossing              a pedestrian beyond the ``direction`` road
                                                       edge that CROSSes the road
VehicleOpensDoorTwoWays                                a car parked beside the lane (``direction``)
                                                       whose door opens into it (OPEN_DOOR)
StaticCutIn, HighwayCutIn, ParkingCutIn                a car in the neighbour lane (``direction``)
                                                       that CUT_INs in front of the ego
OppositeVehicleRunningRedLight, …TakingPriority        a car waiting on the crossing approach of the
                                                       next junction (from ``direction``) that drives
                                                       through ignoring signals and actors
=====================================================  ===============================================

``distance`` and ``direction`` are read from the scenario's parameters where given (defaults in
:data:`DEFAULT_DISTANCE`, ``right``). Our behaviours start at reset, not at the trigger: an actor
that moves before its trigger (a lead car, a cut-in car) cruises at :data:`SLOW_FACTOR` times the
lane's speed limit, so an ego driving at the limit catches up and the distance trigger fires. Types
we cannot reproduce are kept in ``params['unsupported_scenarios']`` and logged, never dropped
silently. Every error is a :class:`~scenarios.schema.ScenarioError` naming the XML file, the route
id and the element.
"""

from __future__ import annotations

import logging
import math
import os
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import shapely

from scenarios.schema import FieldError, ScenarioError
from scenarios.spec import ScenarioSpec
from sim_bridge.api import ActorKind, ActorSpec, Behaviour, BehaviourKind, MapRef, Pose, WorldSpec
from sim_bridge.frames import carla_to_map, wrap_angle
from sim_bridge.maps.catalog import load_map
from sim_bridge.maps.road_map import MapError, RoadMap, Route
from sim_bridge.sensors.layout import RouteCommand

__all__ = [
    "DEFAULT_DISTANCE",
    "FAMILY",
    "SCENARIO_BUILDERS",
    "load_routes",
]

logger = logging.getLogger(__name__)

#: family of every spec made from a routes file
FAMILY = "leaderboard_route"
#: a waypoint farther than this from every driving lane is off the map [m]
WAYPOINT_TOLERANCE = 5.0
#: a route must pass every waypoint within this distance [m] (those it is not planned through)
PASS_TOLERANCE = 1.0
#: a trigger point farther than this from the ego route does not belong to it [m]
TRIGGER_TOLERANCE = 5.0
#: radius of ``ScenarioSpec.trigger_area`` around the first reproduced trigger point [m]
TRIGGER_RADIUS = 30.0
#: actors that move before their trigger cruise at this fraction of the lane's speed limit
SLOW_FACTOR = 0.6
#: a lead car brakes when the ego is this close (centre to centre) [m]
BRAKE_TRIGGER = 15.0
#: a cut-in car changes lane when the ego is this close [m]
CUT_IN_TRIGGER = 20.0
#: a crossing pedestrian starts walking when the ego is this close [m] …
CROSS_TRIGGER = 20.0
#: … at this speed [m/s], from this far beyond the road edge [m]
CROSS_SPEED = 2.0
SIDEWALK_MARGIN = 1.0
#: a parked car's door opens when the ego is this close [m] …
DOOR_TRIGGER = 15.0
#: … the car standing this far outside the lane edge [m] (its door, 1 m, reaches into the lane)
DOOR_GAP = 0.2
#: the crossing adversary waits this far before the junction on its approach [m] …
ADVERSARY_APPROACH = 25.0
#: … and starts when the ego is this close [m]
ADVERSARY_TRIGGER = 40.0
#: a parked car's width [m] (the simulator's default static box)
CAR_WIDTH = 1.8

DEFAULT_DISTANCE: dict[str, float] = {
    "ParkedObstacle": 120.0,
    "ParkedObstacleTwoWays": 120.0,
    "Accident": 120.0,
    "AccidentTwoWays": 120.0,
    "ConstructionObstacle": 100.0,
    "ConstructionObstacleTwoWays": 100.0,
    "VehicleOpensDoorTwoWays": 50.0,
    "DynamicObjectCrossing": 12.0,
    "FollowLeadingVehicle": 25.0,
    "HardBreakRoute": 25.0,
    "PedestrianCrossing": 15.0,
    "StaticCutIn": 30.0,
    "HighwayCutIn": 30.0,
    "ParkingCutIn": 30.0,
}
"""Distance from the trigger point to the scenario's actors along the route when the file gives no
``distance`` [m]: scenario_runner's defaults for the obstacles, the door and DynamicObjectCrossing,
ours for the others."""


# ----------------------------------------------------------------------------------------- errors


class _PlacementError(Exception):
    """A scenario whose actors cannot be placed (becomes a FieldError naming the element)."""


@dataclass
class _Errors:
    source: str
    items: list[FieldError] = field(default_factory=list)

    def add(self, path: str, message: str, line: int | None = None) -> None:
        self.items.append(FieldError(self.source, path, message, line))


class _RouteFailed(Exception):
    """Stops reading one route after a blocking error (already recorded)."""


# --------------------------------------------------------------------------------- XML attributes


def _attr_float(
    el: ET.Element, name: str, where: str, errors: _Errors, default: float | None = None
) -> float:
    text = el.get(name)
    if text is None:
        if default is not None:
            return default
        errors.add(where, f'<{el.tag}> has no {name!r} attribute; give {name}="NUMBER"')
        raise _RouteFailed
    try:
        value = float(text)
    except ValueError:
        errors.add(where, f"{name}={text!r} is not a number")
        raise _RouteFailed from None
    if not math.isfinite(value):
        errors.add(where, f"{name}={text!r} is not a finite number")
        raise _RouteFailed
    return value


def _scenario_params(el: ET.Element) -> dict[str, dict[str, str]]:
    """The parameter children of a ``<scenario>`` (all but ``trigger_point``): tag → attributes."""
    return {child.tag: dict(child.attrib) for child in el if child.tag != "trigger_point"}


# -------------------------------------------------------------------------------- route geometry


@dataclass
class _Site:
    """One scenario being placed: the map, the ego route and where its trigger point lies on it."""

    rm: RoadMap
    route: Route
    s_trigger: float
    params: dict[str, dict[str, str]]
    stype: str
    waypoints_s: np.ndarray
    """``[W]`` arc length of the ego waypoints along the route [m]."""
    waypoints: np.ndarray
    """``[W, 2]`` the ego waypoints (map frame) [m]."""

    def value(self, name: str) -> str | None:
        entry = self.params.get(name)
        return None if entry is None else entry.get("value")

    def distance(self) -> float:
        text = self.value("distance")
        if text is None:
            return DEFAULT_DISTANCE.get(self.stype, 20.0)
        try:
            value = float(text)
        except ValueError:
            raise _PlacementError(f"<distance value={text!r}> is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise _PlacementError(f"<distance value={text!r}> must be a finite number >= 0 [m]")
        return value

    def side(self) -> int:
        """``direction``: -1 right (default), +1 left."""
        text = self.value("direction") or "right"
        if text not in ("left", "right"):
            raise _PlacementError(f"<direction value={text!r}> must be 'left' or 'right'")
        return 1 if text == "left" else -1

    def along(self, ahead: float) -> tuple[np.ndarray, float, int]:
        """The route point ``ahead`` [m] past the trigger: ``xy [2]``, heading [rad], lane."""
        s = self.s_trigger + ahead
        if s > self.route.length + 1e-6:
            raise _PlacementError(
                f"its actors would stand {ahead:.1f} m past the trigger point, beyond the end of the route "
                f"({self.route.length - self.s_trigger:.1f} m further); shorten <distance> or extend the route"
            )
        return _route_point(self.route, s)


def _route_point(route: Route, s: float) -> tuple[np.ndarray, float, int]:
    """``xy [2]`` [m], heading [rad] and lane of the route at arc length ``s`` [m]."""
    s = float(np.clip(s, 0.0, route.length))
    xy = np.array([np.interp(s, route.s, route.points[:, 0]), np.interp(s, route.s, route.points[:, 1])])
    heading = float(wrap_angle(np.interp(s, route.s, np.unwrap(route.headings))))
    k = int(np.clip(np.searchsorted(route.s, s, side="right") - 1, 0, len(route.s) - 1))
    return xy, heading, int(route.point_lane[k])


def _left(heading: float) -> np.ndarray:
    """Unit normal to the left of ``heading`` [rad]."""
    return np.array([-math.sin(heading), math.cos(heading)])


def _lane_width(rm: RoadMap, lane: int, xy: np.ndarray) -> float:
    """Width of ``lane`` [m] at the sample nearest to ``xy``."""
    lo, hi = int(rm.lane_start[lane]), int(rm.lane_start[lane + 1])
    k = lo + int(np.argmin(np.hypot(*(rm.points[lo:hi] - xy).T)))
    return float(rm.widths[k])


def _edge_distance(rm: RoadMap, xy: np.ndarray, heading: float, side: int, reach: float = 40.0) -> float:
    """Distance [m] from ``xy`` (on the road) to the edge of the drivable area on ``side`` (+1 left)."""
    end = xy + side * reach * _left(heading)
    cut = shapely.intersection(shapely.LineString([xy, end]), rm.drivable_area)
    start = shapely.Point(xy)
    for part in shapely.get_parts(cut):
        if part.geom_type == "LineString" and shapely.distance(part, start) < 1e-6:
            return float(part.length)
    return 0.0


def _vehicle(
    xy: np.ndarray,
    heading: float,
    speed: float,
    behaviour: Behaviour,
    route: tuple = (),
    target: float | None = None,
) -> ActorSpec:
    return ActorSpec(
        kind=ActorKind.VEHICLE,
        pose=Pose(float(xy[0]), float(xy[1]), float(heading)),
        speed=float(speed),
        target_speed=None if target is None else float(target),
        route=route,
        behaviour=behaviour,
    )


def _static(
    xy: np.ndarray, heading: float, length: float | None = None, width: float | None = None
) -> ActorSpec:
    return ActorSpec(
        kind=ActorKind.STATIC,
        pose=Pose(float(xy[0]), float(xy[1]), float(heading)),
        length=length,
        width=width,
    )


# -------------------------------------------------------------------------------------- builders


def _obstacles(offsets: tuple[float, ...], lateral: float) -> Callable[[_Site], list[ActorSpec]]:
    """Parked cars at ``offsets`` [m] past ``distance``, ``lateral`` half-widths toward ``direction``."""

    def build(site: _Site) -> list[ActorSpec]:
        d, side = site.distance(), site.side()
        actors = []
        for extra in offsets:
            xy, heading, lane = site.along(d + extra)
            shift = lateral * 0.5 * _lane_width(site.rm, lane, xy)
            actors.append(_static(xy + side * shift * _left(heading), heading))
        return actors

    return build


def _construction(site: _Site) -> list[ActorSpec]:
    """Cones tapering from the lane edge in, then a 6 m work-zone block over that half of the lane."""
    d, side = site.distance(), site.side()
    actors = []
    for k, extra in enumerate((-6.0, -3.0, 0.0)):
        xy, heading, lane = site.along(max(d + extra, 0.0))
        w = _lane_width(site.rm, lane, xy)
        shift = (0.5 - 0.125 * (k + 1)) * w  # from near the edge toward the lane centre
        actors.append(_static(xy + side * shift * _left(heading), heading, length=0.5, width=0.5))
    xy, heading, lane = site.along(d + 4.0)
    w = _lane_width(site.rm, lane, xy)
    actors.append(_static(xy + side * 0.25 * w * _left(heading), heading, length=6.0, width=0.5 * w))
    return actors


def _lead_brake(site: _Site) -> list[ActorSpec]:
    """A lead car ``distance`` ahead in the ego lane, following the ego route, braking when caught up."""
    d = site.distance()
    xy, heading, lane = site.along(d)
    speed = SLOW_FACTOR * float(site.rm.lane_speed_limit[lane])
    s_lead = site.s_trigger + d
    ahead = site.waypoints[site.waypoints_s > s_lead + 1.0]
    route = tuple((float(x), float(y)) for x, y in ahead)
    behaviour = Behaviour(kind=BehaviourKind.BRAKE, trigger_distance=BRAKE_TRIGGER)
    return [_vehicle(xy, heading, speed, behaviour, route, target=speed)]


def _crossing(site: _Site) -> list[ActorSpec]:
    """A pedestrian beyond the road edge on ``direction``, facing across the road, walking when triggered."""
    d, side = site.distance(), site.side()
    xy, heading, _ = site.along(d)
    lateral = _edge_distance(site.rm, xy, heading, side) + SIDEWALK_MARGIN
    pos = xy + side * lateral * _left(heading)
    yaw = float(wrap_angle(heading - side * 0.5 * math.pi))
    return [
        ActorSpec(
            kind=ActorKind.PEDESTRIAN,
            pose=Pose(float(pos[0]), float(pos[1]), yaw),
            target_speed=CROSS_SPEED,
            behaviour=Behaviour(kind=BehaviourKind.CROSS, trigger_distance=CROSS_TRIGGER),
        )
    ]


def _door(site: _Site) -> list[ActorSpec]:
    """A car parked just outside the ``direction`` edge of the ego lane, opening its door toward it."""
    d, side = site.distance(), site.side()
    xy, heading, lane = site.along(d)
    lateral = 0.5 * _lane_width(site.rm, lane, xy) + 0.5 * CAR_WIDTH + DOOR_GAP
    pos = xy + side * lateral * _left(heading)
    car = _static(pos, heading, width=CAR_WIDTH)
    behaviour = Behaviour(kind=BehaviourKind.OPEN_DOOR, trigger_distance=DOOR_TRIGGER, lane_change=-side)
    return [ActorSpec(kind=car.kind, pose=car.pose, width=car.width, behaviour=behaviour)]


def _cut_in(site: _Site) -> list[ActorSpec]:
    """A car in the neighbour lane on ``direction``, cutting into the ego lane when the ego closes in."""
    d, side = site.distance(), site.side()
    xy, _, lane = site.along(d)
    rm = site.rm
    neighbour = int(rm.lane_left[lane] if side > 0 else rm.lane_right[lane])
    if neighbour < 0:
        raise _PlacementError(
            f"needs a driving lane to the {'left' if side > 0 else 'right'} of the route {d:.1f} m past the "
            f"trigger point (lane {rm.lane_keys[lane]} has none); change <direction> or move the trigger"
        )
    pos, yaw = rm.pose_at(np.array([neighbour]), np.array([_s_beside(rm, neighbour, xy)]))
    speed = SLOW_FACTOR * float(rm.lane_speed_limit[neighbour])
    behaviour = Behaviour(kind=BehaviourKind.CUT_IN, trigger_distance=CUT_IN_TRIGGER, lane_change=-side)
    return [_vehicle(pos[0], float(yaw[0]), speed, behaviour, target=speed)]


def _s_beside(rm: RoadMap, lane: int, xy: np.ndarray) -> float:
    """Arc length [m] of the point of ``lane``'s centreline nearest to ``xy`` (on the segments at
    the nearest sample)."""
    lo, hi = int(rm.lane_start[lane]), int(rm.lane_start[lane + 1])
    pts = rm.points[lo:hi]
    k = int(np.argmin(np.hypot(*(pts - xy).T)))
    best_s, best_d = float(rm.s[lo + k]), math.inf
    for i in (k - 1, k):  # the segments before and after the nearest sample
        if i < 0 or i + 1 >= len(pts):
            continue
        a, b = pts[i], pts[i + 1]
        t = float(np.clip(np.dot(xy - a, b - a) / max(float(np.dot(b - a, b - a)), 1e-12), 0.0, 1.0))
        d = float(np.hypot(*(a + t * (b - a) - xy)))
        if d < best_d:
            best_s, best_d = float(rm.s[lo + i] + t * (rm.s[lo + i + 1] - rm.s[lo + i])), d
    return best_s


def _crossing_vehicle(site: _Site) -> list[ActorSpec]:
    """A car waiting on the crossing approach (from ``direction``) of the route's next junction; it
    drives straight through, ignoring signals and actors, when the ego comes within reach."""
    rm, route, side = site.rm, site.route, site.side()
    after = np.flatnonzero((route.s >= site.s_trigger) & (rm.lane_junction[route.point_lane] >= 0))
    if after.size == 0:
        raise _PlacementError("needs a junction on the route after the trigger point; there is none")
    j_ego = int(route.point_lane[after[0]])
    h_ego = float(rm.headings[rm.lane_start[j_ego]])
    target = -side * 0.5 * math.pi  # from the right (side -1): heading = ego heading + 90 deg
    best, best_score = -1, math.inf
    for c in rm.conflicts[j_ego]:
        preds = [p for p in rm.lane_predecessors[c] if rm.lane_junction[p] < 0]
        if not preds:
            continue
        h_c = float(rm.headings[rm.lane_start[c]])
        miss = abs(float(wrap_angle(h_c - h_ego - target)))
        if miss > 0.25 * math.pi:
            continue
        score = miss + (0.0 if rm.lane_turn[c] == RouteCommand.STRAIGHT else 1.0)
        if score < best_score:
            best, best_score = int(c), score
    if best < 0:
        raise _PlacementError(
            f"needs a lane entering junction {int(rm.lane_junction[j_ego])} from the "
            f"{'left' if side > 0 else 'right'} across the route; there is none (change <direction>)"
        )
    approach = next(p for p in rm.lane_predecessors[best] if rm.lane_junction[p] < 0)
    s0 = max(float(rm.lane_length[approach]) - ADVERSARY_APPROACH, 0.0)
    pos, yaw = rm.pose_at(np.array([approach]), np.array([s0]))
    end_c = rm.pose_at(np.array([best]), np.array([float(rm.lane_length[best])]))[0][0]
    waypoints = [end_c]
    for succ in rm.lane_successors[best]:
        waypoints.append(
            rm.pose_at(np.array([succ]), np.array([min(15.0, float(rm.lane_length[succ]))]))[0][0]
        )
        break
    route_out = tuple((float(p[0]), float(p[1])) for p in waypoints)
    behaviour = Behaviour(
        kind=BehaviourKind.STOPPED,
        trigger_distance=ADVERSARY_TRIGGER,
        ignore_signals=True,
        ignore_actors=True,
    )
    speed = float(rm.lane_speed_limit[approach])
    return [_vehicle(pos[0], float(yaw[0]), 0.0, behaviour, route_out, target=speed)]


SCENARIO_BUILDERS: dict[str, Callable[[_Site], list[ActorSpec]]] = {
    "ParkedObstacle": _obstacles((0.0,), 1.0),
    "ParkedObstacleTwoWays": _obstacles((0.0,), 1.0),
    "Accident": _obstacles((0.0, 10.0, 16.0), 0.75),
    "AccidentTwoWays": _obstacles((0.0, 10.0, 16.0), 0.75),
    "ConstructionObstacle": _construction,
    "ConstructionObstacleTwoWays": _construction,
    "HardBreakRoute": _lead_brake,
    "FollowLeadingVehicle": _lead_brake,
    "PedestrianCrossing": _crossing,
    "DynamicObjectCrossing": _crossing,
    "VehicleOpensDoorTwoWays": _door,
    "StaticCutIn": _cut_in,
    "HighwayCutIn": _cut_in,
    "ParkingCutIn": _cut_in,
    "OppositeVehicleRunningRedLight": _crossing_vehicle,
    "OppositeVehicleTakingPriority": _crossing_vehicle,
}
"""Leaderboard scenario types we reproduce → the function placing their actors (see module doc)."""


# ------------------------------------------------------------------------------------ map lookup


def _map_for(
    town: str, town_xodr: Mapping[str, str | os.PathLike[str] | MapRef] | str | os.PathLike[str] | MapRef
) -> MapRef:
    """The :class:`MapRef` of ``town``; ``KeyError``/``FileNotFoundError`` with a message otherwise."""
    if isinstance(town_xodr, Mapping):
        if town not in town_xodr:
            known = ", ".join(sorted(town_xodr)) or "none"
            raise KeyError(f"town {town!r} has no map: town_xodr names {known}; add {town!r}: PATH.xodr")
        given = town_xodr[town]
    else:
        given = town_xodr
    if isinstance(given, MapRef):
        return given
    path = os.path.abspath(os.fspath(given))
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"the OpenDRIVE file {os.fspath(given)!r} for town {town!r} does not exist ({path})"
        )
    return MapRef(xodr=path)


# ----------------------------------------------------------------------------------------- routes


@dataclass
class _RouteXML:
    rid: str
    town: str
    where: str
    xy: np.ndarray
    """``[W, 2]`` waypoints (map frame) [m]."""
    yaw: np.ndarray | None
    """``[W]`` waypoint yaws (map frame) [rad] (1.0 layout), else ``None``."""
    scenarios: list[ET.Element]
    legacy: bool


def _parse_route(el: ET.Element, index: int, errors: _Errors) -> _RouteXML:
    rid = el.get("id")
    where = f"route {rid}" if rid is not None else f"route #{index} (no id)"
    if rid is None:
        errors.add(where, "<route> has no 'id' attribute; give id=\"...\"")
        raise _RouteFailed
    town = el.get("town")
    if not town:
        errors.add(where, "<route> has no 'town' attribute; give town=\"Town12\" (a key of town_xodr)")
        raise _RouteFailed
    container = el.find("waypoints")
    legacy = container is None
    points = el.findall("waypoint") if container is None else container.findall("position")
    tag = "waypoint" if legacy else "waypoints/position"
    if len(points) < 2:
        errors.add(where, f"needs at least 2 <{tag}> elements, found {len(points)}")
        raise _RouteFailed
    cx = np.array([_attr_float(p, "x", f"{where}: {tag}[{k}]", errors) for k, p in enumerate(points)])
    cy = np.array([_attr_float(p, "y", f"{where}: {tag}[{k}]", errors) for k, p in enumerate(points)])
    cyaw = None
    if legacy:
        cyaw = np.array(
            [_attr_float(p, "yaw", f"{where}: {tag}[{k}]", errors, 0.0) for k, p in enumerate(points)]
        )
    x, y, yaw = carla_to_map(cx, cy, cyaw if cyaw is not None else np.zeros_like(cx))
    xy = np.stack([np.asarray(x, float), np.asarray(y, float)], axis=1)
    holder = el.find("scenarios")
    scenarios = [] if holder is None else holder.findall("scenario")
    return _RouteXML(
        rid, town, where, xy, None if cyaw is None else np.asarray(yaw, float), scenarios, legacy
    )


def _heading_hints(r: _RouteXML) -> np.ndarray:
    """``[W]`` direction of travel at each waypoint [rad]: the file's yaw, else toward the next one."""
    if r.yaw is not None:
        return r.yaw
    d = np.diff(r.xy, axis=0)
    d = np.vstack([d, d[-1:]])
    return np.arctan2(d[:, 1], d[:, 0])


def _place_ego(r: _RouteXML, rm: RoadMap, errors: _Errors) -> tuple[Pose, Route, np.ndarray, np.ndarray]:
    """Ego pose on the first waypoint's lane, the route through the rest, the waypoints the route is
    planned through (``[K, 2]``, map frame) and their arc lengths along it (``[K]``)."""
    hints = _heading_hints(r)
    tag = "waypoint" if r.legacy else "waypoints/position"
    proj = rm.project(r.xy, hints, max_distance=WAYPOINT_TOLERANCE)
    off = np.flatnonzero(proj.lane < 0).tolist()
    for k in off:
        errors.add(
            f"{r.where}: {tag}[{k}]",
            f"waypoint (map x={r.xy[k, 0]:.2f}, y={r.xy[k, 1]:.2f}) is more than {WAYPOINT_TOLERANCE:g} m from "
            f"every driving lane of map {rm.name!r} (bounds {tuple(round(v, 1) for v in rm.bounds)}); is the "
            f"route meant for town {r.town!r} and this map?",
        )
    if off:
        raise _RouteFailed
    lane0, s0 = int(proj.lane[0]), float(proj.s[0])
    xy0, yaw0 = rm.pose_at(np.array([lane0]), np.array([s0]))
    ego = Pose(float(xy0[0, 0]), float(xy0[0, 1]), float(yaw0[0]))
    if abs(float(wrap_angle(hints[0] - ego.yaw))) > 0.5 * math.pi:
        errors.add(
            f"{r.where}: {tag}[0]",
            f"the route leaves its first waypoint against the driving direction of lane {rm.lane_keys[lane0]} "
            f"(route {math.degrees(hints[0]):.0f} deg, lane {math.degrees(ego.yaw):.0f} deg in the map frame)",
        )
        raise _RouteFailed
    # Waypoints inside junctions lie on several overlapping lanes, and routing leg by leg may pick
    # one that turns the wrong way and detours back: plan through the others (the destination always
    # stays) and check the route passes the junction ones; else plan through all of them.
    targets = r.xy[1:]
    inside = rm.lane_junction[proj.lane[1:]] >= 0
    inside[-1] = False
    route = _route_through(rm, ego, targets[~inside]) if inside.any() else None
    if route is not None and _polyline_distance(route.points, targets[inside]).max() <= PASS_TOLERANCE:
        targets = targets[~inside]
    else:
        try:
            route = rm.route(np.vstack([[ego.x, ego.y], targets]), start_yaw=ego.yaw)
        except MapError as exc:
            errors.add(r.where, f"no drivable route through its waypoints on map {rm.name!r}: {exc}")
            raise _RouteFailed from None
    return ego, route, targets, _arc_positions(route, targets)


def _route_through(rm: RoadMap, ego: Pose, targets: np.ndarray) -> Route | None:
    try:
        return rm.route(np.vstack([[ego.x, ego.y], targets]), start_yaw=ego.yaw)
    except MapError:
        return None


def _polyline_distance(points: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """``[K]`` distance [m] from each of ``xy [K, 2]`` to the polyline ``points [P, 2]``."""
    if len(xy) == 0:
        return np.zeros(0)
    a, ab = points[:-1], np.diff(points, axis=0)
    rel = xy[:, None, :] - a[None, :, :]  # [K, P-1, 2]
    t = np.clip((rel * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
    gap = rel - t[..., None] * ab
    return np.hypot(gap[..., 0], gap[..., 1]).min(axis=1)


def _arc_positions(route: Route, xy: np.ndarray) -> np.ndarray:
    """``[K]`` arc length [m] of the route points nearest to ``xy [K, 2]``, monotonic along the route."""
    out = np.zeros(len(xy))
    start = 0
    for k, p in enumerate(xy):  # per-file precomputation: a loop over waypoints is fine here
        d = np.hypot(*(route.points[start:] - p).T)
        i = start + int(np.argmin(d))
        out[k], start = route.s[i], i
    return out


def _trigger_s(route: Route, xy: np.ndarray, yaw: float) -> tuple[float, float]:
    """Arc length [m] of the trigger point on the route (heading within 45 deg preferred) and its distance."""
    d = np.hypot(*(route.points - xy).T)
    aligned = np.abs(wrap_angle(route.headings - yaw)) < 0.25 * math.pi
    cost = np.where(aligned, d, d + 1e3)
    i = int(np.argmin(cost))
    i_seg = min(i, len(route.s) - 2)
    tangent = np.array([math.cos(route.headings[i_seg]), math.sin(route.headings[i_seg])])
    s = float(np.clip(route.s[i] + float(np.dot(xy - route.points[i], tangent)), 0.0, route.length))
    return s, float(d[i])


def _scenario_actors(
    r: _RouteXML, rm: RoadMap, route: Route, targets: np.ndarray, waypoints_s: np.ndarray, errors: _Errors
) -> tuple[list[ActorSpec], list[str], list[str], tuple[float, float, float] | None]:
    """Actors of every reproducible scenario, the types in order, the unsupported ones, the trigger area."""
    actors: list[ActorSpec] = []
    types: list[str] = []
    unsupported: list[str] = []
    area = None
    for k, el in enumerate(r.scenarios):
        stype = el.get("type") or ""
        name = el.get("name") or ""
        where = f"{r.where}: scenarios/scenario[{k}] (name={name!r}, type={stype!r})"
        if not stype:
            errors.add(where, "<scenario> has no 'type' attribute")
            continue
        types.append(stype)
        if stype not in SCENARIO_BUILDERS:
            unsupported.append(stype)
            logger.warning(
                "%s: %s: scenario type %r is not reproduced by our behaviours; kept in "
                "params['unsupported_scenarios']",
                errors.source,
                where,
                stype,
            )
            continue
        trigger = el.find("trigger_point")
        if trigger is None:
            errors.add(where, "<scenario> has no <trigger_point x y z yaw/>")
            continue
        try:
            tx = _attr_float(trigger, "x", f"{where}: trigger_point", errors)
            ty = _attr_float(trigger, "y", f"{where}: trigger_point", errors)
            tyaw = _attr_float(trigger, "yaw", f"{where}: trigger_point", errors, 0.0)
        except _RouteFailed:
            continue
        mx, my, myaw = carla_to_map(tx, ty, tyaw)
        txy = np.array([float(mx), float(my)])
        s_trig, gap = _trigger_s(route, txy, float(myaw))
        if gap > TRIGGER_TOLERANCE:
            errors.add(
                f"{where}: trigger_point",
                f"(map x={txy[0]:.2f}, y={txy[1]:.2f}) is {gap:.1f} m from the route; a trigger point must lie "
                f"on its route (within {TRIGGER_TOLERANCE:g} m)",
            )
            continue
        site = _Site(rm, route, s_trig, _scenario_params(el), stype, waypoints_s, targets)
        try:
            actors.extend(SCENARIO_BUILDERS[stype](site))
        except _PlacementError as exc:
            errors.add(where, f"cannot place its actors: {exc}")
            continue
        if area is None:
            area = (float(txy[0]), float(txy[1]), TRIGGER_RADIUS)
    return actors, types, unsupported, area


def load_routes(
    xml_path: str | os.PathLike[str],
    town_xodr: Mapping[str, str | os.PathLike[str] | MapRef] | str | os.PathLike[str] | MapRef,
    *,
    vehicles: int | None = None,
    pedestrians: int | None = None,
) -> list[ScenarioSpec]:
    """Every route of a Leaderboard routes file as a :class:`ScenarioSpec` (see module doc).

    ``town_xodr`` gives the map of each town named by the routes: ``{town: path.xodr}`` (or a
    :class:`MapRef`, e.g. a procedural town), or one path/ref for every route. ``vehicles`` and
    ``pedestrians`` set the background traffic (default: ``WorldSpec``'s). Specs are named
    ``<file stem>_<route id>``, family :data:`FAMILY`, params ``route_id``, ``town``,
    ``scenario_types`` (in file order) and ``unsupported_scenarios``. Raises
    :class:`~scenarios.schema.ScenarioError` listing every problem of every route.
    """
    for name, count in (("vehicles", vehicles), ("pedestrians", pedestrians)):
        if count is not None and count < 0:
            raise ValueError(f"{name} must be >= 0 (background actors), got {count}")
    source = str(xml_path)
    errors = _Errors(source)
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        line, col = exc.position
        raise ScenarioError(
            [FieldError(f"{source}:{line}:{col + 1}", "", f"XML syntax error: {exc.msg}")]
        ) from exc
    except OSError as exc:
        raise ScenarioError([FieldError(source, "", f"cannot read the routes file ({exc})")]) from exc
    if root.tag != "routes":
        raise ScenarioError(
            [FieldError(source, "", f"the root element is <{root.tag}>; a routes file has <routes>")]
        )
    route_els = root.findall("route")
    if not route_els:
        raise ScenarioError([FieldError(source, "", "no <route> elements under <routes>")])
    defaults = WorldSpec()
    specs: list[ScenarioSpec] = []
    seen: dict[str, int] = {}
    for index, el in enumerate(route_els):
        try:
            r = _parse_route(el, index, errors)
            if r.rid in seen:
                errors.add(r.where, f"route id {r.rid!r} is used twice (routes #{seen[r.rid]} and #{index})")
                raise _RouteFailed
            seen[r.rid] = index
            try:
                ref = _map_for(r.town, town_xodr)
                rm = load_map(ref)
            except (KeyError, FileNotFoundError, MapError) as exc:
                errors.add(r.where, str(exc.args[0]) if exc.args else str(exc))
                raise _RouteFailed from None
            ego, route, targets, waypoints_s = _place_ego(r, rm, errors)
            actors, types, unsupported, area = _scenario_actors(r, rm, route, targets, waypoints_s, errors)
        except _RouteFailed:
            continue
        world = WorldSpec(
            map=ref,
            ego=ego,
            route=tuple((float(x), float(y)) for x, y in targets),
            actors=tuple(actors),
            vehicles=defaults.vehicles if vehicles is None else vehicles,
            pedestrians=defaults.pedestrians if pedestrians is None else pedestrians,
        )
        params: dict[str, object] = {
            "route_id": r.rid,
            "town": r.town,
            "leaderboard_format": "1.0" if r.legacy else "2.0",
            "scenario_types": types,
            "unsupported_scenarios": unsupported,
        }
        specs.append(
            ScenarioSpec(
                name=f"{Path(source).stem}_{r.rid}",
                world=world,
                family=FAMILY,
                params=params,
                trigger_area=area,
            )
        )
    if errors.items:
        raise ScenarioError(errors.items)
    return specs
