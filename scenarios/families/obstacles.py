"""Something stands in or opens into the ego's lane: a parked car or an accident blocking it
(Leaderboard ParkedObstacle / Accident, their TwoWays variants) and a parked car opening its door
(VehicleOpensDoorTwoWays). On the grid town's blocks: on a two-way street the ego passes through
the oncoming lane when it is free; on an avenue through the neighbour lane, which the route then
takes (so passing there keeps to the route's lanes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scenarios.families.base import (
    CAR_LENGTH,
    HAZARD_CRITERIA,
    TWO_WAY_CRITERIA,
    Family,
    FamilyError,
    ahead,
    block_lanes,
    lane_width,
    opposite_lane,
    pick,
    point_on,
    pose_on,
    register,
)
from scenarios.spec import ScenarioSpec
from sim_bridge.api import ActorKind, ActorSpec, Behaviour, BehaviourKind, MapRef, Pose, WorldSpec
from sim_bridge.maps.road_map import RoadMap

#: size of a parked car (static obstacle) [m]
PARKED_LENGTH, PARKED_WIDTH = 4.4, 1.8
#: the route runs this far past the junction after the block [m]
RUN_OUT = 50.0


def oncoming_platoon(
    road_map: RoadMap, lane: int, s_meet: float, count: int, speed: float, spacing: float, first: float
) -> list[ActorSpec]:
    """``count`` vehicles on ``lane`` at ``speed`` [m/s], ``spacing`` [m] apart, the first ``first``
    seconds from arc length ``s_meet`` (upstream of it); vehicles that would start before the lane's
    beginning are left out."""
    out = []
    for k in range(count):
        s = s_meet - speed * first - k * spacing
        if s < 2.0:
            break
        out.append(ActorSpec(ActorKind.VEHICLE, pose_on(road_map, lane, s), speed=speed, target_speed=speed))
    return out


def parked_obstacle(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """A parked car (``obstacle="parked"``) or two crashed cars (``"accident"``) block the ego's
    lane ``distance`` [m] ahead, on a block of ``lanes`` lanes each way (1: a two-way street, pass in
    the oncoming lane; 2: an avenue, pass in the neighbour lane). ``traffic`` vehicles at
    ``traffic_speed`` drive in the lane used for passing, reaching the obstacle soon after the ego:
    the ego must let them by first."""
    if p["obstacle"] not in ("parked", "accident"):
        raise FamilyError(f"obstacle must be parked or accident; got {p['obstacle']!r}")
    two_way = p["lanes"] == 1
    span = CAR_LENGTH + (7.0 if p["obstacle"] == "accident" else 0.0)
    start = 2.0 if two_way else 22.0
    need = start + p["distance"] + span + 20.0
    lanes = block_lanes(road_map, need, each_way=p["lanes"])
    if not two_way:  # parked in the kerb lane
        lanes = lanes[road_map.lane_right[lanes] < 0]
    lane = pick(lanes, rng, f"straight block of {need:.0f} m with {p['lanes']} lane(s) each way", town)
    length = float(road_map.lane_length[lane])
    s_obs = start + p["distance"]
    obstacles = _obstacles(road_map, lane, s_obs, p["obstacle"], rng)
    ego = pose_on(road_map, lane, start)
    if two_way:
        other = opposite_lane(road_map, lane)
        s_other = float(road_map.lane_length[other]) - s_obs  # the same place seen from the other lane
        traffic = oncoming_platoon(road_map, other, s_other, p["traffic"], p["traffic_speed"], 18.0, 0.5)
        end_lane, end_s, _ = ahead(road_map, lane, s_obs, length - s_obs + RUN_OUT)
        route: tuple[tuple[float, float], ...] = (point_on(road_map, end_lane, end_s),)
    else:
        other = int(road_map.lane_left[lane])
        traffic = [
            ActorSpec(ActorKind.VEHICLE, pose_on(road_map, other, s), speed=p["traffic_speed"],
                      target_speed=p["traffic_speed"])
            for s in (start - 2.0 - 18.0 * k for k in range(p["traffic"]))
            if s >= 2.0
        ]  # fmt: skip
        # past the obstacle the route changes into the neighbour lane
        route = (point_on(road_map, lane, s_obs + span + 2.0), point_on(road_map, other, length - 3.0))
    world = WorldSpec(
        map=town, ego=ego, ego_speed=p["speed"], route=route, actors=(*obstacles, *traffic),
        vehicles=p["vehicles"], pedestrians=p["pedestrians"],
    )  # fmt: skip
    centre = point_on(road_map, lane, s_obs)
    return ScenarioSpec(
        name="",
        world=world,
        criteria=TWO_WAY_CRITERIA if two_way else HAZARD_CRITERIA,
        trigger_area=(*centre, p["distance"] + 20.0),
    )


def _obstacles(
    road_map: RoadMap, lane: int, s: float, kind: str, rng: np.random.Generator
) -> list[ActorSpec]:
    """A parked car nudged towards the kerb, or two cars askew one behind the other (an accident)."""
    width = lane_width(road_map, lane, s)
    if kind == "parked":
        pose = pose_on(road_map, lane, s, -0.2 * (width - PARKED_WIDTH))
        return [ActorSpec(ActorKind.STATIC, pose, length=PARKED_LENGTH, width=PARKED_WIDTH)]
    out = []
    for ds, skew, lateral in ((0.0, 0.35, -0.1), (6.5, -0.25, 0.1)):
        pose = pose_on(road_map, lane, s + ds, lateral * width)
        yaw = pose.yaw + skew * float(rng.choice([-1.0, 1.0]))
        out.append(
            ActorSpec(ActorKind.STATIC, Pose(pose.x, pose.y, yaw), length=PARKED_LENGTH, width=PARKED_WIDTH)
        )
    return out


def vehicle_opens_door(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """A car parked on the kerb beside a two-way street (its side flush with the lane's edge) opens
    its door ``door_width`` [m] into the ego's lane when the ego is ``trigger`` [m] away (centre to
    centre). The ego must slow and pass wide, over the centre line, when the oncoming lane (with
    ``traffic`` vehicles coming) allows."""
    start = 2.0
    need = start + p["distance"] + 25.0
    lane = pick(block_lanes(road_map, need, each_way=1), rng, f"two-way street block of {need:.0f} m", town)
    length = float(road_map.lane_length[lane])
    s_car = start + p["distance"]
    lateral = -(0.5 * lane_width(road_map, lane, s_car) + 0.5 * PARKED_WIDTH + 0.05)
    car = ActorSpec(
        ActorKind.STATIC, pose_on(road_map, lane, s_car, lateral), length=PARKED_LENGTH, width=PARKED_WIDTH,
        behaviour=Behaviour(kind=BehaviourKind.OPEN_DOOR, trigger_distance=p["trigger"], lane_change=1,
                            door_width=p["door_width"]),
    )  # fmt: skip
    other = opposite_lane(road_map, lane)
    s_other = float(road_map.lane_length[other]) - s_car
    traffic = oncoming_platoon(road_map, other, s_other, p["traffic"], p["traffic_speed"], 20.0, 1.0)
    end_lane, end_s, _ = ahead(road_map, lane, s_car, length - s_car + RUN_OUT)
    world = WorldSpec(
        map=town, ego=pose_on(road_map, lane, start), ego_speed=p["speed"], route=(point_on(road_map, end_lane, end_s),),
        actors=(car, *traffic), vehicles=p["vehicles"], pedestrians=p["pedestrians"],
    )  # fmt: skip
    centre = point_on(road_map, lane, s_car)
    return ScenarioSpec(
        name="", world=world, criteria=TWO_WAY_CRITERIA, trigger_area=(*centre, p["trigger"] + 20.0)
    )


register(
    Family(
        name="parked_obstacle",
        build=parked_obstacle,
        defaults={
            "lanes": 1,
            "obstacle": "parked",
            "distance": 35.0,
            "speed": 8.0,
            "traffic": 2,
            "traffic_speed": 9.0,
            "vehicles": 0,
            "pedestrians": 8,
        },
        town=MapRef("grid", 0),
        description="a parked car or an accident blocks the lane; wait for a gap and pass in the next lane",
        grid={"lanes": [1, 2], "obstacle": ["parked", "accident"], "traffic": [0, 3]},
    )
)

register(
    Family(
        name="vehicle_opens_door",
        build=vehicle_opens_door,
        defaults={
            "distance": 40.0,
            "door_width": 1.2,
            "trigger": 24.0,
            "speed": 9.0,
            "traffic": 1,
            "traffic_speed": 9.0,
            "vehicles": 0,
            "pedestrians": 8,
        },
        town=MapRef("grid", 0),
        description="a car parked on the kerb opens its door into the lane; slow down and pass wide",
        grid={"door_width": [0.9, 1.4], "trigger": [20.0, 28.0], "traffic": [0, 2]},
    )
)
