"""A vehicle in the neighbour lane cuts in ahead of the ego (NHTSA "vehicle changing lanes",
Leaderboard CutIn / HighwayCutIn): on a 4-lane avenue of the grid town and on the highway."""

from __future__ import annotations

from typing import Any

import numpy as np

from scenarios.families.base import (
    CAR_LENGTH,
    HAZARD_CRITERIA,
    Family,
    FamilyError,
    ahead,
    block_lanes,
    lane_index,
    pick,
    point_on,
    pose_on,
    register,
)
from scenarios.spec import ScenarioSpec
from sim_bridge.api import ActorKind, ActorSpec, Behaviour, BehaviourKind, MapRef, WorldSpec
from sim_bridge.maps.road_map import RoadMap


def _cut_in(
    road_map: RoadMap,
    town: MapRef,
    p: dict[str, Any],
    rng: np.random.Generator,
    lane: int,
    start: float,
    run_out: float,
) -> ScenarioSpec:
    """Ego at ``start`` on ``lane`` at ``speed``; the cutter in the neighbour lane on ``side``
    (``"left"``, ``"right"`` or ``"any"``), slower (``cutter_speed``), changes into the ego's lane over
    ``lane_change_time`` [s] once the ego is ``ttc`` seconds (at the speed difference) from its back
    bumper; it starts 10 m farther ahead than that. The route runs ``run_out`` [m] on, straight where
    it can."""
    sides = {"left": [1], "right": [-1], "any": [1, -1]}.get(p["side"])
    if sides is None:
        raise FamilyError(f"side must be left, right or any; got {p['side']!r}")
    sides = [d for d in sides if (road_map.lane_left if d > 0 else road_map.lane_right)[lane] >= 0]
    if not sides:
        raise FamilyError(f"lane {road_map.lane_keys[lane]} has no neighbour on the {p['side']} side")
    side = int(sides[int(rng.integers(len(sides)))])
    other = int((road_map.lane_left if side > 0 else road_map.lane_right)[lane])
    if p["cutter_speed"] >= p["speed"]:
        raise FamilyError("cutter_speed must be below the ego's speed, or the ego never closes in")
    trigger = trigger_distance(p)
    ego = pose_on(road_map, lane, start)
    cutter = pose_on(road_map, other, start + trigger + 10.0)
    actor = ActorSpec(
        ActorKind.VEHICLE, cutter, speed=p["cutter_speed"], target_speed=p["cutter_speed"],
        behaviour=Behaviour(
            kind=BehaviourKind.CUT_IN, trigger_distance=trigger, lane_change=-side,
            lane_change_time=p["lane_change_time"],
        ),
    )  # fmt: skip
    end_lane, end_s, _ = ahead(road_map, lane, start, run_out)
    world = WorldSpec(
        map=town, ego=ego, ego_speed=p["speed"], route=(point_on(road_map, end_lane, end_s),), actors=(actor,),
        vehicles=p["vehicles"], pedestrians=p["pedestrians"],
    )  # fmt: skip
    return ScenarioSpec(
        name="", world=world, criteria=HAZARD_CRITERIA, trigger_area=(cutter.x, cutter.y, trigger + 40.0)
    )


def trigger_distance(p: dict[str, Any]) -> float:
    """Centre-to-centre distance [m] at which the cutter starts its lane change: one car length plus
    ``ttc`` seconds at the speed difference."""
    return CAR_LENGTH + (p["speed"] - p["cutter_speed"]) * p["ttc"]


def cut_in_urban(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """On a 4-lane avenue block of the grid town (see :func:`_cut_in`)."""
    need = trigger_distance(p) + 55.0
    lanes = block_lanes(road_map, need, each_way=2)
    if p["side"] in ("left", "right"):  # a lane with a neighbour on the cutter's side
        lanes = lanes[(road_map.lane_left if p["side"] == "left" else road_map.lane_right)[lanes] >= 0]
    lane = pick(lanes, rng, f"straight avenue block of {need:.0f} m with a lane on its {p['side']}", town)
    return _cut_in(road_map, town, p, rng, lane, 4.0, 150.0)


def cut_in_highway(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """On the middle eastbound lane of the highway's west part (road 1), before the on-ramp merge."""
    index = lane_index(road_map)
    lane = index.get((1, 0, -3), -1)
    if lane < 0:
        raise FamilyError(f"town {town.key()} has no highway road 1 with a middle lane -3")
    start = float(rng.uniform(10.0, 40.0))
    return _cut_in(road_map, town, p, rng, lane, start, 450.0)


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
