"""A vehicle in the neighbour lane cuts in ahead of the ego (NHTSA "vehicle changing lanes",
Leaderboard CutIn / HighwayCutIn): on a street with two lanes one way (the grid town's avenues) and
on a highway, along a lane path of any map that has one."""

from __future__ import annotations

from typing import Any

import numpy as np

from scenarios.families.base import (
    CAR_LENGTH,
    HAZARD_CRITERIA,
    Family,
    FamilyError,
    MissingFeature,
    lanes_each_way,
    place,
    pose_on,
    register,
)
from scenarios.families.lane_paths import LanePath, drops_within, lane_paths, max_curvature
from scenarios.spec import ScenarioSpec
from sim_bridge.api import ActorKind, ActorSpec, Behaviour, BehaviourKind, MapRef, WorldSpec
from sim_bridge.maps.road_map import RoadMap

#: the cut-in needs this much road with the neighbour lane past the cutter's start [m] (its lane
#: change at the speed difference, ~40 m)
AFTER_CUT = 41.0
#: on a highway the window also holds this long [s] of following the cutter at the ego's speed,
#: outside junctions (a highway's junctions are its ramps: at 27 m/s a cut-in placed just before
#: one, measured on the highway town, ended in collisions and in passes off the route's lanes)
HIGHWAY_FOLLOW = 3.0
#: … and its route ends this far before the next junction [m]: at a ramp's split the route would
#: take one branch while the cutter may take the other, and at a merge the cutter may stop to yield
#: (the ego, stopped behind it, must still have passed the route's end)
JUNCTION_GAP = 30.0
#: without junctions, windows this long [m] (a clean stretch for the route) are preferred where the
#: map has them
CLEAN_ROUTE = 300.0
#: the route runs at least this far past that [m]
MIN_RUN_OUT = 20.0


def _cut_in(
    road_map: RoadMap,
    town: MapRef,
    p: dict[str, Any],
    rng: np.random.Generator,
    setting: str,
    each_way: int,
    start: float,
    run_out: float,
    follow: float = 0.0,
    junctions: bool = True,
) -> ScenarioSpec:
    """Ego at ``start`` [m] along a lane path (of ``each_way`` or more lanes one way, with a
    neighbour on the cutter's side all along the window that does not drop ahead, which would make
    the cutter merge; no sharper curves than the cutter's speed allows) at ``speed``; the cutter in
    the neighbour lane on ``side`` (``"left"``, ``"right"`` or ``"any"``), slower
    (``cutter_speed``), changes into the ego's lane over ``lane_change_time`` [s] once the ego is
    ``ttc`` seconds (at the speed difference) from its back bumper; it starts 10 m farther ahead
    than that; the window also holds ``follow`` seconds at ``speed`` after the cut-in and, unless
    ``junctions``, no junction lane. The route runs ``run_out`` [m] on from the ego's start,
    straight where it can (less where the road ends first and, unless ``junctions``, before the
    next junction)."""
    sides = {"left": [1], "right": [-1], "any": [1, -1]}.get(p["side"])
    if sides is None:
        raise FamilyError(f"side must be left, right or any; got {p['side']!r}")
    if p["cutter_speed"] >= p["speed"]:
        raise FamilyError("cutter_speed must be below the ego's speed, or the ego never closes in")
    trigger = trigger_distance(p)
    least = start + trigger + 10.0 + AFTER_CUT + follow * p["speed"]
    # without junctions: the longest clean window the map has, up to the whole route
    windows = [least]
    if not junctions:
        windows = sorted({least, *(max(least, start + w) for w in (run_out, CLEAN_ROUTE))}, reverse=True)
    for window in windows:
        paths = _paths(road_map, p, sides, each_way, window, max(0.0, start + run_out - window), junctions)
        if paths:
            break
    what = (
        f"{setting} of {least:.0f} m with {each_way} or more lanes one way and a lane on the "
        f"{p['side']} side, curving at most for {p['cutter_speed']:g} m/s"
    )
    if not paths:
        raise MissingFeature(what)
    path, side = paths[int(rng.integers(len(paths)))]
    _, shift = place([path], rng, what, window, MIN_RUN_OUT)
    start += shift
    cut = path.beside(road_map, start + trigger + 10.0, side)
    assert cut is not None  # fits() holds all along the window
    ego = path.pose(road_map, start)
    cutter = pose_on(road_map, *cut)
    actor = ActorSpec(
        ActorKind.VEHICLE, cutter, speed=p["cutter_speed"], target_speed=p["cutter_speed"],
        behaviour=Behaviour(
            kind=BehaviourKind.CUT_IN, trigger_distance=trigger, lane_change=-side,
            lane_change_time=p["lane_change_time"],
        ),
    )  # fmt: skip
    end = min(path.length, start + run_out)
    if not junctions:  # … nor in the run-out: the route ends before the next junction
        nxt = [
            s for lane, s in zip(path.lanes, path.starts, strict=True) if road_map.lane_junction[lane] >= 0
        ]
        if any(road_map.lane_junction[k] >= 0 for k in road_map.lane_successors[path.lanes[-1]]):
            nxt.append(path.length)  # the path ends where one begins
        end = max(min([end, *(s - JUNCTION_GAP for s in nxt)]), shift + least)
    world = WorldSpec(
        map=town, ego=ego, ego_speed=p["speed"], route=path.waypoints(road_map, start, end), actors=(actor,),
        vehicles=p["vehicles"], pedestrians=p["pedestrians"],
    )  # fmt: skip
    return ScenarioSpec(
        name="", world=world, criteria=HAZARD_CRITERIA, trigger_area=(cutter.x, cutter.y, trigger + 40.0)
    )


