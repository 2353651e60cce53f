"""Gymnasium environments over the simulator: one world (``DriveEnv``) or the whole batch
(``DriveVectorEnv``, same-step autoreset), registered as ``hours2drive/Drive-v0``.

Make one without importing anything first with Gymnasium's ``module:id`` form, which imports the
module that registers the id::

    gymnasium.make("sim_bridge.gym_env:hours2drive/Drive-v0")
    gymnasium.make_vec("sim_bridge.gym_env:hours2drive/Drive-v0", num_envs=8,
                       vectorization_mode="vector_entry_point")

or ``import sim_bridge.gym_env`` and then ``gymnasium.make("hours2drive/Drive-v0")``. The package
also declares :func:`register_envs` as a ``gymnasium.envs`` plugin entry point (setup.cfg), which
the Gymnasium versions that load plugins (0.26–0.29) call at import; Gymnasium 1.x dropped plugin
loading, hence the ``module:id`` form.

As Gymnasium expects: ``step`` before ``reset``, or after an episode ended (``terminated`` or
``truncated``) without a new ``reset``, raises :class:`gymnasium.error.ResetNeeded`; an action of
the wrong shape is refused naming the expected shape (``(2,)``; ``(num_envs, 2)`` for the vector
env).

Observations are dicts of the :class:`~sim_bridge.api.Observation` arrays (one world each);
actions are ``[accel, steer]`` in ``[-1, 1]``. The reward is route progress [m] / 10 per step,
minus 10 on a collision and 1 per step off the road; an episode terminates on a collision or at
the route's end and is truncated after ``max_steps`` or a route deviation beyond 30 m.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from sim_bridge.api import Observation, Simulator, StepEvents, WorldSpec
from sim_bridge.backends import BackendConfig, make_simulator
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.sensors.layout import EGO_DIM, OBJECT_DIM

ENV_ID = "hours2drive/Drive-v0"
#: route deviation that truncates an episode [m] (the Leaderboard's limit)
MAX_DEVIATION = 30.0


def _spaces(sim: Simulator, config: BackendConfig) -> tuple[spaces.Dict, spaces.Box]:
    g = config.bev
    n = config.max_objects
    obs = spaces.Dict(
        {
            "bev": spaces.Box(0, 255, (g.num_channels, g.size, g.size), np.uint8),
            "ego": spaces.Box(-np.inf, np.inf, (EGO_DIM,), np.float32),
            "objects": spaces.Box(-np.inf, np.inf, (n, OBJECT_DIM), np.float32),
            "objects_mask": spaces.MultiBinary(n),
        }
    )
    return obs, spaces.Box(-1.0, 1.0, (2,), np.float32)


def _world_dict(obs: Observation, b: int) -> dict[str, np.ndarray]:
    return {
        "bev": obs.bev[b],
        "ego": obs.ego[b].astype(np.float32),
        "objects": obs.objects[b].astype(np.float32),
        "objects_mask": obs.objects_mask[b].astype(np.int8),
    }


def _reward(events: StepEvents, prev_progress: np.ndarray) -> np.ndarray:
    return (
        (events.route_progress - prev_progress) / 10.0
        - 10.0 * events.collision.astype(np.float64)
        - 1.0 * events.off_road.astype(np.float64)
    )


def _done(events: StepEvents) -> tuple[np.ndarray, np.ndarray]:
    terminated = events.collision | (events.route_progress >= events.route_length - 1.0)
    return terminated, events.route_deviation > MAX_DEVIATION


def _action(action: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``action`` as float64 of ``shape`` (``[accel, steer]`` per world), or a ``ValueError`` naming
    the expected shape."""
    a = np.asarray(action, dtype=np.float64)
    if a.shape != shape:
        raise ValueError(
            f"action must have shape {shape} ([accel, steer] in [-1, 1]{' per world' if len(shape) > 1 else ''}); "
            f"got shape {a.shape}"
        )
    return a


def _make_sim(config: BackendConfig) -> Simulator:
    return make_simulator(config)


