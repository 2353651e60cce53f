"""``RoadMap``: an OpenDRIVE map sampled into arrays the simulator, sensors and planners query.

Lanes are stored structure-of-arrays: lane ``i`` owns centreline samples
``points[lane_start[i]:lane_start[i + 1]]`` ordered in its *driving direction* (OpenDRIVE left lanes
are reversed), at most 1 m apart, with cumulative arc length ``s`` from the lane's start. All
coordinates are in our right-handed map frame (x east, y north, yaw ccw from +x; CARLA's flipped y is
undone in ``sim_bridge.frames``).

Build one with :func:`sim_bridge.maps.opendrive.load_opendrive` (alias ``RoadMap.from_opendrive``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
import shapely


class MapError(ValueError):
    """A map that cannot be used: bad XML, no drivable lane, a point off the map, no route."""


class LaneType(enum.IntEnum):
    """OpenDRIVE lane types, folded to what the stack distinguishes."""

    DRIVING = 0  # driving, entry, exit, onRamp, offRamp, bidirectional, connectingRamp
    SIDEWALK = 1
    SHOULDER = 2
    PARKING = 3
    BIKING = 4
    BORDER = 5
    OTHER = 6  # median, curb, restricted, none, …


class MarkType(enum.IntEnum):
    """Road-mark type on a lane's left or right edge."""

    NONE = 0
    SOLID = 1
    BROKEN = 2
    SOLID_SOLID = 3
    SOLID_BROKEN = 4  # solid on the lane's side
    BROKEN_SOLID = 5  # broken on the lane's side
    BROKEN_BROKEN = 6
    OTHER = 7  # botts dots, grass, curb, …


class SignalKind(enum.IntEnum):
    TRAFFIC_LIGHT = 0
    STOP_SIGN = 1


@dataclass(frozen=True)
class Route:
    """A drivable route: the lanes it uses and a dense polyline along them.

    - ``lanes``: ``int [K]`` lane indices in driving order (a lane change appears as two consecutive
      neighbour lanes).
    - ``points``: ``float [P, 2]`` polyline, ≤ 1 m spacing, lane changes blended over a few metres.
    - ``headings``: ``float [P]`` [rad]; ``s``: ``float [P]`` cumulative arc length [m] from 0.
    - ``point_lane``: ``int [P]`` the lane each point lies on.
    - ``commands``: ``int [P]`` :class:`RouteCommand` of the manoeuvre each point belongs to
      (LEFT/RIGHT/STRAIGHT inside junctions, CHANGE_LANE_* along a change, else LANE_FOLLOW).
    """

    lanes: np.ndarray
    points: np.ndarray
    headings: np.ndarray
    s: np.ndarray
    point_lane: np.ndarray
    commands: np.ndarray

    @property
    def length(self) -> float:
        return float(self.s[-1])


@dataclass(frozen=True)
class Projection:
    """Where points lie relative to lanes (all ``[N]``).

    ``lane`` is -1 where no lane of the asked types is within ``max_distance``; ``s`` is the arc
    length along that lane [m], ``lateral`` the signed offset from its centreline (+ left) [m],
    ``heading_error`` the query yaw minus the lane's heading wrapped to ``(-pi, pi]`` [rad] (0 when
    no yaw was given), ``distance`` = ``|lateral|`` for points within the lane's extent along it.
    ``inside`` says the point lies within the lane's width.
    """

    lane: np.ndarray
    s: np.ndarray
    lateral: np.ndarray
    heading_error: np.ndarray
    distance: np.ndarray
    inside: np.ndarray


