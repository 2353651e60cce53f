"""Gymnasium wrappers: the env checker, the registered id, the vector env's same-step autoreset."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from sim_bridge.api import MapRef, WorldSpec
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.gym_env import ENV_ID, DriveEnv, DriveVectorEnv

SPEC = WorldSpec(map=MapRef("straight"), vehicles=3, pedestrians=2, route_length=120.0)
CONFIG = EmbeddedConfig(max_vehicles=6, max_pedestrians=4, max_statics=2, max_objects=8)


def test_env_passes_the_gymnasium_checker():
    env = DriveEnv(spec=SPEC, config=CONFIG, max_steps=50)
    check_env(env, skip_render_check=True)
    env.close()


def test_registered_id_makes_the_env_and_steps():
    env = gym.make(ENV_ID, spec=SPEC, config=CONFIG, max_steps=20)
    obs, info = env.reset(seed=3)
    assert obs["bev"].shape == (CONFIG.bev.num_channels, 96, 96) and obs["bev"].dtype == np.uint8
    total = 0.0
    for _ in range(10):
        obs, reward, _terminated, _truncated, info = env.step(np.array([0.5, 0.0], np.float32))
        total += reward
        assert env.observation_space.contains(obs)
    assert total > 0.0  # driving along the route earns progress
    assert info["route_progress"] > 0.0
    env.close()


def test_same_seed_same_episode():
    def rollout():
        env = DriveEnv(spec=SPEC, config=CONFIG)
        obs, _ = env.reset(seed=11)
        out = [obs["ego"]]
        for _ in range(15):
            obs, *_ = env.step(np.array([0.3, 0.05], np.float32))
            out.append(obs["ego"])
        env.close()
        return np.stack(out)

    np.testing.assert_array_equal(rollout(), rollout())


def test_vector_env_resets_finished_worlds_in_the_same_step():
    env = DriveVectorEnv(num_envs=3, spec=SPEC, config=CONFIG, max_steps=4)
    obs, _ = env.reset(seed=0)
    assert obs["ego"].shape[0] == 3
    for _ in range(4):
        obs, _reward, _terminated, truncated, info = env.step(np.zeros((3, 2), np.float32))
    assert truncated.all()  # max_steps reached by every world
    assert info["_final_obs"].all() and "final_obs" in info
    # reset worlds start over: their episode step counter is back at zero
    obs, *_ = env.step(np.zeros((3, 2), np.float32))
    assert (env._steps == 1).all()
    env.close()


@pytest.mark.parametrize("bad", [np.array([np.nan, 0.0], np.float32)])
def test_nan_action_is_refused(bad):
    from sim_bridge.api import NonFiniteActionError

    env = DriveEnv(spec=SPEC, config=CONFIG)
    env.reset(seed=0)
    with pytest.raises(NonFiniteActionError):
        env.step(bad)
    env.close()
