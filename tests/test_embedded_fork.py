"""Snapshots, restores and forks of the embedded simulator replay bit for bit.

A world is snapshotted before a scripted pedestrian starts crossing, with background traffic that
respawns and traffic lights that change during the replayed steps; restored (into the same
simulator) or forked (into the worlds of a larger one), and stepped with the same actions, it
gives the same observations (BEV with history frames, ego vector, object list) and events as the
original run. Forked copies given different actions differ only where the actions differ.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scenarios.families import make_scenario
from sim_bridge.api import Observation, StepEvents
from sim_bridge.embedded import fields as f
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.sensors.layout import BevGeometry

SPEC = make_scenario("pedestrian_crossing", seed=3).world.replace(vehicles=8, pedestrians=6)
SEED = 4
WARMUP = 6  # steps before the snapshot (the crosser is triggered after it)
STEPS = 40  # replayed steps
OBS_FIELDS = ("bev", "ego", "objects", "objects_mask", "object_ids")


def _config(num_worlds: int, render_bev: bool = True) -> EmbeddedConfig:
    return EmbeddedConfig(
        num_worlds=num_worlds,
        threads=1,
        render_bev=render_bev,
        max_vehicles=20,
        max_pedestrians=10,
        max_statics=2,
        bev=BevGeometry(history=2),
    )


def _actions(seed: int, steps: int = STEPS) -> np.ndarray:
    """``[T, 2]`` throttle-heavy random actions with small steering (the ego keeps to its road)."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(-0.2, 1.0, steps), rng.uniform(-0.1, 0.1, steps)], axis=1)


def _assert_same_obs(a: Observation, b: Observation, wa: int = 0, wb: int = 0) -> None:
    for name in OBS_FIELDS:
        np.testing.assert_array_equal(
            getattr(a, name)[wa], getattr(b, name)[wb], err_msg=f"observation {name!r} differs"
        )


def _assert_same_events(a: StepEvents, b: StepEvents, wa: int = 0, wb: int = 0) -> None:
    for fd in dataclasses.fields(StepEvents):
        np.testing.assert_array_equal(
            getattr(a, fd.name)[wa], getattr(b, fd.name)[wb], err_msg=f"event {fd.name!r} differs"
        )


@pytest.fixture(scope="module")
def original() -> tuple:
    """The original run: snapshot after ``WARMUP`` steps, then ``STEPS`` steps and what they gave."""
    sim = EmbeddedSimulator(_config(1))
    sim.reset(SPEC, seed=SEED)
    for a in _actions(0, WARMUP):
        sim.step(a[None])
    snap = sim.snapshot()
    obs_at_snapshot = sim.observe()
    state0 = sim.state.take(np.array([0]))
    lights0 = sim.light_states()
    out, light_changes = [], 0
    for a in _actions(1):
        out.append(sim.step(a[None]))
        light_changes += int(not np.array_equal(sim.light_states(), lights0))
    final = sim.state.snapshot()
    # the replayed stretch covers a scripted trigger, background respawns and light changes
    assert (sim.state.triggered[0] > state0.triggered[0]).any()
    assert sim.state.W[f.NEXT_ID, 0] > state0.W[f.NEXT_ID, 0]
    assert light_changes > 0
    return sim, snap, obs_at_snapshot, out, final


def test_restore_replays_observations_and_events_bit_for_bit(original) -> None:
    sim, snap, obs_at_snapshot, out, final = original
    sim.restore(snap)
    _assert_same_obs(sim.observe(), obs_at_snapshot)
    for a, (obs, ev) in zip(_actions(1), out, strict=True):
        obs2, ev2 = sim.step(a[None])
        _assert_same_obs(obs, obs2)
        _assert_same_events(ev, ev2)
    for name, arr in sim.state.snapshot().items():
        np.testing.assert_array_equal(arr, final[name], err_msg=f"state field {name!r} differs")


def test_fork_into_a_larger_simulator_replays_in_every_copy(original) -> None:
    _, snap, obs_at_snapshot, out, _ = original
    with EmbeddedSimulator(_config(3)) as big:  # never reset: it takes the map from the snapshot
        big.fork(snap, 0)
        first = big.observe()
        for w in range(3):
            _assert_same_obs(obs_at_snapshot, first, 0, w)
        for a, (obs, ev) in zip(_actions(1), out, strict=True):
            obs2, ev2 = big.step(np.repeat(a[None], 3, axis=0))
            for w in range(3):
                _assert_same_obs(obs, obs2, 0, w)
                _assert_same_events(ev, ev2, 0, w)


