"""Training of the world model: a step lowers the loss, the collapse monitor, seeded determinism,
resume equal to an uninterrupted run, checkpoint mismatch errors, and the diagnostics' closed
forms (AUROC, ECE, effective rank, event targets, SIGReg)."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from world_model import losses
from world_model.batch import EVENT, NUM_EVENTS, Windows
from world_model.config import LossConfig, ModelConfig, OptimConfig
from world_model.diagnostics import auroc, check_collapse, effective_rank, expected_calibration_error
from world_model.model import WorldModel
from world_model.train import (
    CheckpointError,
    CheckpointMismatchError,
    Trainer,
    load_model,
    read_checkpoint,
    to_tensors,
    train,
)

BEV = (10, 16, 16)
EGO = 5
WINDOW = 5


pytestmark = pytest.mark.usefixtures("one_torch_thread")


class ToyWindows:
    """Windows of a square that moves across one BEV channel at a speed set by the action, with a
    collision whenever it reaches the right edge; everything drawn from the caller's generator."""

    window = WINDOW

    def sample(self, rng: np.random.Generator, batch_size: int) -> Windows:
        B, T = batch_size, self.window
        action = rng.uniform(-1.0, 1.0, (B, T, 2)).astype(np.float32)
        x0 = rng.integers(0, 12, B)
        x = np.clip(x0[:, None] + np.cumsum(np.round(2 * action[..., 0]), axis=1), 0, 12).astype(np.int64)
        bev = np.zeros((B, T, *BEV), dtype=np.uint8)
        rows = rng.integers(0, 12, B)
        for dx, dy in itertools.product(range(4), range(4)):
            bev[np.arange(B)[:, None], np.arange(T), 3, (rows[:, None] + dy), x + dx] = 255
        bev[:, :, 0] = 255 * (np.arange(16)[None, None, :, None] > 3)  # a static "road"
        ego = np.concatenate([x[..., None] / 12.0, action, rng.standard_normal((B, T, 2))], axis=-1).astype(
            np.float32
        )
        events = np.zeros((B, T, NUM_EVENTS), dtype=np.float32)
        events[..., EVENT["collision"]] = x >= 12
        events[..., EVENT["dx"]] = 2 * action[..., 0]
        events[..., EVENT["speed"]] = np.abs(action[..., 0]) * 5
        valid = np.ones((B, T), dtype=bool)
        # proximity: the square's column as "nearest", its distance to the edge as "gap ahead" [m]
        proximity = np.stack([x, 12 - x], axis=-1).astype(np.float32)
        return Windows(bev=bev, ego=ego, action=action, events=events, valid=valid,
                       episode=np.arange(B, dtype=np.int64), start=np.zeros(B, dtype=np.int64),
                       proximity=proximity)  # fmt: skip


def model_config(**overrides: object) -> ModelConfig:
    base = dict(latent=16, channels=[8, 16, 16], ego_hidden=8, fuse_hidden=32, predictor_hidden=32, head_hidden=16,
                event_within=[1, 3])  # fmt: skip
    base.update(overrides)
    return ModelConfig(**base)  # type: ignore[arg-type]


def make_trainer(seed: int = 0, model: ModelConfig | None = None, **loss: object) -> Trainer:
    torch.manual_seed(seed)
    m = WorldModel(model or model_config(), BEV, EGO)
    loss_cfg = LossConfig(horizon=4, target_steps=[1, 2, 4], sigreg_projections=32, **loss)  # type: ignore[arg-type]
    optim = OptimConfig(steps=6, batch_size=8, lr=3e-3, warmup=1, seed=seed, stats_batches=2, log_every=1,
                        eval_every=3, eval_batches=2, probe_every=0, checkpoint_every=2)  # fmt: skip
    t = Trainer(m, loss_cfg, optim, torch.device("cpu"))
    t.fit_statistics([ToyWindows().sample(np.random.default_rng(seed + 1), 8) for _ in range(2)])
    return t


# ---------------------------------------------------------------------------- training


