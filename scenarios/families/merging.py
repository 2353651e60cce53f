"""Merging from the highway's on-ramp into slow, dense traffic (Leaderboard MergerIntoSlowTraffic,
NHTSA "changing lanes / merging"): the ego comes down the ramp onto the acceleration lane and must
slot into a gap of a slow platoon in the rightmost lane before the acceleration lane ends."""

from __future__ import annotations

from typing import Any

import numpy as np

from scenarios.families.base import (
    HAZARD_CRITERIA,
    Family,
    FamilyError,
    ahead,
    behind,
    lane_index,
    point_on,
    pose_on,
    register,
)
from scenarios.spec import ScenarioSpec
from sim_bridge.api import ActorKind, ActorSpec, MapRef, WorldSpec
from sim_bridge.maps.road_map import RoadMap

#: the route starts changing into the main lane this far along the acceleration lane [m]
MERGE_AT = 40.0
#: the route runs this far along the main lane after the acceleration lane begins [m]
RUN_OUT = 300.0


def merge_slow_traffic(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """The ego starts ``distance`` [m] before the end of the on-ramp (road 4) at ``speed``; a platoon
    of ``count`` vehicles at ``traffic_speed`` [m/s], ``spacing`` [m] apart (centre to centre), drives
    in the rightmost lane (-4), centred on the merge point when the ego would get there at its speed
    (shifted by ``phase`` spacings). The route merges into that lane from ``MERGE_AT`` m along the
    acceleration lane (road 2, lane -5) and runs on."""
    index = lane_index(road_map)
    ramp, accel, main = (index.get(k, -1) for k in ((4, 0, -1), (2, 0, -5), (2, 0, -4)))
    if min(ramp, accel, main) < 0:
        raise FamilyError(
            f"town {town.key()} is not the highway (no on-ramp road 4 and acceleration lane 2/-5)"
        )
    ramp_length = float(road_map.lane_length[ramp])
    s_ego = max(5.0, ramp_length - p["distance"])
    connector = road_map.lane_successors[ramp][0]
    to_merge = ramp_length - s_ego + float(road_map.lane_length[connector]) + MERGE_AT + 10.0
    t_merge = to_merge / p["speed"]
    s_merge = MERGE_AT + 10.0  # on the main lane, beside the merge
    platoon = []
    offsets = [(k - 0.5 * (p["count"] - 1) + p["phase"]) * p["spacing"] for k in range(p["count"])]
    for off in offsets:
        back = p["traffic_speed"] * t_merge + off  # how far upstream of the merge point it starts
        if s_merge - back >= 0.0:
            place = (main, s_merge - back) if s_merge - back <= road_map.lane_length[main] else None
        else:
            place = behind(road_map, main, s_merge, back)
        if place is not None:
            pose = pose_on(road_map, *place)
            platoon.append(
                ActorSpec(ActorKind.VEHICLE, pose, speed=p["traffic_speed"], target_speed=p["traffic_speed"])
            )
    end_lane, end_s, _ = ahead(road_map, main, 0.0, RUN_OUT)
    route = (point_on(road_map, accel, MERGE_AT), point_on(road_map, end_lane, end_s))
    world = WorldSpec(
        map=town, ego=pose_on(road_map, ramp, s_ego), ego_speed=p["speed"], route=route, actors=tuple(platoon),
        vehicles=p["vehicles"], pedestrians=0,
    )  # fmt: skip
    centre = point_on(road_map, main, s_merge)
    return ScenarioSpec(name="", world=world, criteria=HAZARD_CRITERIA, trigger_area=(*centre, 80.0))


register(
    Family(
        name="merge_slow_traffic",
        build=merge_slow_traffic,
        defaults={
            "distance": 80.0,
            "speed": 16.0,
            "count": 6,
            "traffic_speed": 10.0,
            "spacing": 24.0,
            "phase": 0.0,
            "vehicles": 6,
        },
        town=MapRef("highway", 0),
        description="merge from the on-ramp into a gap of slow dense traffic before the acceleration lane ends",
        grid={"traffic_speed": [7.0, 13.0], "spacing": [18.0, 28.0], "phase": [0.0, 0.5]},
    )
)
