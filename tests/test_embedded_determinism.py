"""Determinism of the embedded simulator: same spec, seed and actions give bit-identical state and
observations, whatever the batch a world runs in, the thread count, or partial resets of others.

Random numbers are counter-based per world (seed, step, call site, slot), so world ``b`` of a batch
evolves exactly as the same world alone. The ego is driven by the lane follower, whose actions
depend on the observation only, so any divergence would also change the actions.
"""

from __future__ import annotations

import numpy as np
import pytest

from planning.base import AgentInfo
from planning.lane_follower import LaneFollower
from sim_bridge.api import (
    ActorKind,
    ActorSpec,
    Behaviour,
    BehaviourKind,
    MapRef,
    Observation,
    Pose,
    WorldSpec,
)
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator

STEPS = 150  # 15 s: enough for lane changes, junctions, respawns and pedestrian crossings
SPEC = WorldSpec(
    map=MapRef("grid"),
    vehicles=14,
    pedestrians=8,
    route_length=600.0,
    actors=(
        ActorSpec(
            ActorKind.STATIC,
            Pose(20.0, -5.0, 0.0),
            behaviour=Behaviour(BehaviourKind.OPEN_DOOR, trigger_time=2.0),
        ),
    ),
)


def _config(num_worlds: int, threads: int = 1, render_bev: bool = False) -> EmbeddedConfig:
    return EmbeddedConfig(
        num_worlds=num_worlds,
        threads=threads,
        render_bev=render_bev,
        max_vehicles=20,
        max_pedestrians=10,
        max_statics=2,
    )


def _drive(sim: EmbeddedSimulator, obs: Observation, steps: int) -> list[Observation]:
    agent = LaneFollower()
    agent.reset(AgentInfo(sim.num_worlds, sim.dt, sim.ego_vehicle))
    out = [obs]
    for _ in range(steps):
        obs, _ = sim.step(agent.act(obs))
        out.append(obs)
    return out


def _world(snapshot: dict[str, np.ndarray], b: int) -> dict[str, np.ndarray]:
    """World ``b``'s part of a state snapshot (``F``, ``I``, ``W`` have worlds on axis 1)."""
    return {k: (v[:, b] if k in ("F", "I", "W") else v[b]) for k, v in snapshot.items()}


def _assert_equal_states(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=f"state field {name!r} differs")


def _assert_equal_obs(a: Observation, b: Observation) -> None:
    for name in ("bev", "ego", "objects", "objects_mask", "object_ids"):
        np.testing.assert_array_equal(
            getattr(a, name), getattr(b, name), err_msg=f"observation {name!r} differs"
        )


def test_same_spec_seed_and_actions_give_bit_identical_runs() -> None:
    runs = []
    for _ in range(2):
        with EmbeddedSimulator(_config(2, render_bev=True)) as sim:
            observations = _drive(sim, sim.reset(SPEC, seed=[5, 6]), 60)
            runs.append((sim.state.snapshot(), observations))
    (state_a, obs_a), (state_b, obs_b) = runs
    _assert_equal_states(state_a, state_b)
    for a, b in zip(obs_a, obs_b, strict=True):
        _assert_equal_obs(a, b)
    assert (obs_a[-1].bev > 0).any()  # the raster was drawn, not left blank


def test_reset_reproduces_the_episode_in_the_same_simulator() -> None:
    with EmbeddedSimulator(_config(1)) as sim:
        first = _drive(sim, sim.reset(SPEC, seed=9), STEPS)
        state_first = sim.state.snapshot()
        second = _drive(sim, sim.reset(SPEC, seed=9), STEPS)
        _assert_equal_states(state_first, sim.state.snapshot())
        _assert_equal_obs(first[-1], second[-1])
        third = _drive(sim, sim.reset(SPEC, seed=10), STEPS)
    assert not np.array_equal(first[-1].ego, third[-1].ego)  # another seed, another episode


def test_a_world_evolves_the_same_alone_and_inside_a_batch() -> None:
    seeds = [101, 7, 33, 4242]
    with EmbeddedSimulator(_config(4)) as batch:
        obs_batch = _drive(batch, batch.reset(SPEC, seed=seeds), STEPS)
        state_batch = batch.state.snapshot()
    for b in (0, 2):
        with EmbeddedSimulator(_config(1)) as alone:
            obs_alone = _drive(alone, alone.reset(SPEC, seed=seeds[b]), STEPS)
            _assert_equal_states(_world(state_batch, b), _world(alone.state.snapshot(), 0))
        for ob, oa in zip(obs_batch, obs_alone, strict=True):
            _assert_equal_obs(ob.world(b), oa)


def test_thread_count_does_not_change_results() -> None:
    snapshots = []
    for threads in (1, 2):
        with EmbeddedSimulator(_config(4, threads=threads)) as sim:
            observations = _drive(sim, sim.reset(SPEC, seed=[1, 2, 3, 4]), STEPS)
            snapshots.append((sim.state.snapshot(), observations[-1]))
    _assert_equal_states(snapshots[0][0], snapshots[1][0])
    _assert_equal_obs(snapshots[0][1], snapshots[1][1])


def test_partial_reset_leaves_the_other_worlds_untouched() -> None:
    seeds = [11, 12, 13]
    zero = np.zeros((3, 2))
    with EmbeddedSimulator(_config(3)) as reference, EmbeddedSimulator(_config(3)) as sim:
        reference.reset(SPEC, seed=seeds)
        sim.reset(SPEC, seed=seeds)
        for _ in range(50):
            reference.step(zero)
            sim.step(zero)
        before = sim.state.snapshot()
        sim.reset(SPEC.replace(vehicles=3), seed=77, worlds=[1])
        after = sim.state.snapshot()
        for b in (0, 2):
            _assert_equal_states(_world(before, b), _world(after, b))
        assert not np.array_equal(_world(before, 1)["F"], _world(after, 1)["F"])
        for _ in range(100):  # and they go on exactly as if nothing happened
            obs_ref, ev_ref = reference.step(zero)
            obs, ev = sim.step(zero)
        final_ref, final = reference.state.snapshot(), sim.state.snapshot()
        for b in (0, 2):
            _assert_equal_states(_world(final_ref, b), _world(final, b))
            _assert_equal_obs(obs_ref.world(b), obs.world(b))
            assert ev_ref.world(b).as_dict() == pytest.approx(ev.world(b).as_dict(), nan_ok=True)
