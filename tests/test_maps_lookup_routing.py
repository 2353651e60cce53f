"""Lane lookups (pose_at, project, on_drivable, spawn_points) and routing on small closed-form maps
written with scenariogeneration and on the five real maps in ``../shared/maps``."""

from __future__ import annotations

import functools
import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from scenariogeneration import xodr

from sim_bridge.maps import LaneType, MapError, RoadMap
from sim_bridge.maps.lookup import lane_candidates
from sim_bridge.maps.opendrive import load_opendrive
from sim_bridge.sensors.layout import RouteCommand

SHARED_MAPS = Path(__file__).resolve().parents[2] / "shared" / "maps"
REAL_MAPS = (
    "fabriksgatan",
    "highway_example_with_merge_and_split",
    "multi_lane_3way_intersection",
    "simple_4way_intersection",
    "star",
)


def _text(odr: xodr.OpenDrive) -> str:
    odr.adjust_roads_and_lanes()
    return ET.tostring(odr.get_element(), encoding="unicode")


@functools.cache
def straight_map() -> RoadMap:
    """One 200 m road along +x from the origin, two 3.5 m lanes each way."""
    odr = xodr.OpenDrive("straight")
    odr.add_road(xodr.create_road(xodr.Line(200), id=0, left_lanes=2, right_lanes=2, lane_width=3.5))
    return load_opendrive(_text(odr), "straight")


@functools.cache
def loop_map() -> RoadMap:
    """Two half circles of radius 50 m joined into a one-way ring (one 3.5 m lane, counter-clockwise)."""
    a = xodr.create_road(xodr.Arc(0.02, angle=np.pi), id=1, left_lanes=0, right_lanes=1, lane_width=3.5)
    b = xodr.create_road(xodr.Arc(0.02, angle=np.pi), id=2, left_lanes=0, right_lanes=1, lane_width=3.5)
    a.add_successor(xodr.ElementType.road, 2, xodr.ContactPoint.start)
    b.add_predecessor(xodr.ElementType.road, 1, xodr.ContactPoint.end)
    b.add_successor(xodr.ElementType.road, 1, xodr.ContactPoint.start)
    a.add_predecessor(xodr.ElementType.road, 2, xodr.ContactPoint.end)
    odr = xodr.OpenDrive("loop")
    odr.add_road(a)
    odr.add_road(b)
    return load_opendrive(_text(odr), "loop")


@functools.cache
def real_map(name: str) -> RoadMap:
    if not SHARED_MAPS.is_dir():
        pytest.skip(f"the shared real maps are not here ({SHARED_MAPS} is missing)")
    return load_opendrive((SHARED_MAPS / f"{name}.xodr").read_text(), name)


def key_index(m: RoadMap, key: tuple[int, int, int]) -> int:
    return m.lane_keys.index(key)


# --------------------------------------------------------------------------------------- pose_at


