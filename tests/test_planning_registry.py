"""The one agent registry: every pipeline group (``agent``, ``driver``) composes every registered
agent with its own typed schema, builds it through ``drive.build.agent``, and refuses unknown
names and misspelt keys; the per-world seed hook."""

from __future__ import annotations

import numpy as np
import pytest
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from drive import build
from drive.cli import compose_config
from planning import registry
from planning.base import Agent, AgentInfo
from planning.explore import ExplorationDriver, ExploreConfig
from planning.lane_follower import LaneFollower, LaneFollowerConfig
from sim_bridge.api import EGO_DIM, EgoVehicle, Observation


def test_builtin_agents_are_registered_with_their_settings():
    assert set(registry.names()) >= {"lane_follower", "expert", "explore", "planner"}
    assert registry.entry("lane_follower").config is LaneFollowerConfig
    schema = registry.schema("explore")
    assert schema().name == "explore" and isinstance(schema(), ExploreConfig)
    with pytest.raises(ValueError, match="unknown agent 'nope'; known agents: lane_follower"):
        registry.entry("nope")
    with pytest.raises(TypeError, match="LaneFollowerConfig"):
        registry.build_agent("lane_follower", ExploreConfig())


@pytest.mark.parametrize(
    ("command", "group", "name", "cls"),
    [
        ("eval", "agent", "lane_follower", LaneFollower),
        ("render", "agent", "lane_follower", LaneFollower),
        ("collect", "driver", "explore", ExplorationDriver),
        ("bench_eval", "agent", "expert", None),
    ],
)
def test_every_pipeline_group_builds_through_the_registry(command, group, name, cls):
    cfg = compose_config(command, [f"{group}={name}"])
    node = cfg[group]
    assert node.name == name
    agent = build.agent(node, seed=3)
    assert agent.name == name
    if cls is not None:
        assert isinstance(agent, cls)


def test_settings_are_flat_and_typed_in_the_group():
    cfg = compose_config("eval", ["agent=lane_follower", "agent.lookahead=12"])
    agent = build.agent(cfg.agent)
    assert isinstance(agent, LaneFollower) and agent.config.lookahead == 12.0
    cfg = compose_config("collect", ["driver=explore", "driver.offset_std=0.0"])
    assert build.agent(cfg.driver, seed=1).config.offset_std == 0.0
    for bad in (["agent=lane_follower", "agent.lookahaed=1"], ["agent=lane_follower", "agent.lookahead=far"]):
        with pytest.raises((HydraException, OmegaConfBaseException)):
            compose_config("eval", bad)
    with pytest.raises(ValueError, match="known agents"):
        build.agent({"name": "imitation"})  # not a registered agent


def test_planner_schema_composes_with_costs_and_optimiser_overrides():
    cfg = compose_config("eval", ["agent=planner", "agent.checkpoint=m.pt", "agent.optimizer=mppi",
                                  "agent.costs.stop_at.weight=20", "agent.costs.stop_at.before_end=5",
                                  "agent.optim.horizon=10"])  # fmt: skip
    assert cfg.agent.checkpoint == "m.pt" and cfg.agent.costs.stop_at.before_end == 5.0
    assert cfg.agent.optim.horizon == 10 and cfg.agent.costs.collision.weight == 100.0
    assert compose_config("collect", ["driver=planner"]).driver.name == "planner"


def test_seed_hook_makes_an_episode_replay_from_its_seed():
    def episode(driver: Agent, seeds: list[int]) -> np.ndarray:
        driver.seed(range(len(seeds)), seeds)
        driver.reset(AgentInfo(num_worlds=len(seeds), dt=0.1, ego=EgoVehicle()))
        ego = np.zeros((len(seeds), EGO_DIM), dtype=np.float32)
        ego[:, 6] = 10.0  # speed limit
        obs = Observation(np.zeros((len(seeds), 1, 1, 1), np.uint8), ego, np.zeros((len(seeds), 1, 11), np.float32),
                          np.zeros((len(seeds), 1), bool), np.full((len(seeds), 1), -1, np.int32),
                          np.zeros((len(seeds), 3)))  # fmt: skip
        return np.stack([driver.act(obs) for _ in range(30)])

    a = episode(build.agent({"name": "explore"}, seed=1), [7, 8])
    b = episode(build.agent({"name": "explore"}, seed=2), [8])
    np.testing.assert_array_equal(a[:, 1], b[:, 0])  # world 1 of a = the episode of seed 8 alone
    with pytest.raises(ValueError, match="seed got 2 worlds and 1 seeds"):
        LaneFollower().seed([0, 1], [3])
