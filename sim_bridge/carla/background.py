"""Where the CARLA backend puts background vehicles at reset, and how fast they start.

By the embedded backend's rules (:func:`sim_bridge.embedded.spawning.spawn_vehicles_world`), on the
server's own spawn points: between ``min_distance`` and the traffic radius from the ego, at least
``VEHICLE_CLEARANCE`` from every vehicle already there (the ego, the scenario's actors, the
background vehicles placed before), never where a vehicle behind could not stop for it, and
moving, at 0.8 of its lane's limit times its driver's speed factor (``1 ± speed_spread``, which
it then cruises at: the Traffic Manager's speed difference), no faster than stops comfortably
(3 m/s²) behind the nearest vehicle ahead in its lane or before a junction ahead.
A car spawned at rest in front of a scenario's car would make that car brake, and the scenario
would not be the one the spec describes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim_bridge.embedded.config import DriverModel
from sim_bridge.embedded.spawning import VEHICLE_CLEARANCE
from sim_bridge.maps.road_map import RoadMap

#: comfortable braking that bounds a new vehicle's speed [m/s²] (the embedded rule's)
SPAWN_BRAKE = 3.0
#: a vehicle this close sideways counts as in the new vehicle's lane [m]
SAME_LANE = 2.5
#: ``cos`` of the largest heading difference of a vehicle driving the same way
SAME_WAY = 0.7
#: a new vehicle starts this fraction of its lane's limit (times its speed factor)
START_FRACTION = 0.8


@dataclass(frozen=True)
class Placement:
    """One background vehicle: the spawn point's index, its starting speed [m/s] and its driver's
    cruise speed as a fraction of the lane's limit."""

    point: int
    speed: float
    factor: float = 1.0


def place_background(
    road_map: RoadMap,
    points: np.ndarray,
    bodies: np.ndarray,
    count: int,
    min_distance: float,
    radius: float,
    rng: np.random.Generator,
    driver: DriverModel | None = None,
) -> list[Placement]:
    """Up to ``count`` placements among spawn ``points [M, 3]`` (x, y [m], yaw [rad], map frame),
    given the vehicles already there, ``bodies [K, 4]`` (x, y [m], yaw [rad], speed [m/s]; the
    ego first), drawn in an order from ``rng``."""
    driver = driver or DriverModel()
    if count <= 0 or len(points) == 0:
        return []
    ego = bodies[0]
    d_ego = np.hypot(points[:, 0] - ego[0], points[:, 1] - ego[1])
    order = rng.permutation(np.flatnonzero((d_ego >= min_distance) & (d_ego <= radius)))
    proj = road_map.project(points[:, :2], points[:, 2])
    there = [tuple(b) for b in bodies]
    out: list[Placement] = []
    for k in order:
        if len(out) >= count:
            break
        x, y, yaw = (float(v) for v in points[k])
        near = np.array(there)
        if np.hypot(near[:, 0] - x, near[:, 1] - y).min() < VEHICLE_CLEARANCE:
            continue
        ahead, blocked = np.inf, False
        c, s = np.cos(yaw), np.sin(yaw)
        for bx, by, byaw, bv in there:
            if np.cos(byaw - yaw) <= SAME_WAY:
                continue
            lon, lat = (bx - x) * c + (by - y) * s, -(bx - x) * s + (by - y) * c
            if abs(lat) >= SAME_LANE:
                continue
            if lon > 0.0:
                ahead = min(ahead, lon)
            elif -lon < VEHICLE_CLEARANCE + bv * bv / (2.0 * SPAWN_BRAKE):
                blocked = True
        if blocked:
            continue
        speed = np.sqrt(2.0 * SPAWN_BRAKE * max(ahead - VEHICLE_CLEARANCE + 2.0, 0.0))
        lane = int(proj.lane[k])
        factor = 1.0 + driver.speed_spread * (2.0 * rng.random() - 1.0)
        if lane >= 0:
            speed = min(speed, START_FRACTION * factor * float(road_map.lane_speed_limit[lane]))
            if any(road_map.lane_junction[n] >= 0 for n in road_map.lane_successors[lane]):
                room = float(road_map.lane_length[lane] - proj.s[k]) - 5.0
                speed = min(speed, np.sqrt(2.0 * SPAWN_BRAKE * max(room, 0.0)))
        else:  # off our lanes (a point of the server's we do not know): start at rest
            speed = 0.0
        out.append(Placement(int(k), float(speed), float(factor)))
        there.append((x, y, yaw, float(speed)))
    return out
