"""Closed-form checks of the kinematic bicycle and the action mapping."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_bridge.embedded.config import VehicleLimits
from sim_bridge.embedded.kinematics import Limits, action_to_commands, bicycle_step

NO_DRAG = Limits.of(VehicleLimits(drag=0.0))


def _car(v=10.0, steer=0.0, yaw=0.0):
    return dict(
        x=np.zeros(1), y=np.zeros(1), yaw=np.full(1, yaw), speed=np.full(1, v), steer=np.full(1, steer),
        wheelbase=np.full(1, 2.8),
    )  # fmt: skip


def _run(car, accel, steer_cmd, seconds, dt=0.05, limits=NO_DRAG):
    applied = []
    for _ in range(round(seconds / dt)):
        out = bicycle_step(
            car["x"], car["y"], car["yaw"], car["speed"], car["steer"], np.full(1, accel),
            np.full(1, steer_cmd), car["wheelbase"], limits, dt,
        )  # fmt: skip
        applied.append(out[0])
    return np.array(applied)


def test_constant_speed_straight_line_is_exact():
    car = _car(v=10.0, yaw=math.radians(30))
    _run(car, 0.0, 0.0, 2.0)
    assert car["x"][0] == pytest.approx(20 * math.cos(math.radians(30)), abs=1e-9)
    assert car["y"][0] == pytest.approx(20 * math.sin(math.radians(30)), abs=1e-9)


def test_constant_acceleration_distance():
    car = _car(v=0.0)
    _run(car, 2.0, 0.0, 3.0)
    assert car["speed"][0] == pytest.approx(6.0)
    assert car["x"][0] == pytest.approx(0.5 * 2.0 * 9.0)


def test_constant_steer_traces_the_closed_form_circle():
    delta = 0.3
    car = _car(v=8.0, steer=delta)
    beta = math.atan(0.5 * math.tan(delta))
    radius = 1.4 / math.sin(beta)  # rear axle 1.4 m behind the centre
    centre = radius * np.array([-math.sin(beta), math.cos(beta)])
    for _ in range(10):
        _run(car, 0.0, delta, 0.7)
        assert math.hypot(car["x"][0] - centre[0], car["y"][0] - centre[1]) == pytest.approx(radius, abs=1e-6)


def test_brake_stops_without_reversing():
    car = _car(v=5.0)
    applied = _run(car, -8.0, 0.0, 2.0)
    assert car["speed"][0] == 0.0
    assert car["x"][0] == pytest.approx(5.0**2 / (2 * 8.0), abs=1e-6)
    assert applied[-1] == 0.0  # held at standstill


def test_steering_rate_limit():
    car = _car(v=5.0)
    bicycle_step(car["x"], car["y"], car["yaw"], car["speed"], car["steer"], np.zeros(1), np.full(1, 0.6),
                 car["wheelbase"], NO_DRAG, 0.05)  # fmt: skip
    assert car["steer"][0] == pytest.approx(NO_DRAG.max_steer_rate * 0.05)


def test_action_mapping_uses_throttle_and_brake_scales():
    accel, steer = action_to_commands(np.array([[1.0, -1.0], [-0.5, 0.5]]), NO_DRAG)
    np.testing.assert_allclose(accel, [NO_DRAG.max_accel, -0.5 * NO_DRAG.max_brake])
    np.testing.assert_allclose(steer, [-NO_DRAG.max_steer, 0.5 * NO_DRAG.max_steer])


@settings(max_examples=50, deadline=None)
@given(v=st.floats(0, 30), steer=st.floats(-0.6, 0.6), yaw=st.floats(-3.1, 3.1))
def test_distance_travelled_matches_speed_for_any_steer(v, steer, yaw):
    """Arc length per step equals v·dt (the chord is shorter but never longer)."""
    car = _car(v=v, steer=steer, yaw=yaw)
    _run(car, 0.0, steer, 0.05)
    chord = math.hypot(car["x"][0], car["y"][0])
    assert chord <= v * 0.05 + 1e-9
    assert chord >= v * 0.05 * math.cos(0.5 * abs(v * 0.05 * math.tan(abs(steer)) / 2.8)) - 1e-9
