"""An exploration driver: noisy lane following for collecting varied experience.

It knows nothing of good driving beyond staying roughly in lane. Each decision, for every world:

- **steer**: pure pursuit on the ego vector's route targets, shifted sideways by a *wandering
  offset* (an Ornstein–Uhlenbeck process) plus, now and then, a *lane change* (± one lane width
  held for a few seconds, ramped in and out);
- **speed**: a P controller towards a *target speed* re-drawn every few seconds (uniform in
  ``[0, max_speed_factor]`` × the limit), optionally capped in curves (the curvature of the route
  targets themselves, so the ego's own offset from the route does not read as a curve);
- **noise**: OU perturbations added to both commands, and occasional *random actions* (a uniform
  ``[accel, steer]`` held for about a second) that override everything.

It ignores other actors, traffic lights and stop signs, so its data holds near misses, collisions,
off-road moments and red-light runs — what a world model must learn to predict and a planner to
avoid.

Randomness is per world: ``_reset`` creates a ``numpy.random.Generator`` for each restarted world
(from its episode seed, see :meth:`ExplorationDriver.seed`, else from the driver's seed,
the world and its reset count) and draws a block of noise for the next :data:`NOISE_BLOCK` steps;
``_act`` reads that block with array indexing (no Python loop over worlds) and refills a world's
block from its own generator when it runs out. A world's actions depend only on its seed and its
observations, never on the other worlds of the batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from planning.base import Agent
from sim_bridge.api import NUM_ROUTE_TARGETS, EgoFeature, Observation

#: decisions of noise drawn at once per world (refilled from the world's generator)
NOISE_BLOCK = 256
#: normal draws per decision: offset OU, steer OU, accel OU
_N_NORMAL = 3
#: uniform draws per decision: speed re-draw (event, value), lane change (event, side, duration),
#: random action (event, accel, steer)
_N_UNIFORM = 8
_U_SPEED_EVENT, _U_SPEED, _U_LC_EVENT, _U_LC_SIDE, _U_LC_TIME, _U_RAND_EVENT, _U_RAND_A, _U_RAND_S = range(8)

#: mixed into every seed, so the driver's draws differ from a simulator's seeded with the same number
_SEED_TAG = 0xE4

_X = [int(EgoFeature.ROUTE_X0) + 2 * k for k in range(NUM_ROUTE_TARGETS)]
_Y = [x + 1 for x in _X]


@dataclass
class ExploreConfig:
    """Noise levels of :class:`ExplorationDriver` (0 switches a component off)."""

    lookahead: float = 8.0
    """Pure-pursuit lookahead along the route [m]."""
    speed_gain: float = 0.5
    """Speed controller gain [normalised accel per m/s]."""
    max_speed_factor: float = 1.2
    """Target speeds are drawn uniformly in ``[0, max_speed_factor]`` × the speed limit."""
    speed_period: float = 4.0
    """Mean time between target-speed re-draws (exponential) [s]."""
    curve_lateral_accel: float = 4.0
    """Cap the target speed so that v²·κ stays below this in curves [m/s²] (0: no cap)."""
    offset_std: float = 0.3
    """Stationary std of the wandering lateral offset from the route [m]."""
    offset_time: float = 3.0
    """Time constant of that offset [s]."""
    lane_change_rate: float = 0.02
    """Lane changes started per second."""
    lane_width: float = 3.5
    """Lateral offset of a lane change [m]."""
    lane_change_min_hold: float = 1.5
    """A lane change is held for a duration uniform between this …[s]."""
    lane_change_max_hold: float = 4.0
    """… and this [s]."""
    lane_change_speed: float = 2.0
    """Lateral speed of the offset ramp in and out of a lane change [m/s]."""
    steer_noise: float = 0.05
    """Stationary std of the OU noise on steer [normalised]."""
    accel_noise: float = 0.15
    """Stationary std of the OU noise on accel [normalised]."""
    noise_time: float = 0.5
    """Time constant of both OU noises [s]."""
    random_rate: float = 0.02
    """Random actions started per second."""
    random_duration: float = 1.0
    """How long a random action is held [s]."""


class ExplorationDriver(Agent):
    """Noisy, blind lane follower (see module doc). Needs only the ego vector; any ``AgentInfo``."""

    name = "explore"

    def __init__(self, config: ExploreConfig | None = None, seed: int = 0) -> None:
        self.config = config or ExploreConfig()
        self.base_seed = int(seed)
        self._pending: dict[int, int] = {}
        self._allocate(0)

    def _allocate(self, B: int) -> None:
        self._normal = np.zeros((B, NOISE_BLOCK, _N_NORMAL))
        self._uniform = np.zeros((B, NOISE_BLOCK, _N_UNIFORM))
        self._cursor = np.zeros(B, dtype=np.int64)
        self._offset = np.zeros(B)  # wandering offset [m]
        self._lane = np.zeros(B)  # lane-change offset now [m]
        self._lane_target = np.zeros(B)  # [m]
        self._lane_left = np.zeros(B)  # time left in the lane change [s]
        self._speed_factor = np.zeros(B)  # target speed / limit
        self._steer_ou = np.zeros(B)
        self._accel_ou = np.zeros(B)
        self._random_left = np.zeros(B)  # [s]
        self._random_action = np.zeros((B, 2))
        self._resets = np.zeros(B, dtype=np.int64)
        self._rngs = [np.random.default_rng(0) for _ in range(B)]

    def seed(self, worlds: Sequence[int], seeds: Sequence[int]) -> None:
        """Seed the next ``reset`` of ``worlds`` with ``seeds`` (e.g. the episode seeds, so that an
        episode is reproducible from its seed alone). Unseeded resets derive a seed from the
        driver's ``base_seed``, the world and how often it was reset."""
        if len(worlds) != len(seeds):
            raise ValueError(f"seed got {len(worlds)} worlds and {len(seeds)} seeds")
        for w, s in zip(worlds, seeds, strict=True):
            self._pending[int(w)] = int(s)

    # ------------------------------------------------------------------ episodes

    def _reset(self, worlds: list[int]) -> None:
        B = self.info.num_worlds
        if len(self._cursor) != B:
            self._allocate(B)
        w = np.asarray(worlds, dtype=np.int64)
        for b in worlds:
            seed = self._pending.pop(b, None)
            entropy = [0, seed] if seed is not None else [1, self.base_seed, b, int(self._resets[b])]
            self._rngs[b] = np.random.default_rng([_SEED_TAG, *entropy])
            self._resets[b] += 1
            self._refill(b)
        self._offset[w] = 0.0
        self._lane[w] = 0.0
        self._lane_target[w] = 0.0
        self._lane_left[w] = 0.0
        self._steer_ou[w] = 0.0
        self._accel_ou[w] = 0.0
        self._random_left[w] = 0.0
        self._random_action[w] = 0.0
        # a first target speed for every restarted world (drawn from its block)
        self._speed_factor[w] = self._uniform[w, 0, _U_SPEED] * self.config.max_speed_factor

    def _refill(self, b: int) -> None:
        rng = self._rngs[b]
        self._normal[b] = rng.standard_normal((NOISE_BLOCK, _N_NORMAL))
        self._uniform[b] = rng.random((NOISE_BLOCK, _N_UNIFORM))
        self._cursor[b] = 0

    # ------------------------------------------------------------------ per step

    def _act(self, obs: Observation) -> np.ndarray:
        cfg, dt = self.config, self.info.dt
        B = obs.num_worlds
        for b in np.flatnonzero(self._cursor >= NOISE_BLOCK):  # one world in NOISE_BLOCK steps
            self._refill(int(b))
        rows = np.arange(B)
        n = self._normal[rows, self._cursor]  # [B, 3]
        u = self._uniform[rows, self._cursor]  # [B, 8]
        self._cursor += 1
        ego = obs.ego.astype(np.float64)

        # --- slow processes: wandering offset, lane changes, target speed, random actions
        self._offset = _ou(self._offset, n[:, 0], cfg.offset_std, cfg.offset_time, dt)
        self._lane_left = np.maximum(self._lane_left - dt, 0.0)
        start = (self._lane_left <= 0.0) & (u[:, _U_LC_EVENT] < _chance(cfg.lane_change_rate, dt))
        side = np.where(u[:, _U_LC_SIDE] < 0.5, 1.0, -1.0)
        lo, hi = cfg.lane_change_min_hold, cfg.lane_change_max_hold
        self._lane_left = np.where(start, lo + (hi - lo) * u[:, _U_LC_TIME], self._lane_left)
        self._lane_target = np.where(start, side * cfg.lane_width, np.where(self._lane_left > 0.0,
                                                                            self._lane_target, 0.0))  # fmt: skip
        ramp = cfg.lane_change_speed * dt
        self._lane += np.clip(self._lane_target - self._lane, -ramp, ramp)
        redraw = u[:, _U_SPEED_EVENT] < _chance(1.0 / max(cfg.speed_period, 1e-6), dt)
        self._speed_factor = np.where(redraw, u[:, _U_SPEED] * cfg.max_speed_factor, self._speed_factor)
        self._random_left = np.maximum(self._random_left - dt, 0.0)
        begin = (self._random_left <= 0.0) & (u[:, _U_RAND_EVENT] < _chance(cfg.random_rate, dt))
        self._random_left = np.where(begin, cfg.random_duration, self._random_left)
        self._random_action = np.where(
            begin[:, None], 2.0 * u[:, [_U_RAND_A, _U_RAND_S]] - 1.0, self._random_action
        )

        # --- steer: pure pursuit on the route targets shifted sideways
        tx, ty = _shifted_targets(ego, self._offset + self._lane)
        dist = np.hypot(tx, ty)
        far = dist >= cfg.lookahead
        pick = np.where(far.any(axis=1), np.argmax(far, axis=1), NUM_ROUTE_TARGETS - 1)
        x, y = tx[rows, pick], ty[rows, pick]
        ld = np.maximum(np.hypot(x, y), 1.0)
        curvature = 2.0 * y / (ld * ld)  # [1/m]
        steer = np.arctan(self.info.ego.wheelbase * curvature) / self.info.ego.max_steer

        # --- speed: P control to the target (capped in curves)
        limit = np.maximum(ego[:, EgoFeature.SPEED_LIMIT], 5.0)
        target = self._speed_factor * limit
        if cfg.curve_lateral_accel > 0.0:
            kappa = _route_curvature(ego)
            target = np.minimum(target, np.sqrt(cfg.curve_lateral_accel / np.maximum(kappa, 1e-3)))
        accel = cfg.speed_gain * (target - ego[:, EgoFeature.SPEED])

        # --- noise, then random actions override
        self._steer_ou = _ou(self._steer_ou, n[:, 1], cfg.steer_noise, cfg.noise_time, dt)
        self._accel_ou = _ou(self._accel_ou, n[:, 2], cfg.accel_noise, cfg.noise_time, dt)
        out = np.stack([accel + self._accel_ou, steer + self._steer_ou], axis=1)
        out = np.where((self._random_left > 0.0)[:, None], self._random_action, out)
        return np.clip(out, -1.0, 1.0)


