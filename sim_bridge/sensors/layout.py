"""Layouts of the observation arrays: BEV channels, ego-vector columns, object-list columns.

One enum per array so that every consumer indexes by name (``ego[:, EgoFeature.SPEED]``), and a
frozen :class:`BevGeometry` for the raster's size and scale; :func:`ego_to_map` and
:meth:`BevGeometry.ego_to_pixel` place ego-frame points (x forward, y left [m]) on the map and on
the raster.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np


class BevChannel(enum.IntEnum):
    """Channels of ``Observation.bev`` (each 0 or 255)."""

    DRIVABLE = 0
    LANE_BOUNDARY = 1
    ROUTE = 2
    VEHICLES = 3
    PEDESTRIANS = 4
    STATIC = 5
    LIGHT_RED = 6
    LIGHT_YELLOW = 7
    LIGHT_GREEN = 8
    STOP_SIGN = 9


#: channels that move; optional history frames repeat these
DYNAMIC_CHANNELS = (BevChannel.VEHICLES, BevChannel.PEDESTRIANS)


class RouteCommand(enum.IntEnum):
    """High-level command for the next manoeuvre on the route (as CARLA's ``RoadOption``)."""

    LANE_FOLLOW = 0
    LEFT = 1
    RIGHT = 2
    STRAIGHT = 3
    CHANGE_LANE_LEFT = 4
    CHANGE_LANE_RIGHT = 5


#: number of route target points in the ego vector
NUM_ROUTE_TARGETS = 4
#: spacing of those points along the route ahead of the ego [m]
ROUTE_TARGET_SPACING = 5.0


class EgoFeature(enum.IntEnum):
    """Columns of ``Observation.ego`` (``float32``; units in the names' docs)."""

    SPEED = 0  # [m/s]
    ACCEL_LON = 1  # [m/s²]
    ACCEL_LAT = 2  # [m/s²]
    YAW_RATE = 3  # [rad/s]
    PREV_ACCEL = 4  # previous action, normalised
    PREV_STEER = 5  # previous action, normalised
    SPEED_LIMIT = 6  # [m/s]
    LANE_OFFSET = 7  # signed distance from lane centre, + left [m]
    LANE_HEADING = 8  # heading error to lane direction, + ccw [rad]
    ROUTE_X0 = 9  # route targets in the ego frame (x forward, y left) [m], NUM_ROUTE_TARGETS pairs
    ROUTE_Y0 = 10
    ROUTE_X1 = 11
    ROUTE_Y1 = 12
    ROUTE_X2 = 13
    ROUTE_Y2 = 14
    ROUTE_X3 = 15
    ROUTE_Y3 = 16
    CMD_LANE_FOLLOW = 17  # one-hot RouteCommand
    CMD_LEFT = 18
    CMD_RIGHT = 19
    CMD_STRAIGHT = 20
    CMD_CHANGE_LEFT = 21
    CMD_CHANGE_RIGHT = 22
    ROUTE_REMAINING = 23  # distance left along the route [m]
    STOP_DISTANCE = 24  # to the next stop line on the route (light or stop sign), capped at 50 [m]
    STOP_IS_RED = 25  # 1 if that stop line is a red or yellow light
    STOP_IS_SIGN = 26  # 1 if that stop line is a stop sign


EGO_DIM = len(EgoFeature)
#: cap of EgoFeature.STOP_DISTANCE [m]
STOP_DISTANCE_CAP = 50.0


class ObjectFeature(enum.IntEnum):
    """Columns of ``Observation.objects`` (ego frame: x forward, y left; m, rad, m/s)."""

    X = 0
    Y = 1
    COS_YAW = 2
    SIN_YAW = 3
    VX = 4
    VY = 5
    LENGTH = 6
    WIDTH = 7
    IS_VEHICLE = 8
    IS_PEDESTRIAN = 9
    IS_STATIC = 10


OBJECT_DIM = len(ObjectFeature)


@dataclass
class BevGeometry:
    """Size and scale of the BEV raster; the ego sits at a fixed pixel facing up."""

    size: int = 96
    """Height and width [px]."""
    resolution: float = 0.5
    """[m/px]."""
    ego_from_bottom: float = 16.0
    """Distance from the ego's centre to the bottom edge [m]."""
    history: int = 0
    """Extra frames of the dynamic channels (vehicles, pedestrians), 0.5 s apart, appended."""
    pedestrian_size: float = 1.5
    """Pedestrians are drawn as squares at least this wide [m], centred on the walker: a 0.6 m
    walker is one pixel at 0.5 m/px and vanishes in a world model's pooling (measured: a walker
    3 m ahead read as a 25 m free gap). 0 draws the true box."""

    @property
    def ego_row(self) -> float:
        """Row of the ego centre (pixel centres at integer + 0.5)."""
        return self.size - self.ego_from_bottom / self.resolution

    @property
    def ego_col(self) -> float:
        return self.size / 2.0

    @property
    def num_channels(self) -> int:
        return len(BevChannel) + self.history * len(DYNAMIC_CHANNELS)

    def ego_to_pixel(self, points: np.ndarray) -> np.ndarray:
        """Ego-frame points ``[..., 2]`` (x forward, y left [m]) → continuous raster coordinates
        ``[..., 2]`` as ``(row, col)``: ``row = ego_row - x / resolution``, ``col = ego_col - y /
        resolution`` (the renderer's convention: pixel ``(r, c)`` spans ``[r, r + 1) × [c, c + 1)``)."""
        p = np.asarray(points, dtype=np.float64)
        return np.stack(
            [self.ego_row - p[..., 0] / self.resolution, self.ego_col - p[..., 1] / self.resolution], -1
        )


def ego_to_map(points: np.ndarray, pose: tuple[float, float, float] | np.ndarray) -> np.ndarray:
    """Ego-frame points ``[..., 2]`` (x forward, y left [m]) of an ego at ``pose = (x, y, yaw)``
    (map frame [m, m, rad]) → map-frame points ``[..., 2]`` [m]: rotate by ``yaw``, then translate."""
    p = np.asarray(points, dtype=np.float64)
    x, y, yaw = (float(v) for v in pose)
    c, s = np.cos(yaw), np.sin(yaw)
    return np.stack([x + c * p[..., 0] - s * p[..., 1], y + s * p[..., 0] + c * p[..., 1]], -1)
