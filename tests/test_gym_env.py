"""Gymnasium wrappers: the env checker, the registered id, the vector env's same-step autoreset."""

from __future__ import annotations

import configparser
import importlib
import os
import re
import subprocess
import sys
from pathlib import Path

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


def test_step_after_the_episode_ended_or_before_reset_needs_a_reset():
    env = DriveEnv(spec=SPEC, config=CONFIG, max_steps=3)
    with pytest.raises(gym.error.ResetNeeded, match="no episode yet"):
        env.step(np.zeros(2, np.float32))
    env.reset(seed=0)
    ended = False
    for _ in range(3):
        _, _, terminated, truncated, _ = env.step(np.array([0.3, 0.0], np.float32))
        ended = terminated or truncated
    assert ended  # truncated at max_steps
    with pytest.raises(gym.error.ResetNeeded, match=r"after the episode was truncated; call reset\(\)"):
        env.step(np.zeros(2, np.float32))
    env.reset(seed=0)
    env.step(np.zeros(2, np.float32))  # a new episode steps again
    env.close()


def test_after_a_collision_terminates_the_ego_cannot_drive_on_through_the_car_it_hit():
    from scenarios.families import make_scenario

    world = make_scenario("lead_vehicle_brake", {"lead_gap": 8.0, "brake_after": 0.0, "decel": 10.0}).world
    env = DriveEnv(spec=world, config=CONFIG, max_steps=300)
    env.reset(seed=0)
    for _ in range(300):
        _, _, terminated, truncated, info = env.step(np.array([1.0, 0.0], np.float32))
        if terminated or truncated:
            break
    assert terminated and info["collision"]
    with pytest.raises(gym.error.ResetNeeded, match="after the episode terminated"):
        env.step(np.array([1.0, 0.0], np.float32))
    env.close()


@pytest.mark.parametrize(("action", "shape"), [(np.zeros(3), "(3,)"), (np.zeros((1, 2)), "(1, 2)")])
def test_a_wrong_shaped_action_names_the_expected_shape(action, shape):
    env = DriveEnv(spec=SPEC, config=CONFIG)
    env.reset(seed=0)
    with pytest.raises(
        ValueError,
        match=rf"action must have shape \(2,\) \(\[accel, steer\] in \[-1, 1\]\); got shape {re.escape(shape)}",
    ):
        env.step(action)
    env.close()
    venv = DriveVectorEnv(num_envs=2, spec=SPEC, config=CONFIG)
    venv.reset(seed=0)
    with pytest.raises(ValueError, match=r"action must have shape \(2, 2\)"):
        venv.step(np.zeros(2))
    venv.close()


def test_the_env_is_made_by_id_without_importing_the_package_first():
    code = (
        "import sys, gymnasium as gym, numpy as np\n"
        "assert 'sim_bridge' not in sys.modules\n"
        "env = gym.make('sim_bridge.gym_env:hours2drive/Drive-v0', max_steps=5)\n"
        "obs, _ = env.reset(seed=1)\n"
        "print(obs['bev'].shape, env.step(np.zeros(2, np.float32))[1] is not None)\n"
    )
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("True")


def test_the_gymnasium_plugin_entry_point_is_declared():
    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[1] / "setup.cfg")
    plugins = cfg["options.entry_points"]["gymnasium.envs"].split("=")
    assert [p.strip() for p in plugins] == ["hours2drive", "sim_bridge.gym_env:register_envs"]
    module, func = plugins[1].strip().split(":")
    getattr(importlib.import_module(module), func)()  # idempotent: the id stays registered once
    assert ENV_ID in gym.registry