def _chance(rate: float, dt: float) -> float:
    """Probability that a Poisson event of ``rate`` [1/s] happens within ``dt`` [s]."""
    return 1.0 - math.exp(-max(rate, 0.0) * dt)


def _ou(x: np.ndarray, noise: np.ndarray, std: float, tau: float, dt: float) -> np.ndarray:
    """One exact step of an Ornstein–Uhlenbeck process of stationary ``std`` and time constant
    ``tau`` [s] towards 0 (``noise``: standard normal draws, same shape as ``x``)."""
    if std <= 0.0:
        return np.zeros_like(x)
    decay = math.exp(-dt / max(tau, 1e-6))
    return x * decay + std * math.sqrt(1.0 - decay * decay) * noise


def _route_curvature(ego: np.ndarray) -> np.ndarray:
    """Largest curvature of the route ahead ``[B]`` [1/m]: heading change between consecutive
    segments of the route targets over their mean length. Only target-to-target segments count,
    so the ego's own lateral or heading error (e.g. the wandering offset) does not look like a
    curve (it would if the ego-to-target chord were used)."""
    tx, ty = ego[:, _X], ego[:, _Y]
    dx, dy = np.diff(tx, axis=1), np.diff(ty, axis=1)  # [B, K-1]
    heading = np.arctan2(dy, dx)
    turn = np.abs((np.diff(heading, axis=1) + np.pi) % (2.0 * np.pi) - np.pi)  # [B, K-2]
    length = np.hypot(dx, dy)
    mean_len = 0.5 * (length[:, 1:] + length[:, :-1])
    ok = (length[:, 1:] > 1e-3) & (length[:, :-1] > 1e-3)  # targets clamp at the route's end
    kappa = np.where(ok, turn / np.maximum(mean_len, 1e-3), 0.0)
    return kappa.max(axis=1)


def _shifted_targets(ego: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Route targets of the ego vector (``[B, K]`` x and y, ego frame) moved ``offset [B]`` metres
    to the left of the route's direction at each target."""
    tx, ty = ego[:, _X], ego[:, _Y]
    # direction of the route at each target: towards the next one (the last: from the previous)
    hx = np.diff(tx, axis=1)
    hy = np.diff(ty, axis=1)
    hx = np.concatenate([hx, hx[:, -1:]], axis=1)
    hy = np.concatenate([hy, hy[:, -1:]], axis=1)
    norm = np.hypot(hx, hy)
    ok = norm > 1e-6
    nx = np.where(ok, -hy / np.where(ok, norm, 1.0), 0.0)  # left normal
    ny = np.where(ok, hx / np.where(ok, norm, 1.0), 1.0)
    return tx + offset[:, None] * nx, ty + offset[:, None] * ny
