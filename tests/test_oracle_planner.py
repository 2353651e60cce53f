"""The oracle planner: its futures are what the simulator really does, it needs the live
simulator, and in closed loop it stops for a braking lead vehicle and passes a parked car."""

from __future__ import annotations

import numpy as np
import pytest

from planning.base import AgentInfo
from planning.optim.base import SamplerConfig
from planning.oracle import OracleConfig, OraclePlanner
from planning.registry import build_agent
from scenarios.families import make_scenario
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator

SMALL = {"max_vehicles": 8, "max_pedestrians": 10, "max_statics": 4, "threads": 1, "render_bev": False}


def _oracle(samples: int = 32, iterations: int = 2) -> OraclePlanner:
    optim = SamplerConfig(samples=samples, iterations=iterations)
    return OraclePlanner(OracleConfig(optim=optim, use_proposals=samples > 16))


def _start(sim: EmbeddedSimulator, spec, agent: OraclePlanner):
    obs = sim.reset(spec.world, spec.seed)
    agent.reset(AgentInfo(1, sim.dt, sim.ego_vehicle, sim.road_map, (sim.route(0),), simulator=sim))
    return obs


def test_the_oracle_is_privileged_and_registered():
    agent = build_agent("oracle_planner")
    assert isinstance(agent, OraclePlanner)
    with EmbeddedSimulator(EmbeddedConfig(**SMALL)) as sim, pytest.raises(ValueError, match="simulator"):
        agent.reset(AgentInfo(1, sim.dt, sim.ego_vehicle))


def test_oracle_futures_are_what_the_simulator_does():
    spec = make_scenario("lead_vehicle_brake", seed=0)
    with EmbeddedSimulator(EmbeddedConfig(**SMALL)) as sim:
        agent = _oracle(samples=2)
        obs = _start(sim, spec, agent)
        for _ in range(45):  # the lead has braked to a stop ahead
            obs, _ = sim.step(np.array([[0.2, 0.0]]))
        snap = sim.snapshot()
        actions = np.zeros((1, 2, 15, 2), dtype=np.float32)
        actions[0, 0, :, 0] = 1.0  # full throttle into the stopped lead
        actions[0, 1, :, 0] = -1.0  # full brake
        futures = agent.rollout(snap, obs.pose, snap.progress, actions)
        assert futures.shape == (1, 2, 15)
        assert futures.collision[0, 0].any() and not futures.collision[0, 1].any()
        assert (
            futures.gap_ahead[0, 1, -1] > futures.gap_ahead[0, 0, 0] - 1e-6 or futures.gap_ahead[0, 1, -1] > 0
        )
        # the braking branch replays in the live simulator exactly as the oracle saw it
        for h in range(15):
            obs, ev = sim.step(actions[0, 1, h][None])
            assert futures.speed[0, 1, h] == pytest.approx(ev.ego_speed[0], abs=1e-5)
        c, s = np.cos(snap.state.yaw[0, 0]), np.sin(snap.state.yaw[0, 0])
        dx, dy = ev.ego_x[0] - snap.state.x[0, 0], ev.ego_y[0] - snap.state.y[0, 0]
        np.testing.assert_allclose(futures.xy[0, 1, -1], [c * dx + s * dy, -s * dx + c * dy], atol=1e-4)
        assert futures.progress[0, 0].sum() > futures.progress[0, 1].sum()  # throttle gains more route


@pytest.mark.slow
def test_oracle_stops_behind_a_braking_lead_vehicle():
    spec = make_scenario("lead_vehicle_brake", seed=0)
    with EmbeddedSimulator(EmbeddedConfig(**SMALL)) as sim:
        agent = _oracle()
        obs = _start(sim, spec, agent)
        collided = False
        for _ in range(90):  # the lead brakes at 4 s and stands still from ~5.7 s
            obs, ev = sim.step(agent.act(obs))
            collided |= bool(ev.collision[0])
        st = sim.state
        gap = np.hypot(st.x[0, 1] - st.x[0, 0], st.y[0, 1] - st.y[0, 0]) - 0.5 * (
            st.length[0, 0] + st.length[0, 1]
        )
        ahead = (st.x[0, 0] - st.x[0, 1]) * np.cos(st.yaw[0, 1]) + (st.y[0, 0] - st.y[0, 1]) * np.sin(
            st.yaw[0, 1]
        )
    assert not collided
    assert st.speed[0, 1] < 0.1  # the lead stands …
    # … and the ego waits close behind it, or has gone round it (the family's route changes lane
    # just before the standing lead, as on real maps)
    waits = ev.ego_speed[0] < 1.0 and 0.5 < gap < 15.0
    assert waits or ahead > 0.5 * (st.length[0, 0] + st.length[0, 1]), (ev.ego_speed[0], gap, ahead)
    # what it imagined at its last decision: every sample's true future path and finite costs
    d = agent.last_decision
    cfg = agent.config.optim
    assert (
        d is not None
        and d.shape == (1, cfg.samples, cfg.horizon)
        and d.xy.shape == (1, cfg.samples, cfg.horizon, 2)
    )
    assert all(np.isfinite(v).all() and v.shape == (1, cfg.samples) for v in d.costs.values())
    assert d.chosen_costs.keys() == agent.last_costs.keys() and np.isfinite(d.chosen_xy).all()
    if waits:  # the path it chose stops short of the standing lead
        assert d.chosen_xy[0, :, 0].max() < gap