@dataclass
class RoadMap:
    """An OpenDRIVE map as arrays, a lane graph, signals and a drivable area (see module doc).

    ``L`` lanes, ``P`` centreline samples, ``K`` stop lines. Fields are read-only by convention.
    """

    name: str
    xodr: str
    """The OpenDRIVE text this map was built from (the CARLA bridge and replays need it)."""

    # --- lanes [L]
    lane_keys: list[tuple[int, int, int]]
    """``(road_id, section_index, lane_id)`` of each lane, as OpenDRIVE/CARLA number them."""
    lane_type: np.ndarray
    """``int8 [L]`` :class:`LaneType`."""
    lane_start: np.ndarray
    """``int64 [L + 1]`` CSR offsets into the sample arrays."""
    lane_length: np.ndarray
    """``float [L]`` [m]."""
    lane_road: np.ndarray
    """``int [L]`` OpenDRIVE road id."""
    lane_junction: np.ndarray
    """``int [L]`` OpenDRIVE junction id, -1 outside junctions."""
    lane_speed_limit: np.ndarray
    """``float [L]`` [m/s] (the road's ``<speed>`` record, else a default by road type)."""
    lane_left: np.ndarray
    """``int [L]`` neighbour lane on the left with the same direction and type, -1 if none."""
    lane_right: np.ndarray
    """``int [L]`` neighbour on the right, -1 if none."""
    lane_change_left: np.ndarray
    """``bool [L]`` a change to ``lane_left`` is allowed by the road marks."""
    lane_change_right: np.ndarray
    lane_mark_left: np.ndarray
    """``int8 [L]`` :class:`MarkType` of the left edge."""
    lane_mark_right: np.ndarray
    lane_successors: list[list[int]]
    """Lanes that continue lane ``i`` at its end (driving lanes; sidewalks best effort)."""
    lane_predecessors: list[list[int]]
    succ_start: np.ndarray
    """``int64 [L + 1]`` CSR of ``lane_successors`` into ``succ_index`` (for vectorised choice)."""
    succ_index: np.ndarray
    lane_turn: np.ndarray
    """``int8 [L]`` :class:`RouteCommand` of a junction lane (LEFT/RIGHT/STRAIGHT), LANE_FOLLOW outside."""

    # --- centreline samples [P]
    points: np.ndarray
    """``float [P, 2]`` [m]."""
    headings: np.ndarray
    """``float [P]`` driving direction [rad]."""
    s: np.ndarray
    """``float [P]`` arc length from the lane's start [m]."""
    widths: np.ndarray
    """``float [P]`` lane width [m]."""
    point_lane: np.ndarray
    """``int [P]`` owning lane."""

    # --- junction conflicts
    conflicts: list[list[int]]
    """For a junction lane: other lanes of the same junction whose paths cross or merge into it."""

    # --- signals and stop lines [K]
    signal_kind: np.ndarray
    """``int8 [S]`` :class:`SignalKind` of each signal (S signals)."""
    signal_xodr_id: list[str]
    signal_position: np.ndarray
    """``float [S, 2]`` where the signal's pole stands [m]."""
    signal_junction: np.ndarray
    """``int [S]`` junction the signal guards, -1 if none."""
    stop_lane: np.ndarray
    """``int [K]`` the lane a stop line lies across (a lane entering a junction)."""
    stop_s: np.ndarray
    """``float [K]`` where along that lane [m] (near its end)."""
    stop_signal: np.ndarray
    """``int [K]`` index of the signal that owns the line."""
    stop_segment: np.ndarray
    """``float [K, 2, 2]`` the line's endpoints across the lane [m]."""

    # --- areas
    drivable_area: shapely.Geometry
    """Union of driving-lane surfaces."""
    sidewalk_area: shapely.Geometry
    """Union of sidewalk surfaces (empty where the map has none)."""
    lane_polygons: list[shapely.Geometry]
    """Surface of each lane."""
    bounds: tuple[float, float, float, float]
    """``(xmin, ymin, xmax, ymax)`` of everything [m]."""

    graph: nx.DiGraph
    """Driving lanes; edges ``kind='follow'`` (weight = length) and ``kind='change_left'/'change_right'``."""

    cache: dict[str, Any] = field(default_factory=dict, repr=False)
    """Derived products (rasters, spatial indices) computed once per map by their owners."""

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_opendrive(cls, xodr: str, name: str = "map") -> RoadMap:
        """Parse OpenDRIVE text (through ``carla.Map``) into a ``RoadMap``; :class:`MapError` on bad input."""
        from sim_bridge.maps.opendrive import load_opendrive

        return load_opendrive(xodr, name)

    # ------------------------------------------------------------------ sizes

    @property
    def num_lanes(self) -> int:
        return len(self.lane_keys)

    @property
    def driving_lanes(self) -> np.ndarray:
        """``int [Ld]`` indices of driving lanes."""
        return np.flatnonzero(self.lane_type == LaneType.DRIVING)

    @property
    def sidewalk_lanes(self) -> np.ndarray:
        return np.flatnonzero(self.lane_type == LaneType.SIDEWALK)

    # ------------------------------------------------------------------ queries (vectorised)

    def pose_at(
        self, lane: np.ndarray, s: np.ndarray, lateral: np.ndarray | float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points on lanes: ``lane [N]``, ``s [N]`` (clipped to the lane) and ``lateral`` (+ left) [m]
        → ``xy [N, 2]`` [m], ``yaw [N]`` [rad], interpolated linearly between samples."""
        from sim_bridge.maps.lookup import pose_at

        return pose_at(self, lane, s, lateral)

    def project(
        self,
        xy: np.ndarray,
        yaw: np.ndarray | None = None,
        lane_types: tuple[LaneType, ...] = (LaneType.DRIVING,),
        max_distance: float = 10.0,
    ) -> Projection:
        """Project points ``xy [N, 2]`` onto the nearest lane of ``lane_types``.

        With ``yaw [N]`` the lane whose heading agrees best wins among overlapping lanes (junctions).
        """
        from sim_bridge.maps.lookup import project

        return project(self, xy, yaw, lane_types, max_distance)

    def on_drivable(self, xy: np.ndarray) -> np.ndarray:
        """``bool [...]`` for points ``xy [..., 2]``: inside the drivable area (raster, 0.1 m)."""
        from sim_bridge.maps.lookup import on_drivable

        return on_drivable(self, xy)

    def route(self, waypoints: np.ndarray, start_yaw: float | None = None) -> Route:
        """Shortest drivable route through ``waypoints [W ≥ 2, 2]`` on the lane graph.

        :class:`MapError` if a waypoint is off every driving lane or no path exists.
        """
        from sim_bridge.maps.routing import plan_route

        return plan_route(self, waypoints, start_yaw)

    def random_route(self, start_lane: int, start_s: float, length: float, rng: np.random.Generator) -> Route:
        """A seeded random route of about ``length`` [m] from a point on a lane, turning at random."""
        from sim_bridge.maps.routing import random_route

        return random_route(self, start_lane, start_s, length, rng)

    def spawn_points(self, spacing: float = 10.0, margin: float = 5.0) -> tuple[np.ndarray, np.ndarray]:
        """Candidate spawn places on driving lanes outside junctions: ``lane [M]``, ``s [M]``,
        ``spacing`` [m] apart and at least ``margin`` [m] from lane ends."""
        from sim_bridge.maps.lookup import spawn_points

        return spawn_points(self, spacing, margin)
