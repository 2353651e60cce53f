"""The CARLA backend's own traffic rules, without a server: the cut-in driver
(``sim_bridge.carla.lane_change``) closed-loop on a kinematic bicycle, and where background
vehicles are placed and how fast they start (``sim_bridge.carla.background``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sim_bridge.api import MapRef
from sim_bridge.carla.background import SPAWN_BRAKE, place_background
from sim_bridge.carla.lane_change import LaneChangeDriver
from sim_bridge.embedded.config import DriverModel, VehicleLimits
from sim_bridge.embedded.spawning import VEHICLE_CLEARANCE
from sim_bridge.embedded.traffic import DriverParams, idm_accel
from sim_bridge.maps.catalog import load_map
from sim_bridge.sensors.frame import ActorArrays

WHEELBASE = 2.7


@pytest.fixture(scope="module")
def road():
    rm = load_map(MapRef("straight"))
    lane = next(int(k) for k in rm.driving_lanes if rm.lane_left[k] >= 0)
    return rm, lane


def _start(rm, lane: int, s: float = 40.0) -> tuple[float, float, float]:
    xy, yaw = rm.pose_at(np.array([lane]), np.array([s]))
    return float(xy[0, 0]), float(xy[0, 1]), float(yaw[0])


def _actors(rows: list[tuple[float, float, float, float]]) -> ActorArrays:
    """One world's actors ``(x, y, yaw, speed)``, 4 × 1.8 m, ids 0, 1, …"""
    n = len(rows)
    x, y, yaw, speed = (np.array([[r[k] for r in rows]]) for k in range(4))
    return ActorArrays(x, y, yaw, speed, np.full((1, n), 4.0), np.full((1, n), 1.8), np.zeros((1, n), np.int8),
                       np.ones((1, n), bool), np.arange(n, dtype=np.int32)[None])  # fmt: skip


def _drive(driver: LaneChangeDriver, x: float, y: float, yaw: float, v: float, steps: int) -> list[tuple]:
    """Closed loop at 10 Hz on a kinematic bicycle (20 Hz integration, the embedded limits);
    ``(time, lateral from the target lane, speed, done)`` per step."""
    limits, out = VehicleLimits(), []
    for k in range(steps):
        accel, wheel = driver.command(x, y, yaw, v, 0.1)
        wheel = min(max(wheel, -limits.max_steer), limits.max_steer)
        for _ in range(2):
            beta = math.atan(0.5 * math.tan(wheel))
            x += v * math.cos(yaw + beta) * 0.05
            y += v * math.sin(yaw + beta) * 0.05
            yaw += v * math.cos(beta) * math.tan(wheel) / WHEELBASE * 0.05
            v = max(v + accel * 0.05, 0.0)
        out.append(((k + 1) * 0.1, driver._locate(x, y)[1], v, driver.done))
    return out


@pytest.mark.parametrize("speed", [8.0, 18.0, 27.0])
def test_the_cut_in_driver_reaches_the_neighbour_lanes_centre_without_overshoot(road, speed: float) -> None:
    rm, lane = road
    x, y, yaw = _start(rm, lane)
    driver = LaneChangeDriver.plan(rm, x, y, yaw, +1, 2.5, speed, WHEELBASE)
    assert driver is not None
    (here, there), _ = rm.pose_at(np.array([lane, rm.lane_left[lane]]), np.array([40.0, 40.0]))
    width = float(np.hypot(*(there - here)))  # between the two lanes' centres
    assert driver.lat0 == pytest.approx(-width, abs=0.05)  # starts one lane to the right of its target
    run = _drive(driver, x, y, yaw, speed, 45)
    lateral = np.array([r[1] for r in run])
    # the lateral distance left shrinks (no swerve the other way) and never overshoots the centre
    assert lateral.min() > -width - 0.05 and lateral.max() < 0.2
    assert np.all(np.diff(lateral) > -0.02)
    # half-way across close to half the duration (the smoothstep's middle), across by its end
    half = next(t for t, lat, _, _ in run if lat > -0.5 * width)
    assert 0.8 < half < 1.9, half
    assert abs(lateral[int(3.0 / 0.1)]) < 0.3
    done = next(t for t, _, _, d in run if d)
    assert 2.5 <= done <= 2.5 + 1.5
    assert [r[2] for r in run] == pytest.approx([speed] * len(run), abs=0.3)  # at its cruise speed


