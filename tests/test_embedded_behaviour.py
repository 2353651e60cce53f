"""Behaviour of the embedded simulator, checked with numbers through its public API and state.

Kinematics, IDM car following, traffic lights and their cycle, stop signs, right of way at an
unsignalised junction, lane changes and merges, background density, pedestrians and the scripted
behaviours of scenario actors. Simulators are built once per module (the numba kernels compile on
first use); each test resets them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import numpy as np
import pytest
import shapely

from planning.base import AgentInfo
from planning.lane_follower import LaneFollower
from sim_bridge.api import (
    ActorKind,
    ActorSpec,
    Behaviour,
    BehaviourKind,
    LightState,
    MapRef,
    Pose,
    SignalTiming,
    StepEvents,
    WorldSpec,
)
from sim_bridge.embedded import fields as f
from sim_bridge.embedded.config import DriverModel, EmbeddedConfig, VehicleLimits
from sim_bridge.embedded.map_arrays import build_map_arrays
from sim_bridge.embedded.simulator import RESPAWN_DISTANCE, EmbeddedSimulator
from sim_bridge.embedded.state import WALK_FREE, WALK_SIDEWALK
from sim_bridge.geometry import boxes_overlap
from sim_bridge.maps.catalog import load_map

VEHICLE, PEDESTRIAN, STATIC = ActorKind.VEHICLE, ActorKind.PEDESTRIAN, ActorKind.STATIC
NV, NP, NS = 8, 4, 2  # slots of the small simulators: vehicles (ego included), pedestrians, statics
PED0, STATIC0 = NV, NV + NP  # first pedestrian and static slot
DRIVER = DriverModel()


def _config(num_worlds: int = 1, **changes: object) -> EmbeddedConfig:
    base = dict(num_worlds=num_worlds, render_bev=False, max_vehicles=NV, max_pedestrians=NP, max_statics=NS)
    base.update(changes)
    return EmbeddedConfig(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sim() -> Iterator[EmbeddedSimulator]:
    """One world, default drag."""
    with EmbeddedSimulator(_config()) as s:
        yield s


@pytest.fixture(scope="module")
def sim_no_drag() -> Iterator[EmbeddedSimulator]:
    """One world without drag, for closed-form speeds."""
    with EmbeddedSimulator(_config(vehicle=VehicleLimits(drag=0.0))) as s:
        yield s


def _quiet(town: str, ego: Pose, actors: tuple[ActorSpec, ...] = (), **changes: object) -> WorldSpec:
    """A world without background traffic."""
    return WorldSpec(map=MapRef(town), ego=ego, actors=actors, vehicles=0, pedestrians=0, **changes)  # type: ignore[arg-type]


def _run(sim: EmbeddedSimulator, steps: int, action: tuple[float, float] = (0.0, 0.0)) -> list[StepEvents]:
    """Step with a constant action; returns the events of every step."""
    act = np.tile(np.asarray(action, dtype=np.float64), (sim.num_worlds, 1))
    return [sim.step(act)[1] for _ in range(steps)]


def _overlap(st, b: int, i: int, j: int) -> bool:
    return bool(
        boxes_overlap(
            st.x[b, i], st.y[b, i], st.yaw[b, i], st.length[b, i], st.width[b, i],
            st.x[b, j], st.y[b, j], st.yaw[b, j], st.length[b, j], st.width[b, j],
        )
    )  # fmt: skip


def _overlapping_pairs(st, b: int, slots: np.ndarray) -> int:
    """How many pairs of the boxes in ``slots`` of world ``b`` overlap (separating axes, vectorised)."""
    x, y, yaw = st.x[b, slots], st.y[b, slots], st.yaw[b, slots]
    hl, hw = 0.5 * st.length[b, slots], 0.5 * st.width[b, slots]
    c, s = np.cos(yaw), np.sin(yaw)
    dx, dy = x[None, :] - x[:, None], y[None, :] - y[:, None]
    separated = np.zeros((len(slots), len(slots)), dtype=bool)
    for ax, ay in (
        (c[:, None], s[:, None]),
        (-s[:, None], c[:, None]),
        (c[None, :], s[None, :]),
        (-s[None, :], c[None, :]),
    ):
        reach = (
            hl[:, None] * np.abs(c[:, None] * ax + s[:, None] * ay)
            + hw[:, None] * np.abs(-s[:, None] * ax + c[:, None] * ay)
            + hl[None, :] * np.abs(c[None, :] * ax + s[None, :] * ay)
            + hw[None, :] * np.abs(-s[None, :] * ax + c[None, :] * ay)
        )
        separated |= np.abs(dx * ax + dy * ay) > reach
    return int(np.triu(~separated, k=1).sum())


def _bumper_gap(st, lead: int, follower: int) -> float:
    """Gap between the follower's front and the leader's rear along +x [m] (both heading +x)."""
    return float(st.x[0, lead] - st.x[0, follower] - 0.5 * (st.length[0, lead] + st.length[0, follower]))


def _lane(town: str, key: tuple[int, int, int]) -> int:
    return load_map(MapRef(town)).lane_keys.index(key)


def _pose_on(town: str, lane: int, s: float) -> Pose:
    xy, yaw = load_map(MapRef(town)).pose_at(np.array([lane]), np.array([s]))
    return Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0]))


def _stop_line(town: str, lane_key: tuple[int, int, int]) -> np.ndarray:
    """``[2, 2]`` end points of the stop line across lane ``lane_key`` of ``town`` [m]."""
    rm = load_map(MapRef(town))
    k = list(rm.stop_lane).index(rm.lane_keys.index(lane_key))
    return np.asarray(rm.stop_segment[k])


# ------------------------------------------------------------------------------ kinematics


@pytest.mark.parametrize("speed", [0.0, 4.0, 10.0, 25.0])
def test_ego_at_constant_speed_covers_speed_times_time(sim_no_drag: EmbeddedSimulator, speed: float) -> None:
    sim = sim_no_drag
    sim.reset(_quiet("straight", Pose(20.0, -1.75, 0.0), ego_speed=speed), seed=0)
    events = _run(sim, 20)  # 2 s
    st = sim.state
    assert st.x[0, 0] - 20.0 == pytest.approx(speed * 2.0, abs=1e-6)
    assert st.y[0, 0] == pytest.approx(-1.75, abs=1e-9)
    assert st.speed[0, 0] == pytest.approx(speed, abs=1e-9)
    assert sum(ev.distance_driven[0] for ev in events) == pytest.approx(speed * 2.0, abs=1e-6)
    assert events[-1].sim_time[0] == pytest.approx(2.0, abs=1e-9)


def test_full_brake_stops_in_the_closed_form_distance(sim_no_drag: EmbeddedSimulator) -> None:
    sim = sim_no_drag
    sim.reset(_quiet("straight", Pose(20.0, -1.75, 0.0), ego_speed=10.0), seed=0)
    _run(sim, 20, (-1.0, 0.0))  # accel = -1: max_brake 8 m/s²
    st = sim.state
    assert st.speed[0, 0] == 0.0
    assert st.x[0, 0] - 20.0 == pytest.approx(10.0**2 / (2 * 8.0), abs=1e-9)


def test_drag_decelerates_in_proportion_to_speed(sim: EmbeddedSimulator) -> None:
    sim.reset(_quiet("straight", Pose(20.0, -1.75, 0.0), ego_speed=10.0), seed=0)
    _run(sim, 10)  # 1 s coasting: v' = -0.02 v, explicit Euler at 20 Hz
    assert sim.state.speed[0, 0] == pytest.approx(10.0 * (1 - 0.02 * 0.05) ** 20, rel=1e-9)


# ------------------------------------------------------------------------------ car following


def test_npc_stops_behind_a_stopped_vehicle_at_the_idm_standstill_gap(sim: EmbeddedSimulator) -> None:
    leader = ActorSpec(VEHICLE, Pose(150.0, -1.75, 0.0), behaviour=Behaviour(BehaviourKind.STOPPED))
    follower = ActorSpec(VEHICLE, Pose(80.0, -1.75, 0.0), speed=10.0, target_speed=10.0)
    sim.reset(_quiet("straight", Pose(5.0, -5.25, 0.0), (leader, follower)), seed=0)
    st = sim.state
    gaps = []
    for _ in range(200):
        _run(sim, 1)
        gaps.append(_bumper_gap(st, 1, 2))
        assert not _overlap(st, 0, 1, 2)
    assert st.speed[0, 2] < 0.01 and st.speed[0, 1] == 0.0
    assert gaps[-1] == pytest.approx(DRIVER.min_gap, abs=0.3)
    assert min(gaps) > DRIVER.min_gap - 0.3  # it never closed in further


def test_npc_settles_at_the_idm_equilibrium_gap_behind_a_moving_leader(
    sim_no_drag: EmbeddedSimulator,
) -> None:
    sim = sim_no_drag
    leader = ActorSpec(VEHICLE, Pose(30.0, -1.75, 0.0), speed=8.0, target_speed=8.0)
    follower = ActorSpec(VEHICLE, Pose(5.0, -1.75, 0.0), speed=8.0, target_speed=30.0)
    sim.reset(_quiet("straight", Pose(5.0, -5.25, 0.0), (leader, follower)), seed=0)
    _run(sim, 160)  # 16 s
    st = sim.state
    v, v0 = st.speed[0, 2], 30.0
    gap = _bumper_gap(st, 1, 2)
    s_star = DRIVER.min_gap + v * DRIVER.headway  # equal speeds: s* = s0 + v T
    assert v == pytest.approx(st.speed[0, 1], abs=0.05)
    assert gap == pytest.approx(s_star / math.sqrt(1.0 - (v / v0) ** 4), abs=0.1)  # IDM steady state
    assert gap == pytest.approx(s_star, abs=0.2)


# ------------------------------------------------------------------------------ signals

#: the stop line of the east approach of `cross` (lane (1, 0, 1), driving west) lies across x =
CROSS_LINE_X = float(_stop_line("cross", (1, 0, 1))[0, 0])


@pytest.mark.parametrize("state", [LightState.RED, LightState.GREEN])
def test_npc_obeys_a_frozen_light(sim: EmbeddedSimulator, state: LightState) -> None:
    npc = ActorSpec(VEHICLE, Pose(70.0, 1.6, math.pi), speed=8.0, route=((-60.0, 1.6),))
    frozen = tuple((k, state) for k in range(4))
    sim.reset(_quiet("cross", Pose(100.0, -1.6, 0.0), (npc,), signal_states=frozen), seed=0)
    st = sim.state
    fronts, speeds = [], []
    for _ in range(200):
        _run(sim, 1)
        fronts.append(st.x[0, 1] - 0.5 * st.length[0, 1])  # driving west: the front is at -x
        speeds.append(st.speed[0, 1])
    if state == LightState.RED:
        assert min(fronts) > CROSS_LINE_X  # never crossed the line
        assert 1.0 <= fronts[-1] - CROSS_LINE_X <= 4.0
        assert speeds[-1] < 0.1
    else:
        assert fronts[-1] < -60.0  # through the junction and on
        assert min(speeds[:120]) > 5.0  # without stopping


def test_signal_cycle_follows_the_timing() -> None:
    green, yellow, all_red = 6.0, 2.0, 1.0
    with EmbeddedSimulator(_config(num_worlds=2)) as sim:
        timing = SignalTiming(green=green, yellow=yellow, all_red=all_red, random_offset=True)
        sim.reset(_quiet("cross", Pose(100.0, -1.6, 0.0), signals=timing), seed=[3, 11])
        history = []
        for _ in range(500):
            sim.step(np.zeros((2, 2)))
            history.append(sim.state.light.copy())
        dt = sim.dt
    lights = np.array(history)  # [T, B, K]
    # stop lines 0/2 (east and west approaches) share a phase, 1/3 (north and south) the other
    np.testing.assert_array_equal(lights[:, :, 0], lights[:, :, 2])
    np.testing.assert_array_equal(lights[:, :, 1], lights[:, :, 3])
    # conflicting approaches are never both allowed to go
    assert not ((lights[:, :, 0] != LightState.RED) & (lights[:, :, 1] != LightState.RED)).any()
    cycle = 2 * (green + yellow + all_red)
    for b in range(2):
        for k in (0, 1):
            seq = lights[:, b, k]
            change = np.flatnonzero(np.diff(seq)) + 1
            runs = [(seq[a], (c - a) * dt) for a, c in itertools.pairwise(change)]
            assert len(runs) >= 6  # at least two full cycles observed
            for state, duration in runs:  # complete runs only
                expected = {LightState.GREEN: green, LightState.YELLOW: yellow}.get(
                    LightState(state), cycle - green - yellow
                )
                assert duration == pytest.approx(expected, abs=dt + 1e-9)
            order = [LightState(s) for s, _ in runs]
            for a, c in itertools.pairwise(order):
                assert (a, c) in {
                    (LightState.GREEN, LightState.YELLOW),
                    (LightState.YELLOW, LightState.RED),
                    (LightState.RED, LightState.GREEN),
                }
    # the two worlds' seeded offsets differ
    assert not np.array_equal(lights[:, 0, 0], lights[:, 1, 0])


#: the stop line of the stem of `tee` (lane (3, 0, -1), driving north; a stop sign) lies across y =
TEE_LINE_Y = float(_stop_line("tee", (3, 0, -1))[0, 1])


def test_npc_stops_at_a_stop_sign_before_entering_the_junction(sim: EmbeddedSimulator) -> None:
    npc = ActorSpec(VEHICLE, Pose(1.6, -70.0, math.pi / 2), speed=8.0, route=((-60.0, 1.6),))
    sim.reset(_quiet("tee", Pose(80.0, -1.6, 0.0), (npc,)), seed=0)
    st = sim.state
    m = build_map_arrays(sim.road_map)
    track = []
    for _ in range(250):
        _run(sim, 1)
        track.append(
            (st.y[0, 1] + 0.5 * st.length[0, 1], st.speed[0, 1], m.lane_i[f.L_JUNCTION, st.lane[0, 1]] >= 0)
        )
    front, speed, in_junction = (np.array(c) for c in zip(*track, strict=True))
    entered = int(np.argmax(in_junction))
    assert in_junction.any() and entered > 0
    before = slice(0, entered)
    near_line = (front[before] > TEE_LINE_Y - 4.0) & (front[before] <= TEE_LINE_Y)
    assert near_line.any() and speed[before][near_line].min() < 0.3  # came to a stop at the line
    assert st.x[0, 1] < -30.0  # and then went on (left turn to the west)


# ------------------------------------------------------------------------------ right of way


@pytest.mark.parametrize("offsets", [(40.0, 40.0), (35.0, 40.0), (40.0, 35.0), (30.0, 40.0)])
def test_conflicting_npcs_at_an_unsignalised_junction_never_overlap(
    sim: EmbeddedSimulator, offsets: tuple[float, float]
) -> None:
    """On the through road of `tee`: a left turner from the east into the stem (rank 1) and a
    vehicle going straight from the west (rank 2) arrive together; the turner waits."""
    a0, b0 = offsets
    turner = ActorSpec(VEHICLE, Pose(a0, 1.6, math.pi), speed=8.0, target_speed=8.0, route=((-1.6, -60.0),))
    straight = ActorSpec(VEHICLE, Pose(-b0, -1.6, 0.0), speed=8.0, target_speed=8.0, route=((60.0, -1.6),))
    sim.reset(_quiet("tee", Pose(100.0, 1.6, math.pi), (turner, straight)), seed=0)
    st, m = sim.state, build_map_arrays(sim.road_map)
    entered = {1: -1, 2: -1}
    speed_turner = []
    for step in range(200):
        _run(sim, 1)
        assert not _overlap(st, 0, 1, 2), f"the two NPCs overlap at step {step}"
        for i in (1, 2):
            if entered[i] < 0 and m.lane_i[f.L_JUNCTION, st.lane[0, i]] >= 0:
                entered[i] = step
        speed_turner.append(st.speed[0, 1])
    assert entered[2] >= 0 and entered[1] > entered[2]  # the straight-on vehicle went first
    assert min(speed_turner) < 2.0  # the turner slowed down or stopped to let it pass
    assert st.y[0, 1] < -30.0 and st.x[0, 2] > 30.0  # both got through


def test_same_rank_npcs_on_a_green_4_way_take_turns(sim: EmbeddedSimulator) -> None:
    """Lights frozen green for every approach: two straight-on vehicles of equal rank from
    perpendicular approaches; the tie is broken, they never overlap."""
    east = ActorSpec(VEHICLE, Pose(40.0, 1.6, math.pi), speed=8.0, target_speed=8.0, route=((-60.0, 1.6),))
    south = ActorSpec(
        VEHICLE, Pose(1.6, -40.0, math.pi / 2), speed=8.0, target_speed=8.0, route=((1.6, 60.0),)
    )
    frozen = tuple((k, LightState.GREEN) for k in range(4))
    sim.reset(_quiet("cross", Pose(100.0, -1.6, 0.0), (east, south), signal_states=frozen), seed=0)
    st = sim.state
    slowest = np.full(2, np.inf)
    for step in range(200):
        _run(sim, 1)
        assert not _overlap(st, 0, 1, 2), f"the two NPCs overlap at step {step}"
        slowest = np.minimum(slowest, st.speed[0, 1:3])
    assert slowest.min() < 1.0  # one of them waited for the other
    assert st.x[0, 1] < -30.0 and st.y[0, 2] > 30.0


# ------------------------------------------------------------------------------ lane changes, merges, density


def test_highway_traffic_changes_lanes_keeps_its_density_and_respawns_far_away() -> None:
    B, target, radius = 2, 30, 120.0
    with EmbeddedSimulator(_config(num_worlds=B, max_vehicles=40)) as sim:
        spec = WorldSpec(
            map=MapRef("highway"), ego=Pose(50.0, -6.2, 0.0), vehicles=target, pedestrians=0,
            route_length=1200.0, traffic_radius=radius,
        )  # fmt: skip
        obs = sim.reset(spec, seed=[0, 1])
        agent = LaneFollower()
        agent.reset(AgentInfo(B, sim.dt, sim.ego_vehicle))
        st = sim.state
        lane_changes, overlaps, counts, spawn_distances = 0, 0, [], []
        prev_ids, prev_active, prev_from = st.ids.copy(), st.active.copy(), st.lane_prev.copy()
        for _ in range(600):  # 60 s
            obs, _ = sim.step(agent.act(obs))
            active = st.active == 1
            background = active & (st.background == 1)
            same = st.ids == prev_ids
            lane_changes += int(((st.lane_prev >= 0) & (prev_from < 0) & background & same).sum())
            new = active & (~same | (prev_active == 0))
            new[:, 0] = False
            b_new, i_new = np.nonzero(new)
            spawn_distances += np.hypot(
                st.x[b_new, i_new] - st.x[b_new, 0], st.y[b_new, i_new] - st.y[b_new, 0]
            ).tolist()
            dist = np.hypot(st.x - st.x[:, :1], st.y - st.y[:, :1])
            assert (dist[background] <= radius + 1e-9).all()  # farther ones were despawned
            for b in range(B):
                overlaps += _overlapping_pairs(st, b, np.flatnonzero(active[b, 1:40]) + 1)
            counts.append(background[:, :40].sum(axis=1))
            prev_ids, prev_active, prev_from = st.ids.copy(), st.active.copy(), st.lane_prev.copy()
    assert lane_changes >= 15  # measured 39 over the two worlds
    assert overlaps == 0
    assert np.mean(counts[-100:]) >= 0.9 * target  # measured 29.95 of 30
    assert len(spawn_distances) > 100 and min(spawn_distances) >= RESPAWN_DISTANCE


@pytest.mark.parametrize("blocked", [False, True])
def test_vehicle_leaves_an_acceleration_lane_before_it_tapers_away(
    sim: EmbeddedSimulator, blocked: bool
) -> None:
    accel_lane = _lane("highway", (2, 0, -5))  # full width, then (2, 1, -5) narrows to nothing
    taper = _lane("highway", (2, 1, -5))
    beside = _lane("highway", (2, 0, -4))
    actors = [ActorSpec(VEHICLE, _pose_on("highway", accel_lane, 10.0), speed=20.0, target_speed=20.0)]
    if blocked:  # a car alongside at the same speed: merge behind it
        actors.append(ActorSpec(VEHICLE, _pose_on("highway", beside, 10.0), speed=20.0, target_speed=20.0))
    ego = _pose_on("highway", _lane("highway", (2, 0, -2)), 5.0)
    sim.reset(_quiet("highway", ego, tuple(actors)), seed=0)
    st, m = sim.state, build_map_arrays(sim.road_map)
    merge_s = m.lane_f[f.L_MERGE_S, taper]
    assert 0.0 < merge_s < m.lane_f[f.L_LENGTH, taper]
    for _ in range(120):
        _run(sim, 1)
        assert not (st.lane[0, 1] == taper and st.s[0, 1] > merge_s)
        if blocked:
            assert not _overlap(st, 0, 1, 2)
    assert st.lane[0, 1] not in (accel_lane, taper)
    assert st.x[0, 1] > 600.0  # and drove on


# ------------------------------------------------------------------------------ pedestrians


def test_pedestrians_stay_on_sidewalks_except_while_crossing() -> None:
    with EmbeddedSimulator(_config(num_worlds=2, max_pedestrians=12)) as sim:
        sim.reset(
            WorldSpec(map=MapRef("cross"), ego=Pose(100.0, -1.6, 0.0), vehicles=6, pedestrians=10),
            seed=[0, 1],
        )
        st, rm = sim.state, sim.road_map
        area = rm.sidewalk_area.buffer(0.05)
        peds = slice(NV, NV + 12)
        walked = crossings = 0
        prev_mode = st.mode[:, peds].copy()
        for _ in range(600):
            sim.step(np.zeros((2, 2)))
            active = st.active[:, peds] == 1
            mode = st.mode[:, peds]
            on_walk = active & (mode == WALK_SIDEWALK)
            inside = shapely.contains_xy(area, st.x[:, peds], st.y[:, peds])
            assert inside[on_walk].all()
            walked += int(on_walk.sum())
            crossings += int((active & (mode == WALK_FREE) & (prev_mode == WALK_SIDEWALK)).sum())
            prev_mode = mode.copy()
    assert walked > 5000 and crossings >= 2  # measured 11364 walker-steps and 6 crossings


def test_crossing_pedestrian_starts_when_the_ego_comes_within_its_trigger_distance(
    sim: EmbeddedSimulator,
) -> None:
    trigger = 25.0
    ped = ActorSpec(
        PEDESTRIAN, Pose(60.0, -8.25, math.pi / 2), target_speed=1.4,
        behaviour=Behaviour(BehaviourKind.CROSS, trigger_distance=trigger),
    )  # fmt: skip
    sim.reset(_quiet("straight", Pose(20.0, -1.75, 0.0), (ped,), ego_speed=5.0), seed=0)
    st = sim.state
    distance, ys = [], []
    for _ in range(40):
        _run(sim, 1)
        distance.append(math.hypot(st.x[0, 0] - st.x[0, PED0], st.y[0, 0] - st.y[0, PED0]))
        ys.append(st.y[0, PED0])
    first = int(np.argmax(np.array(distance) < trigger))  # step after which the trigger fires
    assert first > 0
    assert ys[first] == -8.25  # stood still up to then
    assert ys[first + 1] == pytest.approx(
        -8.25 + 1.4 * sim.dt, abs=1e-9
    )  # walks along its yaw from the next step


def test_npc_stops_for_a_pedestrian_in_its_lane_then_drives_on(sim: EmbeddedSimulator) -> None:
    ped = ActorSpec(
        PEDESTRIAN, Pose(60.0, -2.5, math.pi / 2), target_speed=1.4,
        behaviour=Behaviour(BehaviourKind.CROSS, trigger_time=8.0),
    )  # fmt: skip
    npc = ActorSpec(VEHICLE, Pose(20.0, -1.75, 0.0), speed=8.0, target_speed=8.0)
    sim.reset(_quiet("straight", Pose(250.0, 1.75, math.pi), (npc, ped)), seed=0)
    st = sim.state
    stopped = False
    for _ in range(250):
        _run(sim, 1)
        assert not _overlap(st, 0, 1, PED0)
        if st.speed[0, 1] < 0.1 and st.y[0, PED0] < 0.0:
            stopped = True
            assert st.x[0, PED0] - st.x[0, 1] > 0.5 * st.length[0, 1] + 1.0  # before the pedestrian
    assert stopped and st.x[0, 1] > 120.0  # waited, then drove on once the lane was clear


# ------------------------------------------------------------------------------ scripted behaviours


def test_brake_behaviour_decelerates_at_its_decel_after_the_trigger(sim_no_drag: EmbeddedSimulator) -> None:
    sim = sim_no_drag
    decel, t_trigger = 4.0, 1.0
    lead = ActorSpec(
        VEHICLE, Pose(60.0, -1.75, 0.0), speed=10.0, target_speed=10.0,
        behaviour=Behaviour(BehaviourKind.BRAKE, trigger_time=t_trigger, decel=decel),
    )  # fmt: skip
    sim.reset(_quiet("straight", Pose(5.0, -5.25, 0.0), (lead,)), seed=0)
    speeds = [sim.state.speed[0, 1]]
    for _ in range(40):
        _run(sim, 1)
        speeds.append(sim.state.speed[0, 1])
    accel = np.diff(speeds) / sim.dt
    k = round(t_trigger / sim.dt)  # the trigger fires at the end of step k; braking starts at once
    assert np.all(np.abs(accel[:k]) < 0.1)  # cruising before
    stop = k + int(np.ceil(10.0 / decel / sim.dt))
    np.testing.assert_allclose(accel[k : stop - 1], -decel, atol=1e-9)
    assert speeds[-1] == 0.0


def test_cut_in_moves_into_the_neighbour_lane_within_its_lane_change_time(sim: EmbeddedSimulator) -> None:
    duration, t_trigger = 2.0, 1.0
    npc = ActorSpec(
        VEHICLE, Pose(40.0, -5.25, 0.0), speed=10.0, target_speed=10.0,
        behaviour=Behaviour(BehaviourKind.CUT_IN, trigger_time=t_trigger, lane_change=1, lane_change_time=duration),
    )  # fmt: skip
    sim.reset(_quiet("straight", Pose(5.0, -1.75, 0.0), (npc,), ego_speed=10.0), seed=0)
    st = sim.state
    times, ys = [], []
    for _ in range(60):
        _run(sim, 1)
        times.append(st.time[0])
        ys.append(st.y[0, 1])
    times, ys = np.array(times), np.array(ys)
    target = -1.75  # centre of the lane on its left
    assert np.all(ys[times <= t_trigger + 1e-9] == -5.25)
    assert np.all(np.abs(ys[times < t_trigger + 0.5 * duration] - target) > 1.0)  # not a jump
    settled = times >= t_trigger + duration + 0.5
    assert np.all(np.abs(ys[settled] - target) < 0.25)
    assert st.lane[0, 1] == _lane("straight", (1, 0, -1))


def test_open_door_widens_a_parked_car_on_its_right_side(sim: EmbeddedSimulator) -> None:
    door = 1.0
    car = ActorSpec(
        STATIC, Pose(60.0, -7.5, 0.0),
        behaviour=Behaviour(BehaviourKind.OPEN_DOOR, trigger_distance=30.0, lane_change=-1, door_width=door),
    )  # fmt: skip
    sim.reset(_quiet("straight", Pose(5.0, -5.25, 0.0), (car,), ego_speed=10.0), seed=0)
    st, k = sim.state, STATIC0
    left0, right0, width0 = (
        st.y[0, k] + 0.5 * st.width[0, k],
        st.y[0, k] - 0.5 * st.width[0, k],
        st.width[0, k],
    )
    for _ in range(40):
        _run(sim, 1)
        if st.triggered[0, k]:
            break
    assert st.triggered[0, k] and math.hypot(st.x[0, 0] - 60.0, st.y[0, 0] + 7.5) < 30.0
    assert st.width[0, k] == pytest.approx(width0 + door)
    assert st.y[0, k] + 0.5 * st.width[0, k] == pytest.approx(left0)  # the left side stays
    assert st.y[0, k] - 0.5 * st.width[0, k] == pytest.approx(right0 - door)  # the door opens on the right
    assert st.x[0, k] == 60.0 and st.yaw[0, k] == 0.0