def test_pose_at_closed_form_on_a_straight_road():
    m = straight_map()
    east, west = key_index(m, (0, 0, -1)), key_index(m, (0, 0, 1))
    xy, yaw = m.pose_at(np.array([east, west]), np.array([50.0, 50.0]), np.array([0.5, 0.5]))
    # lane s starts 1 mm inside the road; + lateral is left of the driving direction
    np.testing.assert_allclose(xy, [[50.001, -1.25], [149.999, 1.25]], atol=1e-6)
    np.testing.assert_allclose(yaw, [0.0, math.pi], atol=1e-9)
    # s is clipped to the lane; shapes broadcast
    xy, _ = m.pose_at(np.array([east, east]), np.array([-5.0, 1e4]))
    np.testing.assert_allclose(xy[:, 0], [0.001, 199.999], atol=1e-6)
    xy, yaw = m.pose_at(east, np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert xy.shape == (2, 2, 2) and yaw.shape == (2, 2)


def test_pose_at_on_a_circle():
    """Lane -1 of the ring lies 1.75 m outside the radius-50 reference circle."""
    m = loop_map()
    lane = key_index(m, (1, 0, -1))
    s = np.linspace(0.0, m.lane_length[lane], 37)
    xy, yaw = m.pose_at(np.full(s.size, lane), s)
    r = np.hypot(xy[:, 0], xy[:, 1] - 50.0)
    np.testing.assert_allclose(r, 51.75, atol=3e-3)  # chords of 1 m sag 2.4 mm on this radius
    # counter-clockwise: heading = polar angle + pi/2
    polar = np.arctan2(xy[:, 1] - 50.0, xy[:, 0])
    np.testing.assert_allclose(np.cos(yaw - polar - np.pi / 2), 1.0, atol=1e-5)
    assert m.lane_length[lane] == pytest.approx(np.pi * 51.75, rel=1e-4)


# --------------------------------------------------------------------------------------- project


def test_project_closed_form_on_a_straight_road():
    m = straight_map()
    east, west = key_index(m, (0, 0, -1)), key_index(m, (0, 0, 1))
    pr = m.project(np.array([[100.0, -3.0], [100.0, 1.0], [100.0, 30.0]]), np.array([0.1, 0.0, 0.0]))
    assert pr.lane.tolist() == [east, west, -1]
    np.testing.assert_allclose(pr.s[:2], [99.999, 99.999], atol=1e-6)
    np.testing.assert_allclose(pr.lateral[:2], [-1.25, 0.75], atol=1e-9)
    np.testing.assert_allclose(pr.heading_error[:2], [0.1, math.pi], atol=1e-9)
    np.testing.assert_allclose(pr.distance, [1.25, 0.75, np.inf])
    assert pr.inside.tolist() == [True, True, False]
    # beyond the lane's end: still the nearest lane within max_distance, not inside, distance to the end
    pr = m.project(np.array([[203.0, -1.75]]), max_distance=5.0)
    assert pr.lane[0] == east and not pr.inside[0]
    assert pr.distance[0] == pytest.approx(3.001, abs=1e-4) and pr.s[0] == pytest.approx(m.lane_length[east])


def test_project_wrong_way_car_stays_on_its_lane():
    """A car inside the westbound lane heading east projects onto that lane, heading error pi."""
    m = straight_map()
    pr = m.project(np.array([[60.0, 2.0]]), np.array([0.0]))
    assert pr.lane[0] == key_index(m, (0, 0, 1)) and pr.inside[0]
    assert abs(pr.heading_error[0]) == pytest.approx(math.pi)


def test_project_yaw_picks_among_overlapping_junction_lanes():
    m = real_map("simple_4way_intersection")
    left, straight = key_index(m, (102, 0, -1)), key_index(m, (101, 0, -1))
    # a point on the left-turn lane 7 m in, which the straight lane (0.76 m away) also covers
    xy, yaw_left = m.pose_at(np.array([left]), np.array([7.0]))
    both = lane_candidates(m, xy[0])
    assert {left, straight} <= set(both.lane[both.inside].tolist())
    assert m.project(xy, yaw=yaw_left).lane[0] == left
    assert m.project(xy, yaw=np.array([0.0])).lane[0] == straight  # heading east: going straight
    assert m.project(xy).lane[0] == left  # no yaw: the nearest centreline


@settings(max_examples=60, deadline=None)
@given(
    name=st.sampled_from(REAL_MAPS),
    pick=st.floats(0.0, 1.0, exclude_max=True),
    frac=st.floats(0.0, 1.0),
    side=st.floats(-0.45, 0.45),
    with_yaw=st.booleans(),
)
def test_project_inverts_pose_at_on_real_maps(name, pick, frac, side, with_yaw):
    m = real_map(name)
    lanes = m.driving_lanes
    lane = int(lanes[int(pick * lanes.size)])
    s = frac * m.lane_length[lane]
    xy, yaw = m.pose_at(np.array([lane]), np.array([s]))
    width = float(np.interp(s, m.s[m.point_lane == lane], m.widths[m.point_lane == lane]))
    lateral = side * width
    xy, yaw = m.pose_at(np.array([lane]), np.array([s]), np.array([lateral]))
    pr = m.project(xy, yaw if with_yaw else None)
    assert pr.lane[0] >= 0
    if pr.lane[0] == lane:
        assert pr.s[0] == pytest.approx(s, abs=1e-6)
        assert pr.lateral[0] == pytest.approx(lateral, abs=1e-6)
    else:
        # another lane covering the same spot (junction lanes, merges, overlapping roads)
        assert pr.inside[0] or width < 0.2
    back, _ = m.pose_at(pr.lane, pr.s, pr.lateral)
    np.testing.assert_allclose(back, xy, atol=1e-6)


def test_project_onto_sidewalks():
    m = real_map("fabriksgatan")
    walk = m.sidewalk_lanes[0]
    xy, _ = m.pose_at(np.array([walk]), np.array([5.0]), np.array([0.3]))
    pr = m.project(xy, lane_types=(LaneType.SIDEWALK,))
    assert pr.lane[0] == walk and pr.lateral[0] == pytest.approx(0.3, abs=1e-6) and pr.inside[0]
    on_road = m.project(xy)  # the nearest driving lane, a border and a half-lane away
    assert on_road.lane[0] >= 0 and not on_road.inside[0] and m.lane_type[on_road.lane[0]] == LaneType.DRIVING


def test_project_is_vectorised_and_handles_empty_input():
    m = straight_map()
    pr = m.project(np.zeros((0, 2)))
    assert pr.lane.shape == (0,)
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(0, 200, 500), rng.uniform(-7, 7, 500)])
    pr = m.project(pts)
    one = [m.project(p[None]).lane[0] for p in pts[:20]]
    assert pr.lane[:20].tolist() == one
    assert (pr.lane >= 0).all()
    bad = m.project(np.array([[np.nan, 0.0], [100.0, -1.0], [np.inf, 3.0]]))
    assert bad.lane.tolist() == [-1, key_index(m, (0, 0, -1)), -1] and np.isinf(bad.distance[[0, 2]]).all()
    assert m.on_drivable(np.array([[np.nan, 0.0], [100.0, -1.0]])).tolist() == [False, True]


