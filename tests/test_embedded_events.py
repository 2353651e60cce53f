"""What the embedded simulator reports: ``StepEvents`` (collisions, signal violations, road and lane
compliance, route progress), the observation contract, and how it refuses bad input.

Every event is provoked on purpose and checked against an independent computation where one
exists (the drivable raster for ``off_road``, the route polyline for ``route_deviation``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

from sim_bridge.api import (
    ActorKind,
    ActorSpec,
    Behaviour,
    BehaviourKind,
    LightState,
    MapRef,
    NonFiniteActionError,
    Observation,
    Pose,
    StepEvents,
    WorldSpec,
)
from sim_bridge.embedded import fields as f
from sim_bridge.embedded.config import EmbeddedConfig, VehicleLimits
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.maps.catalog import load_map
from sim_bridge.maps.road_map import MapError
from sim_bridge.sensors.layout import EGO_DIM, OBJECT_DIM, BevGeometry, EgoFeature, ObjectFeature

NV, NP, NS = 8, 4, 2  # vehicle (ego included), pedestrian and static slots of the small simulators


def _config(num_worlds: int = 1, **changes: object) -> EmbeddedConfig:
    base = dict(num_worlds=num_worlds, render_bev=False, max_vehicles=NV, max_pedestrians=NP, max_statics=NS)
    base.update(changes)
    return EmbeddedConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sim() -> Iterator[EmbeddedSimulator]:
    """One world without drag (speeds stay what they were set to)."""
    with EmbeddedSimulator(_config(vehicle=VehicleLimits(drag=0.0))) as s:
        yield s


def _quiet(town: str, ego: Pose, actors: tuple[ActorSpec, ...] = (), **changes: object) -> WorldSpec:
    """A world without background traffic."""
    return WorldSpec(map=MapRef(town), ego=ego, actors=actors, vehicles=0, pedestrians=0, **changes)  # type: ignore[arg-type]


def _step(sim: EmbeddedSimulator, accel: float = 0.0, steer: float = 0.0) -> StepEvents:
    return sim.step(np.array([[accel, steer]]))[1]


def _corners(st) -> np.ndarray:
    """``[4, 2]`` corners of the ego's box [m]."""
    x, y, yaw, hl, hw = st.x[0, 0], st.y[0, 0], st.yaw[0, 0], 0.5 * st.length[0, 0], 0.5 * st.width[0, 0]
    c, s = math.cos(yaw), math.sin(yaw)
    return np.array(
        [[x + a * hl * c - b * hw * s, y + a * hl * s + b * hw * c] for a in (1, -1) for b in (1, -1)]
    )


def _stop_line(town: str, lane_key: tuple[int, int, int]) -> np.ndarray:
    """``[2, 2]`` end points of the stop line across lane ``lane_key`` of ``town`` [m]."""
    rm = load_map(MapRef(town))
    k = list(rm.stop_lane).index(rm.lane_keys.index(lane_key))
    return np.asarray(rm.stop_segment[k])


# ------------------------------------------------------------------------------ collisions

STANDING = {
    ActorKind.VEHICLE: Behaviour(BehaviourKind.STOPPED),
    ActorKind.PEDESTRIAN: Behaviour(BehaviourKind.CROSS),  # stands until triggered (never here)
    ActorKind.STATIC: Behaviour(),
}


@pytest.mark.parametrize("kind", list(ActorKind))
def test_driving_into_a_standing_actor_reports_it(sim: EmbeddedSimulator, kind: ActorKind) -> None:
    other = ActorSpec(kind, Pose(50.0, -1.75, 0.0), behaviour=STANDING[kind])
    sim.reset(_quiet("straight", Pose(20.0, -1.75, 0.0), (other,), ego_speed=10.0), seed=0)
    st = sim.state
    slot = {ActorKind.VEHICLE: 1, ActorKind.PEDESTRIAN: NV, ActorKind.STATIC: NV + NP}[kind]
    # front bumper at 22.3 + 10 t meets the other's rear at 50 - length / 2
    contact = (50.0 - 0.5 * st.length[0, slot] - (20.0 + 0.5 * st.length[0, 0])) / 10.0
    for step in range(40):
        ev = _step(sim)
        t = (step + 1) * sim.dt
        if t < contact - 1e-9:
            assert not ev.collision[0]
            continue
        assert ev.collision[0], f"no collision reported at t={t:.1f} s (contact at {contact:.2f} s)"
        assert ev.collision_actor[0] == st.ids[0, slot] and st.ids[0, slot] > 0
        assert ev.collision_kind[0] == int(kind)
        assert ev.collision_other_speed[0] == 0.0
        assert ev.collision_bearing[0] == pytest.approx(0.0, abs=1e-9)  # dead ahead
        break
    else:
        pytest.fail("the ego never hit the actor")


