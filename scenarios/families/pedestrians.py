"""Pedestrians crossing the ego's path mid-block (NHTSA "pedestrian crossing", Leaderboard
PedestrianCrossing / DynamicObjectCrossing) and stepping out from behind a parked car
(ParkingCrossingPedestrian), on the grid town's blocks.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from scenarios.families.base import (
    HAZARD_CRITERIA,
    Family,
    FamilyError,
    ahead,
    block_lanes,
    lane_width,
    lanes_each_way,
    pick,
    point_on,
    pose_on,
    register,
)
from scenarios.families.obstacles import PARKED_LENGTH, PARKED_WIDTH, RUN_OUT
from scenarios.spec import ScenarioSpec
from sim_bridge.api import ActorKind, ActorSpec, Behaviour, BehaviourKind, MapRef, Pose, WorldSpec
from sim_bridge.maps.road_map import RoadMap

#: a crossing walker starts this far from the kerb, on the sidewalk [m]
KERB_SETBACK = 1.0


def _walker(
    road_map: RoadMap, lane: int, s: float, lateral: float, left_to_right: bool, p: dict[str, Any]
) -> ActorSpec:
    """A walker at ``lateral`` [m] of ``lane``'s centre at ``s``, facing across the road, who crosses
    at ``walk_speed`` when the ego is ``trigger`` [m] away."""
    pose = pose_on(road_map, lane, s, lateral)
    yaw = pose.yaw + (-0.5 * math.pi if left_to_right else 0.5 * math.pi)
    return ActorSpec(
        ActorKind.PEDESTRIAN, Pose(pose.x, pose.y, yaw), target_speed=p["walk_speed"],
        behaviour=Behaviour(kind=BehaviourKind.CROSS, trigger_distance=p["trigger"]),
    )  # fmt: skip


def _route_on(road_map: RoadMap, lane: int, s: float) -> tuple[tuple[float, float]]:
    end_lane, end_s, _ = ahead(road_map, lane, s, float(road_map.lane_length[lane]) - s + RUN_OUT)
    return (point_on(road_map, end_lane, end_s),)


def pedestrian_crossing(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """A walker on the sidewalk ``distance`` [m] ahead, on the ego's ``side`` (``right``: the near
    kerb; ``left``: the far one), crosses the whole road at ``walk_speed`` [m/s] when the ego is
    ``trigger`` [m] away, on a block of ``lanes`` lanes each way. The ego is in the kerb lane."""
    if p["side"] not in ("right", "left"):
        raise FamilyError(f"side must be right or left; got {p['side']!r}")
    start = 2.0
    need = start + p["distance"] + 15.0
    lanes = block_lanes(road_map, need, each_way=p["lanes"])
    lanes = lanes[road_map.lane_right[lanes] < 0]
    lane = pick(lanes, rng, f"straight block of {need:.0f} m with {p['lanes']} lane(s) each way", town)
    s_walk = start + p["distance"]
    w = lane_width(road_map, lane, s_walk)
    if p["side"] == "right":
        walker = _walker(road_map, lane, s_walk, -(0.5 * w + KERB_SETBACK), False, p)
    else:  # across every lane of both directions
        far = (2 * lanes_each_way(road_map, lane) - 0.5) * w + KERB_SETBACK
        walker = _walker(road_map, lane, s_walk, far, True, p)
    world = WorldSpec(
        map=town, ego=pose_on(road_map, lane, start), ego_speed=p["speed"], route=_route_on(road_map, lane, s_walk),
        actors=(walker,), vehicles=p["vehicles"], pedestrians=p["pedestrians"],
    )  # fmt: skip
    centre = point_on(road_map, lane, s_walk)
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
    need = start + p["distance"] + 15.0
    lane = pick(block_lanes(road_map, need, each_way=1), rng, f"two-way street block of {need:.0f} m", town)
    s_car = start + p["distance"]
    w = lane_width(road_map, lane, s_car)
    car = ActorSpec(
        ActorKind.STATIC, pose_on(road_map, lane, s_car, -(0.5 * w + 0.5 * PARKED_WIDTH + 0.05)),
        length=PARKED_LENGTH, width=PARKED_WIDTH,
    )  # fmt: skip
    s_walk = s_car + 0.5 * PARKED_LENGTH + 0.7
    walker = _walker(road_map, lane, s_walk, -(0.5 * w + 0.4), False, p)
    world = WorldSpec(
        map=town, ego=pose_on(road_map, lane, start), ego_speed=p["speed"], route=_route_on(road_map, lane, s_walk),
        actors=(car, walker), vehicles=p["vehicles"], pedestrians=p["pedestrians"],
    )  # fmt: skip
    centre = point_on(road_map, lane, s_walk)
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