# ------------------------------------------------------------------------------------ drivable


@pytest.mark.parametrize("name", REAL_MAPS)
def test_drivable_raster_agrees_with_the_area(name):
    m = real_map(name)
    rng = np.random.default_rng(7)
    x0, y0, x1, y1 = m.bounds
    pts = np.column_stack([rng.uniform(x0 - 5, x1 + 5, 20000), rng.uniform(y0 - 5, y1 + 5, 20000)])
    away = shapely.distance(m.drivable_area.boundary, shapely.points(pts)) > 0.15
    exact = shapely.contains_xy(m.drivable_area, pts[:, 0], pts[:, 1])
    raster = m.on_drivable(pts)
    assert exact[away].any() and not exact[away].all()
    np.testing.assert_array_equal(raster[away], exact[away])
    # shape [..., 2] → [...]; far away is off
    assert m.on_drivable(pts.reshape(100, 200, 2)).shape == (100, 200)
    assert not m.on_drivable(np.array([x1 + 1e4, y1 + 1e4])).item()


def test_drivable_raster_closed_form():
    m = straight_map()
    pts = np.array([[100.0, 6.85], [100.0, 7.15], [100.0, -6.85], [100.0, -7.15], [-0.2, 0.0], [0.2, 0.0]])
    assert m.on_drivable(pts).tolist() == [True, False, True, False, False, True]


# --------------------------------------------------------------------------------------- spawns


def test_spawn_points_closed_form():
    m = straight_map()
    lanes, s = m.spawn_points(spacing=10.0, margin=5.0)
    assert len(lanes) == 4 * 19  # s = 5, 15, ..., 185 on each 199.998 m lane (195 is too near its end)
    for lane in range(4):
        np.testing.assert_allclose(s[lanes == lane], np.arange(5.0, 186.0, 10.0))
    assert m.spawn_points(spacing=10.0, margin=100.0)[0].size == 0