def _paths(
    road_map: RoadMap,
    p: dict[str, Any],
    sides: list[int],
    each_way: int,
    window: float,
    run_out: float,
    junctions: bool,
) -> list[tuple[LanePath, int]]:
    """The lane paths of :func:`_cut_in` and the side of the cutter's lane, in a fixed order."""
    paths: list[tuple[LanePath, int]] = []
    for side in sides:
        neighbour = road_map.lane_left if side > 0 else road_map.lane_right

        def fits(lane: int, neighbour: np.ndarray = neighbour) -> bool:
            other = int(neighbour[lane])
            return (
                other >= 0
                and lanes_each_way(road_map, lane) >= each_way
                and not drops_within(road_map, other)
            )

        found = lane_paths(road_map, window, run_out, fits, max_curvature(p["cutter_speed"]),
                           junctions=junctions, min_run_out=MIN_RUN_OUT)  # fmt: skip
        paths += [(path, side) for path in found]
    paths.sort(key=lambda item: (item[0].lanes, item[1]))
    return paths


def trigger_distance(p: dict[str, Any]) -> float:
    """Centre-to-centre distance [m] at which the cutter starts its lane change: one car length plus
    ``ttc`` seconds at the speed difference."""
    return CAR_LENGTH + (p["speed"] - p["cutter_speed"]) * p["ttc"]


def cut_in_urban(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """On a street with two or more lanes one way, such as the grid town's avenues (see :func:`_cut_in`)."""
    return _cut_in(road_map, town, p, rng, "street", 2, 4.0, 150.0)


def cut_in_highway(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """On a multi-lane road outside junctions, straight enough for the cutter's speed, with room to
    follow it for ``HIGHWAY_FOLLOW`` seconds (see :func:`_cut_in`); the route runs on for up to
    450 m."""
    return _cut_in(road_map, town, p, rng, "highway", 2, 10.0, 450.0, HIGHWAY_FOLLOW, junctions=False)


register(
    Family(
        name="cut_in_urban",
        build=cut_in_urban,
        defaults={
            "speed": 14.0,
            "cutter_speed": 7.0,
            "ttc": 2.0,
            "lane_change_time": 2.0,
            "side": "any",
            "vehicles": 6,
            "pedestrians": 10,
        },
        town=MapRef("grid", 0),
        description="a slower car in the neighbour lane of an avenue cuts in close ahead; brake and follow",
        grid={"ttc": [1.5, 2.5], "cutter_speed": [5.0, 9.0], "side": ["left", "right"]},
    )
)

register(
    Family(
        name="cut_in_highway",
        build=cut_in_highway,
        defaults={
            "speed": 27.0,
            "cutter_speed": 18.0,
            "ttc": 2.0,
            "lane_change_time": 2.5,
            "side": "any",
            "vehicles": 8,
            "pedestrians": 0,
        },
        town=MapRef("highway", 0),
        description="a slower car on the highway cuts in from a neighbour lane; brake and follow",
        grid={"ttc": [1.5, 2.5], "cutter_speed": [15.0, 21.0], "side": ["left", "right"]},
    )
)
