"""The BEV renderer: pixel geometry in closed form, static layers, lights, route, actors, history.

Default geometry: 96 × 96 px at 0.5 m/px, ego centre at continuous pixel (64, 48) facing up, so an
ego-frame point (x forward, y left) lands at row 64 - 2x, column 48 - 2y. Maps are procedural towns:
``straight`` (lane 0 drives east along y = -1.75; lanes 3.5 m wide; the road spans |y| <= 7 m),
``cross`` (signalised; the west approach drives east along y = -1.6 to a stop line at x = -10.2) and
``tee`` (the stem approach drives north along x = 1.6 to a stop-sign line at y = -10.2).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_bridge.api import ActorKind, LightState
from sim_bridge.maps.road_map import RoadMap, Route
from sim_bridge.maps.towns import make_town
from sim_bridge.routes import RouteBatch
from sim_bridge.sensors.bev import BevRenderer, StaticRaster
from sim_bridge.sensors.frame import ActorArrays, EgoKinematics, SensorFrame
from sim_bridge.sensors.layout import BevChannel, BevGeometry, RouteCommand
from sim_bridge.sensors.pictures import bev_to_rgb, render_map_view

G = BevGeometry()
EGO_ROW, EGO_COL = G.ego_row, G.ego_col  # 64, 48


@pytest.fixture(scope="module")
def straight() -> RoadMap:
    return RoadMap.from_opendrive(make_town("straight", 0), "straight")


@pytest.fixture(scope="module")
def cross() -> RoadMap:
    return RoadMap.from_opendrive(make_town("cross", 0), "cross")


@pytest.fixture(scope="module")
def tee() -> RoadMap:
    return RoadMap.from_opendrive(make_town("tee", 0), "tee")


def actors(x, y, yaw=0.0, kind=ActorKind.VEHICLE, length=4.6, width=2.0, active=True) -> ActorArrays:
    """``[B, N]`` boxes from anything that broadcasts to ``x``'s shape (slot 0 = ego)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))

    def full(v, dtype=np.float64):
        return np.broadcast_to(np.asarray(v, dtype=dtype), x.shape).copy()

    b, n = x.shape
    return ActorArrays(
        x=x, y=full(y), yaw=full(yaw), speed=full(0.0), length=full(length), width=full(width),
        kind=full(kind, np.int8), active=full(active, bool), ids=np.tile(np.arange(n, dtype=np.int32), (b, 1)),
    )  # fmt: skip


def frame_of(
    a: ActorArrays, k: int, light=LightState.GREEN, history: tuple[ActorArrays, ...] = ()
) -> SensorFrame:
    b = a.shape[0]
    light_state = np.broadcast_to(np.asarray(light, dtype=np.int8), (b, k)).copy()
    ego = EgoKinematics(np.zeros(b), np.zeros(b), np.zeros(b), np.zeros((b, 2)))
    return SensorFrame(actors=a, history=history, light_state=light_state, ego=ego)


def render(
    m: RoadMap, frame: SensorFrame, routes: RouteBatch | None = None, geometry: BevGeometry = G, **kw
) -> np.ndarray:
    routes = routes or RouteBatch(frame.actors.shape[0])
    return BevRenderer(m, geometry, **kw).render(frame, routes)


def centroid(plane: np.ndarray) -> tuple[float, float]:
    """Mean continuous (row, col) of the set pixels' centres."""
    rows, cols = np.nonzero(plane)
    assert len(rows), "no pixel set"
    return float(rows.mean() + 0.5), float(cols.mean() + 0.5)


# ------------------------------------------------------------------------------- pixel geometry


def test_car_ahead_and_left_closed_form(straight: RoadMap) -> None:
    a = actors([[100.0, 110.0], [100.0, 100.0]], [[-1.75, -1.75], [-1.75, 3.25]])
    bev = render(straight, frame_of(a, 0))
    assert bev.shape == (2, G.num_channels, 96, 96) and bev.dtype == np.uint8
    assert set(np.unique(bev)) <= {0, 255}
    # 10 m ahead: 20 px above the ego; a 4.6 x 2 m box covers 10 rows x 4 columns of pixel centres
    assert centroid(bev[0, BevChannel.VEHICLES]) == pytest.approx((EGO_ROW - 20, EGO_COL), abs=1e-9)
    assert (bev[0, BevChannel.VEHICLES] > 0).sum() == 40
    # 5 m to the left: 10 px left
    assert centroid(bev[1, BevChannel.VEHICLES]) == pytest.approx((EGO_ROW, EGO_COL - 10), abs=1e-9)
    # the ego itself (slot 0, at rows 59..68, columns 46..49) is never drawn
    assert not bev[0, BevChannel.VEHICLES, 50:80].any()


