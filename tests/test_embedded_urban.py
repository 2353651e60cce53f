"""Traffic behaviour the long urban route depends on (embedded simulator): walkers cross in front of a
car that stopped for them, NPCs keep to their lane through the grid town's tight corner bends,
and a car at a stop sign gets through a priority stream (critical gap, impatience, priority
vehicles that stand still).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest

from sim_bridge.api import ActorKind, ActorSpec, Behaviour, BehaviourKind, MapRef, Pose, WorldSpec
from sim_bridge.embedded import fields as f
from sim_bridge.embedded.config import DriverModel, EmbeddedConfig, VehicleLimits
from sim_bridge.embedded.lanes import project_local, width_on_lane
from sim_bridge.embedded.map_arrays import MapArrays, build_map_arrays
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.embedded.traffic import DriverParams, _must_yield
from sim_bridge.maps.catalog import load_map

VEHICLE, PEDESTRIAN = ActorKind.VEHICLE, ActorKind.PEDESTRIAN
NV, NP = 8, 4  # vehicle slots (ego included), pedestrian slots
PED0 = NV
BRAKE = (-1.0, 0.0)  # the ego's action: stand still
DRIVER = DriverModel()


def _config(num_worlds: int = 1) -> EmbeddedConfig:
    return EmbeddedConfig(
        num_worlds=num_worlds, render_bev=False, max_vehicles=NV, max_pedestrians=NP, max_statics=2, threads=1
    )


@pytest.fixture(scope="module")
def sim() -> Iterator[EmbeddedSimulator]:
    with EmbeddedSimulator(_config()) as s:
        yield s


def _quiet(ref: MapRef, ego: Pose, actors: tuple[ActorSpec, ...] = (), ego_speed: float = 0.0) -> WorldSpec:
    """A world without background traffic."""
    return WorldSpec(map=ref, ego=ego, ego_speed=ego_speed, actors=actors, vehicles=0, pedestrians=0)


def _step(sim: EmbeddedSimulator, action: tuple[float, float] = BRAKE) -> None:
    sim.step(np.tile(np.asarray(action, dtype=np.float64), (sim.num_worlds, 1)))


def _inside_box(st, b: int, i: int, x: float, y: float, margin: float) -> bool:
    """Is ``(x, y)`` within vehicle ``i``'s box grown by ``margin`` [m]?"""
    c, s = math.cos(st.yaw[b, i]), math.sin(st.yaw[b, i])
    dx, dy = x - st.x[b, i], y - st.y[b, i]
    return (
        abs(dx * c + dy * s) < 0.5 * st.length[b, i] + margin
        and abs(-dx * s + dy * c) < 0.5 * st.width[b, i] + margin
    )


# ------------------------------------------------------------------------------ pedestrians


@pytest.mark.parametrize("heading_deg", [-90.0, -100.0, -80.0, -120.0])
def test_walker_crosses_in_front_of_a_car_stopped_for_it(sim: EmbeddedSimulator, heading_deg: float) -> None:
    """`straight`: the ego stands in the east-bound lane; a walker crosses from the north with a
    path that runs into the ego's front (diagonally back into it, or straight at its bumper). It
    walks round the front and reaches the far side of the lane within 15 s, never inside the box."""
    ego = Pose(50.0, -1.75, 0.0)
    walker = ActorSpec(
        PEDESTRIAN,
        Pose(50.0 + 2.3 + 0.4, 2.0, math.radians(heading_deg)),
        target_speed=1.4,
        behaviour=Behaviour(BehaviourKind.CROSS, trigger_time=0.0),
    )
    sim.reset(_quiet(MapRef("straight"), ego, (walker,)), seed=0)
    st = sim.state
    crossed_at = None
    for step in range(300):
        _step(sim)
        x, y = st.x[0, PED0], st.y[0, PED0]
        assert not _inside_box(st, 0, 0, x, y, 0.0), f"the walker is inside the car at step {step}"
        if crossed_at is None and y < st.y[0, 0] - 0.5 * st.width[0, 0] - 0.3:
            crossed_at = step
    assert st.speed[0, 0] == 0.0  # the car never moved
    assert crossed_at is not None and crossed_at * sim.dt < 15.0, crossed_at


def test_walker_still_waits_for_a_moving_car(sim: EmbeddedSimulator) -> None:
    """A car driving at it: the walker (2 m to the side of the lane, walking into it) pauses."""
    walker = ActorSpec(
        PEDESTRIAN,
        Pose(58.0, 0.6, -math.pi / 2),
        target_speed=1.4,
        behaviour=Behaviour(BehaviourKind.CROSS, trigger_time=0.0),
    )
    sim.reset(_quiet(MapRef("straight"), Pose(50.0, -1.75, 0.0), (walker,), ego_speed=3.0), seed=0)
    st = sim.state
    _step(sim, (0.0, 0.0))
    assert st.speed[0, 0] > 0.5
    assert st.speed[0, PED0] == 0.0  # a moving vehicle 4 m ahead: wait