def test_training_steps_lower_the_loss_on_a_fixed_batch():
    # deterministic terms (SIGReg draws new directions per call); proximity at weight 1: with the
    # default 10 its toy targets dominate the first 25 steps of this tiny model
    t = make_trainer(regulariser="vicreg", proximity_weight=1.0)
    batch = to_tensors(ToyWindows().sample(np.random.default_rng(5), 8), t.device)

    def terms() -> dict[str, float]:
        return {k: float(v.detach()) for k, v in t.compute_loss(batch)[1].items()}

    before = terms()
    t.train_step(ToyWindows().sample(np.random.default_rng(5), 8))
    one = terms()
    assert one["total"] < before["total"]
    for _ in range(24):
        t.train_step(ToyWindows().sample(np.random.default_rng(5), 8))
    after = terms()
    assert after["total"] < one["total"]
    assert after["latent"] < 0.5 * before["latent"]  # the rollout learnt to predict the targets
    assert after["events"] < before["events"] and after["motion"] < before["motion"]
    assert after["proximity"] < before["proximity"]


def test_same_seed_gives_identical_losses():
    runs = []
    for _ in range(2):
        t = make_trainer(seed=3)
        rng = np.random.default_rng(9)
        runs.append([t.train_step(ToyWindows().sample(rng, 8)) for _ in range(3)])
    for a, b in zip(*runs, strict=True):
        assert a == b  # every scalar, bit for bit
    other = make_trainer(seed=4)
    rng = np.random.default_rng(9)
    assert other.train_step(ToyWindows().sample(rng, 8))["loss/total"] != runs[0][0]["loss/total"]


class Recorder:
    def __init__(self) -> None:
        self.values: dict[int, dict[str, float]] = {}

    def scalars(self, step: int, values: dict[str, float]) -> None:
        self.values.setdefault(step, {}).update(values)

    def probe(self, step: int, probe: object) -> None:
        pass


def _run(out: Path, steps: int, seed: int = 0) -> tuple[WorldModel, Recorder, dict]:
    torch.manual_seed(seed)
    model = WorldModel(model_config(), BEV, EGO)
    loss = LossConfig(horizon=4, target_steps=[1, 2, 4], sigreg_projections=32)
    optim = OptimConfig(steps=steps, batch_size=8, lr=3e-3, warmup=2, seed=seed, stats_batches=2, log_every=1,
                        eval_every=2, eval_batches=1, probe_every=2, checkpoint_every=100)  # fmt: skip
    rec = Recorder()
    summary = train(model, ToyWindows(), ToyWindows(), loss, optim, out, rec)
    return model, rec, summary


def test_resume_equals_an_uninterrupted_run(tmp_path):
    whole, rec_whole, _ = _run(tmp_path / "whole", steps=4)
    _, _, first = _run(tmp_path / "split", steps=2)
    assert first["steps"] == 2 and (tmp_path / "split" / "last.pt").exists()
    resumed, rec_resumed, second = _run(tmp_path / "split", steps=4)
    assert second["resumed_from"] == 2 and second["steps"] == 4
    for k, v in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[k], v, atol=0, rtol=0)
    for step in (3, 4):
        a = {k: v for k, v in rec_whole.values[step].items() if not k.startswith("perf/")}
        b = {k: v for k, v in rec_resumed.values[step].items() if not k.startswith("perf/")}
        np.testing.assert_equal(a, b)  # NaN (no positives of a rare event) counts as equal


def test_zero_steps_write_the_initial_model_as_the_checkpoint(tmp_path):
    """``optim.steps = 0`` (a curve's no-experience baseline): ``last.pt`` holds the seeded
    initialisation, untouched by any step (only the normalisation buffers are fitted to the data),
    and loads as a planner's model."""
    model, _, summary = _run(tmp_path / "zero", steps=0, seed=3)
    assert summary["steps"] == 0 and summary["checkpoint"] == str(tmp_path / "zero" / "last.pt")
    torch.manual_seed(3)
    fresh = WorldModel(model_config(), BEV, EGO)
    loaded = load_model(tmp_path / "zero" / "last.pt")
    buffers = {name for name, _ in fresh.named_buffers()}
    for k, v in fresh.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], model.state_dict()[k], atol=0, rtol=0)
        if k not in buffers:
            torch.testing.assert_close(loaded.state_dict()[k], v, atol=0, rtol=0)
    assert read_checkpoint(tmp_path / "zero" / "last.pt")["step"] == 0