def test_ego_heading_turns_the_picture(straight: RoadMap) -> None:
    # ego facing north; a car 10 m to its east is 10 m to its right: 20 px right of the ego
    a = actors([[100.0, 110.0]], [[-1.75, -1.75]], yaw=[[math.pi / 2, 0.0]])
    bev = render(straight, frame_of(a, 0))
    r, c = centroid(bev[0, BevChannel.VEHICLES])
    assert (r, c) == pytest.approx((EGO_ROW, EGO_COL + 20), abs=1e-9)
    # and the box lies across the picture (its length along the columns)
    rows, cols = np.nonzero(bev[0, BevChannel.VEHICLES])
    assert np.ptp(cols) > np.ptp(rows)


@settings(max_examples=25, deadline=None)
@given(st.floats(-math.pi, math.pi), st.integers(0, 2**31 - 1))
def test_rotating_the_scene_about_the_ego_gives_the_same_bev(angle: float, seed: int) -> None:
    m = _map("straight")
    rng = np.random.default_rng(seed)
    n = 12
    ex, ey, eyaw = 100.0, -1.75, float(rng.uniform(-math.pi, math.pi))
    rel = rng.uniform(-20, 20, (n, 2))
    yaw = rng.uniform(-math.pi, math.pi, n)
    kind = rng.integers(0, 3, n)
    route_pts = np.stack([np.linspace(-20, 40, 61), 3.0 * np.sin(np.linspace(0, 3, 61))], -1)

    def scene(theta: float) -> tuple[SensorFrame, RouteBatch]:
        c, s = math.cos(theta), math.sin(theta)
        rot = np.array([[c, -s], [s, c]])
        p = rel @ rot.T
        x = np.concatenate([[ex], ex + p[:, 0]])[None]
        y = np.concatenate([[ey], ey + p[:, 1]])[None]
        a = actors(
            x, y, yaw=np.concatenate([[eyaw], yaw])[None] + theta, kind=np.concatenate([[0], kind])[None]
        )
        pts = route_pts @ np.array([[math.cos(eyaw), -math.sin(eyaw)], [math.sin(eyaw), math.cos(eyaw)]]).T
        pts = pts @ rot.T + [ex, ey]
        seg = np.hypot(*np.diff(pts, axis=0).T)
        s_ = np.concatenate([[0.0], np.cumsum(seg)])
        z = np.zeros(len(pts), dtype=np.int64)
        routes = RouteBatch(1)
        routes.set(0, Route(np.array([0]), pts, np.zeros(len(pts)), s_, z, z.astype(np.int8)), m)
        routes.update(np.array([[ex, ey]]))
        return frame_of(a, len(m.stop_lane)), routes

    base = render(m, *scene(0.0))[0]
    turned = render(m, *scene(angle))[0]
    for ch in (BevChannel.VEHICLES, BevChannel.PEDESTRIANS, BevChannel.STATIC, BevChannel.ROUTE):
        differ = (base[ch] != turned[ch]).sum()
        edge = max(12, 0.06 * (base[ch] > 0).sum())  # pixel centres on a box edge may flip
        assert differ <= edge, (ch.name, differ)


_MAPS: dict[str, RoadMap] = {}


def _map(name: str) -> RoadMap:  # hypothesis tests cannot take function-scoped fixtures
    if name not in _MAPS:
        _MAPS[name] = RoadMap.from_opendrive(make_town(name, 0), name)
    return _MAPS[name]


