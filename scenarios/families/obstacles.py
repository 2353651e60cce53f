"""Something stands in or opens into the ego's lane: a parked car or an accident blocking it
(Leaderboard ParkedObstacle / Accident, their TwoWays variants) and a parked car opening its door
(VehicleOpensDoorTwoWays). On a stretch of street outside junctions (the grid town's blocks, a lane
path on any map): on a two-way street the ego passes through the oncoming lane when it is free; on
an avenue through the neighbour lane, which the route then takes (so passing there keeps to the
route's lanes).
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
    lane_width,
    point_on,
    pose_on,
    register,
    street,
)
from scenarios.families.lane_paths import LanePath
from scenarios.spec import ScenarioSpec
from sim_bridge.api import ActorKind, ActorSpec, Behaviour, BehaviourKind, MapRef, Pose, WorldSpec
from sim_bridge.maps.road_map import RoadMap

#: size of a parked car (static obstacle) [m]
PARKED_LENGTH, PARKED_WIDTH = 4.4, 1.8
#: the route runs this far past the stretch of street the family checked [m]
RUN_OUT = 50.0


def oncoming_platoon(
    road_map: RoadMap,
    path: LanePath,
    s_meet: float,
    count: int,
    speed: float,
    spacing: float,
    first: float,
    clear: float,
) -> list[ActorSpec]:
    """``count`` vehicles in the lane of the other direction beside ``path``, at ``speed`` [m/s],
    ``spacing`` [m] apart, the first ``first`` seconds from path ``s_meet`` (upstream of it for
    them, so farther along the path); vehicles that would start beyond path ``clear`` [m] (where
    the street checked for the family ends) are left out."""
    out = []
    for k in range(count):
        s = s_meet + speed * first + k * spacing
        place = path.opposite(road_map, s) if s <= clear - 2.0 else None
        if place is None:
            break
        out.append(ActorSpec(ActorKind.VEHICLE, pose_on(road_map, *place), speed=speed, target_speed=speed))
    return out


def parked_obstacle(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """A parked car (``obstacle="parked"``) or two crashed cars (``"accident"``) block the ego's
    lane ``distance`` [m] ahead, on a street of ``lanes`` lanes each way (1: a two-way street, pass in
    the oncoming lane; 2: an avenue, pass in the neighbour lane). ``traffic`` vehicles at
    ``traffic_speed`` drive in the lane used for passing, reaching the obstacle soon after the ego:
    the ego must let them by first."""
    if p["obstacle"] not in ("parked", "accident"):
        raise FamilyError(f"obstacle must be parked or accident; got {p['obstacle']!r}")
    two_way = p["lanes"] == 1
    span = CAR_LENGTH + (7.0 if p["obstacle"] == "accident" else 0.0)
    start = 2.0 if two_way else 22.0
    window = start + p["distance"] + span + 20.0
    # on an avenue the obstacle is parked in the kerb lane
    path, shift = street(road_map, rng, p, window, p["lanes"], RUN_OUT, kerb=not two_way,
                         two_way=two_way, left=not two_way)  # fmt: skip
    start += shift
    s_obs = start + p["distance"]
    obstacles = _obstacles(road_map, path, s_obs, p["obstacle"], rng)
    ego = path.pose(road_map, start)
    if two_way:
        traffic = oncoming_platoon(
            road_map, path, s_obs, p["traffic"], p["traffic_speed"], 18.0, 0.5, path.clear
        )
        route = path.waypoints(road_map, start, min(path.length, shift + window + RUN_OUT))
    else:
        places = [path.beside(road_map, s, +1) for s in (start - 2.0 - 18.0 * k for k in range(p["traffic"]))
                  if s >= shift + 2.0]  # fmt: skip
        traffic = [
            ActorSpec(ActorKind.VEHICLE, pose_on(road_map, *place), speed=p["traffic_speed"],
                      target_speed=p["traffic_speed"])
            for place in places
            if place is not None
        ]  # fmt: skip
        # past the obstacle the route changes into the neighbour lane
        end = path.beside(road_map, shift + window - 3.0, +1)
        assert end is not None  # street(left=True) checked every lane of the window
        route = (*path.waypoints(road_map, start, s_obs + span + 2.0), point_on(road_map, *end))
    world = WorldSpec(
        map=town, ego=ego, ego_speed=p["speed"], route=route, actors=(*obstacles, *traffic),
        vehicles=p["vehicles"], pedestrians=p["pedestrians"],
    )  # fmt: skip
    centre = path.point(road_map, s_obs)
    return ScenarioSpec(
        name="",
        world=world,
        criteria=TWO_WAY_CRITERIA if two_way else HAZARD_CRITERIA,
        trigger_area=(*centre, p["distance"] + 20.0),
    )


def _obstacles(
    road_map: RoadMap, path: LanePath, s: float, kind: str, rng: np.random.Generator
) -> list[ActorSpec]:
    """A parked car nudged towards the kerb, or two cars askew one behind the other (an accident),
    at path ``s`` [m]."""
    width = lane_width(road_map, *path.locate(s))
    if kind == "parked":
        pose = path.pose(road_map, s, -0.2 * (width - PARKED_WIDTH))
        return [ActorSpec(ActorKind.STATIC, pose, length=PARKED_LENGTH, width=PARKED_WIDTH)]
    out = []
    for ds, skew, lateral in ((0.0, 0.35, -0.1), (6.5, -0.25, 0.1)):
        pose = path.pose(road_map, s + ds, lateral * width)
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
    window = start + p["distance"] + 25.0
    path, shift = street(road_map, rng, p, window, 1, RUN_OUT, two_way=True)
    start += shift
    s_car = start + p["distance"]
    lateral = -(0.5 * lane_width(road_map, *path.locate(s_car)) + 0.5 * PARKED_WIDTH + 0.05)
    car = ActorSpec(
        ActorKind.STATIC, path.pose(road_map, s_car, lateral), length=PARKED_LENGTH, width=PARKED_WIDTH,
        behaviour=Behaviour(kind=BehaviourKind.OPEN_DOOR, trigger_distance=p["trigger"], lane_change=1,
                            door_width=p["door_width"]),
    )  # fmt: skip
    traffic = oncoming_platoon(road_map, path, s_car, p["traffic"], p["traffic_speed"], 20.0, 1.0, path.clear)
    world = WorldSpec(
        map=town, ego=path.pose(road_map, start), ego_speed=p["speed"],
        route=path.waypoints(road_map, start, min(path.length, shift + window + RUN_OUT)),
        actors=(car, *traffic), vehicles=p["vehicles"], pedestrians=p["pedestrians"],
    )  # fmt: skip
    centre = path.point(road_map, s_car)
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
