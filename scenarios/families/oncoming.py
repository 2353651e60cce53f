"""An oncoming vehicle over the centre line (Leaderboard InvadingTurn, NHTSA "opposite direction /
drifting"): it keeps to the left of its lane, over the centre line into the ego's lane; the ego must
keep to the right of its own lane and slow down until it has passed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from scenarios.families.base import (
    CAR_LENGTH,
    HAZARD_CRITERIA,
    Family,
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
from sim_bridge.api import ActorKind, ActorSpec, Behaviour, MapRef, WorldSpec
from sim_bridge.maps.road_map import RoadMap

#: width of the invading vehicle and of the ego [m] (the default car)
CAR_WIDTH = EGO_WIDTH = 1.9
#: the route runs this far past the junction after the block [m]
RUN_OUT = 50.0


def invading_turn(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """On a block with ``lanes`` lanes each way the ego drives in the lane next to the centre line; an
    oncoming vehicle at ``oncoming_speed`` [m/s], blind to other actors, comes the other way over the
    centre line, its left side ``overlap`` [m] into where a car centred in the ego's lane is; they
    meet about ``meet`` [m] ahead of the ego's start. The ego must keep to the right of its lane and
    slow down: a small overlap (up to the lane's room beside the car less a margin: ~0.5 m on a
    3.25 m street lane) hits a driver who keeps to the centre but lets a careful one pass."""
    need = 3.0 + p["meet"] * (1.0 + p["oncoming_speed"] / p["speed"]) + 4.0  # both fit on the block
    lanes = block_lanes(road_map, need, each_way=p["lanes"])
    lanes = lanes[road_map.lane_left[lanes] < 0]  # next to the centre line
    lane = pick(lanes, rng, f"straight block of {need:.0f} m with {p['lanes']} lane(s) each way", town)
    length = float(road_map.lane_length[lane])
    other = opposite_lane(road_map, lane)
    start = 3.0
    s_meet = start + p["meet"]
    # where the invader must start on its own lane to meet the ego there
    t_meet = p["meet"] / p["speed"]
    s_other = float(road_map.lane_length[other]) - s_meet - p["oncoming_speed"] * t_meet
    w = lane_width(road_map, other, s_other)
    w_ego = lane_width(road_map, lane, s_meet)
    invasion = 0.5 * w_ego - 0.5 * EGO_WIDTH + p["overlap"]  # over the centre line
    offset = 0.5 * w - 0.5 * CAR_WIDTH + invasion  # left of its lane centre
    invader = ActorSpec(
        # placed on its lane centre: the simulator assigns a vehicle to the lane under it (an offset
        # over the centre line would put it on the ego's lane); the offset blends in over 2 s
        ActorKind.VEHICLE, pose_on(road_map, other, s_other), speed=p["oncoming_speed"],
        target_speed=p["oncoming_speed"], behaviour=Behaviour(lateral_offset=offset, ignore_actors=True),
    )  # fmt: skip
    end_lane, end_s, _ = ahead(road_map, lane, s_meet, length - s_meet + RUN_OUT)
    world = WorldSpec(
        map=town, ego=pose_on(road_map, lane, start), ego_speed=p["speed"], route=(point_on(road_map, end_lane, end_s),),
        actors=(invader,), vehicles=p["vehicles"], pedestrians=p["pedestrians"],
    )  # fmt: skip
    centre = point_on(road_map, lane, s_meet)
    return ScenarioSpec(
        name="", world=world, criteria=HAZARD_CRITERIA, trigger_area=(*centre, p["meet"] + CAR_LENGTH)
    )


register(
    Family(
        name="invading_turn",
        build=invading_turn,
        defaults={
            "lanes": 1,
            "overlap": 0.15,
            "meet": 30.0,
            "speed": 10.0,
            "oncoming_speed": 7.0,
            "vehicles": 0,
            "pedestrians": 8,
        },
        town=MapRef("grid", 0),
        description="an oncoming car drives over the centre line; keep right and slow down",
        grid={"lanes": [1, 2], "overlap": [0.1, 0.25], "oncoming_speed": [6.0, 9.0]},
    )
)