@pytest.mark.parametrize("name", REAL_MAPS)
def test_spawn_points_on_real_maps(name):
    m = real_map(name)
    lanes, s = m.spawn_points(spacing=7.0, margin=3.0)
    assert lanes.size > 0
    assert (m.lane_type[lanes] == LaneType.DRIVING).all() and (m.lane_junction[lanes] == -1).all()
    assert (s >= 3.0).all() and (s <= m.lane_length[lanes] - 3.0 + 1e-9).all()


# --------------------------------------------------------------------------------------- routing


def check_route(m: RoadMap, route) -> None:
    """Continuous, consistent, and following successor or lane-change edges."""
    gaps = np.hypot(*np.diff(route.points, axis=0).T)
    assert gaps.max() <= 1.5
    np.testing.assert_allclose(route.s, np.concatenate([[0.0], np.cumsum(gaps)]))
    assert len(route.points) == len(route.headings) == len(route.point_lane) == len(route.commands)
    for a, b in zip(route.lanes[:-1], route.lanes[1:]):
        assert m.graph.has_edge(int(a), int(b)), (m.lane_keys[a], m.lane_keys[b])
    assert set(route.point_lane.tolist()) <= set(route.lanes.tolist())
    # headings follow the polyline
    d = np.diff(route.points, axis=0)
    ok = np.hypot(*d.T) > 0.2
    err = np.angle(np.exp(1j * (np.arctan2(d[ok, 1], d[ok, 0]) - route.headings[:-1][ok])))
    assert np.abs(err).max() < 0.3


def test_route_along_one_lane():
    m = straight_map()
    r = m.route(np.array([[10.0, -1.75], [150.0, -1.75]]))
    check_route(m, r)
    assert r.lanes.tolist() == [key_index(m, (0, 0, -1))]
    assert r.length == pytest.approx(140.0, abs=1e-6)
    assert (r.commands == RouteCommand.LANE_FOLLOW).all()
    np.testing.assert_allclose(r.points[[0, -1]], [[10.0, -1.75], [150.0, -1.75]], atol=1e-6)


def test_route_with_a_lane_change():
    m = straight_map()
    r = m.route(np.array([[10.0, -1.75], [150.0, -5.25]]))
    check_route(m, r)
    assert r.lanes.tolist() == [key_index(m, (0, 0, -1)), key_index(m, (0, 0, -2))]
    change = r.commands == RouteCommand.CHANGE_LANE_RIGHT
    # blended over 20 m from the start, linearly across 3.5 m
    xs = r.points[change, 0]
    assert xs.min() == pytest.approx(10.0, abs=1e-6) and xs.max() == pytest.approx(30.0, abs=1e-6)
    np.testing.assert_allclose(r.points[change, 1], -1.75 - 3.5 * (xs - 10.0) / 20.0, atol=1e-6)
    assert (r.commands[~change] == RouteCommand.LANE_FOLLOW).all()
    assert r.points[-1] == pytest.approx([150.0, -5.25])


def test_route_behind_on_a_loop_goes_round():
    m = loop_map()
    lane = key_index(m, (1, 0, -1))
    xy, yaw = m.pose_at(np.array([lane, lane]), np.array([100.0, 50.0]))
    r = m.route(xy, start_yaw=float(yaw[0]))
    check_route(m, r)
    assert r.lanes.tolist() == [lane, key_index(m, (2, 0, -1)), lane]
    assert r.length == pytest.approx(2 * np.pi * 51.75 - 50.0, abs=0.05)


