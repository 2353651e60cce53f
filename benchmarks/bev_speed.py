"""Speed of the shared sensors: ms per call for B = 1, 16, 64 worlds on the procedural grid town.

Run ``python benchmarks/bev_speed.py`` (``--history 2`` adds history frames, ``--threads 1`` pins
numba to one thread). Each world has an ego on a random spawn point with a 300 m random route, 20
vehicles and 10 pedestrians spread over the map, all lights random. Prints, per ``B``, the best
and median ms per call (over repeated chunks; other processes on the machine inflate the median)
of: ``RouteBatch.update``, the BEV render, the object list, the ego vector (with its lane
projection, and "(proj)" with the projection passed in, as a simulator that projects the ego for
its events anyway does) and the whole ``Observer.observe``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numba
import numpy as np

from sim_bridge.api import ActorKind
from sim_bridge.maps.road_map import LaneType, RoadMap
from sim_bridge.maps.towns import make_town
from sim_bridge.routes import RouteBatch
from sim_bridge.sensors.ego import ego_lane, ego_vector
from sim_bridge.sensors.frame import ActorArrays, EgoKinematics, SensorFrame
from sim_bridge.sensors.layout import BevGeometry
from sim_bridge.sensors.objects import object_list
from sim_bridge.sensors.observe import Observer


def scene(
    road_map: RoadMap, b: int, history: int, rng: np.random.Generator
) -> tuple[SensorFrame, RouteBatch]:
    """``b`` worlds: ego + 20 vehicles on driving lanes, 10 pedestrians on sidewalks, routes set."""
    lanes, s = road_map.spawn_points(spacing=5.0)
    walk = road_map.sidewalk_lanes
    n_veh, n_ped = 21, 10
    pick = rng.integers(len(lanes), size=(b, n_veh))
    xy_v, yaw_v = road_map.pose_at(lanes[pick], s[pick])
    wl = (
        walk[rng.integers(len(walk), size=(b, n_ped))]
        if len(walk)
        else lanes[rng.integers(len(lanes), size=(b, n_ped))]
    )
    xy_p, yaw_p = road_map.pose_at(wl, rng.uniform(0, road_map.lane_length[wl]))
    x = np.concatenate([xy_v[..., 0], xy_p[..., 0]], 1)
    y = np.concatenate([xy_v[..., 1], xy_p[..., 1]], 1)
    yaw = np.concatenate([yaw_v, yaw_p], 1)
    n = n_veh + n_ped
    kind = (
        np.where(np.arange(n) < n_veh, ActorKind.VEHICLE, ActorKind.PEDESTRIAN)
        .astype(np.int8)[None]
        .repeat(b, 0)
    )
    length = np.where(kind == ActorKind.VEHICLE, 4.6, 0.5)
    width = np.where(kind == ActorKind.VEHICLE, 2.0, 0.5)

    def boxes(dx: float) -> ActorArrays:
        return ActorArrays(
            x=x - dx, y=y.copy(), yaw=yaw.copy(), speed=np.full((b, n), 8.0), length=length, width=width,
            kind=kind, active=np.ones((b, n), bool), ids=np.arange(n, dtype=np.int32)[None].repeat(b, 0),
        )  # fmt: skip

    k = len(road_map.stop_lane)
    frame = SensorFrame(
        actors=boxes(0.0),
        history=tuple(boxes(2.0 * (h + 1)) for h in range(history)),
        light_state=rng.integers(0, 3, size=(b, k)).astype(np.int8),
        ego=EgoKinematics(np.zeros(b), np.zeros(b), np.zeros(b), np.zeros((b, 2))),
    )
    routes = RouteBatch(b)
    for w in range(b):
        routes.set(
            w, road_map.random_route(int(lanes[pick[w, 0]]), float(s[pick[w, 0]]), 300.0, rng), road_map
        )
    return frame, routes


def timeit(fn: Callable[[], object], calls: int = 20, chunks: int = 9) -> tuple[float, float]:
    """Best and median ms per call over ``chunks`` chunks of ``calls`` calls."""
    fn()
    per = []
    for _ in range(chunks):
        t = time.perf_counter()
        for _ in range(calls):
            fn()
        per.append((time.perf_counter() - t) / calls * 1e3)
    return min(per), float(np.median(per))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=0, help="BEV history frames")
    parser.add_argument("--threads", type=int, default=0, help="numba threads (0 = all)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 16, 64], help="numbers of worlds")
    args = parser.parse_args()
    if args.threads:
        numba.set_num_threads(args.threads)
    road_map = RoadMap.from_opendrive(make_town("grid", 0), "grid_0")
    geometry = BevGeometry(history=args.history)
    observer = Observer(road_map, geometry)
    rng = np.random.default_rng(0)
    sidewalks = int((road_map.lane_type == LaneType.SIDEWALK).sum())
    print(
        f"map {road_map.name}: {road_map.num_lanes} lanes ({sidewalks} sidewalks), bounds {road_map.bounds}; "
        f"BEV {geometry.num_channels}x{geometry.size}x{geometry.size}; numba threads {numba.get_num_threads()}"
    )
    print(f"{'B':>4} {'part':<14} {'best ms':>8} {'median ms':>10}")
    for b in args.sizes:
        frame, routes = scene(road_map, b, args.history, rng)
        xy = np.stack([frame.actors.x[:, 0], frame.actors.y[:, 0]], -1)
        yaw = frame.actors.yaw[:, 0]
        progress, _ = routes.update(xy)
        proj = ego_lane(road_map, xy, yaw)
        parts: dict[str, Callable[[], object]] = {
            "update": lambda routes=routes, xy=xy: routes.update(xy),
            "bev": lambda frame=frame, routes=routes: observer.bev.render(frame, routes),
            "objects": lambda frame=frame: object_list(frame.actors),
            "ego": lambda frame=frame, routes=routes, p=progress: ego_vector(road_map, frame, routes, p),
            "ego(proj)": lambda frame=frame, routes=routes, p=progress, q=proj: ego_vector(
                road_map, frame, routes, p, q
            ),
            "observe": lambda frame=frame, routes=routes, p=progress: observer.observe(frame, routes, p),
            "observe(proj)": lambda frame=frame, routes=routes, p=progress, q=proj: observer.observe(
                frame, routes, p, q
            ),
        }
        for name, fn in parts.items():
            best, med = timeit(fn)
            print(f"{b:>4} {name:<14} {best:8.3f} {med:10.3f}")


if __name__ == "__main__":
    main()