def test_best_checkpoint_is_the_lowest_validation_loss(tmp_path):
    _, rec, summary = _run(tmp_path / "run", steps=8)
    val = {step: v["loss/val_total"] for step, v in rec.values.items() if "loss/val_total" in v}
    assert sorted(val) == [2, 4, 6, 8]
    best = min(val, key=lambda k: val[k])
    assert summary["best_step"] == best and summary["best_val_total"] == pytest.approx(val[best])
    stored = read_checkpoint(tmp_path / "run" / "best.pt")
    assert stored["step"] == best and stored["best_step"] == best
    assert summary["best_checkpoint"] == str(tmp_path / "run" / "best.pt")
    # resuming keeps the record: a run continued to 10 steps replaces best.pt only if it improves
    _, rec2, summary2 = _run(tmp_path / "run", steps=10)
    later = rec2.values[10]["loss/val_total"]
    assert summary2["best_step"] == (10 if later < val[best] else best)


def test_checkpoint_mismatch_names_the_fields(tmp_path):
    path = tmp_path / "last.pt"
    make_trainer(model=model_config(latent=16)).save(path)
    with pytest.raises(CheckpointMismatchError, match=r"model\.latent: checkpoint 16, now 8"):
        make_trainer(model=model_config(latent=8)).load(path)
    with pytest.raises(CheckpointMismatchError, match=r"loss\.regulariser: checkpoint sigreg, now vicreg"):
        make_trainer(regulariser="vicreg").load(path)
    # the budget may change on resume
    t = make_trainer()
    t.optim_cfg = dataclasses.replace(t.optim_cfg, steps=50)
    t.load(path)


def test_checkpoint_round_trip_and_refusal_of_other_files(tmp_path):
    t = make_trainer()
    rng = np.random.default_rng(0)
    t.train_step(ToyWindows().sample(rng, 8))
    t.save(tmp_path / "last.pt")
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temporary file
    m = load_model(tmp_path / "last.pt")
    batch = ToyWindows().sample(rng, 4)
    bev, ego = torch.from_numpy(batch.bev[:, 0]), torch.from_numpy(batch.ego[:, 0])
    t.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(m.encode(bev, ego), t.model.encode(bev, ego))
        torch.testing.assert_close(
            m.heads(m.encode(bev, ego))["collision"], t.model.heads(t.model.encode(bev, ego))["collision"]
        )
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a world-model checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="drive train"):
        read_checkpoint(tmp_path / "missing.pt")


def test_evaluate_reports_prediction_error_beside_copy_last_and_head_quality():
    t = make_trainer()
    batches = [ToyWindows().sample(np.random.default_rng(i), 16) for i in range(2)]
    out = t.evaluate(batches)
    for k in (1, 2, 4):
        assert out[f"pred/err_h{k}"] >= 0 and out[f"pred/copy_last_err_h{k}"] >= 0
    assert 0 <= out["heads/auroc_collision_3"] <= 1 and out["heads/positives_collision_3"] > 0
    assert out["collapse/val_effective_rank"] > 1


# ---------------------------------------------------------------------------- collapse monitor


def test_collapse_monitor_flags_a_constant_encoder_and_not_a_healthy_one():
    t = make_trainer()
    batch = ToyWindows().sample(np.random.default_rng(0), 32)
    bev, ego = torch.from_numpy(batch.bev[:, 0]), torch.from_numpy(batch.ego[:, 0])
    with torch.no_grad():
        healthy = check_collapse(t.model.encode(bev, ego))
        assert not healthy.collapsed and healthy.reason == ""
        last = t.model.fuse[-1]
        last.weight.zero_()  # deliberately collapsed: the encoder outputs its bias, whatever it sees
        collapsed = check_collapse(t.model.encode(bev, ego))
    assert collapsed.collapsed and "complete collapse" in collapsed.reason and collapsed.effective_rank == 0.0
    # the training step reports the same statistics
    assert t.train_step(batch)["collapse/std"] < 1e-2
    # a dimensional collapse: every embedding on one line
    line = torch.randn(64, 1) * torch.randn(1, 16)
    report = check_collapse(line)
    assert report.collapsed and "dimensional collapse" in report.reason


# ---------------------------------------------------------------------------- closed forms


def test_auroc_closed_forms():
    assert auroc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert auroc(np.array([0.9, 0.8, 0.2, 0.1]), np.array([0, 0, 1, 1])) == 0.0
    assert auroc(np.full(6, 0.3), np.array([0, 1, 0, 1, 0, 1])) == 0.5
    # one positive above two of three negatives, one tie → (2 + 0.5) / 3
    assert auroc(np.array([0.5, 0.1, 0.2, 0.5]), np.array([1, 0, 0, 0])) == pytest.approx(2.5 / 3)
    assert np.isnan(auroc(np.array([0.1, 0.2]), np.array([0, 0])))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=2, max_size=30))
