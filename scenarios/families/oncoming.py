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
    lane_width,
    pose_on,
    register,
    street,
)
from scenarios.spec import ScenarioSpec
from sim_bridge.api import ActorKind, ActorSpec, Behaviour, MapRef, WorldSpec
from sim_bridge.maps.road_map import RoadMap

#: width of the invading vehicle and of the ego [m] (the default car)
CAR_WIDTH = EGO_WIDTH = 1.9
#: the route runs this far past the stretch of street the family checked [m]
RUN_OUT = 50.0


def invading_turn(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """On a street with ``lanes`` lanes each way (outside junctions) the ego drives in the lane next to the centre line; an
    oncoming vehicle at ``oncoming_speed`` [m/s], blind to other actors, comes the other way over the
    centre line, its left side ``overlap`` [m] into where a car centred in the ego's lane is; they
    meet about ``meet`` [m] ahead of the ego's start. The ego must keep to the right of its lane and
    slow down: a small overlap (up to the lane's room beside the car less a margin: ~0.5 m on a
    3.25 m street lane) hits a driver who keeps to the centre but lets a careful one pass."""
    window = 3.0 + p["meet"] * (1.0 + p["oncoming_speed"] / p["speed"]) + 4.0  # both fit on the street
    path, shift = street(road_map, rng, p, window, p["lanes"], RUN_OUT, centre=True, two_way=True)
    start = 3.0 + shift
    s_meet = start + p["meet"]
    # where the invader must start on its own lane to meet the ego there
    t_meet = p["meet"] / p["speed"]
    place = path.opposite(road_map, s_meet + p["oncoming_speed"] * t_meet)
    assert place is not None  # street(two_way=True) checked every lane of the window
    other, s_other = place
    w = lane_width(road_map, other, s_other)
    w_ego = lane_width(road_map, *path.locate(s_meet))
    invasion = 0.5 * w_ego - 0.5 * EGO_WIDTH + p["overlap"]  # over the centre line
    offset = 0.5 * w - 0.5 * CAR_WIDTH + invasion  # left of its lane centre
    invader = ActorSpec(
        # placed on its lane centre: the simulator assigns a vehicle to the lane under it (an offset
        # over the centre line would put it on the ego's lane); the offset blends in over 2 s
        ActorKind.VEHICLE, pose_on(road_map, *place), speed=p["oncoming_speed"],
        target_speed=p["oncoming_speed"], behaviour=Behaviour(lateral_offset=offset, ignore_actors=True),
    )  # fmt: skip
    route = path.waypoints(road_map, start, min(path.length, shift + window + RUN_OUT))
    world = WorldSpec(
        map=town, ego=path.pose(road_map, start), ego_speed=p["speed"], route=route,
        actors=(invader,), vehicles=p["vehicles"], pedestrians=p["pedestrians"],
    )  # fmt: skip
    centre = path.point(road_map, s_meet)
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
