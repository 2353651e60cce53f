"""Route tracking (``RouteBatch``), the object list and the ego vector, on procedural towns.

Closed-form answers on the ``straight`` town (lane 0 drives east along y = -1.75, lanes 3.5 m wide),
the signalised ``cross`` (approach lane from the west along y = -1.6, stop line at x = -10.2) and the
stop-controlled ``tee`` (stem approach from the south along x = 1.6, stop sign line at y = -10.2).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_bridge.api import ActorKind, LightState
from sim_bridge.maps.lookup import lane_candidates
from sim_bridge.maps.road_map import RoadMap, Route
from sim_bridge.maps.towns import make_town
from sim_bridge.routes import RouteBatch
from sim_bridge.sensors.ego import ego_lane, ego_vector
from sim_bridge.sensors.frame import ActorArrays, EgoKinematics, SensorFrame
from sim_bridge.sensors.layout import (
    EGO_DIM,
    OBJECT_DIM,
    STOP_DISTANCE_CAP,
    EgoFeature,
    ObjectFeature,
    RouteCommand,
)
from sim_bridge.sensors.objects import object_list


@pytest.fixture(scope="module")
def straight() -> RoadMap:
    return RoadMap.from_opendrive(make_town("straight", 0), "straight")


@pytest.fixture(scope="module")
def cross() -> RoadMap:
    return RoadMap.from_opendrive(make_town("cross", 0), "cross")


@pytest.fixture(scope="module")
def tee() -> RoadMap:
    return RoadMap.from_opendrive(make_town("tee", 0), "tee")


def actors(
    x, y, yaw=0.0, speed=0.0, kind=ActorKind.VEHICLE, length=4.6, width=2.0, active=True
) -> ActorArrays:
    """``[B, N]`` boxes from anything that broadcasts to ``x``'s shape (slot 0 = ego)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))

    def full(v, dtype=np.float64):
        return np.broadcast_to(np.asarray(v, dtype=dtype), x.shape).copy()

    b, n = x.shape
    return ActorArrays(
        x=x,
        y=full(y),
        yaw=full(yaw),
        speed=full(speed),
        length=full(length),
        width=full(width),
        kind=full(kind, np.int8),
        active=full(active, bool),
        ids=np.tile(np.arange(100, 100 + n, dtype=np.int32), (b, 1)),
    )


def frame_of(a: ActorArrays, k: int, light: int = LightState.GREEN) -> SensorFrame:
    b = a.shape[0]
    ego = EgoKinematics(
        accel_lon=np.full(b, 0.5),
        accel_lat=np.full(b, -0.2),
        yaw_rate=np.full(b, 0.1),
        prev_action=np.tile([0.3, -0.4], (b, 1)),
    )
    return SensorFrame(actors=a, history=(), light_state=np.full((b, k), light, dtype=np.int8), ego=ego)


def east_route(m: RoadMap, x0: float = 10.0, x1: float = 250.0) -> Route:
    return m.route(np.array([[x0, -1.75], [x1, -1.75]]))


def left_turn(m: RoadMap) -> Route:
    """Cross: from the west approach, left (north) through the junction."""
    return m.route(np.array([[-60.0, -1.6], [1.6, 60.0]]))


# ------------------------------------------------------------------------------------ RouteBatch


def test_progress_and_deviation_closed_form(straight: RoadMap) -> None:
    routes = RouteBatch(1)
    routes.set(0, east_route(straight), straight)
    start = routes.points[0, 0, 0]
    for x, dy in ((40.0, 0.0), (55.5, 0.8), (80.25, -1.2), (100.0, 0.3)):
        progress, deviation = routes.update(np.array([[x, -1.75 + dy]]))
        assert progress[0] == pytest.approx(x - start, abs=1e-6)
        assert deviation[0] == pytest.approx(abs(dy), abs=1e-6)
    assert routes.remaining()[0] == pytest.approx(routes.length[0] - (100.0 - start), abs=1e-6)