#: the weights of drive/conf/agent/oracle_planner_tuned.yaml (the defaults stop behind a parked car)
TUNED = {
    "optim": {"samples": 64, "iterations": 2, "horizon": 20},
    "costs": {"route": {"weight": 0.05}, "proximity": {"weight": 1.0}, "progress": {"weight": 20.0},
              "comfort": {"weight": 0.2}},
    "proposals": {"lateral_offsets": [-3.5, -1.75, 0.0, 1.75, 3.5], "hold_offset": False},
}  # fmt: skip


def test_the_tuned_preset_composes_to_the_tested_weights():
    from drive.build import agent as build_from_node
    from drive.cli import compose_config

    cfg = compose_config("eval", ["suite=smoke", "agent=oracle_planner_tuned"])
    oracle = build_from_node(cfg.agent)
    assert isinstance(oracle, OraclePlanner)
    assert oracle.config.optim.horizon == 20 and oracle.config.costs.progress.weight == 20.0
    assert oracle.config.proposals.lateral_offsets == TUNED["proposals"]["lateral_offsets"]
    assert oracle.config.proposals.hold_offset is False


@pytest.mark.slow
@pytest.mark.parametrize("family", ["parked_obstacle", "lead_vehicle_brake"])
def test_tuned_oracle_passes_a_stopped_car_without_collision(family):
    import functools

    from drive.build import from_dict
    from scenarios.runner import EpisodeJob, run_episode

    config = from_dict(OracleConfig, TUNED)
    job = EpisodeJob(
        spec=make_scenario(family, seed=0),
        agent_factory=functools.partial(OraclePlanner, config),
        sim_factory=functools.partial(EmbeddedSimulator, EmbeddedConfig(threads=1)),
        sim_key=f"oracle-test-{family}",
        save_replays="none",
        max_steps=600,
    )
    result = run_episode(job)
    assert not result.error, result.error
    assert not [i for i in result.infractions if i.kind.value.startswith("collision")]
    assert result.termination == "route_completed" and result.route_completion == pytest.approx(100.0)


@pytest.mark.slow
def test_pedestrian_margin_task_keeps_three_metres_from_the_walker():
    """``scenarios/examples/task_pedestrian_margin.yaml`` with the tuned oracle: the cost term alone
    (no model, no retraining) keeps the ego's centre ≥ 3 m from the crossing walker, where the same
    planner without it passes closer."""
    import functools
    from pathlib import Path

    from drive.build import from_dict
    from scenarios.runner import EpisodeJob, run_episode
    from scenarios.schema import load_scenario

    spec = load_scenario(Path(__file__).parents[1] / "scenarios/examples/task_pedestrian_margin.yaml")
    closest = {}
    for weight in (0.0, 50.0):
        settings = {
            **TUNED,
            "costs": {**TUNED["costs"], "pedestrian_margin": {"weight": weight, "margin": 3.0}},
        }
        job = EpisodeJob(spec=spec, agent_factory=functools.partial(OraclePlanner, from_dict(OracleConfig, settings)),
                         sim_factory=functools.partial(EmbeddedSimulator, EmbeddedConfig(threads=1)),
                         sim_key="task-pedestrian-margin", save_replays="none", max_steps=500)  # fmt: skip
        result = run_episode(job)
        assert not result.error, result.error
        assert not [i for i in result.infractions if i.kind.value.startswith("collision")]
        closest[weight] = result.scores["min_pedestrian_distance"]
    assert closest[50.0] >= 3.0 and closest[0.0] < closest[50.0], closest
