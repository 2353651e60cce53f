"""The bird's-eye-view raster every backend shares: :func:`static_raster` and :class:`BevRenderer`.

Static layers are drawn ONCE per map with PIL (:mod:`sim_bridge.sensors.canvas`) into a map-frame
raster at :data:`STATIC_RESOLUTION` (cached in ``road_map.cache[("bev_static", resolution)]`` as a
:class:`StaticRaster`): the driving lanes' surfaces (lane polygons one by one), lane marks outside
junctions (solid, double and "other" marks as solid lines, broken ones as 3 m dashes, none for
NONE) plus the outer edge of the drivable area, stop-sign lines, and the index of each
traffic-light stop line. Each decision step one numba kernel, looping over worlds (on several
threads when given a pool, see :class:`BevRenderer`), samples that raster for every output pixel through the ego's pose
(nearest neighbour, out-of-map = 0), colours the traffic-light lines by each world's
``light_state``, draws the route as a band and the actors as filled rotated boxes.

Pixel convention (:class:`~sim_bridge.sensors.layout.BevGeometry`): an ego-frame point ``(x
forward, y left)`` [m] lands at continuous pixel coordinates ``row = ego_row - x / res``, ``col =
ego_col - y / res``; pixel ``(r, c)`` spans ``[r, r + 1) × [c, c + 1)`` and is set when its centre
``(r + 0.5, c + 0.5)`` is covered. The ego faces up (decreasing rows).

The ego itself is NOT drawn in any channel: it always sits at the same pixel, so it carries no
information (:func:`~sim_bridge.sensors.pictures.bev_to_rgb` paints it for pictures). History frames
(``BevGeometry.history``) repeat the VEHICLES and PEDESTRIANS channels for earlier actor boxes, most
recent first, drawn relative to the *current* ego pose.
"""

from __future__ import annotations

import itertools
import math
from concurrent.futures import Executor
from dataclasses import dataclass

import numba
import numpy as np

from sim_bridge.api import ActorKind, LightState
from sim_bridge.maps.road_map import RoadMap
from sim_bridge.routes import RouteBatch
from sim_bridge.sensors.canvas import Canvas, boundary_lines, draw_mark, is_stop_sign_line, lane_edges
from sim_bridge.sensors.frame import ActorArrays, SensorFrame
from sim_bridge.sensors.layout import DYNAMIC_CHANNELS, BevChannel, BevGeometry

__all__ = [
    "STATIC_RESOLUTION",
    "BevRenderer",
    "StaticRaster",
    "static_raster",
]

#: resolution of the per-map static raster [m/px]
STATIC_RESOLUTION = 0.25
#: width of lane marks and drivable-area edges in the static raster [m]
MARK_WIDTH = 0.5
#: width of stop lines in the static raster [m]
STOP_LINE_WIDTH = 0.75
#: margin around the map's bounds in the static raster [m]
RASTER_MARGIN = 5.0
#: route band: half width [m], how far behind the progress point it starts [m]
ROUTE_HALF_WIDTH = 1.5
ROUTE_BEHIND = 8.0

# bits of StaticRaster.bits (HAS_LIGHT only tells the kernel to read the light raster there)
BIT_DRIVABLE = 1
BIT_BOUNDARY = 2
BIT_STOP_SIGN = 4
BIT_HAS_LIGHT = 8
# channel numbers as plain ints (compile-time constants in the kernel)
_CH_DRIVABLE = int(BevChannel.DRIVABLE)
_CH_BOUNDARY = int(BevChannel.LANE_BOUNDARY)
_CH_STOP_SIGN = int(BevChannel.STOP_SIGN)
_CH_ROUTE = int(BevChannel.ROUTE)


