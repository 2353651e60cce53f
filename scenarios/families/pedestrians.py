"""Pedestrians crossing the ego's path mid-block (NHTSA "pedestrian crossing", Leaderboard
PedestrianCrossing / DynamicObjectCrossing) and stepping out from behind a parked car
(ParkingCrossingPedestrian), on a stretch of street outside junctions (the grid town's blocks, a
lane path on any map).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scenarios.families.base import (
    HAZARD_CRITERIA,
    Family,
    FamilyError,
    lane_width,
    lanes_each_way,
    register,
    street,
)
from scenarios.families.lane_paths import LanePath
from scenarios.families.obstacles import PARKED_LENGTH, PARKED_WIDTH, RUN_OUT
from scenarios.spec import ScenarioSpec
from sim_bridge.api import ActorKind, ActorSpec, Behaviour, BehaviourKind, MapRef, Pose, WorldSpec
from sim_bridge.maps.road_map import RoadMap

#: a crossing walker starts this far from the kerb, on the sidewalk [m]
KERB_SETBACK = 1.0


def _walker(
    road_map: RoadMap, path: LanePath, s: float, lateral: float, left_to_right: bool, p: dict[str, Any]
) -> ActorSpec:
    """A walker at ``lateral`` [m] of ``path``'s centreline at ``s``, facing across the road, who
    crosses at ``walk_speed`` when the ego is ``trigger`` [m] away."""
    pose = path.pose(road_map, s, lateral)
    yaw = pose.yaw + (-0.5 * math.pi if left_to_right else 0.5 * math.pi)
    return ActorSpec(
        ActorKind.PEDESTRIAN, Pose(pose.x, pose.y, yaw), target_speed=p["walk_speed"],
        behaviour=Behaviour(kind=BehaviourKind.CROSS, trigger_distance=p["trigger"]),
    )  # fmt: skip


def _route_on(road_map: RoadMap, path: LanePath, start: float, end: float) -> tuple[tuple[float, float], ...]:
    """The route from path ``start`` to ``RUN_OUT`` past ``end`` [m] (less where the path ends)."""
    return path.waypoints(road_map, start, min(path.length, end + RUN_OUT))


def pedestrian_crossing(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """A walker on the sidewalk ``distance`` [m] ahead, on the ego's ``side`` (``right``: the near
    kerb; ``left``: the far one), crosses the whole road at ``walk_speed`` [m/s] when the ego is
    ``trigger`` [m] away, on a block of ``lanes`` lanes each way. The ego is in the kerb lane."""
    if p["side"] not in ("right", "left"):
        raise FamilyError(f"side must be right or left; got {p['side']!r}")
    start = 2.0
    window = start + p["distance"] + 15.0
    path, shift = street(
        road_map, rng, p, window, p["lanes"], RUN_OUT, kerb=True, two_way=p["side"] == "left"
    )
    start += shift
    s_walk = start + p["distance"]
    lane, s_lane = path.locate(s_walk)
    w = lane_width(road_map, lane, s_lane)
    if p["side"] == "right":
        walker = _walker(road_map, path, s_walk, -(0.5 * w + KERB_SETBACK), False, p)
    else:  # across every lane of both directions
        far = (2 * lanes_each_way(road_map, lane) - 0.5) * w + KERB_SETBACK
        walker = _walker(road_map, path, s_walk, far, True, p)
    world = WorldSpec(
        map=town, ego=path.pose(road_map, start), ego_speed=p["speed"],
        route=_route_on(road_map, path, start, shift + window), actors=(walker,), vehicles=p["vehicles"],
        pedestrians=p["pedestrians"],
    )  # fmt: skip
    centre = path.point(road_map, s_walk)
    return ScenarioSpec(
        name="", world=world, criteria=HAZARD_CRITERIA, trigger_area=(*centre, p["trigger"] + 15.0)
    )


def occluded_pedestrian(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """A car parked on the kerb (its side flush with the lane's edge) ``distance`` [m] ahead hides a
    walker standing just past its front bumper, who steps out across the road at ``walk_speed``
    [m/s] when the ego is ``trigger`` [m] away, on a two-way street."""
    start = 2.0
    window = start + p["distance"] + 15.0
    path, shift = street(road_map, rng, p, window, 1, RUN_OUT, two_way=True)
    start += shift
    s_car = start + p["distance"]
    w = lane_width(road_map, *path.locate(s_car))
    car = ActorSpec(
        ActorKind.STATIC, path.pose(road_map, s_car, -(0.5 * w + 0.5 * PARKED_WIDTH + 0.05)),
        length=PARKED_LENGTH, width=PARKED_WIDTH,
    )  # fmt: skip
    s_walk = s_car + 0.5 * PARKED_LENGTH + 0.7
    walker = _walker(road_map, path, s_walk, -(0.5 * w + 0.4), False, p)
    world = WorldSpec(
        map=town, ego=path.pose(road_map, start), ego_speed=p["speed"],
        route=_route_on(road_map, path, start, shift + window), actors=(car, walker), vehicles=p["vehicles"],
        pedestrians=p["pedestrians"],
    )  # fmt: skip
    centre = path.point(road_map, s_walk)
    return ScenarioSpec(
        name="", world=world, criteria=HAZARD_CRITERIA, trigger_area=(*centre, p["trigger"] + 15.0)
    )


register(
    Family(
        name="pedestrian_crossing",
        build=pedestrian_crossing,
        defaults={
            "lanes": 1,
            "side": "right",
            "distance": 45.0,
            "trigger": 28.0,
            "walk_speed": 1.4,
            "speed": 10.0,
            "vehicles": 0,
            "pedestrians": 8,
        },
        town=MapRef("grid", 0),
        description="a pedestrian crosses the road mid-block; stop and let them pass",
        grid={"side": ["right", "left"], "walk_speed": [1.0, 2.0], "trigger": [24.0, 32.0]},
    )
)

register(
    Family(
        name="occluded_pedestrian",
        build=occluded_pedestrian,
        defaults={
            "distance": 40.0,
            "trigger": 22.0,
            "walk_speed": 1.4,
            "speed": 10.0,
            "vehicles": 0,
            "pedestrians": 8,
        },
        town=MapRef("grid", 0),
        description="a pedestrian steps out from behind a parked car; brake",
        grid={"walk_speed": [1.0, 1.8], "trigger": [20.0, 26.0]},
    )
)