@settings(max_examples=60, deadline=None)
@given(
    st.floats(-15.5, 31.5), st.floats(-23.5, 23.5), st.floats(-math.pi, math.pi), st.floats(-math.pi, math.pi)
)
def test_pedestrians_always_visible(xe: float, ye: float, ego_yaw: float, yaw: float) -> None:
    """A 0.5 m pedestrian anywhere in view (ego frame ``xe, ye``) is drawn centred on its place: as
    its true box (1-4 pixels) with ``pedestrian_size=0``, and at least 1.5 m wide by default (a
    3 px square, 5-16 pixels as it turns), so that it survives a world model's pooling."""
    c_, s_ = math.cos(ego_yaw), math.sin(ego_yaw)
    dx, dy = c_ * xe - s_ * ye, s_ * xe + c_ * ye
    a = actors([[100.0, 100.0 + dx]], [[0.0, dy]], yaw=[[ego_yaw, yaw]], kind=[[0, 1]], length=0.5, width=0.5)
    for geometry, lo, hi in ((BevGeometry(pedestrian_size=0.0), 1, 4), (G, 5, 16)):
        bev = render(_map("straight"), frame_of(a, 0), geometry=geometry)
        plane = bev[0, BevChannel.PEDESTRIANS]
        assert lo <= (plane > 0).sum() <= hi
        r, c = centroid(plane)
        assert abs(r - (EGO_ROW - 2 * xe)) <= 1.0 and abs(c - (EGO_COL - 2 * ye)) <= 1.0


def test_inactive_actors_and_kinds(straight: RoadMap) -> None:
    a = actors(
        [[100.0, 110.0, 90.0, 105.0]],
        [[-1.75, -1.75, -5.25, 1.75]],
        kind=[[0, 0, 2, 1]],
        active=[[True, False, True, True]],
    )
    bev = render(straight, frame_of(a, 0))[0]
    assert not bev[BevChannel.VEHICLES].any()  # the only other vehicle is inactive
    assert centroid(bev[BevChannel.STATIC]) == pytest.approx((EGO_ROW + 20, EGO_COL + 7), abs=1e-9)
    assert bev[BevChannel.PEDESTRIANS].any()


# ------------------------------------------------------------------------------- static layers


def test_drivable_and_lane_marks_on_straight_road(straight: RoadMap) -> None:
    bev = render(straight, frame_of(actors([[100.0]], [[-1.75]]), 0))[0]
    drivable = bev[BevChannel.DRIVABLE]
    assert drivable[62:66, 46:50].all()  # under the ego
    assert not drivable[:, 8].any() and not drivable[:, 88].any()  # 20 m to either side
    # the road spans y in [-7, 7]: columns 48 - 2 (y + 1.75), i.e. 30.5 .. 58.5
    assert drivable[:, 31:58].all() and not drivable[:, :30].any() and not drivable[:, 60:].any()
    marks = bev[BevChannel.LANE_BOUNDARY] > 0
    assert marks[:, 44].mean() > 0.95  # solid centre line y = 0 at column 44.5
    assert 0.3 < marks[:, 51].mean() < 0.7  # broken line y = -3.5 at column 51.5: 3 m on, 3 m off
    assert marks[:, 58].mean() > 0.95  # solid outer edge y = -7 at column 58.5
    assert not marks[:, 47:50].any()  # nothing inside the lane
    assert (
        not bev[BevChannel.STOP_SIGN].any()
        and not bev[BevChannel.LIGHT_RED : BevChannel.LIGHT_GREEN + 1].any()
    )


def test_static_raster_cached_once_per_map(straight: RoadMap) -> None:
    BevRenderer(straight, G)
    raster = straight.cache[("bev_static", 0.25)]  # type: ignore[index]
    assert isinstance(raster, StaticRaster)
    assert BevRenderer(straight, BevGeometry(size=64)).raster is raster
    assert raster.bits.dtype == np.uint8 and raster.light.dtype == np.int16


def test_off_the_map_is_empty(straight: RoadMap) -> None:
    bev = render(straight, frame_of(actors([[5000.0]], [[-3000.0]]), 0))[0]
    assert not bev.any()


