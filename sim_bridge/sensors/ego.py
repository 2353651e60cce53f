"""The ego vector (``Observation.ego``): motion, lane, route and next stop line of each ego.

Every column of :class:`~sim_bridge.sensors.layout.EgoFeature` is filled here, identically for every
backend, from the :class:`~sim_bridge.sensors.frame.SensorFrame`, the map and the
:class:`~sim_bridge.routes.RouteBatch`.
"""

from __future__ import annotations

import numpy as np

from sim_bridge.api import LightState
from sim_bridge.maps.road_map import Projection, RoadMap, SignalKind
from sim_bridge.routes import RouteBatch
from sim_bridge.sensors.frame import SensorFrame
from sim_bridge.sensors.layout import (
    EGO_DIM,
    NUM_ROUTE_TARGETS,
    ROUTE_TARGET_SPACING,
    STOP_DISTANCE_CAP,
    EgoFeature,
    RouteCommand,
)

__all__ = ["COMMAND_LOOKAHEAD", "ego_lane", "ego_vector"]

#: how far ahead along the route the command looks [m]
COMMAND_LOOKAHEAD = 30.0
#: the fallback projection for an ego off every lane searches this far [m]
_FALLBACK_DISTANCE = 1e4

# one-hot column of each RouteCommand, indexed by the command's value
_COMMAND_COLUMN = np.zeros(len(RouteCommand), dtype=np.int64)
for _cmd, _col in (
    (RouteCommand.LANE_FOLLOW, EgoFeature.CMD_LANE_FOLLOW),
    (RouteCommand.LEFT, EgoFeature.CMD_LEFT),
    (RouteCommand.RIGHT, EgoFeature.CMD_RIGHT),
    (RouteCommand.STRAIGHT, EgoFeature.CMD_STRAIGHT),
    (RouteCommand.CHANGE_LANE_LEFT, EgoFeature.CMD_CHANGE_LEFT),
    (RouteCommand.CHANGE_LANE_RIGHT, EgoFeature.CMD_CHANGE_RIGHT),
):
    _COMMAND_COLUMN[_cmd] = _col
# plain ints (enum attribute look-ups cost a microsecond each)
_F = {f.name: int(f) for f in EgoFeature}
_ROUTE = slice(_F["ROUTE_X0"], _F["ROUTE_X0"] + 2 * NUM_ROUTE_TARGETS)


def ego_lane(road_map: RoadMap, xy: np.ndarray, yaw: np.ndarray) -> Projection:
    """The ego's driving lane: ``road_map.project(xy [B, 2], yaw [B])``; an ego farther than 10 m
    from every driving lane is projected onto the nearest one anyway (so it still gets a speed
    limit and an offset)."""
    proj = road_map.project(xy, yaw)
    lost = proj.lane < 0
    if lost.any():
        far = road_map.project(xy[lost], yaw[lost], max_distance=_FALLBACK_DISTANCE)
        for name in ("lane", "s", "lateral", "heading_error", "distance", "inside"):
            getattr(proj, name)[lost] = getattr(far, name)
    return proj


def ego_vector(
    road_map: RoadMap,
    frame: SensorFrame,
    routes: RouteBatch,
    progress: np.ndarray,
    projection: Projection | None = None,
) -> np.ndarray:
    """``float32 [B, EGO_DIM]``, one row per world (columns: :class:`EgoFeature`).

    ``progress [B]`` [m] is each ego's progress along its route (``routes.update``);
    ``projection`` is the ego's lane (:func:`ego_lane`), computed here when not given. The speed
    limit is that lane's; route targets are ``NUM_ROUTE_TARGETS`` points every
    ``ROUTE_TARGET_SPACING`` m ahead of progress in the ego frame; the command is the first
    manoeuvre within ``COMMAND_LOOKAHEAD`` m; the stop columns describe the next stop line on the
    route (distance capped at ``STOP_DISTANCE_CAP``; ``STOP_IS_RED`` for a red or yellow light,
    ``STOP_IS_SIGN`` for a stop sign; both 0 and the cap when there is none).
    """
    a = frame.actors
    b = a.shape[0]
    progress = np.asarray(progress, dtype=np.float64)
    xy = np.stack([np.asarray(a.x[:, 0], np.float64), np.asarray(a.y[:, 0], np.float64)], -1)
    yaw = np.asarray(a.yaw[:, 0], dtype=np.float64)
    if projection is None:
        projection = ego_lane(road_map, xy, yaw)

    ego = np.zeros((b, EGO_DIM), dtype=np.float32)
    k = frame.ego
    ego[:, _F["SPEED"]] = a.speed[:, 0]
    ego[:, _F["ACCEL_LON"]] = k.accel_lon
    ego[:, _F["ACCEL_LAT"]] = k.accel_lat
    ego[:, _F["YAW_RATE"]] = k.yaw_rate
    ego[:, _F["PREV_ACCEL"]] = k.prev_action[:, 0]
    ego[:, _F["PREV_STEER"]] = k.prev_action[:, 1]

    lane = projection.lane
    limits = np.asarray(road_map.lane_speed_limit, dtype=np.float64)
    ego[:, _F["SPEED_LIMIT"]] = np.where(lane >= 0, limits[np.maximum(lane, 0)], 0.0)
    ego[:, _F["LANE_OFFSET"]] = np.where(lane >= 0, projection.lateral, 0.0)
    ego[:, _F["LANE_HEADING"]] = np.where(lane >= 0, projection.heading_error, 0.0)

    targets = routes.targets(xy, yaw, NUM_ROUTE_TARGETS, ROUTE_TARGET_SPACING, progress=progress)
    ego[:, _ROUTE] = targets.reshape(b, -1)

    command = routes.command_ahead(COMMAND_LOOKAHEAD, progress=progress)
    ego[np.arange(b), _COMMAND_COLUMN[command]] = 1.0
    ego[:, _F["ROUTE_REMAINING"]] = routes.remaining(progress)

    distance, line = routes.next_stop(progress)
    ego[:, _F["STOP_DISTANCE"]] = np.minimum(distance, STOP_DISTANCE_CAP)
    has = line >= 0
    if has.any():
        safe = np.maximum(line, 0)
        kind = np.asarray(road_map.signal_kind)[np.asarray(road_map.stop_signal)[safe]]
        light_state = np.asarray(frame.light_state)
        state = (
            light_state[np.arange(b), np.minimum(safe, light_state.shape[1] - 1)]
            if light_state.shape[1]
            else 0
        )
        is_light = has & (kind == SignalKind.TRAFFIC_LIGHT)
        ego[:, _F["STOP_IS_RED"]] = is_light & ((state == LightState.RED) | (state == LightState.YELLOW))
        ego[:, _F["STOP_IS_SIGN"]] = has & (kind == SignalKind.STOP_SIGN)
    return ego