def test_progress_never_goes_back(straight: RoadMap) -> None:
    routes = RouteBatch(1)
    routes.set(0, east_route(straight), straight)
    p1, _ = routes.update(np.array([[60.0, -1.75]]))
    p2, d2 = routes.update(np.array([[40.0, -1.75]]))  # drove backwards 20 m
    assert p2[0] == p1[0]
    assert d2[0] == pytest.approx(20.0, abs=1.0)  # to the route segment holding the progress point
    p3, _ = routes.update(np.array([[200.0, -1.75]]))  # a jump beyond the 30 m window is not followed
    assert p1[0] < p3[0] <= p1[0] + 31.0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 300.0), st.floats(-6.0, 2.0)), min_size=1, max_size=30))
def test_progress_monotonic_property(positions: list[tuple[float, float]]) -> None:
    m = _STRAIGHT()
    routes = RouteBatch(1)
    routes.set(0, east_route(m), m)
    last = 0.0
    for x, y in positions:
        progress, deviation = routes.update(np.array([[x, y]]))
        assert last <= progress[0] <= routes.length[0] + 1e-9
        assert deviation[0] >= 0.0
        last = progress[0]


_MAP_CACHE: dict[str, RoadMap] = {}


def _STRAIGHT() -> RoadMap:  # hypothesis tests cannot take function-scoped fixtures
    if "straight" not in _MAP_CACHE:
        _MAP_CACHE["straight"] = RoadMap.from_opendrive(make_town("straight", 0), "straight")
    return _MAP_CACHE["straight"]


def test_padding_across_worlds(straight: RoadMap) -> None:
    short, long = east_route(straight, 10.0, 40.0), east_route(straight, 5.0, 290.0)
    routes = RouteBatch(3, capacity=8)  # too small: grows
    routes.set(0, short, straight)
    routes.set(2, long, straight)
    assert routes.capacity >= len(long.points)
    n0, n2 = len(short.points), len(long.points)
    np.testing.assert_array_equal(routes.count, [n0, 0, n2])
    np.testing.assert_array_equal(routes.valid.sum(1), [n0, 0, n2])
    np.testing.assert_allclose(routes.points[0, :n0], short.points)
    np.testing.assert_allclose(routes.points[2, :n2], long.points)
    assert (routes.s[0, n0:] == short.s[-1]).all()  # padding repeats the end
    assert (routes.point_lane[0, n0:] == -1).all()
    np.testing.assert_allclose(routes.length, [short.length, 0.0, long.length])

    xy = np.array([[30.0, -1.0], [0.0, 0.0], [150.0, -2.0]])
    progress, deviation = routes.update(xy)
    for b, route in ((0, short), (2, long)):
        alone = RouteBatch(1)
        alone.set(0, route, straight)
        p, d = alone.update(xy[b : b + 1])
        assert progress[b] == pytest.approx(p[0]) and deviation[b] == pytest.approx(d[0])
        np.testing.assert_allclose(
            routes.targets(xy, np.zeros(3))[b], alone.targets(xy[b : b + 1], np.zeros(1))[0]
        )
    assert progress[1] == 0.0 and deviation[1] == 0.0
    np.testing.assert_array_equal(routes.targets(xy, np.zeros(3))[1], 0.0)
    assert routes.remaining()[1] == 0.0
    routes.clear(2)
    assert routes.count[2] == 0 and routes.update(xy)[0][2] == 0.0


def test_targets_straight_ahead_and_rotated(straight: RoadMap) -> None:
    routes = RouteBatch(2)
    for b in range(2):
        routes.set(b, east_route(straight), straight)
    xy = np.array([[50.0, -1.75], [50.0, -1.75]])
    routes.update(xy)
    targets = routes.targets(xy, np.array([0.0, math.pi / 2]))
    np.testing.assert_allclose(targets[0], [[5, 0], [10, 0], [15, 0], [20, 0]], atol=1e-6)
    # facing north, the eastward route lies to the right (negative y in the ego frame)
    np.testing.assert_allclose(targets[1], [[0, -5], [0, -10], [0, -15], [0, -20]], atol=1e-6)


