"""Counterfactual evaluation: the figures on closed-form cases (hand-made predictions and truths),
the model's branch predictions against its reference rollout, the branches run in a forked
simulator, and ``drive wm-eval`` end to end with its counterfactual part on a tiny checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from world_model.counterfactual import (
    Branches,
    choice_accuracy,
    compose_motion,
    counterfactual_metrics,
    mean_branches,
    mean_spearman,
    paired_auroc,
    predict_branches,
)


def _branches(collision, off_road=None, red_light=None, xy=None, speed=None, valid=None) -> Branches:
    collision = np.asarray(collision, dtype=np.float64)
    S, K, H = collision.shape
    zero = np.zeros((S, K, H))
    return Branches(
        collision=collision,
        off_road=zero if off_road is None else np.asarray(off_road, dtype=np.float64),
        red_light=zero if red_light is None else np.asarray(red_light, dtype=np.float64),
        xy=np.zeros((S, K, H, 2)) if xy is None else xy,
        speed=zero if speed is None else speed,
        valid=np.ones((S, K, H), bool) if valid is None else valid,
    )


def test_paired_auroc_counts_pairs_within_each_state_only():
    score = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.0], [0.3, 0.3, 0.3]])
    label = np.array([[1, 0, 0], [1, 0, 0], [0, 0, 0]])
    # state 0: both pairs ranked right; state 1: 0.2 > 0.0 right, 0.2 < 0.8 wrong; state 2 has no positive
    a, states, pairs = paired_auroc(score, label)
    assert (a, states, pairs) == (pytest.approx(3 / 4), 2, 4)
    # a pooled AUROC would mix states: here every positive outscores every negative of its own state,
    # but not those of the other state (0.4 < 0.5); the paired figure is 1
    a, _, _ = paired_auroc(np.array([[0.9, 0.5], [0.4, 0.1]]), np.array([[1, 0], [1, 0]]))
    assert a == 1.0
    assert paired_auroc(np.array([[0.5, 0.5]]), np.array([[1, 0]]))[0] == 0.5  # a tie counts half
    assert np.isnan(paired_auroc(np.ones((2, 3)), np.zeros((2, 3)))[0])


def test_spearman_and_choice_within_states():
    truth = np.array([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    assert mean_spearman(truth * 0.3, truth) == (pytest.approx(1.0), 2)  # the constant state is skipped
    assert mean_spearman(-truth, truth) == (pytest.approx(-1.0), 2)
    assert mean_spearman(np.zeros_like(truth), truth) == (0.0, 2)  # no preference: 0
    pred = np.array([[0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.0, 0.0, 0.0]])
    assert mean_spearman(pred, truth)[0] == pytest.approx(0.0)  # +1 and -1
    assert choice_accuracy(pred, truth) == (0.5, 2)  # picks branch 0: right in state 0, wrong in state 1


def test_risk_composes_per_step_probabilities():
    b = _branches([[[0.5, 0.5, 0.0]]], off_road=[[[0.0, 0.0, 1.0]]])
    assert b.risk("collision")[0, 0] == pytest.approx(0.75)
    assert b.total_risk()[0, 0] == pytest.approx(1.75)


def test_an_ensembles_branches_are_the_members_mean_valid_where_all_are():
    valid = np.ones((1, 2, 3), bool)
    valid[0, 1, 2] = False
    a = _branches(np.full((1, 2, 3), 0.2), speed=np.full((1, 2, 3), 4.0))
    b = _branches(np.full((1, 2, 3), 0.6), speed=np.full((1, 2, 3), 6.0), valid=valid)
    m = mean_branches([a, b])
    np.testing.assert_allclose(m.collision, 0.4)
    np.testing.assert_allclose(m.speed, 5.0)
    np.testing.assert_array_equal(m.valid, valid)
    one = mean_branches([a])
    np.testing.assert_array_equal(one.collision, a.collision)


def test_compose_motion_is_a_square_for_left_turns():
    dx = np.ones(4)
    xy = compose_motion(dx, np.zeros(4), np.full(4, np.pi / 2))
    np.testing.assert_allclose(xy, [[1, 0], [1, 1], [0, 1], [0, 0]], atol=1e-12)


def test_metrics_report_motion_error_over_valid_steps_and_perfect_scores_for_the_truth():
    rng = np.random.default_rng(0)
    coll = (rng.random((6, 4, 5)) < 0.15).astype(float)
    xy = rng.normal(size=(6, 4, 5, 2))
    valid = np.ones((6, 4, 5), bool)
    valid[0, 0, 3:] = False
    true = _branches(coll, xy=xy, valid=valid)
    m = counterfactual_metrics(true, true)
    assert m["collision"]["paired_auroc"] == 1.0 and m["choice"]["accuracy"] == 1.0
    assert all(r["position_error"] == 0.0 for r in m["motion"])
    shifted = _branches(coll, xy=xy + np.array([3.0, 4.0]))  # 5 m off everywhere, invalid steps too
    m = counterfactual_metrics(shifted, true)
    assert [r["position_error"] for r in m["motion"]] == pytest.approx([5.0] * 5)
    assert [r["branches"] for r in m["motion"]] == [24, 24, 24, 23, 23]
    flipped = np.zeros_like(coll)
    flipped[..., 0] = 1.0 - true.risk("collision")  # ranks every state the wrong way round
    flipped = _branches(flipped)
    assert counterfactual_metrics(flipped, true)["collision"]["paired_auroc"] == 0.0


def test_predict_branches_matches_the_reference_rollout(one_torch_thread):
    from world_model.config import ModelConfig
    from world_model.model import WorldModel

    torch.manual_seed(0)
    cfg = ModelConfig(
        latent=8, channels=[4, 8], ego_hidden=4, fuse_hidden=8, predictor_hidden=16, head_hidden=8
    )
    model = WorldModel(cfg, (3, 16, 16), 5).eval()
    z0 = torch.randn(2, 8)
    actions = np.random.default_rng(1).uniform(-1, 1, (2, 3, 4, 2)).astype(np.float32)
    pred = predict_branches(model, z0, actions)
    assert pred.collision.shape == (2, 3, 4) and pred.xy.shape == (2, 3, 4, 2)
    with torch.no_grad():
        z = model.rollout(z0[1:2], torch.from_numpy(actions[1, 2:3]))
        heads = model.heads(z)
    np.testing.assert_allclose(
        pred.collision[1, 2], heads["collision"][0, :, 0].numpy(), rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(pred.speed[1, 2], heads["motion"][0, :, 3].numpy(), rtol=1e-4, atol=1e-5)
    first = heads["motion"][0, 0].numpy()  # the first step's displacement is the head's dx, dy
    np.testing.assert_allclose(pred.xy[1, 2, 0], first[:2], rtol=1e-4, atol=1e-5)


def test_branches_run_for_real_brake_stops_and_accelerate_goes_further():
    from drive.pipelines.counterfactual import action_sequences, run_branches, sequence_names
    from drive.schemas import CounterfactualConfig
    from scenarios.families import make_scenario
    from sim_bridge.embedded.config import EmbeddedConfig
    from sim_bridge.embedded.simulator import EmbeddedSimulator

    cfg = CounterfactualConfig(random_sequences=1, horizon=10)
    spec = make_scenario("lead_vehicle_brake", seed=200)
    small = {"max_vehicles": 4, "max_pedestrians": 2, "max_statics": 2, "threads": 1}
    source = EmbeddedSimulator(EmbeddedConfig(num_worlds=1, render_bev=False, **small))
    branch = EmbeddedSimulator(EmbeddedConfig(num_worlds=6, render_bev=False, **small))
    source.reset(spec.world, spec.seed)
    for _ in range(10):
        source.step(np.array([[0.3, 0.0]]))
    seqs = action_sequences(np.array([0.3, 0.0]), cfg, np.random.default_rng(0))
    assert seqs.shape == (6, 10, 2) and len(sequence_names(cfg)) == 6
    np.testing.assert_allclose(seqs[0], np.tile([0.3, 0.0], (10, 1)), rtol=1e-6)  # keep
    assert (seqs[1, :, 0] == -1).all() and (seqs[2, :, 0] == 1).all()  # brake, accelerate
    assert (seqs[3, :, 1] > 0).all() and (seqs[4, :, 1] < 0).all()  # swerve left, right
    true = run_branches(branch, source.snapshot(), seqs)
    keep, brake, accel = true.xy[0, 0, -1, 0], true.xy[0, 1, -1, 0], true.xy[0, 2, -1, 0]
    assert brake < keep < accel  # metres travelled forward
    assert true.speed[0, 1, -1] < 0.5 * true.speed[0, 2, -1]
    assert true.xy[0, 3, -1, 1] > 0.5 > -0.5 > true.xy[0, 4, -1, 1]  # swerves go left and right
    assert true.valid.all()  # no collision on a free road


@pytest.mark.slow
def test_wm_eval_runs_the_counterfactual_evaluation_on_a_tiny_checkpoint(tmp_path: Path):
    from tests.test_wm_cli import SMALL_MODEL, collect, drive

    data, run = tmp_path / "data", tmp_path / "run"
    collect(data, seed=0, hours=0.02, cwd=tmp_path)
    proc = drive("train", f"data={data}", "hours=0.015", f"out={run}", *SMALL_MODEL, "loss.horizon=4",
                 "loss.target_steps=[1,2,4]", "optim.batch_size=4", "optim.stats_batches=1", "optim.eval_every=2",
                 "optim.eval_batches=1", "optim.probe_every=100", "val_fraction=0.3", "threads=1", "optim.steps=2",
                 cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = tmp_path / "eval.json"
    proc = drive("wm-eval", f"checkpoint={run / 'last.pt'}", f"ensemble=[{run / 'best.pt'}]", f"data={data}", "horizon=4",
                 f"out={report}", "counterfactual.families=[lead_vehicle_brake,pedestrian_crossing]",
                 "counterfactual.seeds=[200]", "counterfactual.at_steps=[20,45]", "counterfactual.horizon=6",
                 "counterfactual.random_sequences=1", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    cf = json.loads(report.read_text())["counterfactual"]
    assert cf["ensemble"] == [str(run / "last.pt"), str(run / "best.pt")]
    assert cf["sequences"] == ["keep", "brake", "accelerate", "swerve_left", "swerve_right", "random_0"]
    assert set(cf["by_kind"]) == {"braking_lead", "crossing_pedestrian"}
    assert cf["all"]["states"] == sum(m["states"] for m in cf["by_kind"].values()) >= 2
    assert [r["step"] for r in cf["all"]["motion"]] == [1, 2, 3, 4, 5, 6]
    assert all(r["position_error"] >= 0 for r in cf["all"]["motion"])
    assert cf["collision_rate_by_sequence"]["brake"] <= cf["collision_rate_by_sequence"]["accelerate"]
    assert "counterfactual:" in proc.stdout and "braking_lead" in proc.stdout
