"""Merging from an on-ramp into slow, dense traffic (Leaderboard MergerIntoSlowTraffic, NHTSA
"changing lanes / merging"): the ego comes down the ramp onto the acceleration lane and must slot
into a gap of a slow platoon in the rightmost lane before the acceleration lane ends. Any map with
an acceleration lane (a lane that ends beside one that goes on) holds it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from scenarios.families.base import (
    HAZARD_CRITERIA,
    Family,
    MissingFeature,
    ahead,
    behind,
    point_on,
    pose_on,
    register,
    route_end,
)
from scenarios.families.lane_paths import LanePath
from scenarios.spec import ScenarioSpec
from sim_bridge.api import ActorKind, ActorSpec, MapRef, WorldSpec
from sim_bridge.maps.road_map import RoadMap

#: the route starts changing into the main lane this far along the acceleration lane [m]
MERGE_AT = 40.0
#: the route runs this far along the main lane after the acceleration lane begins [m] (less where
#: the road ends first)
RUN_OUT = 300.0


@dataclass(frozen=True)
class OnRamp:
    """Where a ramp joins a road: its acceleration lane (``accel``: lanes that have the road's
    rightmost lane on their left and end, the ramp's traffic must merge before) and the way in."""

    accel: LanePath
    """The acceleration lane, from where it begins beside the road to where it ends."""
    ramp: tuple[int, float]
    """The lane and arc length [m] the ego starts on, up to ``distance`` before ``accel``."""
    lead_in: float
    """Distance from the ego's start to the beginning of ``accel`` [m]."""


def on_ramps(road_map: RoadMap, distance: float) -> list[OnRamp]:
    """Every acceleration lane of the map at least ``MERGE_AT + 20`` m long beside its road, with a
    way in of up to ``distance`` [m] (at least 20 m) through single predecessors: a driving lane
    outside junctions with a neighbour on its left (change allowed) and no successor, while the
    neighbour goes on, followed back while it keeps such a neighbour."""
    out = []
    for end in road_map.driving_lanes.tolist():
        left = int(road_map.lane_left[end])
        if road_map.lane_junction[end] >= 0 or road_map.lane_successors[end] or left < 0:
            continue
        if not road_map.lane_successors[left]:
            continue
        chain = [end]
        while True:
            pred = road_map.lane_predecessors[chain[-1]]
            if len(pred) != 1 or pred[0] in chain:
                break
            k = pred[0]
            if (
                road_map.lane_junction[k] >= 0
                or road_map.lane_left[k] < 0
                or not road_map.lane_change_left[k]
            ):
                break
            chain.append(k)
        accel = LanePath.of(road_map, chain[::-1])
        if accel.length < MERGE_AT + 20.0 or not all(road_map.lane_change_left[k] for k in chain):
            continue
        first = accel.lanes[0]
        pred = road_map.lane_predecessors[first]
        if len(pred) != 1:
            continue
        lane, s, back, seen = pred[0], float(road_map.lane_length[pred[0]]), 0.0, set(chain)
        while True:  # back along the way in, up to a fork or its beginning (then 5 m into that lane)
            way_back = road_map.lane_predecessors[lane]
            goes_on = len(way_back) == 1 and way_back[0] not in seen
            room = s if goes_on else max(0.0, s - 5.0)
            if distance - back <= room:
                s, back = s - (distance - back), distance
                break
            if not goes_on:
                s, back = s - room, back + room
                break
            seen.add(lane)
            back, lane = back + s, way_back[0]
            s = float(road_map.lane_length[lane])
        if back >= 20.0:
            out.append(OnRamp(accel, (lane, s), back))
    return out


def merge_slow_traffic(
    road_map: RoadMap, town: MapRef, p: dict[str, Any], rng: np.random.Generator, seed: int
) -> ScenarioSpec:
    """The ego starts ``distance`` [m] before an acceleration lane begins (on the on-ramp; less where
    the ramp is shorter) at ``speed``; a platoon of ``count`` vehicles at ``traffic_speed`` [m/s],
    ``spacing`` [m] apart (centre to centre), drives in the road's rightmost lane, centred on the
    merge point when the ego would get there at its speed (shifted by ``phase`` spacings). The
    route merges into that lane from ``MERGE_AT`` m along the acceleration lane and runs on."""
    ramps = on_ramps(road_map, p["distance"])
    if not ramps:
        raise MissingFeature(f"on-ramp with an acceleration lane of at least {MERGE_AT + 20.0:.0f} m")
    ramp = ramps[int(rng.integers(len(ramps)))]
    to_merge = ramp.lead_in + MERGE_AT + 10.0
    t_merge = to_merge / p["speed"]
    beside = ramp.accel.beside(road_map, MERGE_AT + 10.0, +1)
    assert beside is not None  # every lane of accel has a left neighbour
    main, s_merge = beside  # on the main lane, beside the merge
    platoon = []
    offsets = [(k - 0.5 * (p["count"] - 1) + p["phase"]) * p["spacing"] for k in range(p["count"])]
    for off in offsets:
        back = p["traffic_speed"] * t_merge + off  # how far upstream of the merge point it starts
        if s_merge - back >= 0.0:
            if s_merge - back <= road_map.lane_length[main]:
                place: tuple[int, float] | None = (main, s_merge - back)
            else:
                end_lane, end_s, _ = ahead(road_map, main, s_merge, back - s_merge)
                place = (end_lane, end_s)
        else:
            place = behind(road_map, main, s_merge, back)
        if place is not None:
            pose = pose_on(road_map, *place)
            platoon.append(
                ActorSpec(ActorKind.VEHICLE, pose, speed=p["traffic_speed"], target_speed=p["traffic_speed"])
            )
    start = ramp.accel.beside(road_map, 0.0, +1)
    assert start is not None
    route = (ramp.accel.point(road_map, MERGE_AT), route_end(road_map, *start, RUN_OUT))
    world = WorldSpec(
        map=town, ego=pose_on(road_map, *ramp.ramp), ego_speed=p["speed"], route=route, actors=tuple(platoon),
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
