"""Pictures for people: one world's BEV in colour (:func:`bev_to_rgb`) and a north-up view of the
map with lights, route and actors (:func:`render_map_view`), with their colours."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from sim_bridge.api import ActorKind, LightState
from sim_bridge.maps.road_map import RoadMap
from sim_bridge.routes import RouteBatch
from sim_bridge.sensors.bev import MARK_WIDTH, RASTER_MARGIN, fill_box
from sim_bridge.sensors.canvas import Canvas, boundary_lines, draw_mark, is_stop_sign_line, lane_edges
from sim_bridge.sensors.frame import SensorFrame
from sim_bridge.sensors.layout import DYNAMIC_CHANNELS, BevChannel, BevGeometry

__all__ = ["bev_to_rgb", "map_view_box", "render_map_view"]

#: RGB per BEV channel for ``bev_to_rgb``, painted in this order (later wins)
BEV_COLOURS: dict[int, tuple[int, int, int]] = {
    BevChannel.DRIVABLE: (70, 70, 70),
    BevChannel.ROUTE: (40, 80, 150),
    BevChannel.LANE_BOUNDARY: (220, 220, 220),
    BevChannel.STOP_SIGN: (255, 255, 255),
    BevChannel.LIGHT_GREEN: (0, 220, 0),
    BevChannel.LIGHT_YELLOW: (240, 220, 0),
    BevChannel.LIGHT_RED: (240, 0, 0),
    BevChannel.STATIC: (150, 110, 70),
    BevChannel.VEHICLES: (60, 160, 255),
    BevChannel.PEDESTRIANS: (255, 120, 200),
}
EGO_COLOUR = (0, 255, 120)
#: ego box painted by ``bev_to_rgb``: length, width [m]
EGO_BOX = (4.6, 2.0)


def bev_to_rgb(bev: np.ndarray, geometry: BevGeometry | None = None) -> np.ndarray:
    """One world's BEV ``uint8 [C, H, W]`` → a picture ``uint8 [H, W, 3]``: a fixed colour per
    channel (history frames fainter, oldest first), the ego painted as a box at its pixel.

    ``geometry`` locates the ego (default: ``BevGeometry`` with this BEV's size and history).
    """
    bev = np.asarray(bev)
    if bev.ndim != 3 or bev.shape[0] < len(BevChannel):
        raise ValueError(f"bev must be [C >= {len(BevChannel)}, H, W]; got {bev.shape}")
    c, h, w = bev.shape
    history = (c - len(BevChannel)) // len(DYNAMIC_CHANNELS)
    g = geometry or BevGeometry(size=h, history=history)
    rgb = np.zeros((h, w, 3), dtype=np.uint8)
    on = bev > 0
    for ch in (BevChannel.DRIVABLE, BevChannel.ROUTE, BevChannel.LANE_BOUNDARY):
        rgb[on[ch]] = BEV_COLOURS[ch]
    for t in range(history - 1, -1, -1):  # oldest first, fainter
        fade = 0.35 + 0.3 * (history - 1 - t) / max(history, 1)
        for i, ch in enumerate(DYNAMIC_CHANNELS):
            m = on[len(BevChannel) + t * len(DYNAMIC_CHANNELS) + i]
            rgb[m] = (np.asarray(BEV_COLOURS[ch]) * fade).astype(np.uint8)
    for ch in (
        BevChannel.STOP_SIGN,
        BevChannel.LIGHT_GREEN,
        BevChannel.LIGHT_YELLOW,
        BevChannel.LIGHT_RED,
        BevChannel.STATIC,
        BevChannel.VEHICLES,
        BevChannel.PEDESTRIANS,
    ):
        rgb[on[ch]] = BEV_COLOURS[ch]
    ego = np.zeros((h, w), dtype=np.uint8)
    fill_box(
        ego, g.ego_row, g.ego_col, -1.0, 0.0, 0.5 * EGO_BOX[0] / g.resolution, 0.5 * EGO_BOX[1] / g.resolution
    )
    rgb[ego > 0] = EGO_COLOUR
    return rgb


_MAP_BACKGROUND = (25, 25, 25)
_MAP_SIDEWALK = (120, 120, 110)
_MAP_LANE = (75, 75, 75)
_MAP_MARK = (230, 230, 230)
_MAP_ROUTE = (40, 90, 170)
_LIGHT_RGB = {LightState.GREEN: (0, 220, 0), LightState.YELLOW: (240, 220, 0), LightState.RED: (240, 0, 0)}
_STOP_SIGN_RGB = (255, 255, 255)
_ACTOR_RGB = {
    ActorKind.VEHICLE: (60, 160, 255),
    ActorKind.PEDESTRIAN: (255, 120, 200),
    ActorKind.STATIC: (150, 110, 70),
}
_MAP_VIEW_MAX_PX = 40_000_000


def _map_base(
    road_map: RoadMap, px_per_m: float, x0: float, y1: float, width: int, height: int
) -> Image.Image:
    """Lanes, sidewalks and lane marks of the box ``[x0, x0 + width/px_per_m] × [y1 - height/px_per_m, y1]``."""
    cv = Canvas(x0, y1, 1.0 / px_per_m, width, height, "RGB")
    cv.draw.rectangle((0, 0, width, height), fill=_MAP_BACKGROUND)
    cv.polygon(road_map.drivable_area, fill=_MAP_LANE, hole=_MAP_BACKGROUND)
    cv.polygon(road_map.sidewalk_area, fill=_MAP_SIDEWALK, hole=_MAP_BACKGROUND)
    mark_w = max(MARK_WIDTH / 2, 1.0 / px_per_m)
    for lane in road_map.driving_lanes.tolist():
        if road_map.lane_junction[lane] >= 0:
            continue
        left, right = lane_edges(road_map, lane)
        draw_mark(cv, left, int(road_map.lane_mark_left[lane]), _MAP_MARK, mark_w)
        draw_mark(cv, right, int(road_map.lane_mark_right[lane]), _MAP_MARK, mark_w)
    for ring in boundary_lines(road_map.drivable_area):
        cv.line(ring, _MAP_MARK, mark_w)
    return cv.image


def _box_corners(x: float, y: float, yaw: float, length: float, width: float) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    lon = np.array([1, 1, -1, -1]) * length / 2
    lat = np.array([1, -1, -1, 1]) * width / 2
    return np.stack([x + c * lon - s * lat, y + s * lon + c * lat], -1)


def _padded_bounds(road_map: RoadMap) -> tuple[float, float, float, float]:
    xmin, ymin, xmax, ymax = road_map.bounds
    return xmin - RASTER_MARGIN, ymin - RASTER_MARGIN, xmax + RASTER_MARGIN, ymax + RASTER_MARGIN


def _full_size(road_map: RoadMap, px_per_m: float) -> tuple[int, int]:
    xmin, ymin, xmax, ymax = _padded_bounds(road_map)
    return math.ceil((xmax - xmin) * px_per_m), math.ceil((ymax - ymin) * px_per_m)


def _cached(road_map: RoadMap, px_per_m: float) -> bool:
    full_w, full_h = _full_size(road_map, px_per_m)
    return full_w * full_h <= _MAP_VIEW_MAX_PX


def map_view_box(
    road_map: RoadMap, centre: tuple[float, float], px_per_m: float, window: float | None
) -> tuple[float, float, int, int]:
    """The box :func:`render_map_view` draws: ``(x0, y1, width, height)``, the map coordinates [m]
    of its top-left corner and its size [px], for a window of side ``window`` [m] centred on
    ``centre`` (the ego; ``None``: the whole map). A map point ``(x, y)`` lies at pixel column
    ``(x - x0) · px_per_m`` and row ``(y1 - y) · px_per_m`` (pixel edges at integers)."""
    if px_per_m <= 0:
        raise ValueError(f"px_per_m must be > 0, got {px_per_m}")
    xmin, _, _, ymax = _padded_bounds(road_map)
    if window is None:
        full_w, full_h = _full_size(road_map, px_per_m)
        return xmin, ymax, full_w, full_h
    x0, y1 = centre[0] - window / 2, centre[1] + window / 2
    width = height = math.ceil(window * px_per_m)
    if _cached(road_map, px_per_m):  # cropped from the cached whole-map picture: whole pixels
        x0 = xmin + round((x0 - xmin) * px_per_m) / px_per_m
        y1 = ymax - round((ymax - y1) * px_per_m) / px_per_m
    return x0, y1, width, height


def render_map_view(
    road_map: RoadMap,
    frame: SensorFrame,
    b: int,
    routes: RouteBatch | None,
    px_per_m: float = 4.0,
    window: float | None = None,
) -> np.ndarray:
    """A north-up RGB picture ``uint8 [H, W, 3]`` of world ``b``: lanes, sidewalks, marks, stop lines
    coloured by light state (white for stop signs), the route, actors (the ego in bright green with
    a white outline).

    ``window`` [m]: side of a square centred on the ego; ``None`` shows the whole map. The whole-map
    base picture is drawn once per ``px_per_m`` and cached in ``road_map.cache`` (per call instead
    when it would exceed 40 Mpx).
    """
    a = frame.actors
    x0, y1, width, height = map_view_box(road_map, (float(a.x[b, 0]), float(a.y[b, 0])), px_per_m, window)
    xmin, _, _, ymax = _padded_bounds(road_map)
    if _cached(road_map, px_per_m):
        key = ("map_view", float(px_per_m))
        base = road_map.cache.get(key)  # type: ignore[call-overload]
        if base is None:
            full_w, full_h = _full_size(road_map, px_per_m)
            base = _map_base(road_map, px_per_m, xmin, ymax, full_w, full_h)
            road_map.cache[key] = base  # type: ignore[index]
        left = round((x0 - xmin) * px_per_m)
        top = round((ymax - y1) * px_per_m)
        img = base.crop((left, top, left + width, top + height))  # pads outside with black
    else:
        img = _map_base(road_map, px_per_m, x0, y1, width, height)
    cv = Canvas(x0, y1, 1.0 / px_per_m, width, height, "RGB")
    cv.image, cv.draw = img, ImageDraw.Draw(img)

    # route (below the stop lines and actors)
    if routes is not None and routes.count[b] >= 2:
        n = int(routes.count[b])
        cv.line(routes.points[b, :n], _MAP_ROUTE, 1.2)
    # stop lines
    is_sign = is_stop_sign_line(road_map)
    segments = np.asarray(road_map.stop_segment, dtype=np.float64).reshape(-1, 2, 2)
    light_state = np.asarray(frame.light_state)
    for k in range(len(segments)):
        if is_sign[k]:
            colour = _STOP_SIGN_RGB
        else:
            st = int(light_state[b, k]) if k < light_state.shape[1] else -1
            colour = _LIGHT_RGB.get(LightState(st), (128, 128, 128)) if 0 <= st <= 2 else (128, 128, 128)
        cv.line(segments[k], colour, 1.0)
    # actors, ego last
    active = np.flatnonzero(np.asarray(a.active[b]))
    for i in [j for j in active.tolist() if j != 0] + ([0] if 0 in active else []):
        corners = _box_corners(
            float(a.x[b, i]),
            float(a.y[b, i]),
            float(a.yaw[b, i]),
            float(a.length[b, i]),
            float(a.width[b, i]),
        )
        pts = cv.px(corners)
        if i == 0:
            cv.draw.polygon(pts, fill=EGO_COLOUR, outline=(255, 255, 255), width=max(1, round(px_per_m / 4)))
        else:
            kind = ActorKind(int(a.kind[b, i])) if int(a.kind[b, i]) in (0, 1, 2) else ActorKind.STATIC
            cv.draw.polygon(pts, fill=_ACTOR_RGB[kind])
        # heading tick: front edge
        cv.draw.line([pts[0], pts[1]], fill=(255, 255, 255), width=1)
    return np.asarray(img.convert("RGB"))