def test_forked_copies_diverge_only_where_the_actions_differ(original) -> None:
    _, snap, _, out, _ = original
    base = _actions(1)
    brake = base.copy()
    brake[5:, 0] = -1.0  # world 2 brakes from the sixth step on
    with EmbeddedSimulator(_config(3, render_bev=False)) as big:
        big.fork(snap, 0)
        for t in range(STEPS):
            actions = np.stack([base[t], base[t], brake[t]])
            obs, ev = big.step(actions)
            np.testing.assert_array_equal(obs.ego[0], obs.ego[1])
            _assert_same_events(ev, ev, 0, 1)
            np.testing.assert_array_equal(ev.ego_x[:2], [out[t][1].ego_x[0]] * 2)
            if t < 5:  # same actions so far: the braking copy is still identical
                np.testing.assert_array_equal(ev.ego_x[2], ev.ego_x[0])
        assert ev.route_progress[2] < ev.route_progress[0] - 5.0  # the braking copy fell behind
        assert ev.ego_speed[2] < 0.5


def test_restore_into_other_worlds_leaves_the_rest_untouched() -> None:
    with EmbeddedSimulator(_config(3, render_bev=False)) as sim:
        sim.reset(SPEC, seed=[7, 8, 9])
        for _ in range(4):
            sim.step(np.full((3, 2), [0.5, 0.0]))
        snap = sim.snapshot([2])
        before = sim.state.take(np.array([1]))
        sim.restore(snap, worlds=[0])
        after = sim.state.take(np.array([1]))
        np.testing.assert_array_equal(sim.state.F[:, 0], sim.state.F[:, 2])
        np.testing.assert_array_equal(sim.state.seed[0], sim.state.seed[2])
        for name in ("F", "I", "plan", "seed", "time"):
            np.testing.assert_array_equal(getattr(before, name), getattr(after, name))
        obs, ev = sim.step(np.full((3, 2), [0.3, 0.05]))
        _assert_same_obs(obs, obs, 0, 2)
        _assert_same_events(ev, ev, 0, 2)


def test_fork_refuses_a_simulator_of_another_layout(original) -> None:
    _, snap, _, _, _ = original
    other = dataclasses.replace(_config(2), max_vehicles=21)
    with EmbeddedSimulator(other) as sim, pytest.raises(ValueError, match="layout"):
        sim.fork(snap, 0)
    with pytest.raises(ValueError, match="not in this snapshot"):
        EmbeddedSimulator(_config(1)).fork(snap, 5)


def test_history_cadence_is_per_world_after_a_partial_reset() -> None:
    """A world reset in the middle of a batch run sees the same BEV history as the same world run
    alone from its reset (the cadence counts the world's own steps)."""
    zero = np.full((2, 2), [0.4, 0.0])
    with EmbeddedSimulator(_config(2)) as batch, EmbeddedSimulator(_config(1)) as alone:
        batch.reset(SPEC, seed=[1, 2])
        for _ in range(3):
            batch.step(zero)
        batch.reset(SPEC, seed=SEED, worlds=[1])
        alone.reset(SPEC, seed=SEED)
        for _ in range(12):
            obs_b, _ = batch.step(zero)
            obs_a, _ = alone.step(zero[:1])
            _assert_same_obs(obs_a, obs_b, 0, 1)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(warmup=st.integers(0, 8), seed=st.integers(0, 1000), steps=st.integers(1, 12))
def test_property_restore_then_replay_is_identical(original, warmup: int, seed: int, steps: int) -> None:
    sim = original[0]
    sim.reset(SPEC, seed=SEED + seed)
    for a in _actions(seed, warmup):
        sim.step(a[None])
    snap = sim.snapshot()
    actions = _actions(seed + 1, steps) * [1.0, 5.0]  # wider steering: off-road and lane invasions too
    first = [sim.step(a[None]) for a in actions]
    sim.restore(snap)
    for a, (obs, ev) in zip(actions, first, strict=True):
        obs2, ev2 = sim.step(a[None])
        _assert_same_obs(obs, obs2)
        _assert_same_events(ev, ev2)