def test_no_collision_is_reported_when_passing_beside_an_actor(sim: EmbeddedSimulator) -> None:
    other = ActorSpec(ActorKind.VEHICLE, Pose(50.0, -5.25, 0.0), behaviour=Behaviour(BehaviourKind.STOPPED))
    sim.reset(_quiet("straight", Pose(20.0, -1.75, 0.0), (other,), ego_speed=10.0), seed=0)
    events = [_step(sim) for _ in range(60)]
    assert not any(ev.collision[0] for ev in events)
    assert all(ev.collision_actor[0] == -1 and ev.collision_kind[0] == -1 for ev in events)


# ------------------------------------------------------------------------------ signals

#: the stop line of the east approach of `cross` (lane (1, 0, 1), driving west) lies across x =
CROSS_LINE_X = float(_stop_line("cross", (1, 0, 1))[0, 0])


@pytest.mark.parametrize("state", [LightState.RED, LightState.GREEN])
def test_crossing_a_stop_line_reports_a_red_light_only_when_red(
    sim: EmbeddedSimulator, state: LightState
) -> None:
    frozen = tuple((k, state) for k in range(4))
    sim.reset(_quiet("cross", Pose(40.0, 1.6, math.pi), ego_speed=10.0, signal_states=frozen), seed=0)
    rm = sim.road_map
    signal = int(rm.stop_signal[list(rm.stop_lane).index(rm.lane_keys.index((1, 0, 1)))])
    runs = []
    for _ in range(60):
        x_before = sim.state.x[0, 0]
        ev = _step(sim)
        if ev.red_light[0] >= 0:
            runs.append((ev.red_light[0], x_before, ev.ego_x[0]))
    if state == LightState.GREEN:
        assert runs == []
        return
    assert len(runs) == 1  # reported once, on the step the tail crossed the line
    index, x0, x1 = runs[0]
    assert index == signal
    tail = 0.8 * 0.5 * sim.ego_vehicle.length  # 0.8 half lengths behind the centre
    assert x1 + tail <= CROSS_LINE_X <= x0 + tail


def test_stopping_before_a_red_light_is_no_violation(sim: EmbeddedSimulator) -> None:
    frozen = tuple((k, LightState.RED) for k in range(4))
    sim.reset(_quiet("cross", Pose(40.0, 1.6, math.pi), ego_speed=10.0, signal_states=frozen), seed=0)
    events = [_step(sim, accel=-0.5) for _ in range(40)]  # 4 m/s²: stops in 12.5 m
    assert sim.state.speed[0, 0] == 0.0 and sim.state.x[0, 0] > CROSS_LINE_X
    assert all(ev.red_light[0] == -1 for ev in events)


#: the stop line of the stem of `tee` (lane (3, 0, -1), driving north; a stop sign) lies across y =
TEE_LINE_Y = float(_stop_line("tee", (3, 0, -1))[0, 1])


@pytest.mark.parametrize("speed", [0.0, 6.0])
def test_a_stop_sign_is_run_unless_the_ego_stopped_within_4_m_before_it(
    sim: EmbeddedSimulator, speed: float
) -> None:
    front = TEE_LINE_Y - 2.0  # 2 m before the line
    ego = Pose(1.6, front - 0.5 * sim.ego_vehicle.length, math.pi / 2)
    sim.reset(_quiet("tee", ego, ego_speed=speed, route=((60.0, -1.6),)), seed=0)
    throttle = 0.6 if speed == 0.0 else 0.0  # from standstill: drive on after the stop
    events = [_step(sim, accel=throttle) for _ in range(40)]
    assert sim.state.y[0, 0] > TEE_LINE_Y + 5.0  # well past the line either way
    runs = [ev.stop_sign[0] for ev in events if ev.stop_sign[0] >= 0]
    if speed == 0.0:
        assert runs == []
    else:
        rm = sim.road_map
        assert runs == [int(rm.stop_signal[list(rm.stop_lane).index(rm.lane_keys.index((3, 0, -1)))])]


# ------------------------------------------------------------------------------ road and lanes


def test_off_road_matches_the_drivable_area_under_the_ego_corners(sim: EmbeddedSimulator) -> None:
    sim.reset(_quiet("straight", Pose(20.0, -1.75, 0.0), ego_speed=8.0), seed=0)
    rm, st = sim.road_map, sim.state
    flags = []
    for _ in range(40):
        ev = _step(sim, steer=-0.3)  # turn right, off the road across the sidewalk
        expected = not rm.on_drivable(_corners(st)).all()
        assert ev.off_road[0] == expected
        flags.append(bool(ev.off_road[0]))
    assert not flags[0] and flags[-1]