def test_auroc_equals_the_pairwise_definition(pairs):
    scores = np.array([s for s, _ in pairs], dtype=float)
    labels = np.array([y for _, y in pairs])
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        assert np.isnan(auroc(scores, labels))
        return
    expected = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert auroc(scores, labels) == pytest.approx(expected)


def test_expected_calibration_error_closed_forms():
    # a constant 0.8 forecast on a 50 % event rate is off by 0.3
    assert expected_calibration_error(np.full(10, 0.8), np.array([1, 0] * 5)) == pytest.approx(0.3)
    # calibrated in every bin: 0.25 with one positive in four, 0.75 with three in four
    p = np.array([0.25] * 4 + [0.75] * 4)
    y = np.array([1, 0, 0, 0, 1, 1, 1, 0])
    assert expected_calibration_error(p, y) == pytest.approx(0.0, abs=1e-12)
    # two bins, each off: (4/8)·|0.25 − 0.05| + (4/8)·|0.75 − 0.95|
    assert expected_calibration_error(np.array([0.05] * 4 + [0.95] * 4), y) == pytest.approx(0.2)


def test_effective_rank_closed_forms():
    q, _ = torch.linalg.qr(torch.randn(64, 8, dtype=torch.float64))
    iso = q * 3.0  # 8 orthogonal directions of equal energy; centring keeps the rank 8 within rounding
    iso = torch.cat([iso, -iso])  # centred exactly
    assert effective_rank(iso) == pytest.approx(8.0, rel=1e-9)
    line = torch.randn(50, 1) * torch.randn(1, 6)
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-5)  # float32 rounding
    assert effective_rank(torch.ones(20, 6) * 5.0) == 0.0
    # two directions with singular values 3 and 1: exp(H(3/4, 1/4))
    z = torch.cat([torch.tensor([[3.0, 0.0], [0.0, 1.0]]), -torch.tensor([[3.0, 0.0], [0.0, 1.0]])])
    p = np.array([0.75, 0.25])
    assert effective_rank(z) == pytest.approx(float(np.exp(-(p * np.log(p)).sum())))


def test_event_targets_closed_form():
    events = torch.zeros(1, 6, NUM_EVENTS)
    events[0, 3, EVENT["collision"]] = 1.0
    events[0, 3, EVENT["done"]] = 1.0
    valid = torch.tensor([[True, True, True, True, False, False]])
    targets, masks = losses.event_targets(events, valid, [1, 3], horizon=5)
    coll = targets[0, :, 0]  # [H, K]
    assert coll[:, 0].tolist() == [0, 0, 0, 1, 0]  # the collision happens during step 3
    assert coll[:, 1].tolist()[:4] == [0, 1, 1, 1]  # within 3 steps of steps 1, 2, 3
    # step 4 is padding: no label counts; steps up to 3 count (the episode ended, nothing can follow)
    assert masks[0, :, 0, 0].tolist() == [True, True, True, True, False]
    assert masks[0, :, 0, 1].tolist() == [True, True, True, True, False]


def test_sigreg_is_small_for_standard_normal_and_large_for_collapsed_embeddings():
    g = torch.Generator().manual_seed(0)
    dirs = losses.random_directions(16, 64, g)
    normal = losses.sigreg(torch.randn(2048, 16, generator=g), dirs)
    collapsed = losses.sigreg(torch.zeros(2048, 16), dirs)
    squeezed = losses.sigreg(0.1 * torch.randn(2048, 16, generator=g), dirs)
    assert float(normal) < 0.01 * float(collapsed)
    assert float(normal) < float(squeezed) < float(collapsed) * 1.01
    # the closed form of a point mass at 0: 2 ∫_0^3 (1 − e^{−t²/2})² e^{−t²/2} dt
    t = torch.linspace(0, 3, 2001, dtype=torch.float64)
    g_t = torch.exp(-0.5 * t.square())
    assert float(collapsed) == pytest.approx(
        float(2 * torch.trapezoid((1 - g_t).square() * g_t, t)), rel=5e-3
    )