def test_targets_clip_at_route_end(straight: RoadMap) -> None:
    routes = RouteBatch(1)
    routes.set(0, east_route(straight, 10.0, 60.0), straight)
    end = routes.points[0, routes.count[0] - 1]
    xy = np.array([[52.0, -1.75]])
    routes.update(xy)
    targets = routes.targets(xy, np.zeros(1))[0]
    np.testing.assert_allclose(targets[0], [5.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(targets[2:], np.tile(end - xy[0], (2, 1)), atol=1e-6)


def test_command_left_before_left_turn(cross: RoadMap) -> None:
    route = left_turn(cross)
    assert RouteCommand.LEFT in set(route.commands.tolist())
    routes = RouteBatch(3)
    for b in range(3):
        routes.set(b, route, cross)
    # 50 m before the junction entry (x = -9.3), 20 m before it, and inside the turn
    turn = route.points[route.commands == RouteCommand.LEFT][3]
    xy = np.array([[-60.0, -1.6], [-29.3, -1.6], turn])
    routes.update(xy)
    np.testing.assert_array_equal(
        routes.command_ahead(30.0), [RouteCommand.LANE_FOLLOW, RouteCommand.LEFT, RouteCommand.LEFT]
    )
    straight_on = cross.route(np.array([[-60.0, -1.6], [60.0, -1.6]]))
    routes.set(0, straight_on, cross)
    routes.update(xy[1:2].repeat(3, 0))
    assert routes.command_ahead(30.0)[0] == RouteCommand.STRAIGHT


def test_next_stop_and_route_lanes(cross: RoadMap) -> None:
    route = left_turn(cross)
    routes = RouteBatch(1)
    routes.set(0, route, cross)
    k = int(np.flatnonzero(cross.stop_lane == route.lanes[0])[0])
    assert routes.stop_index[0, 0] == k
    routes.update(np.array([[-30.0, -1.6]]))
    distance, line = routes.next_stop()
    assert line[0] == k
    assert distance[0] == pytest.approx(-10.2 - (-30.0), abs=0.6)  # route points are <= 1 m apart
    routes.update(np.array([[-9.0, -1.6]]))  # past the line
    distance, line = routes.next_stop()
    assert line[0] == -1 and distance[0] == np.inf
    assert routes.on_route_lanes(np.array([route.lanes[0]]))[0]
    assert not routes.on_route_lanes(np.array([-1]))[0]
    other = int(next(lane for lane in cross.driving_lanes if lane not in set(route.lanes.tolist())))
    assert not routes.on_route_lanes(np.array([other]))[0]


def test_set_rejects_bad_routes(straight: RoadMap) -> None:
    routes = RouteBatch(1)
    one = east_route(straight)
    bad = Route(one.lanes, one.points[:1], one.headings[:1], one.s[:1], one.point_lane[:1], one.commands[:1])
    with pytest.raises(ValueError, match="P >= 2"):
        routes.set(0, bad, straight)
    with pytest.raises(ValueError, match="out of range"):
        routes.set(1, one, straight)


# ----------------------------------------------------------------------------------- object list


def test_object_frame_conversion_closed_form() -> None:
    a = actors([[0.0, 10.0]], [[0.0, 0.0]], yaw=[[math.pi / 2, math.pi / 2 + 0.3]], speed=[[3.0, 5.0]])
    objects, mask, ids = object_list(a)
    assert objects.shape == (1, 32, OBJECT_DIM) and objects.dtype == np.float32
    row = objects[0, 0]
    assert mask[0, 0] and ids[0, 0] == 101
    assert row[ObjectFeature.X] == pytest.approx(0.0, abs=1e-5)
    assert row[ObjectFeature.Y] == pytest.approx(-10.0, abs=1e-5)
    assert row[ObjectFeature.COS_YAW] == pytest.approx(math.cos(0.3), abs=1e-6)
    assert row[ObjectFeature.SIN_YAW] == pytest.approx(math.sin(0.3), abs=1e-6)
    # the actor's own velocity in the ego frame, not relative to the ego's motion
    assert row[ObjectFeature.VX] == pytest.approx(5 * math.cos(0.3), abs=1e-5)
    assert row[ObjectFeature.VY] == pytest.approx(5 * math.sin(0.3), abs=1e-5)
    assert (row[ObjectFeature.LENGTH], row[ObjectFeature.WIDTH]) == pytest.approx((4.6, 2.0))
    assert row[ObjectFeature.IS_VEHICLE] == 1 and row[ObjectFeature.IS_PEDESTRIAN] == 0


def test_object_sorting_radius_and_masking() -> None:
    x = [[0.0, 30.0, -5.0, 60.0, 10.0, 2.0, 49.0]]
    kind = [[0, 0, 1, 0, 2, 0, 1]]
    active = [[True, True, True, True, True, False, True]]
    a = actors(x, 0.0, kind=kind, active=active)
    objects, mask, ids = object_list(a, max_objects=8, radius=50.0)
    # nearest first: slots 2 (5 m), 4 (10 m), 1 (30 m), 6 (49 m); 3 beyond 50 m, 5 inactive, 0 the ego
    np.testing.assert_array_equal(ids[0], [102, 104, 101, 106, -1, -1, -1, -1])
    np.testing.assert_array_equal(mask[0], [True] * 4 + [False] * 4)
    np.testing.assert_allclose(objects[0, :4, ObjectFeature.X], [-5.0, 10.0, 30.0, 49.0])
    assert (objects[0, 4:] == 0).all()
    np.testing.assert_array_equal(objects[0, :4, ObjectFeature.IS_PEDESTRIAN], [1, 0, 0, 1])
    np.testing.assert_array_equal(objects[0, :4, ObjectFeature.IS_STATIC], [0, 1, 0, 0])
    # fewer rows than candidates: the nearest ones
    objects, mask, ids = object_list(a, max_objects=2)
    np.testing.assert_array_equal(ids[0], [102, 104])


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 40), st.integers(0, 12))
def test_object_list_matches_brute_force(seed: int, n: int, max_objects: int) -> None:
    rng = np.random.default_rng(seed)
    b = 3
    a = actors(
        rng.uniform(-80, 80, (b, n)),
        rng.uniform(-80, 80, (b, n)),
        yaw=rng.uniform(-4, 4, (b, n)),
        active=rng.random((b, n)) < 0.8,
    )
    objects, mask, ids = object_list(a, max_objects=max_objects, radius=50.0)
    for w in range(b):
        d = np.hypot(a.x[w] - a.x[w, 0], a.y[w] - a.y[w, 0])
        ok = [i for i in range(1, n) if a.active[w, i] and d[i] <= 50.0]
        want = sorted(ok, key=lambda i: (d[i], i))[:max_objects]
        np.testing.assert_array_equal(ids[w, : len(want)], a.ids[w, want])
        assert mask[w].sum() == len(want) and (ids[w, len(want) :] == -1).all()
        c, s = math.cos(a.yaw[w, 0]), math.sin(a.yaw[w, 0])
        dx, dy = a.x[w, want] - a.x[w, 0], a.y[w, want] - a.y[w, 0]
        np.testing.assert_allclose(objects[w, : len(want), ObjectFeature.X], c * dx + s * dy, atol=1e-4)
        np.testing.assert_allclose(objects[w, : len(want), ObjectFeature.Y], -s * dx + c * dy, atol=1e-4)