@pytest.mark.parametrize(("yaw", "wrong"), [(0.0, True), (math.pi, False)])
def test_wrong_way_is_driving_against_the_lane(sim: EmbeddedSimulator, yaw: float, wrong: bool) -> None:
    # lane (1, 0, 1) of `straight` at y = +1.75 drives west (yaw pi)
    sim.reset(_quiet("straight", Pose(150.0, 1.75, yaw), ego_speed=5.0), seed=0)
    events = [_step(sim) for _ in range(10)]
    assert all(bool(ev.wrong_way[0]) == wrong for ev in events)
    assert not any(ev.lane_invasion[0] or ev.off_road[0] for ev in events)


def test_lane_invasion_when_the_footprint_crosses_a_lane_marking(sim: EmbeddedSimulator) -> None:
    sim.reset(_quiet("straight", Pose(20.0, -1.75, 0.0), ego_speed=8.0), seed=0)
    st = sim.state
    for _ in range(30):
        ev = _step(sim, steer=-0.05)  # drift right towards the broken line at y = -3.5
        over = _corners(st)[:, 1].min() < -3.5 < _corners(st)[:, 1].max()
        if over:
            assert ev.lane_invasion[0]
            break
        assert not ev.lane_invasion[0]
    else:
        pytest.fail("the ego never reached the lane marking")


def test_route_progress_grows_by_the_distance_driven_and_deviation_by_the_offset(
    sim: EmbeddedSimulator,
) -> None:
    sim.reset(_quiet("straight", Pose(20.0, -1.75, 0.0), ego_speed=10.0, route=((250.0, -1.75),)), seed=0)
    st = sim.state
    progress = [_step(sim).route_progress[0] for _ in range(20)]
    assert progress[-1] - progress[0] == pytest.approx(19 * 10.0 * sim.dt, abs=0.05)
    assert np.all(np.diff(progress) > 0)
    last = progress[-1]
    for step in range(30):  # drift to the right lane: off the route polyline (y = -1.75)
        ev = _step(sim, steer=-0.04 if step < 15 else 0.04)
        assert ev.route_deviation[0] == pytest.approx(abs(st.y[0, 0] + 1.75), abs=0.05)
        assert ev.route_progress[0] >= last  # monotonic
        last = ev.route_progress[0]
    assert ev.route_deviation[0] > 1.0
    assert ev.route_length[0] == pytest.approx(230.0, abs=1.0)


# ------------------------------------------------------------------------------ bad input


def test_nan_actions_are_refused_and_leave_the_state_untouched(sim: EmbeddedSimulator) -> None:
    sim.reset(WorldSpec(map=MapRef("cross"), vehicles=4, pedestrians=2), seed=3)
    for _ in range(5):
        _step(sim, accel=0.2)
    before = sim.state.snapshot()
    for bad in ([[math.nan, 0.0]], [[0.0, math.inf]]):
        with pytest.raises(NonFiniteActionError, match=r"world\(s\) \[0\]"):
            sim.step(np.array(bad))
    after = sim.state.snapshot()
    assert before.keys() == after.keys()
    for name in before:
        np.testing.assert_array_equal(before[name], after[name], err_msg=name)


def test_ego_start_off_the_map_names_the_coordinates(sim: EmbeddedSimulator) -> None:
    with pytest.raises(MapError, match=r"\(5000\.0, -4000\.0\)"):
        sim.reset(_quiet("straight", Pose(5000.0, -4000.0, 0.0)), seed=0)


def test_unreachable_route_waypoint_is_a_map_error(sim: EmbeddedSimulator) -> None:
    with pytest.raises(MapError):
        sim.reset(_quiet("straight", Pose(20.0, -1.75, 0.0), route=((5000.0, 5000.0),)), seed=0)


def test_scenario_vehicle_off_the_lanes_is_a_map_error(sim: EmbeddedSimulator) -> None:
    far = ActorSpec(ActorKind.VEHICLE, Pose(150.0, 60.0, 0.0))
    with pytest.raises(MapError, match=r"\(150\.0, 60\.0\)"):
        sim.reset(_quiet("straight", Pose(20.0, -1.75, 0.0), (far,)), seed=0)


