"""An ensemble of world models as the planner's rollout source: its future is the members' mean and
its ``collision_spread`` their standard deviation; one member is that member; members on different
sensor setups are refused; the ``disagreement`` term prices the spread; ``agent.ensemble`` loads the
members from checkpoints; and in closed loop an ensemble with a cautious member keeps further from
an obstacle than the bold member alone, further still when the disagreement is priced.

The members are the hand-constructed kinematic model of ``test_world_model_planner`` (exact
longitudinal kinematics, a collision logit that rises as the gap closes) with the collision logit
shifted so that it fires ``shift`` metres earlier.
"""

from __future__ import annotations

import numpy as np
import pytest

from planning.costs import Costs, CostsConfig, TermConfig
from planning.ensemble import EnsembleFutures
from planning.futures import ModelFutures
from tests.test_world_model_planner import (
    GAP,
    drive,
    kinematic_model,
    observation,
    planner,
    save_checkpoint,
)


def cautious_model(shift: float):
    """The kinematic model whose collision logit reaches 0 ``shift`` m before contact (not at it)."""
    import torch

    model = kinematic_model()
    with torch.no_grad():
        # trunk unit 2 is relu(0.5 - gap): move its knee from 0.5 m to 0.5 + shift
        model.head_trunk[0].bias[2] = 0.5 + shift
    return model


def rollout(source, speed: float, gap: float, actions: np.ndarray):
    obs = observation(np.array([speed]), np.array([gap]))
    return source.futures(source.encode(obs.bev, obs.ego), actions)


def sequences(H: int = 15) -> np.ndarray:
    """``[1, 3, H, 2]``: full brake, coast, full throttle."""
    acts = np.zeros((1, 3, H, 2), dtype=np.float32)
    acts[0, 0, :, 0], acts[0, 2, :, 0] = -1.0, 1.0
    return acts


def test_the_ensemble_future_is_the_members_mean_and_its_spread_their_std(one_torch_thread):
    members = [kinematic_model(), cautious_model(4.0)]
    acts = sequences()
    singles = [rollout(ModelFutures(m), 8.0, 12.0, acts) for m in members]
    mixed = rollout(EnsembleFutures(members), 8.0, 12.0, acts)
    collisions = np.stack([f.collision for f in singles])
    np.testing.assert_allclose(mixed.collision, collisions.mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(mixed.collision_spread, collisions.std(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(mixed.gap_ahead, singles[0].gap_ahead, rtol=1e-5)  # the members agree on it
    # the members disagree where the cautious one already sees a collision: under full throttle
    assert mixed.collision_spread[0, 2].max() > 0.1
    assert mixed.collision_spread[0, 0].max() < mixed.collision_spread[0, 2].max()


def test_the_median_ensemble_is_not_moved_by_one_member_far_off_the_others(one_torch_thread):
    members = [kinematic_model(), cautious_model(0.3), cautious_model(12.0)]  # the last sees risk everywhere
    acts = sequences()
    singles = [rollout(ModelFutures(m), 8.0, 12.0, acts) for m in members]
    median = rollout(EnsembleFutures(members, reduce="median"), 8.0, 12.0, acts)
    mean = rollout(EnsembleFutures(members), 8.0, 12.0, acts)
    np.testing.assert_allclose(median.collision, singles[1].collision, rtol=1e-5, atol=1e-7)
    assert (mean.collision[0, 0] > median.collision[0, 0] + 0.1).any()  # the mean is pulled up
    with pytest.raises(ValueError, match="allowed: mean, median"):
        EnsembleFutures(members, reduce="max")


def test_one_member_is_that_member_with_no_spread(one_torch_thread):
    model, acts = kinematic_model(), sequences()
    alone = rollout(ModelFutures(model), 6.0, 20.0, acts)
    one = rollout(EnsembleFutures([model]), 6.0, 20.0, acts)
    np.testing.assert_array_equal(one.collision, alone.collision)
    np.testing.assert_array_equal(one.xy, alone.xy)
    assert one.collision_spread is not None and not one.collision_spread.any()


def test_members_of_another_sensor_setup_are_refused():
    with pytest.raises(ValueError, match="member 1 expects BEV"):
        EnsembleFutures([kinematic_model((10, 32, 32)), kinematic_model((10, 16, 16))])
    with pytest.raises(ValueError, match="at least one"):
        EnsembleFutures([])


def test_the_disagreement_term_is_the_discounted_spread_and_zero_without_an_ensemble(one_torch_thread):
    acts = sequences()
    costs = Costs(CostsConfig(disagreement=TermConfig(10.0)))
    from planning.costs import CostContext

    obs = observation(np.array([8.0]), np.array([12.0]))
    ctx = CostContext.from_ego(obs.ego)
    mixed = rollout(EnsembleFutures([kinematic_model(), cautious_model(4.0)]), 8.0, 12.0, acts)
    disc = 0.97 ** np.arange(acts.shape[2])
    np.testing.assert_allclose(
        costs(mixed, acts, ctx)["disagreement"], 10.0 * (mixed.collision_spread @ disc), rtol=1e-5
    )
    single = rollout(ModelFutures(kinematic_model()), 8.0, 12.0, acts)
    assert not costs(single, acts, ctx)["disagreement"].any()


def test_agent_ensemble_loads_the_members_from_checkpoints(tmp_path, one_torch_thread):
    from drive import build
    from drive.cli import compose_config

    first = save_checkpoint(kinematic_model((10, 96, 96)), tmp_path / "a.pt")
    second = save_checkpoint(kinematic_model((10, 96, 96)), tmp_path / "b.pt")
    cfg = compose_config("eval", ["agent=planner", f"agent.checkpoint={first}", f"agent.ensemble=[{second}]"])
    agent = build.agent(cfg.agent)
    assert isinstance(agent.source, EnsembleFutures) and agent.source.size == 2
    assert agent.source.members[1].model.predictor.out.weight[GAP, 2].item() == pytest.approx(-0.1)


def test_a_cautious_member_keeps_the_ensemble_further_from_an_obstacle(one_torch_thread):
    from planning.proposals import ProposalConfig

    start = np.array([25.0])
    props = ProposalConfig(hold_offset=False)  # on a straight road the same paths as offset 0
    _, bold_gap, bold_min = drive(planner(model=kinematic_model(), proposals=props), start, steps=80)
    _, mixed_gap, mixed_min = drive(
        planner(model=[kinematic_model(), cautious_model(4.0)], proposals=props), start, steps=80
    )
    priced = planner(model=[kinematic_model(), cautious_model(4.0)], proposals=props,
                     costs=CostsConfig(disagreement=TermConfig(200.0)))  # fmt: skip
    _, priced_gap, priced_min = drive(priced, start, steps=80)
    assert bold_min[0] > 0.0 and mixed_min[0] > 0.0 and priced_min[0] > 0.0
    assert mixed_gap[0] > bold_gap[0] + 0.5, (bold_gap, mixed_gap)
    assert priced_gap[0] >= mixed_gap[0], (mixed_gap, priced_gap)