def test_light_channels_follow_light_state(cross: RoadMap) -> None:
    k = len(cross.stop_lane)
    a = actors([[-20.0], [-20.0], [-20.0]], [[-1.6], [-1.6], [-1.6]])
    states = [LightState.GREEN, LightState.YELLOW, LightState.RED]
    bev = render(cross, frame_of(a, k, np.array(states)[:, None]))
    channel = {
        LightState.GREEN: BevChannel.LIGHT_GREEN,
        LightState.YELLOW: BevChannel.LIGHT_YELLOW,
        LightState.RED: BevChannel.LIGHT_RED,
    }
    for b, state in enumerate(states):
        for st_, ch in channel.items():
            assert bev[b, ch].any() == (st_ == state), (state.name, ch.name)
    # one line red, the others green: the red line is the one 9.8 m ahead across the ego's lane
    line = int(np.flatnonzero(np.abs(cross.stop_segment[:, :, 0] + 10.2).max(1) < 0.2)[0])
    light = np.full((1, k), LightState.GREEN, dtype=np.int8)
    light[0, line] = LightState.RED
    bev = render(cross, frame_of(actors([[-20.0]], [[-1.6]]), k, light))[0]
    r, c = centroid(bev[BevChannel.LIGHT_RED])
    assert r == pytest.approx(EGO_ROW - 2 * 9.8, abs=1.0) and c == pytest.approx(EGO_COL, abs=1.5)
    assert bev[BevChannel.LIGHT_GREEN].any() and not bev[BevChannel.STOP_SIGN].any()
    rows, _ = np.nonzero(bev[BevChannel.LIGHT_RED])
    assert 1 <= np.ptp(rows) + 1 <= 3  # a line about 0.75 m thick


def test_stop_sign_channel(tee: RoadMap) -> None:
    a = actors([[1.6]], [[-20.0]], yaw=[[math.pi / 2]])
    bev = render(tee, frame_of(a, len(tee.stop_lane), LightState.RED))[0]
    r, c = centroid(bev[BevChannel.STOP_SIGN])
    assert r == pytest.approx(EGO_ROW - 2 * 9.8, abs=1.0) and c == pytest.approx(EGO_COL, abs=1.5)
    assert not bev[BevChannel.LIGHT_RED : BevChannel.LIGHT_GREEN + 1].any()  # a sign is not a light


# ------------------------------------------------------------------------------- route, history, batch


def test_route_band_along_the_route(straight: RoadMap) -> None:
    routes = RouteBatch(1)
    routes.set(0, straight.route(np.array([[10.0, -1.75], [250.0, -1.75]])), straight)
    routes.update(np.array([[100.0, -1.75]]))
    bev = render(straight, frame_of(actors([[100.0]], [[-1.75]]), 0), routes)[0]
    band = bev[BevChannel.ROUTE] > 0
    # 3 m wide (columns 45..50 hold centres within 1.5 m), from 8 m behind to the top of the image
    assert band[:, 45:51].all(axis=1).sum() >= 64 + 16
    assert not band[:, :44].any() and not band[:, 52:].any()
    # 8 m behind plus the band's round end (1.5 m): rows up to 64 + 16 + 3
    assert band[0].any() and band[79].any() and not band[84:].any()
    # the route turns: a left turn at the cross shows the band bending left above the junction
    cross = _map("cross")
    turn = cross.route(np.array([[-60.0, -1.6], [1.6, 60.0]]))
    assert RouteCommand.LEFT in set(turn.commands.tolist())
    routes.set(0, turn, cross)
    routes.update(np.array([[-15.0, -1.6]]))
    bev = render(cross, frame_of(actors([[-15.0]], [[-1.6]]), len(cross.stop_lane)), routes)[0]
    band = bev[BevChannel.ROUTE] > 0
    # north is to the left of an ego driving east: the band leaves the picture on the left edge
    assert band[: int(EGO_ROW) - 10, 0].any() and not band[:10].any() and not band[:, 60:].any()


