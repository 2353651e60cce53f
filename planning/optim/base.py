"""Sampling-based trajectory optimisation over action sequences, for ``B`` worlds at once.

An optimiser knows two functions and nothing else:

- ``rollout_fn(actions [B, N, H, 2]) -> rollout``: the consequences of ``N`` sequences per world,
  from *one* call (a world model's batched rollout, or forked simulator worlds);
- ``cost_fn(rollout, actions) -> {name: [B, N]}``: named, already weighted cost terms (the total
  is their sum; lower is better).

:meth:`Optimizer.plan` is the algorithm (TD-MPC2's ``_plan``): for each iteration, *sample*
sequences around the current mean (the mean itself, prior proposals on the first iteration and
time-correlated noise), *roll out* all ``B × N`` in one call, *score* them, *refit* the mean and
std (the subclass's rule: CEM's elites, MPPI's exponential weights), std clamped to
``[min_std, max_std]``. The mean starts from the previous plan shifted by one step (warm start);
the plan returned is the best sequence evaluated (or the final mean), with its per-term costs.

Randomness: one ``numpy.random.Generator`` per world (seeded from the optimiser's seed and the
world, or per episode through :meth:`Optimizer.seed`), so a world's plan depends only on its seed
and its own rollouts: same seed, same plan.

Letters: ``B`` worlds, ``N`` sequences per world and iteration, ``P`` proposals, ``H`` horizon.
Actions are normalised ``[accel, steer]`` in ``[-1, 1]``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RolloutFn = Callable[[np.ndarray], Any]
"""``actions [B, N, H, 2] -> rollout`` (anything the cost function reads)."""
CostFn = Callable[[Any, np.ndarray], dict[str, np.ndarray]]
"""``(rollout, actions [B, N, H, 2]) -> {term: [B, N]}`` named, weighted cost terms."""

ACTION_DIM = 2
#: mixed into every seed, so the optimiser's draws differ from a simulator's seeded alike
_SEED_TAG = 0x0B7


@dataclass
class SamplerConfig:
    """Settings shared by the optimisers (``agent.optim.*``)."""

    samples: int = 128
    """Sequences per world and iteration (``N``), the warm-start mean and proposals included."""
    iterations: int = 3
    """Sample → roll out → score → refit rounds per decision."""
    horizon: int = 15
    """Steps per sequence (``H``; at 10 Hz, 15 = 1.5 s, the world model's training horizon)."""
    elites: int = 16
    """CEM: best sequences the mean and std are refitted to."""
    temperature: float = 0.5
    """MPPI: weights ``exp(-(cost - min) / (temperature · std(cost)))`` (relative to the spread of
    the world's costs, so it needs no re-tuning when cost weights change)."""
    init_std: list[float] = field(default_factory=lambda: [0.5, 0.3])
    """Std of the noise at the start of each decision, per action dimension (accel, steer)."""
    min_std: float = 0.05
    """Lower clamp of the refitted std (keeps exploring)."""
    max_std: float = 1.0
    """Upper clamp of the refitted std."""
    correlation: float = 0.8
    """AR(1) coefficient of the noise from one step to the next (0: white; near 1: smooth
    sequences); the marginal std stays ``std``."""
    momentum: float = 0.1
    """Share of the previous mean and std kept at each refit (0: the new fit alone); keeps the
    std from collapsing onto a few elites in one round."""
    select: str = "best"
    """The plan returned: ``best`` (lowest-cost sequence evaluated) or ``mean`` (the final mean,
    evaluated by one more rollout call)."""


@dataclass(frozen=True)
class Round:
    """One round's evaluated candidates (kept on the :class:`Plan` for diagnostics, not copied)."""

    candidates: np.ndarray
    """``float32 [B, N, H, 2]`` the sequences rolled out."""
    costs: dict[str, np.ndarray]
    """Per-term cost of each candidate ``{term: [B, N]}``."""
    rollout: Any
    """What ``rollout_fn`` returned for them."""


@dataclass(frozen=True)
class Plan:
    """An optimiser's answer for ``B`` worlds."""

    actions: np.ndarray
    """``float32 [B, H, 2]`` the planned sequence; its first step is what the agent executes."""
    costs: dict[str, np.ndarray]
    """Per-term cost of that sequence ``{term: [B]}``."""
    total: np.ndarray
    """``[B]`` the sum of ``costs``."""
    rollout: Any = None
    """The last rollout (of the last iteration's candidates, or of the mean), for diagnostics."""
    rounds: tuple[Round, ...] = ()
    """Every round evaluated, in order: one per iteration, then the final mean's (``select:
    mean``)."""
    chosen_round: np.ndarray | None = None
    """``int64 [B]`` the round of :attr:`rounds` whose candidate :attr:`actions` is."""
    chosen_index: np.ndarray | None = None
    """``int64 [B]`` that candidate's index among its round's ``N``."""


class Optimizer(abc.ABC):
    """Plans ``[B, H, 2]`` action sequences with a sampling loop (see the module doc); subclasses
    implement :meth:`_refit`."""

    name = "optimizer"

    def __init__(self, config: SamplerConfig | None = None, seed: int = 0) -> None:
        cfg = config or SamplerConfig()
        if cfg.samples < 2 or cfg.iterations < 1 or cfg.horizon < 1:
            raise ValueError(
                f"samples={cfg.samples} (>= 2), iterations={cfg.iterations} and horizon={cfg.horizon} (>= 1)"
            )
        if not 0.0 < cfg.min_std <= cfg.max_std:
            raise ValueError(f"need 0 < min_std <= max_std; got {cfg.min_std}, {cfg.max_std}")
        if not 0.0 <= cfg.correlation < 1.0:
            raise ValueError(f"correlation={cfg.correlation} must be in [0, 1)")
        if cfg.select not in ("best", "mean"):
            raise ValueError(f"select={cfg.select!r}; allowed: best, mean")
        if len(cfg.init_std) != ACTION_DIM:
            raise ValueError(
                f"init_std needs one value per action dimension (accel, steer); got {cfg.init_std}"
            )
        self.config = cfg
        self.base_seed = int(seed)
        self._rngs: list[np.random.Generator] = []
        self._previous: np.ndarray | None = None  # [B, H, 2]
        self._has_previous: np.ndarray | None = None  # bool [B]

    # ------------------------------------------------------------------ episode state

    def reset(self, num_worlds: int, worlds: Sequence[int] | None = None) -> None:
        """Forget the previous plan of ``worlds`` (all when ``None``); ``num_worlds`` is ``B``."""
        if self._previous is None or self._previous.shape[0] != num_worlds:
            self._previous = np.zeros((num_worlds, self.config.horizon, ACTION_DIM), dtype=np.float32)
            self._has_previous = np.zeros(num_worlds, dtype=bool)
            self._rngs = [np.random.default_rng([_SEED_TAG, self.base_seed, b]) for b in range(num_worlds)]
        assert self._has_previous is not None
        idx = list(range(num_worlds)) if worlds is None else [int(w) for w in worlds]
        self._previous[idx] = 0.0
        self._has_previous[idx] = False

    def seed(self, worlds: Sequence[int], seeds: Sequence[int]) -> None:
        """Re-seed the generators of ``worlds`` (e.g. with their episodes' seeds)."""
        if len(worlds) != len(seeds):
            raise ValueError(f"seed got {len(worlds)} worlds and {len(seeds)} seeds")
        for w, s in zip(worlds, seeds, strict=True):
            self._rngs[int(w)] = np.random.default_rng([_SEED_TAG, int(s)])

    def warm_start(self) -> np.ndarray:
        """``[B, H, 2]`` the previous plans shifted one step (last action repeated); zeros where a
        world has none."""
        assert self._previous is not None, "call reset(num_worlds) first"
        return np.concatenate([self._previous[:, 1:], self._previous[:, -1:]], axis=1)

    # ------------------------------------------------------------------ the loop

    def plan(
        self, rollout_fn: RolloutFn, cost_fn: CostFn, num_worlds: int, proposals: np.ndarray | None = None
    ) -> Plan:
        """Plan for ``num_worlds`` worlds. ``proposals``: ``[B, P, H, 2]`` prior sequences scored in
        the first iteration beside the samples (``P <= samples - 1``)."""
        cfg = self.config
        B, H, N = num_worlds, cfg.horizon, cfg.samples
        if self._previous is None or self._previous.shape[0] != B:
            self.reset(B)
        if proposals is not None:
            proposals = np.asarray(proposals, dtype=np.float32)
            if proposals.ndim != 4 or proposals.shape[0] != B or proposals.shape[2:] != (H, ACTION_DIM):
                raise ValueError(f"proposals must be [B={B}, P, H={H}, 2]; got {proposals.shape}")
            if proposals.shape[1] > N - 1:
                raise ValueError(f"{proposals.shape[1]} proposals leave no room among samples={N}")
        mean = self.warm_start()
        std = np.broadcast_to(np.asarray(cfg.init_std, dtype=np.float32), (B, H, ACTION_DIM)).copy()
        best_actions = np.zeros((B, H, ACTION_DIM), dtype=np.float32)
        best_total = np.full(B, np.inf)
        best_terms: dict[str, np.ndarray] = {}
        rows = np.arange(B)
        rollout: Any = None
        rounds: list[Round] = []
        chosen_round = np.zeros(B, dtype=np.int64)
        chosen_index = np.zeros(B, dtype=np.int64)
        for it in range(cfg.iterations):
            # --- sample: the mean, the proposals (first round), noise correlated in time
            candidates = self._sample(mean, std, proposals if it == 0 else None)
            # --- roll out: all B × N sequences in one call
            rollout = rollout_fn(candidates)
            # --- score: named terms, summed
            terms = cost_fn(rollout, candidates)
            total = _total(terms, B, N)
            pick = np.argmin(total, axis=1)
            better = total[rows, pick] < best_total
            best_total = np.where(better, total[rows, pick], best_total)
            best_actions[better] = candidates[rows, pick][better]
            chosen_round[better], chosen_index[better] = it, pick[better]
            rounds.append(Round(candidates, terms, rollout))
            for name, value in terms.items():
                current = best_terms.setdefault(name, np.zeros(B, dtype=np.float32))
                current[better] = value[rows, pick][better]
            # --- refit the sampling distribution
            new_mean, new_std = self._refit(candidates, total)
            mean = (cfg.momentum * mean + (1.0 - cfg.momentum) * new_mean).astype(np.float32)
            std = np.clip(cfg.momentum * std + (1.0 - cfg.momentum) * new_std, cfg.min_std, cfg.max_std)
            std = std.astype(np.float32)
        if cfg.select == "mean":
            mean = np.clip(mean, -1.0, 1.0)
            rollout = rollout_fn(mean[:, None])
            terms = cost_fn(rollout, mean[:, None])
            best_actions = mean
            best_terms = {k: v[:, 0].astype(np.float32) for k, v in terms.items()}
            best_total = _total(terms, B, 1)[:, 0]
            rounds.append(Round(mean[:, None], terms, rollout))
            chosen_round[:], chosen_index[:] = len(rounds) - 1, 0
        assert self._previous is not None and self._has_previous is not None
        self._previous = best_actions.copy()
        self._has_previous[:] = True
        return Plan(
            actions=best_actions,
            costs=best_terms,
            total=best_total.astype(np.float32),
            rollout=rollout,
            rounds=tuple(rounds),
            chosen_round=chosen_round,
            chosen_index=chosen_index,
        )

    def _sample(self, mean: np.ndarray, std: np.ndarray, proposals: np.ndarray | None) -> np.ndarray:
        """``[B, N, H, 2]``: the mean first, then the proposals, then ``mean + std · noise``."""
        cfg = self.config
        B, H, _ = mean.shape
        P = 0 if proposals is None else proposals.shape[1]
        n_noise = cfg.samples - 1 - P
        white = np.stack(
            [rng.standard_normal((n_noise, H, ACTION_DIM), dtype=np.float32) for rng in self._rngs[:B]]
        )
        noise = correlated(white, cfg.correlation)
        sampled = mean[:, None] + std[:, None] * noise
        parts = [mean[:, None]] + ([proposals] if proposals is not None else []) + [sampled]
        return np.clip(np.concatenate(parts, axis=1), -1.0, 1.0).astype(np.float32)

    @abc.abstractmethod
    def _refit(self, candidates: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """New mean and std ``[B, H, 2]`` from ``candidates [B, N, H, 2]`` and their ``total [B, N]``."""


def correlated(white: np.ndarray, rho: float) -> np.ndarray:
    """AR(1) noise along axis 2 (time) of ``white [B, N, H, 2]`` (unit normal draws):
    ``e[h] = rho · e[h-1] + sqrt(1 - rho²) · w[h]``, ``e[0] = w[0]``, so every step keeps unit std."""
    if rho == 0.0:
        return white
    out = np.empty_like(white)
    out[:, :, 0] = white[:, :, 0]
    scale = np.float32(np.sqrt(1.0 - rho * rho))
    for h in range(1, white.shape[2]):
        out[:, :, h] = rho * out[:, :, h - 1] + scale * white[:, :, h]
    return out


def _total(terms: dict[str, np.ndarray], B: int, N: int) -> np.ndarray:
    total = np.zeros((B, N), dtype=np.float64)
    for name, value in terms.items():
        if value.shape != (B, N):
            raise ValueError(f"cost term {name!r} has shape {value.shape}; expected [B={B}, N={N}]")
        total += value
    if not np.isfinite(total).all():
        bad = np.flatnonzero(~np.isfinite(total).all(axis=1)).tolist()
        raise FloatingPointError(f"non-finite cost for world(s) {bad} (terms: {sorted(terms)})")
    return total


__all__ = ["CostFn", "Optimizer", "Plan", "RolloutFn", "Round", "SamplerConfig", "correlated"]