# ------------------------------------------------------------------------------------ ego vector


def test_ego_vector_on_straight_route(straight: RoadMap) -> None:
    routes = RouteBatch(1)
    routes.set(0, east_route(straight), straight)
    a = actors([[50.0]], [[-1.25]], yaw=[[0.1]], speed=[[7.0]])  # 0.5 m left of lane 0's centre
    frame = frame_of(a, len(straight.stop_lane))
    progress, _ = routes.update(np.array([[50.0, -1.25]]))
    ego = ego_vector(straight, frame, routes, progress)
    assert ego.shape == (1, EGO_DIM) and ego.dtype == np.float32
    e = ego[0]
    assert e[EgoFeature.SPEED] == pytest.approx(7.0)
    assert (e[EgoFeature.ACCEL_LON], e[EgoFeature.ACCEL_LAT], e[EgoFeature.YAW_RATE]) == pytest.approx(
        (0.5, -0.2, 0.1)
    )
    assert (e[EgoFeature.PREV_ACCEL], e[EgoFeature.PREV_STEER]) == pytest.approx((0.3, -0.4))
    assert e[EgoFeature.SPEED_LIMIT] == pytest.approx(50 / 3.6, rel=1e-4)
    assert e[EgoFeature.LANE_OFFSET] == pytest.approx(0.5, abs=1e-3)
    assert e[EgoFeature.LANE_HEADING] == pytest.approx(0.1, abs=1e-4)
    # route targets 5, 10, 15, 20 m along the route, seen from a car yawed 0.1 rad left, 0.5 m left
    for i in range(4):
        px, py = 5.0 * (i + 1), -0.5
        c, s = math.cos(0.1), math.sin(0.1)
        assert e[EgoFeature.ROUTE_X0 + 2 * i] == pytest.approx(c * px + s * py, abs=1e-4)
        assert e[EgoFeature.ROUTE_Y0 + 2 * i] == pytest.approx(-s * px + c * py, abs=1e-4)
    onehot = e[EgoFeature.CMD_LANE_FOLLOW : EgoFeature.CMD_CHANGE_RIGHT + 1]
    np.testing.assert_array_equal(onehot, [1, 0, 0, 0, 0, 0])
    assert e[EgoFeature.ROUTE_REMAINING] == pytest.approx(routes.length[0] - progress[0], abs=1e-3)
    assert e[EgoFeature.STOP_DISTANCE] == STOP_DISTANCE_CAP
    assert e[EgoFeature.STOP_IS_RED] == 0 and e[EgoFeature.STOP_IS_SIGN] == 0