def test_history_channels_show_earlier_positions(straight: RoadMap) -> None:
    g = BevGeometry(history=2)
    now = actors(
        [[100.0, 110.0, 100.0]],
        [[-1.75, -1.75, 3.25]],
        kind=[[0, 0, 1]],
        length=[[4.6, 4.6, 0.5]],
        width=[[2, 2, 0.5]],
    )
    before = actors(
        [[98.0, 107.0, 100.0]],
        [[-1.75, -1.75, 2.25]],
        kind=[[0, 0, 1]],
        length=[[4.6, 4.6, 0.5]],
        width=[[2, 2, 0.5]],
    )
    earlier = actors(
        [[96.0, 104.0, 100.0]],
        [[-1.75, -1.75, 1.25]],
        kind=[[0, 0, 1]],
        length=[[4.6, 4.6, 0.5]],
        width=[[2, 2, 0.5]],
    )
    bev = render(straight, frame_of(now, 0, history=(before, earlier)), geometry=g)[0]
    assert bev.shape[0] == len(BevChannel) + 4
    base = len(BevChannel)
    # drawn relative to the *current* ego pose (x = 100): the car was 7 m then 4 m ahead of it
    assert centroid(bev[base + 0]) == pytest.approx((EGO_ROW - 14, EGO_COL), abs=1e-9)
    assert centroid(bev[base + 2]) == pytest.approx((EGO_ROW - 8, EGO_COL), abs=1e-9)
    # the pedestrian was 4 m, then 3 m left of the ego (y = 2.25, then 1.25)
    assert centroid(bev[base + 1])[1] == pytest.approx(EGO_COL - 8, abs=1.0)
    assert centroid(bev[base + 3])[1] == pytest.approx(EGO_COL - 6, abs=1.0)
    # a frame with fewer history entries repeats the oldest one
    short = render(straight, frame_of(now, 0, history=(before,)), geometry=g)[0]
    np.testing.assert_array_equal(short[base + 2], short[base + 0])


def test_batch_equals_worlds_stacked(cross: RoadMap) -> None:
    rng = np.random.default_rng(3)
    b, n, k = 10, 9, len(cross.stop_lane)
    ego = np.array(
        [[-20.0, -1.6, 0.0], [1.6, -30.0, math.pi / 2], [20.0, 1.6, math.pi], [-1.6, 15.0, -math.pi / 2]]
    )
    ego = ego[rng.integers(0, 4, b)] + rng.normal(0, 0.5, (b, 3))
    x = np.concatenate([ego[:, :1], ego[:, :1] + rng.uniform(-25, 25, (b, n - 1))], 1)
    y = np.concatenate([ego[:, 1:2], ego[:, 1:2] + rng.uniform(-25, 25, (b, n - 1))], 1)
    yaw = np.concatenate([ego[:, 2:], rng.uniform(-3, 3, (b, n - 1))], 1)
    a = actors(x, y, yaw=yaw, kind=rng.integers(0, 3, (b, n)), active=rng.random((b, n)) < 0.8)
    light = rng.integers(0, 3, (b, k))
    routes = RouteBatch(b)
    for w in range(0, b, 2):
        routes.set(w, cross.route(np.array([[-60.0, -1.6], [60.0, -1.6]])), cross)
    routes.update(ego[:, :2])
    renderer = BevRenderer(cross, G)
    batch = renderer.render(frame_of(a, k, light), routes)
    for w in range(b):
        one = ActorArrays(*(getattr(a, f)[w : w + 1] for f in ActorArrays.__dataclass_fields__))
        single = RouteBatch(1)
        if w % 2 == 0:
            single.set(0, cross.route(np.array([[-60.0, -1.6], [60.0, -1.6]])), cross)
        single.update(ego[w : w + 1, :2])
        alone = BevRenderer(cross, G).render(frame_of(one, k, light[w : w + 1]), single)
        np.testing.assert_array_equal(batch[w], alone[0])


def test_thread_pool_renders_identical_pixels(straight: RoadMap) -> None:
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(3)
    xs = rng.uniform(80.0, 220.0, size=(9, 6))
    ys = rng.uniform(-6.0, 6.0, size=(9, 6))
    frame = frame_of(actors(xs, ys), 0)
    routes = RouteBatch(9)
    serial = BevRenderer(straight, G).render(frame, routes)
    with ThreadPoolExecutor(2) as pool:
        threaded = BevRenderer(straight, G, pool=pool).render(frame, routes)
    np.testing.assert_array_equal(serial, threaded)
    assert serial[:, BevChannel.VEHICLES].any()


def test_out_buffer_and_errors(straight: RoadMap) -> None:
    frame = frame_of(actors([[100.0, 105.0]], [[-1.75, -1.75]]), 0)
    renderer = BevRenderer(straight, G)
    out = np.full((1, G.num_channels, 96, 96), 7, dtype=np.uint8)
    assert renderer.render(frame, RouteBatch(1), out) is out
    np.testing.assert_array_equal(out, renderer.render(frame, RouteBatch(1)))
    with pytest.raises(ValueError, match="C-contiguous uint8"):
        renderer.render(frame, RouteBatch(1), np.zeros((1, 3, 96, 96), np.uint8))
    with pytest.raises(ValueError, match="routes hold 2 worlds"):
        renderer.render(frame, RouteBatch(2))


