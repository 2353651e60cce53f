"""The optimisers on closed forms: CEM and MPPI find the minimum of a quadratic cost through an
exact linear model; warm start shifts the previous plan; proposals are scored; same seed, same plan."""

from __future__ import annotations

import numpy as np
import pytest

from planning.optim import CEM, MPPI, SamplerConfig, make_optimizer
from planning.optim.base import correlated

H = 6
#: the optimum: a constant action inside [-1, 1]², reached only through the linear model's states
A_STAR = np.array([0.3, -0.2], dtype=np.float32)


def linear_rollout(actions: np.ndarray) -> np.ndarray:
    """An exact, stable linear model ``x[h] = a[h] + 0.5 · x[h-1]`` (well conditioned, so the
    optimum is sharp in every action) → states ``[B, N, H, 2]``."""
    states = np.zeros_like(actions)
    prev = np.zeros_like(actions[:, :, 0])
    for h in range(actions.shape[2]):
        prev = actions[:, :, h] + 0.5 * prev
        states[:, :, h] = prev
    return states


def quadratic_cost(goal: np.ndarray):
    """Squared distance of every state to ``goal [B, H, 2]`` (the states of the optimum)."""

    def cost_fn(states: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
        err = ((states - goal[:, None]) ** 2).sum(axis=(2, 3))
        return {"tracking": err, "effort": 1e-4 * (actions**2).sum(axis=(2, 3))}

    return cost_fn


def goal_states(B: int) -> np.ndarray:
    shift = np.linspace(0.0, 0.2, B, dtype=np.float32)[:, None, None]  # a different optimum per world
    a = np.broadcast_to(A_STAR, (B, H, 2)) + shift * np.array([1.0, 0.5], dtype=np.float32)
    return linear_rollout(a[:, None])[:, 0], a


@pytest.mark.parametrize("name", ["cem", "mppi"])
def test_finds_the_minimum_of_a_quadratic_through_a_linear_model(name):
    B = 3
    goal, a_opt = goal_states(B)
    cfg = SamplerConfig(samples=256, iterations=15, horizon=H, elites=32, init_std=[0.5, 0.5], min_std=0.001,
                        correlation=0.5, momentum=0.3, temperature=0.3)  # fmt: skip
    opt = make_optimizer(name, cfg, seed=1)
    plan = opt.plan(linear_rollout, quadratic_cost(goal), num_worlds=B)
    assert plan.actions.shape == (B, H, 2) and plan.actions.dtype == np.float32
    assert np.abs(plan.actions - a_opt).max() < 0.07, np.abs(plan.actions - a_opt).max()
    # the reported per-term costs are those of the returned plan, and total is their sum
    states = linear_rollout(plan.actions[:, None])
    expect = quadratic_cost(goal)(states, plan.actions[:, None])
    for term in ("tracking", "effort"):
        np.testing.assert_allclose(plan.costs[term], expect[term][:, 0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(plan.total, plan.costs["tracking"] + plan.costs["effort"], rtol=1e-5)
    # and it beats doing nothing by far
    zero = quadratic_cost(goal)(linear_rollout(np.zeros((B, 1, H, 2), np.float32)), np.zeros((B, 1, H, 2)))
    assert (plan.total < 0.01 * zero["tracking"][:, 0]).all()


@pytest.mark.parametrize("cls", [CEM, MPPI])
def test_same_seed_same_plan_and_another_seed_another(cls):
    goal, _ = goal_states(2)
    cfg = SamplerConfig(samples=32, iterations=2, horizon=H)
    a = cls(cfg, seed=5).plan(linear_rollout, quadratic_cost(goal), 2).actions
    b = cls(cfg, seed=5).plan(linear_rollout, quadratic_cost(goal), 2).actions
    c = cls(cfg, seed=6).plan(linear_rollout, quadratic_cost(goal), 2).actions
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_per_world_seeds_make_a_world_independent_of_the_batch():
    goal, _ = goal_states(3)
    cfg = SamplerConfig(samples=32, iterations=2, horizon=H)
    opt = CEM(cfg, seed=0)
    opt.reset(3)
    opt.seed([0, 1, 2], [11, 12, 13])
    together = opt.plan(linear_rollout, quadratic_cost(goal), 3).actions
    alone = CEM(cfg, seed=99)
    alone.reset(1)
    alone.seed([0], [12])
    single = alone.plan(linear_rollout, quadratic_cost(goal[1:2]), 1).actions
    np.testing.assert_array_equal(together[1], single[0])


def test_warm_start_is_the_previous_plan_shifted_and_reset_clears_it():
    goal, _ = goal_states(2)
    opt = CEM(SamplerConfig(samples=16, iterations=1, horizon=H), seed=0)
    seen = []

    def rollout(actions):
        seen.append(actions.copy())
        return linear_rollout(actions)

    plan = opt.plan(rollout, quadratic_cost(goal), 2)
    warm = opt.warm_start()
    np.testing.assert_array_equal(warm[:, :-1], plan.actions[:, 1:])
    np.testing.assert_array_equal(warm[:, -1], plan.actions[:, -1])
    opt.plan(rollout, quadratic_cost(goal), 2)
    # the first candidate of the next decision is that shifted plan (the mean)
    np.testing.assert_allclose(seen[-1][:, 0], np.clip(warm, -1, 1))
    opt.reset(2, worlds=[1])
    warm = opt.warm_start()
    assert np.abs(warm[1]).max() == 0.0 and np.abs(warm[0]).max() > 0.0


def test_proposals_are_scored_and_a_perfect_one_wins():
    B = 2
    goal, a_opt = goal_states(B)
    cfg = SamplerConfig(samples=16, iterations=1, horizon=H, init_std=[0.05, 0.05])
    bad = np.full((B, 2, H, 2), -0.9, dtype=np.float32)
    proposals = np.concatenate([bad, a_opt[:, None]], axis=1)
    plan = CEM(cfg, seed=0).plan(linear_rollout, quadratic_cost(goal), B, proposals=proposals)
    np.testing.assert_allclose(plan.actions, a_opt, atol=1e-6)
    with pytest.raises(ValueError, match="proposals"):
        CEM(cfg).plan(linear_rollout, quadratic_cost(goal), B, proposals=np.zeros((B, 16, H, 2)))


def test_select_mean_returns_the_refitted_mean_with_its_costs():
    goal, a_opt = goal_states(1)
    cfg = SamplerConfig(samples=128, iterations=10, horizon=H, select="mean", min_std=0.001, momentum=0.3)
    plan = MPPI(cfg, seed=0).plan(linear_rollout, quadratic_cost(goal), 1)
    assert np.abs(plan.actions - a_opt).max() < 0.1
    expect = quadratic_cost(goal)(linear_rollout(plan.actions[:, None]), plan.actions[:, None])
    np.testing.assert_allclose(plan.costs["tracking"], expect["tracking"][:, 0], rtol=1e-4)


def test_std_is_clamped_and_noise_is_correlated_in_time():
    rng = np.random.default_rng(0)
    white = rng.standard_normal((1, 20000, 6, 2)).astype(np.float32)
    noise = correlated(white, 0.8)
    np.testing.assert_allclose(noise.std(axis=1), 1.0, atol=0.03)  # unit std at every step
    lag1 = np.mean(noise[0, :, 1:, 0] * noise[0, :, :-1, 0])
    assert abs(lag1 - 0.8) < 0.03
    # a cost that all candidates share: elites collapse, and the std stays at min_std
    cfg = SamplerConfig(samples=16, iterations=3, horizon=4, min_std=0.2, max_std=0.3, init_std=[0.25, 0.25])
    opt = CEM(cfg, seed=0)
    stds = []
    original = opt._refit

    def spy(candidates, total):
        mean, std = original(candidates, total)
        stds.append(std)
        return mean, np.zeros_like(std)  # the clamp must lift this to min_std

    opt._refit = spy  # type: ignore[method-assign]
    samples = []

    def rollout(actions):
        samples.append(actions)
        return actions

    opt.plan(rollout, lambda r, a: {"flat": np.zeros(a.shape[:2])}, 1)
    spread = samples[-1][0, 1:].std(axis=0)  # noise around the mean with std clamped at 0.2
    assert 0.12 < spread.mean() < 0.28


@pytest.mark.parametrize("select", ["best", "mean"])
def test_the_plan_keeps_every_round_and_where_its_sequence_came_from(select):
    B = 2
    goal, _ = goal_states(B)
    cfg = SamplerConfig(samples=16, iterations=3, horizon=H, select=select)
    plan = CEM(cfg, seed=0).plan(linear_rollout, quadratic_cost(goal), num_worlds=B)
    assert len(plan.rounds) == 3 + (select == "mean")
    for r in plan.rounds[:3]:
        assert r.candidates.shape == (B, 16, H, 2) and r.rollout.shape == (B, 16, H, 2)
        assert set(r.costs) == {"tracking", "effort"} and all(v.shape == (B, 16) for v in r.costs.values())
        np.testing.assert_array_equal(
            r.rollout, linear_rollout(r.candidates)
        )  # the rollout of those candidates
    assert plan.chosen_round is not None and plan.chosen_index is not None
    for b in range(B):
        chosen = plan.rounds[plan.chosen_round[b]]
        np.testing.assert_array_equal(chosen.candidates[b, plan.chosen_index[b]], plan.actions[b])
        for term, value in plan.costs.items():
            assert value[b] == pytest.approx(float(chosen.costs[term][b, plan.chosen_index[b]]), rel=1e-6)