def test_route_through_a_junction_has_turn_commands():
    m = real_map("simple_4way_intersection")
    start, _ = m.pose_at(np.array([key_index(m, (0, 0, -1))]), np.array([20.0]))
    goal, _ = m.pose_at(np.array([key_index(m, (3, 0, -1))]), np.array([50.0]))
    r = m.route(np.concatenate([start, goal]))
    check_route(m, r)
    assert [m.lane_keys[i] for i in r.lanes] == [(0, 0, -1), (102, 0, -1), (3, 0, -1)]
    on_turn = r.point_lane == key_index(m, (102, 0, -1))
    assert (r.commands[on_turn] == RouteCommand.LEFT).all()
    assert (r.commands[~on_turn] == RouteCommand.LANE_FOLLOW).all()


@pytest.mark.parametrize("name", REAL_MAPS)
def test_route_between_far_apart_points_on_real_maps(name):
    """The ends of a long seeded random walk are joined by a planned route that is no longer."""
    m = real_map(name)
    rng = np.random.default_rng(3)
    best = None
    for lane in m.driving_lanes[(m.lane_junction[m.driving_lanes] < 0)]:
        walk = m.random_route(int(lane), 1.0, 1000.0, rng)
        gap = np.hypot(*(walk.points[-1] - walk.points[0]))
        if best is None or gap > best[0]:
            best = (gap, walk)
    gap, walk = best
    assert gap > 40.0
    check_route(m, walk)
    r = m.route(walk.points[[0, -1]], start_yaw=float(walk.headings[0]))
    check_route(m, r)
    assert r.length <= walk.length + 1.0
    np.testing.assert_allclose(r.points[[0, -1]], walk.points[[0, -1]], atol=1e-6)


def test_route_errors_name_the_problem():
    m = straight_map()
    with pytest.raises(MapError, match=r"waypoint 1 at \(100\.00, 40\.00\) is more than 5 m"):
        m.route(np.array([[10.0, -1.75], [100.0, 40.0]]))
    with pytest.raises(MapError, match=r"waypoint 0 at \(-50\.00, 0\.00\)"):
        m.route(np.array([[-50.0, 0.0], [100.0, -1.75]]))
    # behind on a one-way lane of a road with no way round
    with pytest.raises(MapError, match=r"no drivable path from \(150\.00, -1\.75\) to \(10\.00, -1\.75\)"):
        m.route(np.array([[150.0, -1.75], [10.0, -1.75]]), start_yaw=0.0)
    with pytest.raises(MapError, match="shape"):
        m.route(np.array([[10.0, -1.75]]))


def test_route_between_disconnected_roads_has_no_path():
    m = real_map("star")
    a, b = key_index(m, (0, 0, -1)), key_index(m, (12, 0, -1))
    xy, yaw = m.pose_at(np.array([a, b]), np.array([10.0, 10.0]))
    with pytest.raises(MapError, match="no drivable path"):
        m.route(xy, start_yaw=float(yaw[0]))


def test_random_route_is_seeded_and_follows_successors():
    m = real_map("simple_4way_intersection")
    lane = key_index(m, (0, 0, -1))
    routes = [m.random_route(lane, 10.0, 300.0, np.random.default_rng(seed)) for seed in range(30)]
    again = m.random_route(lane, 10.0, 300.0, np.random.default_rng(3))
    np.testing.assert_array_equal(again.points, routes[3].points)
    assert len({tuple(r.lanes.tolist()) for r in routes}) == 3  # left, straight or right at the junction
    for r in routes:
        check_route(m, r)
        for a, b in zip(r.lanes[:-1], r.lanes[1:]):
            assert b in m.lane_successors[a]
        assert r.length == pytest.approx(
            m.lane_length[r.lanes].sum() - 10.0, abs=0.05
        )  # dead end before 300 m


def test_random_route_has_the_asked_length_where_the_road_goes_on():
    m = loop_map()
    r = m.random_route(0, 10.0, 500.0, np.random.default_rng(0))
    check_route(m, r)
    assert r.length == pytest.approx(500.0, abs=0.05)
    assert r.lanes.tolist() == [0, 1, 0, 1]