# ------------------------------------------------------------------------------- pictures


def test_pictures(cross: RoadMap) -> None:
    a = actors([[-20.0, -10.0, -25.0]], [[-1.6, -1.6, 3.0]], kind=[[0, 0, 1]])
    frame = frame_of(a, len(cross.stop_lane), LightState.RED)
    routes = RouteBatch(1)
    routes.set(0, cross.route(np.array([[-60.0, -1.6], [1.6, 60.0]])), cross)
    routes.update(np.array([[-20.0, -1.6]]))
    bev = render(cross, frame, routes)
    rgb = bev_to_rgb(bev[0])
    assert rgb.shape == (96, 96, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[63, 48]) == (0, 255, 120)  # the ego box
    assert (rgb == (240, 0, 0)).all(-1).any()  # the red stop line
    view = render_map_view(cross, frame, 0, routes, px_per_m=2.0)
    xmin, ymin, xmax, ymax = cross.bounds
    assert view.shape == (math.ceil((ymax - ymin + 10) * 2), math.ceil((xmax - xmin + 10) * 2), 3)
    assert (view == (0, 255, 120)).all(-1).any()
    window = render_map_view(cross, frame, 0, routes, px_per_m=4.0, window=40.0)
    assert window.shape == (160, 160, 3)
    assert (window[75:85, 75:85] == (0, 255, 120)).all(-1).any()  # the ego at the centre


# ------------------------------------------------------------------------------- real maps

SHARED_MAPS = Path(__file__).resolve().parents[2] / "shared" / "maps"
REAL_MAPS = [
    "fabriksgatan",
    "highway_example_with_merge_and_split",
    "multi_lane_3way_intersection",
    "simple_4way_intersection",
    "star",
]


@pytest.mark.parametrize("name", REAL_MAPS)
def test_drivable_channel_agrees_with_map_lookup(name: str) -> None:
    """On maps nobody here drew, the DRIVABLE channel matches ``RoadMap.on_drivable`` (a separate
    0.1 m raster) at the pixel centres away from the area's edge, for egos on random lanes and
    headings."""
    path = SHARED_MAPS / f"{name}.xodr"
    if not path.exists():
        pytest.skip(f"shared OpenDRIVE maps not found at {SHARED_MAPS} (they live outside the repository)")
    m = RoadMap.from_opendrive(path.read_text(encoding="utf-8"), name)
    rng = np.random.default_rng(0)
    lanes, s = m.spawn_points(spacing=10.0, margin=1.0)
    pick = rng.integers(len(lanes), size=6)
    xy, _ = m.pose_at(lanes[pick], s[pick])
    yaw = rng.uniform(-math.pi, math.pi, 6)
    bev = render(m, frame_of(actors(xy[:, :1], xy[:, 1:], yaw=yaw[:, None]), len(m.stop_lane)))
    r, c = np.meshgrid(np.arange(96) + 0.5, np.arange(96) + 0.5, indexing="ij")
    xe, ye = (EGO_ROW - r) * G.resolution, (EGO_COL - c) * G.resolution
    for b in range(6):
        cy, sy = math.cos(yaw[b]), math.sin(yaw[b])
        pts = np.stack([xy[b, 0] + cy * xe - sy * ye, xy[b, 1] + sy * xe + cy * ye], -1)
        want = m.on_drivable(pts.reshape(-1, 2)).reshape(96, 96)
        got = bev[b, BevChannel.DRIVABLE] > 0
        # pixels away from the area's edge: their 3 x 3 neighbourhood is all in or all out
        pad = np.pad(want, 1, mode="edge")
        nbhd = np.stack([pad[i : i + 96, j : j + 96] for i in range(3) for j in range(3)])
        interior = nbhd.all(0) | ~nbhd.any(0)
        assert (got != want)[interior].mean() < 0.002, (name, b, (got != want)[interior].mean())
        assert bev[b, BevChannel.LANE_BOUNDARY].any()