@pytest.mark.parametrize(
    ("state", "red"), [(LightState.GREEN, 0), (LightState.YELLOW, 1), (LightState.RED, 1)]
)
def test_ego_vector_traffic_light_ahead(cross: RoadMap, state: LightState, red: int) -> None:
    routes = RouteBatch(1)
    routes.set(0, left_turn(cross), cross)
    a = actors([[-30.0]], [[-1.6]])
    progress, _ = routes.update(np.array([[-30.0, -1.6]]))
    e = ego_vector(cross, frame_of(a, len(cross.stop_lane), state), routes, progress)[0]
    assert e[EgoFeature.STOP_DISTANCE] == pytest.approx(19.8, abs=0.6)
    assert e[EgoFeature.STOP_IS_RED] == red and e[EgoFeature.STOP_IS_SIGN] == 0
    assert e[EgoFeature.CMD_LEFT] == 1 and e[EgoFeature.CMD_LANE_FOLLOW] == 0


def test_ego_vector_stop_sign_ahead(tee: RoadMap) -> None:
    route = tee.route(np.array([[1.6, -60.0], [60.0, -1.6]]))  # up the stem, then right
    routes = RouteBatch(1)
    routes.set(0, route, tee)
    a = actors([[1.6]], [[-40.0]], yaw=[[math.pi / 2]])
    progress, _ = routes.update(np.array([[1.6, -40.0]]))
    e = ego_vector(tee, frame_of(a, len(tee.stop_lane), LightState.RED), routes, progress)[0]
    assert e[EgoFeature.STOP_DISTANCE] == pytest.approx(29.8, abs=0.6)
    assert e[EgoFeature.STOP_IS_SIGN] == 1 and e[EgoFeature.STOP_IS_RED] == 0  # a sign is never "red"
    # far away: the distance is capped
    routes.set(0, tee.route(np.array([[1.6, -100.0], [60.0, -1.6]])), tee)
    a = actors([[1.6]], [[-100.0]], yaw=[[math.pi / 2]])
    progress, _ = routes.update(np.array([[1.6, -100.0]]))
    e = ego_vector(tee, frame_of(a, len(tee.stop_lane)), routes, progress)[0]
    assert e[EgoFeature.STOP_DISTANCE] == STOP_DISTANCE_CAP and e[EgoFeature.STOP_IS_SIGN] == 1