class DriveEnv(gym.Env):
    """One world of a simulator (any registered backend; ``config`` picks it, default the embedded
    one) as a Gymnasium environment."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        spec: WorldSpec | None = None,
        config: BackendConfig | None = None,
        max_steps: int = 600,
        render_mode: str | None = None,
    ) -> None:
        self.config = dataclasses.replace(config or EmbeddedConfig(), num_worlds=1)
        self.spec_world = spec or WorldSpec()
        self.max_steps = max_steps
        self.render_mode = render_mode
        self.sim = _make_sim(self.config)
        self.observation_space, self.action_space = _spaces(self.sim, self.config)
        self._obs: Observation | None = None
        self._steps = 0
        self._episode_seed = 0
        self._progress = np.zeros(1)
        self._ended: str | None = "no episode yet"
        """Why ``step`` needs a ``reset`` first (``None`` while an episode runs)."""

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._episode_seed = int(seed)
        else:
            self._episode_seed = int(self.np_random.integers(2**31 - 1))
        spec = (options or {}).get("spec", self.spec_world)
        self._obs = self.sim.reset(spec, self._episode_seed)
        self._steps = 0
        self._progress = np.zeros(1)
        self._ended = None
        return _world_dict(self._obs, 0), {"seed": self._episode_seed}

    def step(self, action):
        if self._ended is not None:
            raise gym.error.ResetNeeded(f"step() called {self._ended}; call reset() to start an episode")
        obs, events = self.sim.step(_action(action, (2,)).reshape(1, 2))
        self._obs = obs
        self._steps += 1
        reward = _reward(events, self._progress)
        self._progress = events.route_progress.copy()
        terminated, truncated = _done(events)
        truncated = truncated | (self._steps >= self.max_steps)
        if terminated[0] or truncated[0]:
            self._ended = f"after the episode {'terminated' if terminated[0] else 'was truncated'}"
        info = {
            k: (None if isinstance(v, float) and v != v else v) for k, v in events.world(0).as_dict().items()
        }  # NaN → None
        return _world_dict(obs, 0), float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self):
        if self.render_mode != "rgb_array" or self._obs is None:
            return None
        from sim_bridge.sensors.pictures import bev_to_rgb

        return bev_to_rgb(self._obs.bev[0], self.config.bev)

    def close(self) -> None:
        self.sim.close()


class DriveVectorEnv(gym.vector.VectorEnv):
    """All ``num_envs`` worlds of one batched simulator; finished worlds reset in the same step
    (``info['final_obs']`` holds their last observation, ``info['final_info']`` their events)."""

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(
        self,
        num_envs: int = 8,
        spec: WorldSpec | None = None,
        config: BackendConfig | None = None,
        max_steps: int = 600,
    ) -> None:
        self.config = dataclasses.replace(config or EmbeddedConfig(), num_worlds=num_envs)
        self.num_envs = num_envs
        self.spec_world = spec or WorldSpec()
        self.max_steps = max_steps
        self.sim = _make_sim(self.config)
        single_obs, single_act = _spaces(self.sim, self.config)
        self.single_observation_space = single_obs
        self.single_action_space = single_act
        self.observation_space = gym.vector.utils.batch_space(single_obs, num_envs)
        self.action_space = gym.vector.utils.batch_space(single_act, num_envs)
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._progress = np.zeros(num_envs)
        self._next_seed = 0

    @staticmethod
    def _batch(obs: Observation) -> dict[str, np.ndarray]:
        return {
            "bev": obs.bev,
            "ego": obs.ego.astype(np.float32),
            "objects": obs.objects.astype(np.float32),
            "objects_mask": obs.objects_mask.astype(np.int8),
        }

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is not None:
            self._next_seed = int(seed)
        obs = self.sim.reset(self.spec_world, self._next_seed)
        self._next_seed += self.num_envs
        self._steps[:] = 0
        self._progress[:] = 0.0
        return self._batch(obs), {}

    def step(self, actions):
        obs, events = self.sim.step(_action(actions, (self.num_envs, 2)))
        self._steps += 1
        reward = _reward(events, self._progress)
        self._progress = events.route_progress.copy()
        terminated, truncated = _done(events)
        truncated = truncated | (self._steps >= self.max_steps)
        done = terminated | truncated
        info: dict[str, Any] = {}
        if done.any():
            worlds = np.flatnonzero(done)
            info["final_obs"] = self._batch(obs)
            info["_final_obs"] = done.copy()
            info["final_info"] = {k: getattr(events, k) for k in ("route_progress", "collision", "sim_time")}
            info["_final_info"] = done.copy()
            seeds = list(range(self._next_seed, self._next_seed + len(worlds)))
            self._next_seed += len(worlds)
            obs = self.sim.reset(self.spec_world, seeds, worlds=worlds.tolist())
            self._steps[worlds] = 0
            self._progress[worlds] = 0.0
        return self._batch(obs), reward, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        self.sim.close()


def register_envs() -> None:
    """Register ``hours2drive/Drive-v0`` (idempotent; the ``gymnasium.envs`` entry point)."""
    if ENV_ID not in gym.registry:
        gym.register(
            id=ENV_ID,
            entry_point="sim_bridge.gym_env:DriveEnv",
            vector_entry_point="sim_bridge.gym_env:DriveVectorEnv",
        )


register_envs()
