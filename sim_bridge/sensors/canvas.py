"""PIL drawing in map coordinates, and what the map pictures draw: lane edges and their marks, the
outer edge of the drivable area, which stop lines belong to stop signs.

Used by the BEV's static raster, once per map (:mod:`sim_bridge.sensors.bev`), and by the pictures
(:mod:`sim_bridge.sensors.pictures`); the per-step BEV kernel does not draw with PIL.
"""

from __future__ import annotations

import numpy as np
import shapely
from PIL import Image, ImageDraw

from sim_bridge.maps.road_map import MarkType, RoadMap, SignalKind

#: broken marks: dash and gap lengths [m]
DASH_ON, DASH_OFF = 3.0, 3.0


class Canvas:
    """PIL drawing in map coordinates over the box ``x0..x0 + w·res``, ``y1 - h·res..y1``."""

    def __init__(self, x0: float, y1: float, resolution: float, width: int, height: int, mode: str) -> None:
        self.x0, self.y1, self.res = x0, y1, resolution
        self.image = Image.new(mode, (width, height), 0)
        self.draw = ImageDraw.Draw(self.image)

    def px(self, xy: np.ndarray) -> list[tuple[float, float]]:
        """Map ``[M, 2]`` [m] → PIL coordinates (integers are pixel centres)."""
        u = (xy[:, 0] - self.x0) / self.res - 0.5
        v = (self.y1 - xy[:, 1]) / self.res - 0.5
        return list(zip(u.tolist(), v.tolist(), strict=True))

    def polygon(
        self, geom: shapely.Geometry, fill: int | tuple[int, ...], hole: int | tuple[int, ...]
    ) -> None:
        for poly in shapely.get_parts(geom):
            if poly.geom_type != "Polygon" or poly.is_empty:
                continue
            self.draw.polygon(self.px(np.asarray(poly.exterior.coords)), fill=fill)
            for ring in poly.interiors:
                self.draw.polygon(self.px(np.asarray(ring.coords)), fill=hole)

    def line(self, xy: np.ndarray, fill: int | tuple[int, ...], width_m: float) -> None:
        if len(xy) < 2:
            return
        w = max(1, round(width_m / self.res))
        self.draw.line(self.px(xy), fill=fill, width=w, joint="curve" if len(xy) > 2 else None)

    def dashed(self, xy: np.ndarray, fill: int | tuple[int, ...], width_m: float) -> None:
        """A broken line along ``xy [M, 2]``: DASH_ON metres drawn, DASH_OFF skipped."""
        if len(xy) < 2:
            return
        seg = np.hypot(*np.diff(xy, axis=0).T)
        s = np.concatenate([[0.0], np.cumsum(seg)])
        if s[-1] <= 0:
            return
        step = self.res / 2
        sq = np.arange(0.0, s[-1] + step, step)
        sq[-1] = min(sq[-1], s[-1])
        dense = np.stack([np.interp(sq, s, xy[:, 0]), np.interp(sq, s, xy[:, 1])], -1)
        on = np.remainder(sq, DASH_ON + DASH_OFF) < DASH_ON
        edges = np.diff(np.concatenate([[0], on.astype(np.int8), [0]]))
        for a, b in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
            self.line(dense[a:b], fill, width_m)

    def array(self) -> np.ndarray:
        return np.asarray(self.image)


def lane_edges(road_map: RoadMap, lane: int) -> tuple[np.ndarray, np.ndarray]:
    """Left and right edges ``[M, 2]`` [m] of ``lane`` from its centreline samples and widths."""
    a, b = int(road_map.lane_start[lane]), int(road_map.lane_start[lane + 1])
    p = np.asarray(road_map.points[a:b], dtype=np.float64)
    h = np.asarray(road_map.headings[a:b], dtype=np.float64)
    half = 0.5 * np.asarray(road_map.widths[a:b], dtype=np.float64)[:, None]
    n = np.stack([-np.sin(h), np.cos(h)], -1)
    return p + half * n, p - half * n


_SOLID_MARKS = (
    MarkType.SOLID,
    MarkType.SOLID_SOLID,
    MarkType.SOLID_BROKEN,
    MarkType.BROKEN_SOLID,
    MarkType.OTHER,
)
_BROKEN_MARKS = (MarkType.BROKEN, MarkType.BROKEN_BROKEN)


def draw_mark(canvas: Canvas, xy: np.ndarray, mark: int, fill: int | tuple[int, ...], width_m: float) -> None:
    """One lane edge: solid marks (and double marks with a solid side, and curbs/other) as a line,
    broken ones dashed, NONE not at all."""
    if mark in _SOLID_MARKS:
        canvas.line(xy, fill, width_m)
    elif mark in _BROKEN_MARKS:
        canvas.dashed(xy, fill, width_m)


def _is_sliver(ring: np.ndarray) -> bool:
    """A ring enclosing (almost) nothing: under 1 m² or under 0.3 m wide on average. Unions of lane
    polygons that do not share their edges exactly leave such slivers between lanes."""
    poly = shapely.Polygon(ring)
    area = abs(poly.area)
    return area < 1.0 or 2.0 * area / max(poly.length, 1e-9) < 0.3


def boundary_lines(geom: shapely.Geometry) -> list[np.ndarray]:
    """Every ring of a (multi)polygon as ``[M, 2]`` arrays, slivers left out."""
    rings = []
    for poly in shapely.get_parts(geom):
        if poly.geom_type != "Polygon" or poly.is_empty:
            continue
        rings.append(np.asarray(poly.exterior.coords))
        rings.extend(np.asarray(r.coords) for r in poly.interiors)
    return [ring for ring in rings if not _is_sliver(ring)]


def is_stop_sign_line(road_map: RoadMap) -> np.ndarray:
    """``bool [K]``: stop line ``k`` belongs to a stop sign (else a traffic light)."""
    sig = np.asarray(road_map.stop_signal, dtype=np.int64)
    kinds = np.asarray(road_map.signal_kind)
    return kinds[sig] == SignalKind.STOP_SIGN if len(sig) else np.zeros(0, dtype=bool)