@dataclass(frozen=True)
class StaticRaster:
    """A map's static layers in the map frame, north up.

    ``bits``: ``uint8 [Hm, Wm]``, bit 0 drivable (driving-lane surfaces), bit 1 lane boundary (lane
    marks outside junctions, solid or dashed, plus the outer edge of the drivable area), bit 2
    stop-sign line, bit 3 "a traffic-light line is here". ``light``: ``int16 [Hm, Wm]`` stop-line
    index + 1 of traffic-light lines (0 = none). Map point ``(x, y)`` falls in column
    ``floor((x - x0) / resolution)``, row ``floor((y1 - y) / resolution)``.
    """

    bits: np.ndarray
    light: np.ndarray
    x0: float
    y1: float
    resolution: float
    packed: np.ndarray
    """``uint32 [ceil(Hm/4) · ceil(Wm/4)]``: the kernel's compact copy, 2 bits per pixel in 4 × 4
    blocks (bit 0 drivable, bit 1 "any other layer here": read ``bits``). A block is 4 bytes, so one
    world's view touches ~40× fewer cache lines than in ``bits``; this is what keeps 64 worlds fast."""
    packed_width: int
    """Blocks per row of ``packed``."""


def _pack_blocks(bits: np.ndarray) -> tuple[np.ndarray, int]:
    """``bits [Hm, Wm]`` → ``StaticRaster.packed`` and its blocks per row."""
    hm, wm = bits.shape
    hq, wq = -(-hm // 4), -(-wm // 4)
    padded = np.zeros((hq * 4, wq * 4), dtype=np.uint8)
    padded[:hm, :wm] = bits
    blocks = padded.reshape(hq, 4, wq, 4).transpose(0, 2, 1, 3).reshape(hq, wq, 16)
    two_bits = (blocks & BIT_DRIVABLE).astype(np.uint32) | (blocks > BIT_DRIVABLE).astype(np.uint32) << 1
    weights = np.uint32(1) << (2 * np.arange(16, dtype=np.uint32))
    return np.ascontiguousarray((two_bits * weights).sum(-1, dtype=np.uint32).ravel()), wq


# ============================================================================ static raster (once per map)


def static_raster(road_map: RoadMap, resolution: float = STATIC_RESOLUTION) -> StaticRaster:
    """The map's :class:`StaticRaster`, drawn on first use and cached in ``road_map.cache``."""
    key = ("bev_static", float(resolution))
    cached = road_map.cache.get(key)  # type: ignore[call-overload]
    if cached is not None:
        return cached
    xmin, ymin, xmax, ymax = road_map.bounds
    x0, y1 = xmin - RASTER_MARGIN, ymax + RASTER_MARGIN
    width = math.ceil((xmax - xmin + 2 * RASTER_MARGIN) / resolution)
    height = math.ceil((ymax - ymin + 2 * RASTER_MARGIN) / resolution)
    if width * height > 400_000_000:
        raise ValueError(
            f"map {road_map.name!r} spans {xmax - xmin:.0f} x {ymax - ymin:.0f} m: its BEV raster at "
            f"{resolution} m/px would need {width * height / 1e6:.0f} Mpx; use a coarser resolution"
        )

    def canvas(mode: str = "L") -> Canvas:
        return Canvas(x0, y1, resolution, width, height, mode)

    drivable = canvas()
    drivable.polygon(road_map.drivable_area, fill=1, hole=0)

    marks = canvas()
    for lane in road_map.driving_lanes.tolist():
        if road_map.lane_junction[lane] >= 0:
            continue  # junction lanes: no painted marks
        left, right = lane_edges(road_map, lane)
        draw_mark(marks, left, int(road_map.lane_mark_left[lane]), 1, MARK_WIDTH)
        draw_mark(marks, right, int(road_map.lane_mark_right[lane]), 1, MARK_WIDTH)
    for ring in boundary_lines(road_map.drivable_area):
        marks.line(ring, 1, MARK_WIDTH)

    is_sign = is_stop_sign_line(road_map)
    segments = np.asarray(road_map.stop_segment, dtype=np.float64).reshape(-1, 2, 2)
    signs = canvas()
    lights = canvas("I")
    for k in range(len(segments)):
        if is_sign[k]:
            signs.line(segments[k], 1, MARK_WIDTH)
        else:
            lights.line(segments[k], k + 1, STOP_LINE_WIDTH)

    light = lights.array().astype(np.int16)
    bits = (
        drivable.array().astype(np.uint8) * BIT_DRIVABLE
        | marks.array().astype(np.uint8) * BIT_BOUNDARY
        | signs.array().astype(np.uint8) * BIT_STOP_SIGN
        | (light > 0).astype(np.uint8) * BIT_HAS_LIGHT
    )
    # the kernel clamps off-map samples onto the last row/column: keep the border empty
    for arr in (bits, light):
        arr[[0, -1], :] = 0
        arr[:, [0, -1]] = 0
    packed, packed_width = _pack_blocks(bits)
    raster = StaticRaster(
        np.ascontiguousarray(bits),
        np.ascontiguousarray(light),
        x0,
        y1,
        float(resolution),
        packed,
        packed_width,
    )
    road_map.cache[key] = raster  # type: ignore[index]
    return raster


# ============================================================================ per-step kernel

#: fixed-point fraction bits of the raster walk (map px as int64 with 32 fractional bits)
_FRAC = 32
_ONE = float(1 << _FRAC)


@numba.njit(cache=True, fastmath=True, inline="always")
def _slab(
    lo: float, hi: float, y: float, cx: float, cy: float, nx: float, ny: float, half: float
) -> tuple[float, float]:
    """Narrow the x-interval ``[lo, hi]`` of the line at height ``y`` to ``|(p - c)·n| <= half``."""
    off = (y - cy) * ny
    if abs(nx) < 1e-9:
        if abs(off) > half:
            return 1.0, 0.0
        return lo, hi
    a = cx + (-half - off) / nx
    b = cx + (half - off) / nx
    if a > b:
        a, b = b, a
    return max(lo, a), min(hi, b)


@numba.njit(cache=True, fastmath=True, inline="always")
def _fill_span(plane: np.ndarray, r: int, lo: float, hi: float) -> None:
    """Set pixels of row ``r`` whose centres ``c + 0.5`` lie in ``[lo, hi]``."""
    w = plane.shape[1]
    c0 = max(math.ceil(lo - 0.5), 0)
    c1 = min(math.floor(hi - 0.5), w - 1)
    for c in range(c0, c1 + 1):
        plane[r, c] = 255


@numba.njit(cache=True, fastmath=True)
def fill_box(
    plane: np.ndarray, rc: float, cc: float, fwd_r: float, fwd_c: float, half_len: float, half_wid: float
) -> None:
    """Set pixels of ``plane [H, W]`` whose centres lie in an oriented box: centre at continuous
    pixel ``(rc, cc)``, length axis along the unit pixel direction ``(fwd_r, fwd_c)``, half extents
    in px. Scanline: one interval per row. The pixel holding the centre is always set (so that
    boxes smaller than a pixel, e.g. pedestrians, stay visible)."""
    h = plane.shape[0]
    ext_r = abs(fwd_r) * half_len + abs(fwd_c) * half_wid
    r0 = max(math.floor(rc - ext_r), 0)
    r1 = min(math.ceil(rc + ext_r), h - 1)
    for r in range(r0, r1 + 1):
        y = r + 0.5
        lo, hi = _slab(-1e9, 1e9, y, cc, rc, fwd_c, fwd_r, half_len)
        lo, hi = _slab(lo, hi, y, cc, rc, -fwd_r, fwd_c, half_wid)
        if lo <= hi:
            _fill_span(plane, r, lo, hi)
    ri, ci = math.floor(rc), math.floor(cc)
    if 0 <= ri < h and 0 <= ci < plane.shape[1]:
        plane[ri, ci] = 255


@numba.njit(cache=True, fastmath=True, inline="always")
def _circle(lo: float, hi: float, y: float, cx: float, cy: float, rad: float) -> tuple[float, float]:
    """Widen ``[lo, hi]`` by the chord of the circle (``cx, cy``, ``rad``) at height ``y``."""
    dy = y - cy
    q = rad * rad - dy * dy
    if q < 0.0:
        return lo, hi
    half = math.sqrt(q)
    return min(lo, cx - half), max(hi, cx + half)


@numba.njit(cache=True, fastmath=True)
def _fill_capsule(plane: np.ndarray, r0: float, c0: float, r1: float, c1: float, rad: float) -> None:
    """Set pixels of ``plane`` whose centres are within ``rad`` px of segment (r0, c0)–(r1, c1)."""
    h = plane.shape[0]
    ra = max(math.floor(min(r0, r1) - rad), 0)
    rb = min(math.ceil(max(r0, r1) + rad), h - 1)
    dr, dc = r1 - r0, c1 - c0
    length = math.sqrt(dr * dr + dc * dc)
    ur, uc = (dr / length, dc / length) if length > 1e-9 else (1.0, 0.0)
    mr, mc = 0.5 * (r0 + r1), 0.5 * (c0 + c1)
    for r in range(ra, rb + 1):
        y = r + 0.5
        lo, hi = 1e9, -1e9
        if length > 1e-9:
            lo, hi = _slab(-1e9, 1e9, y, mc, mr, uc, ur, 0.5 * length)
            lo, hi = _slab(lo, hi, y, mc, mr, -ur, uc, rad)
            if lo > hi:
                lo, hi = 1e9, -1e9
        lo, hi = _circle(lo, hi, y, c0, r0, rad)
        lo, hi = _circle(lo, hi, y, c1, r1, rad)
        if lo <= hi:
            _fill_span(plane, r, lo, hi)


@numba.njit(cache=True, fastmath=True, inline="always")
def _sample_row(
    ob: np.ndarray,
    r: int,
    packed: np.ndarray,
    packed_width: np.uint64,
    bits: np.ndarray,
    light: np.ndarray,
    stride: np.uint64,
    umax: np.uint64,
    vmax: np.uint64,
    u: np.int64,
    v: np.int64,
    du: np.int64,
    dv: np.int64,
    light_state: np.ndarray,
    light_channel: np.ndarray,
) -> None:
    """Static channels of output row ``r``: walk the map raster from fixed-point ``(u, v)`` by
    ``(du, dv)`` per column. A row whose two ends lie on the raster lies on it entirely (the walk is
    linear) and skips the bounds clamp; otherwise off-map samples clamp onto the raster's empty
    border (a negative coordinate wraps to a huge unsigned one, then ``min`` clamps it)."""
    w = ob.shape[2]
    u_end, v_end = u + (w - 1) * du, v + (w - 1) * dv
    inside = min(u, u_end) >= 0 and min(v, v_end) >= 0
    inside = (
        inside and (max(u, u_end) >> _FRAC) <= np.int64(umax) and (max(v, v_end) >> _FRAC) <= np.int64(vmax)
    )
    for c in range(w):
        ui, vi = np.uint64(u >> _FRAC), np.uint64(v >> _FRAC)
        if not inside:
            ui, vi = min(ui, umax), min(vi, vmax)
        u += du
        v += dv
        val = packed[(vi >> 2) * packed_width + (ui >> 2)] >> np.uint32((((vi & 3) << 2) | (ui & 3)) << 1)
        ob[_CH_DRIVABLE, r, c] = np.uint8(-(val & 1))
        if val & 2:  # a rarer layer: read the full byte
            bv = bits[vi * stride + ui]
            if bv & BIT_BOUNDARY:
                ob[_CH_BOUNDARY, r, c] = 255
            if bv & BIT_STOP_SIGN:
                ob[_CH_STOP_SIGN, r, c] = 255
            if bv & BIT_HAS_LIGHT:
                k = light[vi * stride + ui] - 1
                if 0 <= k < light_state.shape[0]:
                    st = light_state[k]
                    if 0 <= st < light_channel.shape[0]:
                        ob[light_channel[st], r, c] = 255


@numba.njit(cache=True, fastmath=True)
def _render_world(
    b: int,
    out: np.ndarray,  # uint8 [B, C, H, W]
    ego: np.ndarray,  # [B, 3] x, y, yaw
    packed: np.ndarray,  # uint32, StaticRaster.packed
    bits: np.ndarray,  # uint8 [Hm · Wm]
    light: np.ndarray,  # int16 [Hm · Wm]
    geo: np.ndarray,  # float64 [10]: see BevRenderer._geo
    light_state: np.ndarray,  # int8 [B, K]
    light_channel: np.ndarray,  # int64 [3]: channel of LightState GREEN, YELLOW, RED
    route_pts: np.ndarray,  # [B, Q, 2] RouteBatch.sparse_points
    route_s: np.ndarray,  # [B, Q]
    route_count: np.ndarray,  # [B]
    route_span: np.ndarray,  # [B, 2] from, to along the route [m]
    boxes: np.ndarray,  # float64 [T, B, N, 5] x, y, yaw, length, width (current then history)
    akind: np.ndarray,  # int64 [T, B, N]
    aactive: np.ndarray,  # bool [T, B, N]
    kind_channel: np.ndarray,  # int64 [T, 3]: channel per ActorKind per frame, -1 = not drawn
) -> None:
    """Everything of world ``b``: static layers, route band, actor boxes."""
    x0, y1, map_res, res, ego_row, ego_col, route_half = (
        geo[0],
        geo[1],
        geo[2],
        geo[3],
        geo[4],
        geo[5],
        geo[6],
    )
    map_h, map_w, packed_width = np.int64(geo[7]), np.int64(geo[8]), np.uint64(geo[9])
    h = out.shape[2]
    inv = 1.0 / map_res
    stride = np.uint64(map_w)
    umax, vmax = np.uint64(map_w - 1), np.uint64(map_h - 1)
    ex, ey, eyaw = ego[b, 0], ego[b, 1], ego[b, 2]
    ob = out[b]
    ob[1:] = 0
    cy, sy = math.cos(eyaw), math.sin(eyaw)

    # --- static layers: map px of output pixel centre (r, c) is (u0 + r·du_r + c·du_c, v0 + …)
    du_c, dv_c = sy * res * inv, cy * res * inv
    du_r, dv_r = -cy * res * inv, sy * res * inv
    xe0 = (ego_row - 0.5) * res
    ye0 = (ego_col - 0.5) * res
    u0 = (ex + cy * xe0 - sy * ye0 - x0) * inv
    v0 = (y1 - (ey + sy * xe0 + cy * ye0)) * inv
    du, dv = np.int64(du_c * _ONE), np.int64(dv_c * _ONE)
    for r in range(h):
        ur = min(max(u0 + r * du_r, -1e6), 1e6)  # far off the map stays off it, no overflow
        vr = min(max(v0 + r * dv_r, -1e6), 1e6)
        _sample_row(
            ob, r, packed, packed_width, bits, light, stride, umax, vmax,
            np.int64(math.floor(ur * _ONE)), np.int64(math.floor(vr * _ONE)), du, dv,
            light_state[b], light_channel,
        )  # fmt: skip

    # --- route band along the simplified polyline
    n = route_count[b]
    if n >= 2:
        j = max(np.searchsorted(route_s[b, :n], route_span[b, 0]) - 1, 0)
        while j < n - 1 and route_s[b, j] <= route_span[b, 1]:
            # the segment clipped to the span
            sa, sb = route_s[b, j], route_s[b, j + 1]
            ta = min(max((route_span[b, 0] - sa) / (sb - sa), 0.0), 1.0) if sb > sa else 0.0
            tb = min(max((route_span[b, 1] - sa) / (sb - sa), 0.0), 1.0) if sb > sa else 1.0
            px, py = route_pts[b, j, 0], route_pts[b, j, 1]
            qx, qy = route_pts[b, j + 1, 0] - px, route_pts[b, j + 1, 1] - py
            dx0, dy0 = px + ta * qx - ex, py + ta * qy - ey
            dx1, dy1 = px + tb * qx - ex, py + tb * qy - ey
            r0 = ego_row - (cy * dx0 + sy * dy0) / res
            c0 = ego_col - (-sy * dx0 + cy * dy0) / res
            r1 = ego_row - (cy * dx1 + sy * dy1) / res
            c1 = ego_col - (-sy * dx1 + cy * dy1) / res
            _fill_capsule(ob[_CH_ROUTE], r0, c0, r1, c1, route_half)
            j += 1

    # --- actors (slot 0, the ego, is never drawn)
    for t in range(boxes.shape[0]):
        for i in range(1, boxes.shape[2]):
            if not aactive[t, b, i]:
                continue
            kd = akind[t, b, i]
            if kd < 0 or kd > 2:
                continue
            ch = kind_channel[t, kd]
            if ch < 0:
                continue
            box = boxes[t, b, i]
            dx, dy = box[0] - ex, box[1] - ey
            rc = ego_row - (cy * dx + sy * dy) / res
            cc = ego_col - (-sy * dx + cy * dy) / res
            reach = 0.5 * (box[3] + box[4]) / res + 1.0
            if rc < -reach or rc > h + reach or cc < -reach or cc > out.shape[3] + reach:
                continue
            rel = box[2] - eyaw
            # ego-frame forward (cos rel, sin rel) is pixel direction (-cos rel, -sin rel)
            fill_box(ob[ch], rc, cc, -math.cos(rel), -math.sin(rel), 0.5 * box[3] / res, 0.5 * box[4] / res)


@numba.njit(cache=True, fastmath=True, nogil=True)
def _render_range(
    b0, b1, out, ego, packed, bits, light, geo, light_state, light_channel, route_pts, route_s, route_count,
    route_span, boxes, akind, aactive, kind_channel,
):  # fmt: skip
    """``_render_world`` for worlds ``[b0, b1)``, releasing the GIL (ranges may run on threads)."""
    for b in range(b0, b1):
        _render_world(
            b, out, ego, packed, bits, light, geo, light_state, light_channel, route_pts, route_s,
            route_count, route_span, boxes, akind, aactive, kind_channel,
        )  # fmt: skip


# ============================================================================ renderer


class BevRenderer:
    """Renders :class:`~sim_bridge.api.Observation` BEVs for all worlds of one map (module doc).

    ``route_behind`` [m]: how far behind the progress point the route band starts; ``route_ahead``
    [m]: how far ahead it goes (default: far enough to cross the whole image).

    ``pool``: an executor; with one, worlds are split into one range per worker and rendered on
    its threads (the kernel releases the GIL). Both ways give identical pixels.
    """

    def __init__(
        self,
        road_map: RoadMap,
        geometry: BevGeometry,
        route_behind: float = ROUTE_BEHIND,
        route_ahead: float | None = None,
        pool: Executor | None = None,
    ) -> None:
        self.road_map = road_map
        self.geometry = geometry
        self.pool = pool
        self.raster = static_raster(road_map)
        g, r = geometry, self.raster
        far_r = max(g.ego_row, g.size - g.ego_row)
        far_c = max(g.ego_col, g.size - g.ego_col)
        corner = math.hypot(far_r, far_c) * g.resolution
        self.route_behind = float(route_behind)
        self.route_ahead = float(corner + ROUTE_HALF_WIDTH if route_ahead is None else route_ahead)
        # scalars of the kernel, in the order _render_world unpacks them
        self._geo = np.array(
            [
                r.x0, r.y1, r.resolution, g.resolution, g.ego_row, g.ego_col, ROUTE_HALF_WIDTH / g.resolution,
                r.bits.shape[0], r.bits.shape[1], r.packed_width,
            ],
            dtype=np.float64,
        )  # fmt: skip
        self._light_channel = np.zeros(len(LightState), dtype=np.int64)
        self._light_channel[LightState.GREEN] = BevChannel.LIGHT_GREEN
        self._light_channel[LightState.YELLOW] = BevChannel.LIGHT_YELLOW
        self._light_channel[LightState.RED] = BevChannel.LIGHT_RED
        table = np.full((1 + g.history, 3), -1, dtype=np.int64)
        table[0, ActorKind.VEHICLE] = BevChannel.VEHICLES
        table[0, ActorKind.PEDESTRIAN] = BevChannel.PEDESTRIANS
        table[0, ActorKind.STATIC] = BevChannel.STATIC
        for h in range(g.history):
            base = len(BevChannel) + h * len(DYNAMIC_CHANNELS)
            table[1 + h, ActorKind.VEHICLE] = base + DYNAMIC_CHANNELS.index(BevChannel.VEHICLES)
            table[1 + h, ActorKind.PEDESTRIAN] = base + DYNAMIC_CHANNELS.index(BevChannel.PEDESTRIANS)
        self._kind_channel = table
        self._buffers: dict[str, np.ndarray] = {}

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one world's BEV."""
        g = self.geometry
        return (g.num_channels, g.size, g.size)

    def _frames(self, frame: SensorFrame) -> list[ActorArrays]:
        """Current boxes then ``history`` frames; missing old frames repeat the oldest available."""
        frames = [frame.actors]
        for h in range(self.geometry.history):
            frames.append(frame.history[h] if h < len(frame.history) else frames[-1])
        return frames

    def _buffer(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        """A scratch input array of the kernel, reused between calls (never returned)."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape:
            buf = self._buffers[name] = np.empty(shape, dtype=dtype)
        return buf

    def render(self, frame: SensorFrame, routes: RouteBatch, out: np.ndarray | None = None) -> np.ndarray:
        """``uint8 [B, C, H, W]`` (0/255) BEVs of every world; written into ``out`` when given
        (``uint8``, C-contiguous, that shape), else into a fresh array.

        ``routes`` supplies each world's route and its current progress (call ``routes.update``
        first).
        """
        a = frame.actors
        b, n = a.shape
        shape = (b, *self.shape)
        if out is None:
            out = np.empty(shape, dtype=np.uint8)
        elif out.shape != shape or out.dtype != np.uint8 or not out.flags.c_contiguous:
            raise ValueError(
                f"out must be a C-contiguous uint8 array of shape {shape}; got {out.dtype} {out.shape}"
            )
        if routes.num_worlds != b:
            raise ValueError(f"routes hold {routes.num_worlds} worlds but the frame has {b}")
        light_state = np.asarray(frame.light_state)
        if light_state.ndim != 2 or light_state.shape[0] != b:
            raise ValueError(f"frame.light_state must be [B={b}, K]; got {light_state.shape}")

        frames = self._frames(frame)
        t = len(frames)
        boxes = self._buffer("boxes", (t, b, n, 5), np.float64)
        kind = self._buffer("kind", (t, b, n), np.int64)
        active = self._buffer("active", (t, b, n), np.bool_)
        for i, f in enumerate(frames):
            for j, name in enumerate(("x", "y", "yaw", "length", "width")):
                boxes[i, :, :, j] = getattr(f, name)
            kind[i] = f.kind
            active[i] = f.active
        if self.geometry.pedestrian_size > 0.0:  # walkers drawn at least pedestrian_size wide
            walker = kind == ActorKind.PEDESTRIAN
            for j in (3, 4):
                boxes[..., j] = np.where(
                    walker, np.maximum(boxes[..., j], self.geometry.pedestrian_size), boxes[..., j]
                )
        ego = self._buffer("ego", (b, 3), np.float64)
        ego[:] = boxes[0, :, 0, :3]
        span = self._buffer("span", (b, 2), np.float64)
        span[:, 0] = routes.progress - self.route_behind
        span[:, 1] = routes.progress + self.route_ahead

        r = self.raster
        args = (
            out, ego, r.packed, r.bits.reshape(-1), r.light.reshape(-1), self._geo,
            light_state.astype(np.int8, copy=False), self._light_channel,
            routes.sparse_points, routes.sparse_s, routes.sparse_count, span,
            boxes, kind, active, self._kind_channel,
        )  # fmt: skip
        pool = self.pool
        workers = getattr(pool, "_max_workers", 1) if pool is not None else 1
        if pool is None or workers <= 1 or b < 2:
            _render_range(0, b, *args)
        else:
            edges = np.linspace(0, b, min(workers, b) + 1).astype(int)
            jobs = [pool.submit(_render_range, lo, hi, *args) for lo, hi in itertools.pairwise(edges)]
            for job in jobs:
                job.result()
        return out