# ------------------------------------------------------------------------------ bends


def _corner_lanes(m: MapArrays) -> list[int]:
    """Junction lanes of the grid's corner bends (junctions with no straight-on movement)."""
    junction = m.lane_i[f.L_JUNCTION]
    out = []
    for jid in np.unique(junction[junction >= 0]):
        lanes = np.flatnonzero(junction == jid)
        if (m.lane_f[f.L_CURVATURE, lanes] > 0.05).all():
            out.extend(int(lane) for lane in lanes)
    return out


def _footprint_overshoot(m: MapArrays, st, b: int, i: int) -> float:
    """How far [m] the corners of vehicle ``i``'s box stick out of its lane (< 0: inside)."""
    lane = st.lane[b, i]
    c, s = math.cos(st.yaw[b, i]), math.sin(st.yaw[b, i])
    hl, hw = 0.5 * st.length[b, i], 0.5 * st.width[b, i]
    worst = -math.inf
    for ex, ey in ((hl, hw), (hl, -hw), (-hl, hw), (-hl, -hw)):
        cx, cy = st.x[b, i] + ex * c - ey * s, st.y[b, i] + ex * s + ey * c
        sc, lat, _ = project_local(m, lane, st.s[b, i], cx, cy)
        if 0.0 <= sc <= m.lane_f[f.L_LENGTH, lane]:
            worst = max(worst, abs(lat) - 0.5 * width_on_lane(m, lane, sc))
    return worst


def test_npcs_keep_to_their_lane_through_the_grid_corner_bends() -> None:
    """grid:7: one car per corner-bend lane (5-8 m radius), arriving at 10 m/s. Its centre stays
    within 0.35 m of the lane centre through the bend (pure pursuit with the straight-road
    lookahead cut the corner by 0.5 m), its box sticks out of the lane by less than 0.4 m
    (less than the clearance to a car in the next lane), and it drives on."""
    ref = MapRef("grid", 7)
    m = build_map_arrays(load_map(ref))
    corners = _corner_lanes(m)
    assert len(corners) >= 8
    specs = []
    for lane in corners:
        pred = int(
            np.flatnonzero(
                [
                    lane in m.succ_index[m.succ_start[q] : m.succ_start[q + 1]]
                    for q in range(len(m.lane_f[f.L_LENGTH]))
                ]
            )[0]
        )
        length = float(m.lane_f[f.L_LENGTH, pred])
        rm = load_map(ref)
        (car_xy, ego_xy), yaws = rm.pose_at(np.array([pred, pred]), np.array([length - 25.0, length - 60.0]))
        car = ActorSpec(VEHICLE, Pose(float(car_xy[0]), float(car_xy[1]), float(yaws[0])), speed=10.0)
        specs.append(_quiet(ref, Pose(float(ego_xy[0]), float(ego_xy[1]), float(yaws[1])), (car,)))
    with EmbeddedSimulator(_config(len(corners))) as sim:
        sim.reset(specs, seed=0)
        st = sim.state
        worst = np.full(len(corners), -np.inf)
        lateral = np.zeros(len(corners))
        left_bend = np.zeros(len(corners), dtype=bool)
        for _ in range(200):
            _step(sim)
            for b in range(len(corners)):
                lane = st.lane[b, 1]
                if lane in corners:  # the one it was put before, or the other lane of its direction
                    worst[b] = max(worst[b], _footprint_overshoot(m, st, b, 1))
                    _, lat, _ = project_local(m, lane, st.s[b, 1], st.x[b, 1], st.y[b, 1])
                    lateral[b] = max(lateral[b], abs(lat))
                elif worst[b] > -np.inf:
                    left_bend[b] = True
    assert left_bend.all(), [c for c, ok in zip(corners, left_bend, strict=True) if not ok]
    assert lateral.max() <= 0.35, dict(zip(corners, np.round(lateral, 2), strict=True))
    assert worst.max() <= 0.4, dict(zip(corners, np.round(worst, 2), strict=True))


# ------------------------------------------------------------------------------ stop signs


@pytest.fixture(scope="module")
def tee() -> MapArrays:
    return build_map_arrays(load_map(MapRef("tee")))


def _lane_key(key: tuple[int, int, int]) -> int:
    return load_map(MapRef("tee")).lane_keys.index(key)


