"""Following a lead vehicle: it brakes hard (NHTSA "lead vehicle decelerating", Leaderboard
HardBreakRoute / FollowLeadingVehicle)."""

from __future__ import annotations

from typing import Any

import numpy as np

from scenarios.families.base import HAZARD_CRITERIA, Family, MissingFeature, point_on, register, route_end
from scenarios.families.lane_paths import LanePath, drops_within, lane_paths, max_curvature
from scenarios.spec import ScenarioSpec
from sim_bridge.api import ActorKind, ActorSpec, Behaviour, BehaviourKind, MapRef, WorldSpec
from sim_bridge.maps.road_map import RoadMap

#: the lead's lane section (and the left lane beside it) go on this far past its standstill
#: point [m]: room to pass it
PASS_AFTER = 20.0
#: the lead stops at least this far into a lane section (the ego passes it in the left lane of
#: that section) [m]
PASS_ROOM = 20.0
#: the route leaves the lead's lane this far before the lead's standstill point [m] …
CHANGE_FROM = 15.0
#: … and is in the left lane this far before it, clear of the lead's back (half a car and some)
#: [m]. (Changing lanes past the lead, as on our towns' long lanes, left the expert stuck behind
#: it on esmini's highway_exit and soderleden maps: the route ran through the standing car.)
CHANGE_TO = 3.0
#: the route runs on this far in the left lane after its change [m]
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
    stopped (a breakdown) at least ``PASS_ROOM`` into a lane section; the ego must slow or stop
    behind it, then pass it in the left lane, which the route takes just before the lead's
    standstill point, in the same lane section.
    """
    start = 15.0
    stop = lead_stop_s(start, p)
    need = stop + PASS_AFTER

    def passable(lane: int) -> bool:  # a lane to the left the marks let the ego change into
        # (and not one the lead would leave: a lane dropping ahead makes the simulator's cars merge)
        left = int(road_map.lane_left[lane])
        return left >= 0 and bool(road_map.lane_change_left[lane]) and not drops_within(road_map, lane)

    paths = lane_paths(
        road_map, need, FREE_ROAD, passable, max_curvature(p["speed"]), junctions=True, min_run_out=0.0
    )
    placed = [(path, shifts) for path in paths if (shifts := _passing_shifts(road_map, path, stop, need))]
    if not placed:
        raise MissingFeature(
            f"road of {need:.0f} m with a lane to the left, curving at most for {p['speed']:g} m/s, with "
            f"{PASS_ROOM + PASS_AFTER:.0f} m of it in one lane section outside junctions"
        )
    path, shifts = placed[int(rng.integers(len(placed)))]
    lo, hi = shifts[int(rng.integers(len(shifts)))]
    shift = float(rng.uniform(lo, hi)) if hi > lo else lo
    start, stop = start + shift, stop + shift
    ego = path.pose(road_map, start)
    lead = path.pose(road_map, start + p["lead_gap"])
    actor = ActorSpec(
        ActorKind.VEHICLE, lead, speed=p["speed"], target_speed=p["speed"],
        behaviour=Behaviour(kind=BehaviourKind.BRAKE, trigger_time=p["brake_after"], decel=p["decel"]),
    )  # fmt: skip
    # the route changes into the left lane within the lane section the lead stops in, just before
    # the lead (so the ego passes it by following its route), then runs on
    changed = path.beside(road_map, stop - CHANGE_TO, +1)
    assert changed is not None  # passable() holds on every lane of the window
    route = (
        *path.waypoints(road_map, start, stop - CHANGE_FROM),
        point_on(road_map, *changed),
        route_end(road_map, *changed, RUN_OUT),
    )
    world = WorldSpec(
        map=town, ego=ego, ego_speed=p["speed"], route=route, actors=(actor,),
        vehicles=p["vehicles"], pedestrians=p["pedestrians"],
    )  # fmt: skip
    centre = path.point(road_map, stop)
    return ScenarioSpec(
        name="", world=world, criteria=HAZARD_CRITERIA, trigger_area=(*centre, p["lead_gap"] + 30.0)
    )


def _passing_shifts(road_map: RoadMap, path: LanePath, stop: float, need: float) -> list[tuple[float, float]]:
    """Intervals of shifts [m] of the scenario along ``path`` that put the lead's standstill point
    (path ``stop`` + shift) at least ``PASS_ROOM`` into one lane outside junctions with
    ``PASS_AFTER`` more of it after, inside the part of the path checked for ``need`` [m]: the
    route changes into that lane's left neighbour to pass the lead (on a real map a section boundary
    just before the lead would put the change, and the left lane there, elsewhere). Shifts leaving
    ``FREE_ROAD`` past the window come first where there are any."""
    for slack in (min(path.clear, path.length - FREE_ROAD) - need, path.clear - need):
        out = []
        for lane, begin in zip(path.lanes, path.starts, strict=True):
            end = min(begin + float(road_map.lane_length[lane]), path.clear)
            lo = max(0.0, begin + PASS_ROOM - stop)
            hi = min(slack, end - PASS_AFTER - stop)
            if lo <= hi and road_map.lane_junction[lane] < 0:
                out.append((lo, hi))
        if out:
            return out
    return []


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
