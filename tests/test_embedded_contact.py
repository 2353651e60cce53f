"""Collision response (``sim_bridge.embedded.contact``): closed-form impulses on hand-made contacts,
properties of any contact, and the simulator's bodies never passing through each other."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_bridge.api import ActorKind, ActorSpec, Behaviour, BehaviourKind, MapRef, Pose, WorldSpec
from sim_bridge.embedded.config import CollisionResponse, EmbeddedConfig, VehicleLimits
from sim_bridge.embedded.contact import ContactParams, resolve_contacts_world
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.embedded.state import DOWN, STAND, WorldState
from sim_bridge.geometry import boxes_overlap

NV, NP, NS = 4, 2, 2
PED, STATIC = NV, NV + NP
E = 0.2
PARAMS = ContactParams.of(CollisionResponse(restitution=E))


def _world() -> WorldState:
    return WorldState.allocate(1, NV, NP, NS, 0, 0)


def _put(s: WorldState, i: int, x: float, y: float, yaw: float, length: float, width: float, speed: float = 0.0,
         accel_cmd: float = 0.0, kind: ActorKind = ActorKind.VEHICLE) -> None:  # fmt: skip
    s.active[0, i] = 1
    s.kind[0, i] = int(kind)
    s.ids[0, i] = 100 + i
    s.x[0, i], s.y[0, i], s.yaw[0, i] = x, y, yaw
    s.length[0, i], s.width[0, i] = length, width
    s.speed[0, i], s.accel_cmd[0, i] = speed, accel_cmd


def _resolve(s: WorldState, params: ContactParams = PARAMS) -> tuple[int, np.ndarray]:
    hit = np.full(1, -1, np.int32)
    facts = np.zeros((1, 2))
    resolve_contacts_world(s.F, s.I, NV, NP, params, hit, facts, 0)
    return int(hit[0]), facts[0]


def _overlap(s: WorldState, i: int, j: int) -> bool:
    return bool(
        boxes_overlap(
            s.x[0, i], s.y[0, i], s.yaw[0, i], s.length[0, i], s.width[0, i],
            s.x[0, j], s.y[0, j], s.yaw[0, j], s.length[0, j], s.width[0, j],
        )
    )  # fmt: skip


def test_rear_end_at_10_m_s_shares_momentum_and_leaves_no_overlap() -> None:
    """Equal masses, restitution e: the hitting car keeps (1 − e) v / 2, the hit one gets (1 + e) v / 2."""
    s = _world()
    _put(s, 0, 0.0, 0.0, 0.0, 4.6, 1.9, speed=10.0)
    _put(s, 1, 4.4, 0.0, 0.0, 4.6, 1.9, speed=0.0)  # 0.2 m into its rear
    hit, facts = _resolve(s)
    assert hit == 1
    assert facts == pytest.approx((0.0, 0.0))  # the other's speed and bearing at contact
    assert s.speed[0, 0] == pytest.approx((1 - E) / 2 * 10.0)
    assert s.speed[0, 1] == pytest.approx((1 + E) / 2 * 10.0)
    assert s.speed[0, 0] + s.speed[0, 1] == pytest.approx(10.0)  # momentum
    assert not _overlap(s, 0, 1)
    assert s.x[0, 0] == pytest.approx(-0.1, abs=1e-3) and s.x[0, 1] == pytest.approx(4.5, abs=1e-3)
    assert s.y[0, 0] == 0.0 and s.y[0, 1] == 0.0 and s.yaw[0, 0] == 0.0


def test_a_static_obstacle_is_a_wall() -> None:
    s = _world()
    _put(s, 0, 0.0, 0.0, 0.0, 4.6, 1.9, speed=10.0)
    _put(s, STATIC, 4.4, 0.0, 0.0, 4.4, 1.8, kind=ActorKind.STATIC)
    assert _resolve(s)[0] == STATIC
    assert s.speed[0, 0] == 0.0  # it would bounce back at e·v; there is no reverse
    assert s.x[0, STATIC] == 4.4 and not _overlap(s, 0, STATIC)


@pytest.mark.parametrize(("closing", "moves"), [(1.0, False), (10.0, True)])
def test_a_braked_standing_car_holds_unless_hit_past_breakaway(closing: float, moves: bool) -> None:
    s = _world()
    _put(s, 0, 0.0, 0.0, 0.0, 4.6, 1.9, speed=closing)
    _put(s, 1, 4.5, 0.0, 0.0, 4.6, 1.9, speed=0.0, accel_cmd=-8.0)
    _resolve(s)
    assert not _overlap(s, 0, 1)
    assert (s.speed[0, 1] > 0.0) == moves
    assert (s.x[0, 1] > 4.5) == moves
    if not moves:
        assert s.speed[0, 0] == 0.0


def test_a_hit_walker_falls_clear_of_the_car_and_the_car_loses_its_momentum() -> None:
    s = _world()
    _put(s, 0, 0.0, 0.0, 0.0, 4.6, 1.9, speed=10.0)
    _put(s, PED, 2.4, 0.3, math.pi / 2, 0.6, 0.6, speed=1.4, kind=ActorKind.PEDESTRIAN)
    s.mode[0, PED] = STAND
    assert _resolve(s)[0] == PED
    assert s.mode[0, PED] == DOWN and s.speed[0, PED] == 0.0
    assert not _overlap(s, 0, PED)
    assert s.y[0, PED] > 0.5 * 1.9  # thrown to the side its centre was on (left)
    m_car, m_ped = 1500.0, 80.0
    assert s.speed[0, 0] == pytest.approx(10.0 - (1 + E) * 10.0 * m_ped / (m_car + m_ped))


def test_a_walker_brushing_a_standing_car_steps_out_and_stays_up() -> None:
    s = _world()
    _put(s, 0, 0.0, 0.0, 0.0, 4.6, 1.9, speed=0.0, accel_cmd=-8.0)
    _put(s, PED, 2.5, 0.0, math.pi, 0.6, 0.6, speed=1.4, kind=ActorKind.PEDESTRIAN)
    _resolve(s)
    assert s.mode[0, PED] != DOWN and not _overlap(s, 0, PED)
    assert s.x[0, 0] == 0.0 and s.speed[0, 0] == 0.0


def test_disabled_response_only_records_the_ego_contact() -> None:
    s = _world()
    _put(s, 0, 0.0, 0.0, 0.0, 4.6, 1.9, speed=10.0)
    _put(s, 1, 4.4, 0.0, 0.0, 4.6, 1.9)
    before = s.F.copy()
    hit, _ = _resolve(s, ContactParams.of(CollisionResponse(enabled=False)))
    assert hit == 1 and np.array_equal(s.F, before)


def test_npc_pairs_are_resolved_too() -> None:
    s = _world()
    _put(s, 0, -50.0, 0.0, 0.0, 4.6, 1.9)
    _put(s, 2, 0.0, 0.0, 0.0, 4.6, 1.9, speed=8.0)
    _put(s, 3, 3.0, 1.0, math.pi / 2, 4.6, 1.9, speed=5.0)  # a side impact
    hit, _ = _resolve(s)
    assert hit == -1 and not _overlap(s, 2, 3)


_coord = st.floats(-3.0, 3.0)
_yaw = st.floats(-math.pi, math.pi)
_speed = st.floats(0.0, 30.0)


@settings(max_examples=200, deadline=None)
@given(_coord, _coord, _yaw, _yaw, _speed, _speed, st.sampled_from([1, PED, STATIC]))
def test_any_contact_is_separated_and_never_gains_energy(
    x: float, y: float, yaw0: float, yaw1: float, v0: float, v1: float, other: int
) -> None:
    kind = {1: ActorKind.VEHICLE, PED: ActorKind.PEDESTRIAN, STATIC: ActorKind.STATIC}[other]
    size = {1: (4.6, 1.9), PED: (0.6, 0.6), STATIC: (4.4, 1.8)}[other]
    s = _world()
    _put(s, 0, 0.0, 0.0, yaw0, 4.6, 1.9, speed=v0)
    _put(s, other, x, y, yaw1, *size, speed=v1 if other == 1 else 0.0, kind=kind)
    touching = _overlap(s, 0, other)
    energy = s.speed[0, 0] ** 2 + (s.speed[0, 1] ** 2 if other == 1 else 0.0)
    hit, _ = _resolve(s)
    assert (hit == other) == touching
    assert not _overlap(s, 0, other)
    assert np.isfinite(s.F).all() and (s.speed[0, :NV] >= 0.0).all()
    assert s.speed[0, 0] ** 2 + (s.speed[0, 1] ** 2 if other == 1 else 0.0) <= energy + 1e-9


# ------------------------------------------------------------------------------ in the simulator


@pytest.fixture(scope="module")
def sim():
    cfg = EmbeddedConfig(
        num_worlds=1, render_bev=False, max_vehicles=NV, max_pedestrians=NP, max_statics=NS,
        vehicle=VehicleLimits(drag=0.0),
    )  # fmt: skip
    with EmbeddedSimulator(cfg) as s:
        yield s


@pytest.mark.parametrize("kind", [ActorKind.VEHICLE, ActorKind.STATIC])
def test_full_throttle_into_a_standing_body_never_passes_it(sim: EmbeddedSimulator, kind: ActorKind) -> None:
    """The ego accelerates into a parked car / a static obstacle: it is stopped at the contact and
    stays behind it (a car cannot push a braked car), overlapping nothing at any step."""
    beh = Behaviour(BehaviourKind.STOPPED) if kind == ActorKind.VEHICLE else Behaviour()
    other = ActorSpec(kind, Pose(50.0, -1.75, 0.0), behaviour=beh)
    spec = WorldSpec(map=MapRef("straight"), ego=Pose(20.0, -1.75, 0.0), actors=(other,), vehicles=0,
                     pedestrians=0, ego_speed=10.0)  # fmt: skip
    sim.reset(spec, seed=0)
    s = sim.state
    slot = 1 if kind == ActorKind.VEHICLE else NV + NP
    hits = 0
    for step in range(150):
        _, ev = sim.step(np.array([[1.0, 0.0]]))
        hits += int(ev.collision[0])
        assert not _overlap(s, 0, slot)
        if step == 99:
            held = (s.x[0, 0], s.x[0, slot])
    assert hits >= 1
    front = s.x[0, 0] + 0.5 * s.length[0, 0]
    assert front < s.x[0, slot] - 0.5 * s.length[0, slot] + 0.01  # still behind it
    assert s.speed[0, 0] == 0.0  # pinned against it, not driving on
    assert (s.x[0, 0], s.x[0, slot]) == held  # for the last 5 s nothing moved
    if kind == ActorKind.VEHICLE:
        # the crash at 10 m/s shoved it; braking at 8 m/s² against a 3 m/s² push, the pair
        # slowed at (8 − 3) / 2 m/s² and then it held
        assert 50.0 < s.x[0, slot] < 70.0
    else:
        assert s.x[0, slot] == 50.0


def test_without_response_the_ego_drives_through(sim: EmbeddedSimulator) -> None:
    cfg = EmbeddedConfig(
        num_worlds=1, render_bev=False, max_vehicles=NV, max_pedestrians=NP, max_statics=NS,
        collision=CollisionResponse(enabled=False),
    )  # fmt: skip
    other = ActorSpec(ActorKind.STATIC, Pose(50.0, -1.75, 0.0))
    spec = WorldSpec(map=MapRef("straight"), ego=Pose(20.0, -1.75, 0.0), actors=(other,), vehicles=0,
                     pedestrians=0, ego_speed=10.0)  # fmt: skip
    with EmbeddedSimulator(cfg) as ghost:
        ghost.reset(spec, seed=0)
        for _ in range(60):
            ghost.step(np.array([[0.0, 0.0]]))
        assert ghost.state.x[0, 0] > 60.0 and ghost.state.x[0, NV + NP] == 50.0


def test_a_busy_town_never_leaves_two_vehicles_overlapping() -> None:
    """Background traffic and walkers on `grid` with a blind ego driving straight on: after every
    step no two vehicles (nor a vehicle and an obstacle) overlap."""
    cfg = EmbeddedConfig(num_worlds=2, render_bev=False, max_vehicles=24, max_pedestrians=12, max_statics=2)
    specs = [WorldSpec(map=MapRef("grid"), vehicles=22, pedestrians=10)] * 2
    with EmbeddedSimulator(cfg) as town:
        town.reset(specs, seed=[3, 4])
        s = town.state
        for _ in range(100):
            town.step(np.array([[0.6, 0.0], [0.3, 0.05]]))
            for b in range(2):
                act = np.flatnonzero(s.active[b, :24])
                for a, i in enumerate(act):
                    for j in act[a + 1 :]:
                        assert not boxes_overlap(
                            s.x[b, i], s.y[b, i], s.yaw[b, i], s.length[b, i], s.width[b, i],
                            s.x[b, j], s.y[b, j], s.yaw[b, j], s.length[b, j], s.width[b, j],
                        ), (b, i, j)  # fmt: skip