def test_the_cut_in_driver_follows_a_lead_by_the_embedded_idm(road) -> None:
    rm, lane = road
    x, y, yaw = _start(rm, lane)
    driver = LaneChangeDriver.plan(rm, x, y, yaw, +1, 2.5, 18.0, WHEELBASE, length=4.6, width=1.9)
    assert driver is not None
    s0, _, _ = driver._locate(x, y)
    # a car standing on the target lane 40 m ahead (arc length), and one far to the side
    ahead = driver._point(s0 + 40.0, 0.0)
    aside = driver._point(s0 + 20.0, -12.0)
    seen = _actors([(0.0, 0.0, yaw, 0.0), (*ahead, yaw, 0.0), (*aside, yaw, 5.0)])  # id 0: the car itself
    accel, _ = driver.command(x, y, yaw, 18.0, 0.1, seen, me=0)
    params = DriverParams.make(DriverModel(), VehicleLimits(), 0.1)
    expected = max(idm_accel(18.0, 18.0, 40.0 - 0.5 * (4.6 + 4.0), 0.0, params), -params.max_brake)
    assert accel == pytest.approx(expected, abs=0.05) and accel < -1.0
    # with the standing car gone: the free road's acceleration (at its cruise speed: none)
    free, _ = driver.command(x, y, yaw, 18.0, 0.1, _actors([(0.0, 0.0, yaw, 0.0), (*aside, yaw, 5.0)]), me=0)
    assert free == pytest.approx(0.0, abs=1e-6)


def test_no_neighbour_lane_no_scripted_lane_change(road) -> None:
    rm, lane = road
    left = int(rm.lane_left[lane])
    x, y, yaw = _start(rm, left)
    side = +1 if rm.lane_left[left] < 0 else -1
    if rm.lane_left[left] >= 0 and rm.lane_right[left] >= 0:
        pytest.skip("the lane has neighbours on both sides")
    assert LaneChangeDriver.plan(rm, x, y, yaw, side, 2.5, 10.0, WHEELBASE) is None
    assert LaneChangeDriver.plan(rm, 1e5, 1e5, 0.0, +1, 2.5, 10.0, WHEELBASE) is None  # off the map


def _points(rm, lanes, spacing: float = 12.0) -> np.ndarray:
    rows = []
    for lane in lanes:
        ss = np.arange(6.0, float(rm.lane_length[lane]) - 6.0, spacing)
        xy, yaw = rm.pose_at(np.full(len(ss), lane), ss)
        rows += [(px, py, h) for (px, py), h in zip(xy, yaw, strict=True)]
    return np.array(rows)


def test_background_vehicles_keep_clear_start_moving_and_repeat_with_the_seed(road) -> None:
    rm, lane = road
    points = _points(rm, rm.driving_lanes)
    ex, ey, eyaw = _start(rm, lane, 150.0)
    bodies = np.array([[ex, ey, eyaw, 10.0]])
    placed = place_background(rm, points, bodies, 12, 15.0, 120.0, np.random.default_rng(3))
    assert 6 <= len(placed) <= 12
    xy = points[[p.point for p in placed], :2]
    d_ego = np.hypot(xy[:, 0] - ex, xy[:, 1] - ey)
    assert d_ego.min() >= 15.0 and d_ego.max() <= 120.0
    gaps = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1]) + 1e9 * np.eye(len(xy))
    assert gaps.min() >= VEHICLE_CLEARANCE  # from each other, and from the ego
    limit = float(rm.lane_speed_limit[lane])
    assert all(
        0.0 < p.speed <= 0.8 * 1.1 * limit + 1e-9 for p in placed
    )  # moving, at most 0.8 × limit × factor
    assert all(0.9 - 1e-9 <= p.factor <= 1.1 + 1e-9 for p in placed)
    again = place_background(rm, points, bodies, 12, 15.0, 120.0, np.random.default_rng(3))
    assert again == placed


def test_a_background_vehicle_starts_no_faster_than_stops_behind_the_car_ahead(road) -> None:
    rm, lane = road
    # one spawn point 14 m behind a standing car in its lane, one 14 m ahead of a fast car
    (px, py, pyaw), (cx, cy, cyaw) = _start(rm, lane, 100.0), _start(rm, lane, 114.0)
    standing = place_background(
        rm, np.array([[px, py, pyaw]]), np.array([[px - 500.0, py, 0.0, 0.0], [cx, cy, cyaw, 0.0]]), 1, 0.0, 1e4,
        np.random.default_rng(0),
    )  # fmt: skip
    assert len(standing) == 1
    assert standing[0].speed == pytest.approx(
        math.sqrt(2.0 * SPAWN_BRAKE * (14.0 - VEHICLE_CLEARANCE + 2.0)), rel=0.02
    )
    fast = place_background(
        rm, np.array([[cx, cy, cyaw]]), np.array([[px - 500.0, py, 0.0, 0.0], [px, py, pyaw, 15.0]]), 1, 0.0, 1e4,
        np.random.default_rng(0),
    )  # fmt: skip
    assert fast == []  # 14 m ahead of a car at 15 m/s: it could not stop for us
