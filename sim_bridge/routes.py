"""``RouteBatch``: the ego routes of ``B`` worlds, padded to a common length, with progress tracking.

Each world's :class:`~sim_bridge.maps.road_map.Route` is copied into padded arrays (``P`` = the
longest route's point count, grown as needed): points ``[B, P, 2]``, arc length ``s [B, P]``, the
lane of each point, the :class:`RouteCommand` of each point and a validity mask. The stop lines the
route passes (map stop lines lying across one of its lanes) are stored by their position along the
route, ``[B, Kr]``.

Progress is tracked per world by :meth:`RouteBatch.update`: the ego position is projected onto the
route segments in a window ahead of the previous progress point (never behind it, so progress is
monotonic). Every query is vectorised over worlds: numpy over ``[B, …]``, and two small numba
kernels (the progress search and interpolation along the routes) that loop over worlds and
segments.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from sim_bridge.maps.road_map import RoadMap, Route
from sim_bridge.sensors.layout import NUM_ROUTE_TARGETS, ROUTE_TARGET_SPACING, RouteCommand

__all__ = ["SEARCH_AHEAD", "STOP_LINE_TOLERANCE", "RouteBatch"]

#: how far ahead of the previous progress point ``update`` searches [m]
SEARCH_AHEAD = 30.0
#: a route point farther than this from a stop line on its lane does not pass it [m]
STOP_LINE_TOLERANCE = 2.5
#: the drawing polyline (``sparse_*``) stays within this distance of the route [m] …
SPARSE_TOLERANCE = 0.05
#: … with segments at most this long [m]
SPARSE_MAX_SEGMENT = 10.0


class RouteBatch:
    """Routes of ``num_worlds`` worlds with per-world progress (see module doc).

    Public read-only arrays (``P`` points, ``K`` lanes, ``Kr`` stop lines, padded):

    - ``points [B, P, 2]`` [m], ``s [B, P]`` [m] (padding repeats the last point and its ``s``),
      ``point_lane [B, P]`` (-1 pad), ``commands [B, P]`` (LANE_FOLLOW pad), ``valid [B, P]``,
      ``count [B]`` points per route (0 where no route is set), ``length [B]`` [m].
    - ``lanes [B, K]`` route lanes in order (-1 pad).
    - ``stop_s [B, Kr]`` position of each stop line along the route [m] (+inf pad), sorted;
      ``stop_index [B, Kr]`` the map's stop-line index (-1 pad).
    - ``sparse_points [B, Q, 2]``, ``sparse_s [B, Q]``, ``sparse_count [B]``: the route simplified
      for drawing (a subset of its points, within :data:`SPARSE_TOLERANCE` of it).
    - ``progress [B]`` [m] and ``index [B]`` (segment ``index → index + 1`` holds the progress point)
      as of the last :meth:`update` (0 after :meth:`set`).
    """

    def __init__(self, num_worlds: int, capacity: int = 256) -> None:
        if num_worlds < 1:
            raise ValueError(f"num_worlds must be >= 1, got {num_worlds}")
        self.num_worlds = int(num_worlds)
        b, p = self.num_worlds, max(int(capacity), 2)
        self.points = np.zeros((b, p, 2))
        self.s = np.zeros((b, p))
        self.point_lane = np.full((b, p), -1, dtype=np.int64)
        self.commands = np.full((b, p), int(RouteCommand.LANE_FOLLOW), dtype=np.int8)
        self.valid = np.zeros((b, p), dtype=bool)
        self.count = np.zeros(b, dtype=np.int64)
        self.length = np.zeros(b)
        self.lanes = np.full((b, 1), -1, dtype=np.int64)
        self.stop_s = np.full((b, 1), np.inf)
        self.stop_index = np.full((b, 1), -1, dtype=np.int64)
        self.progress = np.zeros(b)
        self.index = np.zeros(b, dtype=np.int64)
        # first point at or after each point whose command is not LANE_FOLLOW (-1: none)
        self._next_command = np.full((b, p), -1, dtype=np.int64)
        # the polyline simplified for drawing (the BEV route band): points, s, count
        self.sparse_points = np.zeros((b, p, 2))
        self.sparse_s = np.zeros((b, p))
        self.sparse_count = np.zeros(b, dtype=np.int64)
        # worlds whose next update searches the whole route
        self._fresh = np.zeros(b, dtype=bool)

    # ------------------------------------------------------------------ construction

    @property
    def capacity(self) -> int:
        """``P``: points per world the arrays hold."""
        return int(self.points.shape[1])

    def _grow_points(self, needed: int) -> None:
        old = self.capacity
        if needed <= old:
            return
        b, pad = self.num_worlds, max(needed, 2 * old) - old
        # padding repeats each world's last point so rows stay sorted in s
        last = np.maximum(self.count - 1, 0)
        rows = np.arange(b)
        self.points = np.concatenate([self.points, np.repeat(self.points[rows, last][:, None], pad, 1)], 1)
        self.s = np.concatenate([self.s, np.repeat(self.s[rows, last][:, None], pad, 1)], 1)
        self.point_lane = np.concatenate([self.point_lane, np.full((b, pad), -1, dtype=np.int64)], 1)
        self.commands = np.concatenate(
            [self.commands, np.full((b, pad), int(RouteCommand.LANE_FOLLOW), dtype=np.int8)], 1
        )
        self.valid = np.concatenate([self.valid, np.zeros((b, pad), dtype=bool)], 1)
        self._next_command = np.concatenate([self._next_command, np.full((b, pad), -1, dtype=np.int64)], 1)
        self.sparse_points = np.concatenate([self.sparse_points, np.zeros((b, pad, 2))], 1)
        self.sparse_s = np.concatenate([self.sparse_s, np.zeros((b, pad))], 1)

    @staticmethod
    def _grow_cols(arr: np.ndarray, needed: int, fill: float) -> np.ndarray:
        if needed <= arr.shape[1]:
            return arr
        extra = np.full((arr.shape[0], needed - arr.shape[1]), fill, dtype=arr.dtype)
        return np.concatenate([arr, extra], 1)

    def set(self, b: int, route: Route, road_map: RoadMap) -> None:
        """Store ``route`` for world ``b`` and reset its progress to 0 (the next :meth:`update`
        searches the whole route).

        ``road_map`` supplies the stop lines: each map stop line whose ``stop_lane`` the route
        drives on is recorded at the route ``s`` of the route point on that lane nearest the line
        (one entry per stretch of the route on that lane that reaches within
        :data:`STOP_LINE_TOLERANCE` of it).
        """
        if not 0 <= b < self.num_worlds:
            raise ValueError(f"world index {b} out of range [0, {self.num_worlds})")
        pts = np.asarray(route.points, dtype=np.float64)
        n = len(pts)
        if n < 2 or pts.shape != (n, 2):
            raise ValueError(f"a route needs points of shape [P >= 2, 2]; got {pts.shape}")
        s = np.asarray(route.s, dtype=np.float64)
        if s.shape != (n,) or np.any(np.diff(s) < 0):
            raise ValueError("route.s must be [P] and non-decreasing (cumulative arc length)")
        commands = np.asarray(route.commands, dtype=np.int8)
        self._grow_points(n)
        self.points[b, :n] = pts
        self.points[b, n:] = pts[-1]
        self.s[b, :n] = s
        self.s[b, n:] = s[-1]
        self.point_lane[b, :n] = route.point_lane
        self.point_lane[b, n:] = -1
        self.commands[b, :n] = commands
        self.commands[b, n:] = int(RouteCommand.LANE_FOLLOW)
        self.valid[b] = False
        self.valid[b, :n] = True
        self.count[b] = n
        self.length[b] = s[-1]
        self.progress[b] = 0.0
        self.index[b] = 0
        self._fresh[b] = True
        turns = np.flatnonzero(commands != RouteCommand.LANE_FOLLOW)
        self._next_command[b] = -1
        if len(turns):
            first = np.searchsorted(turns, np.arange(n))
            self._next_command[b, :n] = np.where(
                first < len(turns), turns[np.minimum(first, len(turns) - 1)], -1
            )

        keep = _simplify(pts, SPARSE_TOLERANCE, SPARSE_MAX_SEGMENT)
        self.sparse_count[b] = len(keep)
        self.sparse_points[b, : len(keep)] = pts[keep]
        self.sparse_s[b, : len(keep)] = s[keep]

        lanes = np.asarray(route.lanes, dtype=np.int64)
        self.lanes = self._grow_cols(self.lanes, len(lanes), -1)
        self.lanes[b] = -1
        self.lanes[b, : len(lanes)] = lanes

        stop_s, stop_k = self._route_stop_lines(pts, s, np.asarray(route.point_lane), road_map)
        self.stop_s = self._grow_cols(self.stop_s, len(stop_s), np.inf)
        self.stop_index = self._grow_cols(self.stop_index, len(stop_s), -1)
        self.stop_s[b] = np.inf
        self.stop_index[b] = -1
        self.stop_s[b, : len(stop_s)] = stop_s
        self.stop_index[b, : len(stop_s)] = stop_k

    @staticmethod
    def _route_stop_lines(
        pts: np.ndarray, s: np.ndarray, point_lane: np.ndarray, road_map: RoadMap
    ) -> tuple[np.ndarray, np.ndarray]:
        """Stop lines along one route: ``s [Kr]`` sorted and map stop-line index ``[Kr]``."""
        stop_lane = np.asarray(road_map.stop_lane, dtype=np.int64)
        on_route = np.flatnonzero(np.isin(stop_lane, point_lane))
        if len(on_route) == 0:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        line_xy, _ = road_map.pose_at(stop_lane[on_route], np.asarray(road_map.stop_s)[on_route])
        found_s: list[float] = []
        found_k: list[int] = []
        # once per route: loop over the few stop lines and the route's stretches on their lanes
        for k, xy in zip(on_route, line_xy, strict=True):
            on_lane = point_lane == stop_lane[k]
            edges = np.diff(np.concatenate([[0], on_lane.astype(np.int8), [0]]))
            for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
                d = np.hypot(*(pts[start:stop] - xy).T)
                j = int(np.argmin(d))
                if d[j] <= STOP_LINE_TOLERANCE:
                    found_s.append(float(s[start + j]))
                    found_k.append(int(k))
        order = np.argsort(found_s, kind="stable")
        return np.asarray(found_s)[order], np.asarray(found_k, dtype=np.int64)[order]

    def clear(self, b: int) -> None:
        """Forget world ``b``'s route (its queries then answer as for an empty route)."""
        self.valid[b] = False
        self.count[b] = 0
        self.length[b] = 0.0
        self.point_lane[b] = -1
        self.commands[b] = int(RouteCommand.LANE_FOLLOW)
        self.lanes[b] = -1
        self.stop_s[b] = np.inf
        self.stop_index[b] = -1
        self.progress[b] = 0.0
        self.index[b] = 0
        self._next_command[b] = -1
        self.sparse_count[b] = 0
        self._fresh[b] = False

    # ------------------------------------------------------------------ copies between batches

    #: per-point arrays ``[B, P, …]`` and the value that pads them past a route's end (None: the
    #: route's last entry, so rows stay sorted in ``s``)
    _POINT_ARRAYS = (
        ("points", None),
        ("s", None),
        ("point_lane", -1),
        ("commands", int(RouteCommand.LANE_FOLLOW)),
        ("valid", False),
        ("_next_command", -1),
        ("sparse_points", 0.0),
        ("sparse_s", 0.0),
    )
    #: per-route arrays ``[B, K]`` of varying width and their padding
    _COLUMN_ARRAYS = (("lanes", -1), ("stop_s", np.inf), ("stop_index", -1))
    #: per-world scalars ``[B]``
    _WORLD_ARRAYS = ("count", "length", "progress", "index", "sparse_count", "_fresh")

    def take(self, worlds: np.ndarray) -> RouteBatch:
        """A copy of ``worlds``' routes and progress (a ``len(worlds)``-world batch)."""
        worlds = np.asarray(worlds, dtype=np.int64)
        out = RouteBatch(len(worlds), capacity=self.capacity)
        for name, _ in self._POINT_ARRAYS + self._COLUMN_ARRAYS:
            setattr(out, name, getattr(self, name)[worlds])
        for name in self._WORLD_ARRAYS:
            setattr(out, name, getattr(self, name)[worlds])
        return out

    def put(self, source: RouteBatch, rows: np.ndarray, worlds: np.ndarray) -> None:
        """Overwrite ``worlds`` with ``source``'s worlds ``rows`` (one entry, copied into every world,
        or one per world): routes, drawing polylines, stop lines and progress, so that the worlds
        then answer every query as ``source``'s did."""
        self._grow_points(source.capacity)
        p = source.capacity
        for name, pad in self._POINT_ARRAYS:
            dst, src = getattr(self, name), getattr(source, name)
            dst[worlds, :p] = src[rows]
            if dst.shape[1] > p:
                dst[worlds, p:] = src[rows, p - 1 : p] if pad is None else pad
        for name, pad in self._COLUMN_ARRAYS:
            src = getattr(source, name)
            dst = self._grow_cols(getattr(self, name), src.shape[1], pad)
            setattr(self, name, dst)
            dst[worlds, : src.shape[1]] = src[rows]
            dst[worlds, src.shape[1] :] = pad
        for name in self._WORLD_ARRAYS:
            getattr(self, name)[worlds] = getattr(source, name)[rows]

    # ------------------------------------------------------------------ per-step queries

    def update(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance progress with the ego positions ``xy [B, 2]`` [m].

        Returns ``progress [B]`` [m] (monotonic: never below the previous value) and ``deviation
        [B]`` [m], the distance from ``xy`` to the nearest route segment in the search window. The
        search covers the segments starting at most :data:`SEARCH_AHEAD` m ahead of the previous
        progress point; the first update after :meth:`set` searches the whole route (the ego may
        start anywhere along it), preferring the earliest stretch that comes within 1 m of the
        nearest distance (so a closed route starts at its beginning). Worlds without a route answer
        0 and 0.
        """
        xy = np.asarray(xy, dtype=np.float64)
        if xy.shape != (self.num_worlds, 2):
            raise ValueError(f"xy must be [B={self.num_worlds}, 2], got {xy.shape}")
        deviation = np.zeros(self.num_worlds)
        _track(
            self.points,
            self.s,
            self.count,
            self.index,
            self.progress,
            self._fresh,
            xy,
            SEARCH_AHEAD,
            deviation,
        )
        return self.progress.copy(), deviation

    def _progress(self, progress: np.ndarray | None) -> np.ndarray:
        return self.progress if progress is None else np.asarray(progress, dtype=np.float64)

    def targets(
        self,
        xy: np.ndarray,
        yaw: np.ndarray,
        num: int = NUM_ROUTE_TARGETS,
        spacing: float = ROUTE_TARGET_SPACING,
        progress: np.ndarray | None = None,
    ) -> np.ndarray:
        """Points ``spacing, 2·spacing, … num·spacing`` [m] ahead of ``progress [B]`` (default: the
        tracked progress) along each route, in the ego frame of ``xy [B, 2]``, ``yaw [B]`` (x
        forward, y left): ``[B, num, 2]`` [m].

        Past the route's end the last point repeats; worlds without a route get zeros.
        """
        sq = self._progress(progress)[:, None] + spacing * np.arange(1, num + 1)[None, :]
        rel = _along(self.points, self.s, self.count, self.index, sq) - np.asarray(xy, np.float64)[:, None, :]
        c, sn = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
        out = np.stack([c * rel[..., 0] + sn * rel[..., 1], -sn * rel[..., 0] + c * rel[..., 1]], -1)
        return np.where((self.count >= 2)[:, None, None], out, 0.0)

    def command_ahead(self, distance: float = 30.0, progress: np.ndarray | None = None) -> np.ndarray:
        """``int [B]``: the first command other than LANE_FOLLOW on the route from the progress
        point's segment to ``distance`` [m] ahead of ``progress`` (default: the tracked progress);
        LANE_FOLLOW if there is none."""
        rows = np.arange(self.num_worlds)
        j = self._next_command[rows, self.index]
        safe = np.maximum(j, 0)
        found = (j >= 0) & (self.s[rows, safe] <= self._progress(progress) + distance)
        return np.where(found, self.commands[rows, safe], int(RouteCommand.LANE_FOLLOW)).astype(np.int64)

    def next_stop(self, progress: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The next stop line on each route at or ahead of ``progress [B]`` [m] (default: the tracked
        progress): ``distance [B]`` [m] (+inf if none) and map stop-line index ``[B]`` (-1 if none)."""
        prog = self._progress(progress)
        ahead = self.stop_s >= prog[:, None]
        first = np.argmax(ahead, axis=1)
        rows = np.arange(self.num_worlds)
        found = ahead[rows, first]
        dist = np.where(found, self.stop_s[rows, first] - prog, np.inf)
        return dist, np.where(found, self.stop_index[rows, first], -1)

    def on_route_lanes(self, lane: np.ndarray) -> np.ndarray:
        """``bool [B]``: lane ``lane [B]`` (-1 = none) is one of world ``b``'s route lanes."""
        lane = np.asarray(lane)
        return (lane >= 0) & (self.lanes == lane[:, None]).any(axis=1)

    def remaining(self, progress: np.ndarray | None = None) -> np.ndarray:
        """``[B]`` distance left along each route [m] (0 where no route is set)."""
        return np.maximum(self.length - self._progress(progress), 0.0)


# ============================================================================ kernels


@numba.njit(cache=True, inline="always")
def _segment_distance(points: np.ndarray, b: int, j: int, x: float, y: float) -> tuple[float, float]:
    """Distance [m] from ``(x, y)`` to segment ``j → j + 1`` of route ``b``, and the fraction ``t``
    of the nearest point along the segment."""
    ax, ay = points[b, j, 0], points[b, j, 1]
    dx, dy = points[b, j + 1, 0] - ax, points[b, j + 1, 1] - ay
    len2 = dx * dx + dy * dy
    t = 0.0
    if len2 > 1e-12:
        t = min(max(((x - ax) * dx + (y - ay) * dy) / len2, 0.0), 1.0)
    ex, ey = x - ax - t * dx, y - ay - t * dy
    return math.sqrt(ex * ex + ey * ey), t


@numba.njit(cache=True)
def _track(
    points: np.ndarray,  # [B, P, 2]
    s: np.ndarray,  # [B, P]
    count: np.ndarray,  # [B]
    index: np.ndarray,  # [B] in/out
    progress: np.ndarray,  # [B] in/out
    fresh: np.ndarray,  # [B] in/out
    xy: np.ndarray,  # [B, 2]
    ahead: float,  # [m]
    deviation: np.ndarray,  # [B] out
) -> None:
    """The progress search of :meth:`RouteBatch.update` (see there), in place."""
    for b in range(points.shape[0]):
        n = count[b]
        if n < 2:
            progress[b] = 0.0
            deviation[b] = 0.0
            fresh[b] = False
            continue
        x, y = xy[b, 0], xy[b, 1]
        best_j, best_d, best_t = 0, np.inf, 0.0
        if fresh[b]:
            dist = np.empty(n - 1)
            for j in range(n - 1):
                dist[j], _ = _segment_distance(points, b, j, x, y)
            first = 0
            near = dist.min() + 1.0
            while dist[first] > near:
                first += 1
            j = first
            while j < n - 1 and s[b, j] <= s[b, first] + 5.0:
                if dist[j] < best_d:
                    best_j, best_d = j, dist[j]
                j += 1
            best_d, best_t = _segment_distance(points, b, best_j, x, y)
            fresh[b] = False
        else:
            j = min(index[b], n - 2)
            limit = s[b, j] + ahead
            while j < n - 1 and s[b, j] <= limit:
                d, t = _segment_distance(points, b, j, x, y)
                if d < best_d:
                    best_j, best_d, best_t = j, d, t
                j += 1
        candidate = s[b, best_j] + best_t * (s[b, best_j + 1] - s[b, best_j])
        if candidate >= progress[b]:
            progress[b] = candidate
            index[b] = best_j
        deviation[b] = best_d


@numba.njit(cache=True)
def _along(
    points: np.ndarray,  # [B, P, 2]
    s: np.ndarray,  # [B, P]
    count: np.ndarray,  # [B]
    index: np.ndarray,  # [B] where the search starts
    sq: np.ndarray,  # [B, M] [m]
) -> np.ndarray:
    """Route points at arc lengths ``sq`` (clipped to each route) → ``[B, M, 2]`` (0 without a route)."""
    nb, m = sq.shape
    out = np.zeros((nb, m, 2))
    for b in range(nb):
        n = count[b]
        if n < 2:
            continue
        j = min(index[b], n - 2)
        for k in range(m):
            q = min(max(sq[b, k], s[b, 0]), s[b, n - 1])
            while j < n - 2 and s[b, j + 1] <= q:
                j += 1
            while j > 0 and s[b, j] > q:
                j -= 1
            span = s[b, j + 1] - s[b, j]
            t = (q - s[b, j]) / span if span > 1e-9 else 0.0
            out[b, k, 0] = points[b, j, 0] + t * (points[b, j + 1, 0] - points[b, j, 0])
            out[b, k, 1] = points[b, j, 1] + t * (points[b, j + 1, 1] - points[b, j, 1])
    return out


@numba.njit(cache=True)
def _simplify(points: np.ndarray, tolerance: float, max_segment: float) -> np.ndarray:
    """Indices of a subset of ``points [P, 2]`` (first and last included) whose polyline stays within
    ``tolerance`` [m] of every dropped point, segments at most ``max_segment`` [m] long (greedy)."""
    n = points.shape[0]
    keep = np.empty(n, dtype=np.int64)
    keep[0] = 0
    m = 1
    i = 0
    while i < n - 1:
        j = i + 1
        while j + 1 < n:
            ax, ay = points[i, 0], points[i, 1]
            dx, dy = points[j + 1, 0] - ax, points[j + 1, 1] - ay
            len2 = dx * dx + dy * dy
            if len2 > max_segment * max_segment:
                break
            ok = True
            for k in range(i + 1, j + 1):
                t = ((points[k, 0] - ax) * dx + (points[k, 1] - ay) * dy) / len2 if len2 > 1e-12 else 0.0
                t = min(max(t, 0.0), 1.0)
                ex, ey = points[k, 0] - ax - t * dx, points[k, 1] - ay - t * dy
                if ex * ex + ey * ey > tolerance * tolerance:
                    ok = False
                    break
            if not ok:
                break
            j += 1
        keep[m] = j
        m += 1
        i = j
    return keep[:m]
