"""Following a lead vehicle: it brakes hard (NHTSA "lead vehicle decelerating", Leaderboard
HardBreakRoute / FollowLeadingVehicle)."""

from __future__ import annotations

from typing import Any

import numpy as np

from scenarios.families.base import Family, pick, pose_on, register, straight_lanes
from scenarios.spec import ScenarioSpec
from sim_bridge.api import ActorKind, ActorSpec, Behaviour, BehaviourKind, MapRef, WorldSpec
from sim_bridge.maps.road_map import RoadMap


def lead_vehicle_brake(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    start = 15.0
    length = start + p["lead_gap"] + 120.0
    lane = pick(straight_lanes(road_map, length), rng, f"straight lane of {length:.0f} m", town)
    ego = pose_on(road_map, lane, start)
    lead = pose_on(road_map, lane, start + p["lead_gap"])
    end = pose_on(road_map, lane, min(road_map.lane_length[lane] - 5.0, start + p["lead_gap"] + 110.0))
    actor = ActorSpec(
        ActorKind.VEHICLE, lead, speed=p["speed"], target_speed=p["speed"],
        behaviour=Behaviour(kind=BehaviourKind.BRAKE, trigger_time=p["brake_after"], decel=p["decel"]),
    )  # fmt: skip
    world = WorldSpec(
        map=town, ego=ego, ego_speed=p["speed"], route=((end.x, end.y),), actors=(actor,),
        vehicles=p["vehicles"], pedestrians=p["pedestrians"],
    )  # fmt: skip
    return ScenarioSpec(name="", world=world, trigger_area=(lead.x, lead.y, p["lead_gap"] + 40.0))


register(
    Family(
        name="lead_vehicle_brake",
        build=lead_vehicle_brake,
        defaults={
            "lead_gap": 25.0,
            "speed": 10.0,
            "decel": 6.0,
            "brake_after": 4.0,
            "vehicles": 0,
            "pedestrians": 0,
        },
        town=MapRef("straight"),
        description="a lead vehicle at the same speed brakes hard; the ego must stop behind it",
        grid={"lead_gap": [15.0, 25.0, 40.0], "speed": [8.0, 12.0], "decel": [4.0, 8.0]},
    )
)
