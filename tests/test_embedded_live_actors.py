"""Actors added, controlled and removed while the embedded simulator runs (the CARLA server's API)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from sim_bridge.api import ActorKind, ActorSpec, MapRef, Pose, WorldSpec
from sim_bridge.embedded.config import EmbeddedConfig, VehicleLimits
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.maps.catalog import load_map


@pytest.fixture
def sim() -> Iterator[EmbeddedSimulator]:
    cfg = EmbeddedConfig(num_worlds=1, threads=1, render_bev=False, vehicle=VehicleLimits(drag=0.0))
    s = EmbeddedSimulator(cfg)
    s.reset(WorldSpec(map=MapRef("grid"), vehicles=0, pedestrians=0), seed=0)
    s.remove_actor(0, 0)  # park the ego: only added actors move
    yield s
    s.close()


def _lane_pose(s: float = 20.0) -> Pose:
    rm = load_map(MapRef("grid"))
    lane = int(rm.driving_lanes[0])
    xy, yaw = rm.pose_at(np.array([lane]), np.array([s]))
    return Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0]))


def test_a_commanded_vehicle_accelerates_along_its_heading(sim: EmbeddedSimulator) -> None:
    sim.set_step(0.05)
    slot = sim.add_actor(0, ActorSpec(ActorKind.VEHICLE, Pose(0.0, 0.0, np.pi / 2)))
    assert slot == 1
    sim.set_vehicle_command(0, slot, accel=2.0, steer=0.0)
    for _ in range(20):  # 1 s
        sim.step(np.zeros((1, 2)))
    st = sim.state
    assert st.speed[0, slot] == pytest.approx(2.0, abs=1e-9)
    assert st.y[0, slot] == pytest.approx(1.0, abs=1e-6)  # ½·a·t² north
    assert st.x[0, slot] == pytest.approx(0.0, abs=1e-9)


def test_autopilot_vehicle_keeps_its_lane_and_removed_actor_stops(sim: EmbeddedSimulator) -> None:
    pose = _lane_pose()
    slot = sim.add_actor(0, ActorSpec(ActorKind.VEHICLE, pose, speed=5.0), autopilot=True)
    for _ in range(30):
        sim.step(np.zeros((1, 2)))
    st = sim.state
    moved = np.hypot(st.x[0, slot] - pose.x, st.y[0, slot] - pose.y)
    assert moved > 10.0
    rm = load_map(MapRef("grid"))
    proj = rm.project(np.array([[st.x[0, slot], st.y[0, slot]]]), np.array([st.yaw[0, slot]]))
    assert abs(proj.lateral[0]) < 0.5
    sim.remove_actor(0, slot)
    x = st.x[0, slot]
    sim.step(np.zeros((1, 2)))
    assert st.x[0, slot] == x and sim.free_slot(0, ActorKind.VEHICLE) == 1


def test_walker_walks_at_its_commanded_speed(sim: EmbeddedSimulator) -> None:
    sim.set_step(0.1)
    slot = sim.add_actor(0, ActorSpec(ActorKind.PEDESTRIAN, Pose(5.0, 5.0, 0.0)))
    sim.step(np.zeros((1, 2)))
    assert sim.state.x[0, slot] == 5.0  # stands until told to walk
    sim.set_walker_command(0, slot, yaw=np.pi, speed=1.5)
    for _ in range(10):
        sim.step(np.zeros((1, 2)))
    assert sim.state.x[0, slot] == pytest.approx(5.0 - 1.5, abs=1e-6)