def test_ego_lane_falls_back_to_nearest_lane(straight: RoadMap) -> None:
    xy = np.array([[100.0, 30.0], [100.0, -1.75]])  # 25 m north of the road; on lane 0
    proj = ego_lane(straight, xy, np.zeros(2))
    assert (proj.lane >= 0).all()
    assert proj.lane[1] == 0
    routes = RouteBatch(2)
    a = actors([[100.0], [100.0]], [[30.0], [-1.75]])
    e = ego_vector(straight, frame_of(a, 0), routes, np.zeros(2), proj)
    np.testing.assert_allclose(e[:, EgoFeature.SPEED_LIMIT], 50 / 3.6, rtol=1e-4)
    np.testing.assert_array_equal(e[:, EgoFeature.CMD_LANE_FOLLOW], 1)  # no route: lane follow
    np.testing.assert_array_equal(e[:, EgoFeature.ROUTE_X0 : EgoFeature.ROUTE_Y3 + 1], 0)


def test_ego_lane_prefers_the_routes_lane_where_junction_lanes_overlap(cross: RoadMap) -> None:
    """Two junction lanes leaving the same approach overlap at their start: a point on both projects
    onto one of them; given a route through the other, the ego is on the route's (as the embedded
    lane tracker's plan bonus has it), and with no route lane there the projection is unchanged."""
    pairs = [
        (int(a), int(b))
        for a in np.flatnonzero(cross.lane_junction >= 0)
        for b in np.flatnonzero(cross.lane_junction >= 0)
        if a < b and set(cross.lane_predecessors[a]) & set(cross.lane_predecessors[b])
    ]
    assert pairs
    a, b = pairs[0]
    xy_a, yaw_a = cross.pose_at(np.array([a]), np.array([1.0]))
    plain = ego_lane(cross, xy_a, yaw_a)
    chosen = int(plain.lane[0])
    assert chosen in (a, b)
    other = b if chosen == a else a
    assert bool(lane_candidates(cross, xy_a[0]).inside[lane_candidates(cross, xy_a[0]).lane == other][0])
    routed = ego_lane(cross, xy_a, yaw_a, np.array([[-1, other, -1]]))
    assert routed.lane[0] == other
    _, lane_yaw = cross.pose_at(np.array([other]), routed.s)
    assert routed.heading_error[0] == pytest.approx(float(yaw_a[0] - lane_yaw[0]), abs=1e-6)
    unrelated = ego_lane(cross, xy_a, yaw_a, np.array([[-1, -1, 10_000]]))
    assert unrelated.lane[0] == chosen and unrelated.s[0] == plain.s[0]


# -------------------------------------------------------------------------------------- observer


def test_observer_composes_fresh_arrays(cross: RoadMap) -> None:
    from sim_bridge.sensors.layout import BevGeometry
    from sim_bridge.sensors.observe import Observer

    routes = RouteBatch(2)
    for b in range(2):
        routes.set(b, left_turn(cross), cross)
    a = actors(
        [[-30.0, -20.0, 40.0], [-25.0, -28.0, -24.0]],
        [[-1.6, -1.6, 1.6], [-1.6, -1.6, 3.0]],
        kind=[[0, 0, 0], [0, 0, 1]],
    )
    frame = frame_of(a, len(cross.stop_lane), LightState.RED)
    progress, _ = routes.update(np.stack([a.x[:, 0], a.y[:, 0]], -1))
    observer = Observer(cross, BevGeometry(), max_objects=4)
    obs = observer.observe(frame, routes, progress)
    assert obs.num_worlds == 2
    assert obs.bev.shape == (2, BevGeometry().num_channels, 96, 96)
    np.testing.assert_array_equal(obs.ego, ego_vector(cross, frame, routes, progress))
    objects, mask, ids = object_list(a, 4)
    np.testing.assert_array_equal(obs.objects, objects)
    np.testing.assert_array_equal(obs.objects_mask, mask)
    np.testing.assert_array_equal(obs.object_ids, ids)
    assert obs.objects_mask[0].sum() == 1 and obs.objects_mask[1].sum() == 2  # radius 50 m: 70 m is out
    kept = obs.bev.copy()
    moved = frame_of(actors(a.x + 3.0, a.y), len(cross.stop_lane), LightState.GREEN)
    second = observer.observe(moved, routes, progress)
    np.testing.assert_array_equal(obs.bev, kept)  # the first observation is not overwritten
    assert not np.array_equal(second.bev, kept)
