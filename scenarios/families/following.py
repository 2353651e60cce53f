"""Following a lead vehicle: it brakes hard (NHTSA "lead vehicle decelerating", Leaderboard
HardBreakRoute / FollowLeadingVehicle)."""

from __future__ import annotations

from typing import Any

import numpy as np

from scenarios.families.base import HAZARD_CRITERIA, Family, FamilyError, place, point_on, register
from scenarios.families.lane_paths import lane_paths, max_curvature
from scenarios.spec import ScenarioSpec
from sim_bridge.api import ActorKind, ActorSpec, Behaviour, BehaviourKind, MapRef, WorldSpec
from sim_bridge.maps.road_map import RoadMap

#: the route turns into the left lane this far past the lead's standstill point [m]
PASS_AFTER = 8.0
#: the route ends this far past the lead's standstill point [m]
RUN_OUT = 80.0
#: road wanted past the route's end where the map has it [m]: a scripted car slows for a dead end
#: ahead (as for a stopped car), so the lead would not keep its speed too close to one
FREE_ROAD = 120.0


def lead_stop_s(start: float, p: dict[str, Any]) -> float:
    """Arc length [m] where the lead vehicle comes to rest: it cruises ``brake_after`` seconds at
    ``speed``, then brakes at ``decel``."""
    return start + p["lead_gap"] + p["speed"] * p["brake_after"] + p["speed"] ** 2 / (2.0 * p["decel"])


def lead_vehicle_brake(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """The ego follows a lead vehicle ``lead_gap`` [m] ahead (both at ``speed``) along a lane path
    with a neighbour to its left all the way (straight through junctions, no sharper curves than
    the speed allows). After ``brake_after`` [s] the lead brakes at ``decel`` [m/s²] and stays
    stopped (a breakdown); the ego must stop behind it, then pass it in the left lane, which the
    route takes a little past the lead's standstill point (so passing there is on the route's lanes).
    """
    start = 15.0
    stop = lead_stop_s(start, p)
    need = stop + PASS_AFTER + RUN_OUT

    def passable(lane: int) -> bool:  # a lane to the left the marks let the ego change into
        return bool(road_map.lane_left[lane] >= 0 and road_map.lane_change_left[lane])

    paths = lane_paths(
        road_map, need, FREE_ROAD, passable, max_curvature(p["speed"]), junctions=True, min_run_out=0.0
    )
    what = f"road of {need:.0f} m with a lane to the left, curving at most for {p['speed']:g} m/s"
    path, shift = place(paths, rng, what, need, FREE_ROAD)
    start, stop = start + shift, stop + shift
    ego = path.pose(road_map, start)
    lead = path.pose(road_map, start + p["lead_gap"])
    actor = ActorSpec(
        ActorKind.VEHICLE, lead, speed=p["speed"], target_speed=p["speed"],
        behaviour=Behaviour(kind=BehaviourKind.BRAKE, trigger_time=p["brake_after"], decel=p["decel"]),
    )  # fmt: skip
    end = path.beside(road_map, stop + PASS_AFTER + RUN_OUT, +1)
    if end is None:  # passable() holds on every lane of the window
        raise FamilyError(f"no lane left of the path's end at {stop + PASS_AFTER + RUN_OUT:.0f} m")
    route = (
        *path.waypoints(road_map, start, stop + PASS_AFTER),
        point_on(road_map, *end),
    )
    world = WorldSpec(
        map=town, ego=ego, ego_speed=p["speed"], route=route, actors=(actor,),
        vehicles=p["vehicles"], pedestrians=p["pedestrians"],
    )  # fmt: skip
    centre = path.point(road_map, stop)
    return ScenarioSpec(
        name="", world=world, criteria=HAZARD_CRITERIA, trigger_area=(*centre, p["lead_gap"] + 30.0)
    )


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
        description="a lead vehicle at the same speed brakes hard and stays; stop behind it, then pass on the left",
        grid={"lead_gap": [15.0, 25.0, 40.0], "speed": [8.0, 12.0], "decel": [4.0, 8.0]},
    )
)