def test_too_many_scenario_actors_names_the_setting_to_raise(sim: EmbeddedSimulator) -> None:
    cars = tuple(ActorSpec(ActorKind.VEHICLE, Pose(30.0 + 10.0 * k, -1.75, 0.0)) for k in range(NV))
    with pytest.raises(ValueError, match=r"max_vehicles"):
        sim.reset(_quiet("straight", Pose(20.0, -5.25, 0.0), cars), seed=0)
    peds = tuple(ActorSpec(ActorKind.PEDESTRIAN, Pose(30.0 + k, -8.25, 0.0)) for k in range(NP + 1))
    with pytest.raises(ValueError, match=r"max_pedestrians"):
        sim.reset(_quiet("straight", Pose(20.0, -5.25, 0.0), peds), seed=0)


def test_unknown_frozen_signal_is_refused(sim: EmbeddedSimulator) -> None:
    with pytest.raises(ValueError, match=r"signal 7"):
        sim.reset(_quiet("cross", Pose(40.0, 1.6, math.pi), signal_states=((7, LightState.RED),)), seed=0)


def test_partial_reset_cannot_change_the_map() -> None:
    with EmbeddedSimulator(_config(num_worlds=2)) as two:
        two.reset(WorldSpec(map=MapRef("cross"), vehicles=2, pedestrians=0), seed=0)
        with pytest.raises(ValueError, match=r"partial reset"):
            two.reset(WorldSpec(map=MapRef("tee"), vehicles=2, pedestrians=0), seed=1, worlds=[1])
        with pytest.raises(ValueError, match=r"share a map"):
            two.reset([WorldSpec(map=MapRef("cross")), WorldSpec(map=MapRef("tee"))], seed=0)


# ------------------------------------------------------------------------------ observation contract


def test_observation_has_the_documented_shapes_types_and_ranges() -> None:
    B, max_objects = 2, 16
    geometry = BevGeometry()
    with EmbeddedSimulator(
        _config(num_worlds=B, render_bev=True, max_objects=max_objects, max_pedestrians=8)
    ) as s:
        obs = s.reset(WorldSpec(map=MapRef("cross"), vehicles=6, pedestrians=6), seed=[0, 1])
        for _ in range(20):
            _check_observation(s, obs, B, max_objects, geometry)
            obs, _ = s.step(np.tile([0.3, 0.0], (B, 1)))
        _check_observation(s, obs, B, max_objects, geometry)


def _check_observation(sim: EmbeddedSimulator, obs: Observation, B: int, max_objects: int, geometry) -> None:
    st = sim.state
    assert obs.bev.dtype == np.uint8 and obs.bev.shape == (
        B,
        geometry.num_channels,
        geometry.size,
        geometry.size,
    )
    assert set(np.unique(obs.bev).tolist()) <= {0, 255}
    assert (obs.bev[:, 0] == 255).any(axis=(1, 2)).all()  # the drivable area is in view
    assert obs.ego.dtype == np.float32 and obs.ego.shape == (B, EGO_DIM)
    assert np.isfinite(obs.ego).all()
    np.testing.assert_allclose(obs.ego[:, EgoFeature.SPEED], st.speed[:, 0], rtol=1e-6, atol=1e-6)
    commands = obs.ego[:, EgoFeature.CMD_LANE_FOLLOW : EgoFeature.CMD_CHANGE_RIGHT + 1]
    np.testing.assert_array_equal(commands.sum(axis=1), 1.0)  # one-hot
    assert obs.objects.dtype == np.float32 and obs.objects.shape == (B, max_objects, OBJECT_DIM)
    assert obs.objects_mask.dtype == bool and obs.objects_mask.shape == (B, max_objects)
    assert obs.object_ids.dtype == np.int32 and obs.object_ids.shape == (B, max_objects)
    assert np.isfinite(obs.objects).all()
    for b in range(B):
        mask = obs.objects_mask[b]
        assert (obs.object_ids[b, ~mask] == -1).all() and (obs.objects[b, ~mask] == 0).all()
        live = set(st.ids[b, (st.active[b] == 1)].tolist()) - {0}
        assert set(obs.object_ids[b, mask].tolist()) <= live
        rows = obs.objects[b, mask]
        dist = np.hypot(rows[:, ObjectFeature.X], rows[:, ObjectFeature.Y])
        assert np.all(np.diff(dist) >= -1e-4)  # nearest first
        kinds = rows[:, ObjectFeature.IS_VEHICLE : ObjectFeature.IS_STATIC + 1]
        np.testing.assert_array_equal(kinds.sum(axis=1), 1.0)
        np.testing.assert_allclose(
            rows[:, ObjectFeature.COS_YAW] ** 2 + rows[:, ObjectFeature.SIN_YAW] ** 2, 1.0, atol=1e-5
        )
    assert (st.I[f.ACTIVE, :, 0] == 1).all()