@pytest.mark.parametrize(
    ("eta", "speed", "standstill", "waited", "must_yield"),
    [
        (4.5, 10.0, 0.0, 0.0, True),  # within the critical gap (5 s)
        (5.5, 10.0, 0.0, 0.0, False),  # beyond it
        (6.0, 10.0, 0.0, 0.0, False),  # the 6 s of a stream with 6-s gaps
        (4.5, 10.0, 0.0, 15.0, False),  # 15 s of waiting: the gap shrank to 3.75 s
        (3.0, 10.0, 0.0, 15.0, True),
        (3.0, 10.0, 0.0, 60.0, False),  # impatient: 2.5 s is enough
        (2.0, 10.0, 0.0, 60.0, True),  # but never less
        (2.0, 0.0, 5.0, 0.0, False),  # a priority vehicle standing still (waiting) is not arriving
        (2.0, 0.0, 0.5, 0.0, True),  # one that has just stopped may go on
    ],
)
def test_stop_sign_gap_acceptance(
    tee: MapArrays, eta: float, speed: float, standstill: float, waited: float, must_yield: bool
) -> None:
    """`tee`: vehicle 1 on the stem (a stop sign, done), turning left; vehicle 2 on the east-bound
    through lane (priority), ``eta`` [s] from the junction at ``speed``."""
    m = tee
    left = next(
        int(q)
        for q in m.succ_index[m.succ_start[_lane_key((3, 0, -1))] : m.succ_start[_lane_key((3, 0, -1)) + 1]]
        if m.lane_f[f.L_LENGTH, q] > 15.0
    )
    through = _lane_key((102, 0, -1))
    F = np.zeros((f.NUM_FLOAT, 1, 3))
    F[f.SPEED, 0, 1], F[f.STUCK, 0, 1] = 0.0, waited
    F[f.SPEED, 0, 2], F[f.STUCK, 0, 2] = speed, standstill
    jlane = np.array([-1, left, through])
    jdist = np.array([0.0, 1.0, eta * max(speed, 1.0)])
    jstate = np.array([0, 3, 3])
    p = DriverParams.make(DRIVER, VehicleLimits(), 0.1)
    assert _must_yield(m, F, 3, 0, 1, jlane, jdist, jstate, p) is must_yield


def _through_the_stem(sim: EmbeddedSimulator, others: tuple[ActorSpec, ...], steps: int) -> tuple[int, int]:
    """`tee`: vehicle 1 drives up the stem (stop sign) and turns left (west). Returns the steps at
    which it stopped at the line and at which it entered the junction (-1: never)."""
    npc = ActorSpec(VEHICLE, Pose(1.625, -40.0, math.pi / 2), speed=6.0, route=((-60.0, 1.625),))
    sim.reset(_quiet(MapRef("tee"), Pose(100.0, 1.625, math.pi), (npc, *others)), seed=0)
    st = sim.state
    m = build_map_arrays(sim.road_map)
    stopped, entered = -1, -1
    for step in range(steps):
        _step(sim)
        if stopped < 0 and st.stop_done[0, 1]:
            stopped = step
        if entered < 0 and m.lane_i[f.L_JUNCTION, st.lane[0, 1]] >= 0:
            entered = step
        for j in range(2, 2 + len(others)):
            assert not _inside_box(st, 0, j, st.x[0, 1], st.y[0, 1], 0.5), (
                f"vehicles {1, j} met at step {step}"
            )
    return stopped, entered


def test_stop_sign_car_gets_through_a_stream_with_6s_gaps(sim: EmbeddedSimulator) -> None:
    """East-bound stream at 8 m/s: the first car reaches the junction at ~2.5 s and clears it at
    ~5.5 s; the next arrives 6 s later. The stem car, having stopped, takes that gap."""
    stream = tuple(
        ActorSpec(
            VEHICLE, Pose(-9.25 - 8.0 * t, -1.625, 0.0), speed=8.0, target_speed=8.0, route=((60.0, -1.625),)
        )
        for t in (2.5, 11.5)
    )
    stopped, entered = _through_the_stem(sim, stream, 200)
    assert 0 <= stopped < entered
    assert entered * sim.dt < 11.5 - 1.0  # before the second car of the stream arrives


def test_stop_sign_car_does_not_wait_for_a_priority_car_standing_still(sim: EmbeddedSimulator) -> None:
    """A car stands (scripted, never triggered) 1 m before the junction on the east-bound through
    lane. The stem car used to wait for it for good (arriving "within 4 s"); now it goes."""
    standing = ActorSpec(
        VEHICLE,
        Pose(-9.25 - 3.3, -1.625, 0.0),
        behaviour=Behaviour(BehaviourKind.STOPPED),
        route=((60.0, -1.625),),
    )
    stopped, entered = _through_the_stem(sim, (standing,), 300)
    assert 0 <= stopped < entered
    assert (entered - stopped) * sim.dt < 5.0
