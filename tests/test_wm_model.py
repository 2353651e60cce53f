"""The world model's parts: shapes and dtypes through encode / predict / rollout / heads, the fast
rollout against the eager one, the uint8 max-pool, and refusal of non-finite inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from world_model.config import ModelConfig
from world_model.fast_rollout import FastRollout
from world_model.model import (
    EVENT_HEADS,
    BevEncoder,
    Predictor,
    WorldModel,
    ego_statistics,
    reference_predictor,
)
from world_model.proximity import PROXIMITY_SCALE

BEV = (10, 32, 32)
EGO = 7


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_model(**overrides: object) -> WorldModel:
    cfg = ModelConfig(latent=16, channels=[8, 16, 16], ego_hidden=8, fuse_hidden=32, predictor_hidden=24,
                      head_hidden=16, **overrides)  # type: ignore[arg-type]  # fmt: skip
    torch.manual_seed(0)
    return WorldModel(cfg, BEV, EGO).eval()


def inputs(lead: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    bev = (torch.rand(*lead, *BEV, generator=g) < 0.2).to(torch.uint8) * 255
    return bev, torch.randn(*lead, EGO, generator=g)


def test_shapes_and_dtypes_through_encode_predict_rollout_heads():
    m = small_model()
    bev, ego = inputs((4, 3))
    z = m.encode(bev, ego)
    assert z.shape == (4, 3, 16) and z.dtype == torch.float32
    # leading dims are only a batch: encoding the flattened frames gives the same latents
    torch.testing.assert_close(m.encode(bev.reshape(12, *BEV), ego.reshape(12, EGO)), z.reshape(12, 16))
    a = torch.rand(4, 5, 2) * 2 - 1
    z1 = m.predict(z[:, 0], a[:, 0])
    assert z1.shape == (4, 16) and z1.dtype == torch.float32
    roll = m.rollout(z[:, 0], a)
    assert roll.shape == (4, 5, 16)
    torch.testing.assert_close(roll[:, 0], z1)  # the rollout's first step is one predict
    torch.testing.assert_close(roll[:, 1], m.predict(z1, a[:, 1]))
    heads = m.heads(roll)
    for name in EVENT_HEADS:
        p = heads[name]
        assert p.shape == (4, 5, 3) and bool(((p >= 0) & (p <= 1)).all())
        torch.testing.assert_close(getattr(m, name)(roll), p)
    assert heads["motion"].shape == (4, 5, 4) and heads["progress"].shape == (4, 5)
    assert heads["proximity"].shape == (4, 5, 2)
    assert m.head_logits(roll).shape == (4, 5, len(EVENT_HEADS) * 3 + 5 + 2)


def test_rollout_is_differentiable_to_the_encoder():
    m = small_model().train()
    bev, ego = inputs((2,))
    m.rollout(m.encode(bev, ego), torch.zeros(2, 4, 2)).square().sum().backward()
    assert m.bev_net.net[0].weight.grad is not None and m.bev_net.net[0].weight.grad.abs().sum() > 0


@settings(max_examples=15, deadline=None)
@given(
    batch=st.integers(1, 40),
    horizon=st.integers(1, 16),
    layers=st.integers(1, 3),
    seed=st.integers(0, 10_000),
)
def test_fast_rollout_equals_eager_rollout(batch, horizon, layers, seed):
    torch.manual_seed(seed)
    p = Predictor(latent=12, hidden=20, layers=layers)
    z0, a = torch.randn(batch, 12), torch.rand(batch, horizon, 2) * 2 - 1
    with torch.no_grad():
        eager = p.rollout(z0, a)
    fast = FastRollout(p)
    out = fast(z0, a)
    assert out.shape == eager.shape and out.dtype == eager.dtype
    torch.testing.assert_close(out, eager, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast(z0, a), out)  # reused buffers do not leak between calls


def test_fast_rollout_of_the_reference_size_and_of_a_model():
    torch.manual_seed(0)
    ref = reference_predictor()
    assert ref.inp_z.in_features == 64 and ref.out.in_features == 256 and len(ref.hidden) == 1
    z0, a = torch.randn(512, 64), torch.rand(512, 15, 2) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(FastRollout(ref)(z0, a), ref.rollout(z0, a), atol=1e-5, rtol=1e-5)
    m = small_model()
    z = torch.randn(8, 16)
    with torch.no_grad():
        torch.testing.assert_close(
            FastRollout(m.predictor)(z, a[:8]), m.rollout(z, a[:8]), atol=1e-5, rtol=1e-5
        )


@pytest.mark.parametrize("pool", [1, 2, 4])
def test_uint8_max_pool_equals_float_max_pool(pool):
    enc = BevEncoder(10, (32, 32), pool, 2, [4])
    bev, _ = inputs((3,))
    x = bev
    rest = pool
    while rest % 2 == 0:
        x = torch.maximum(torch.maximum(x[..., 0::2, 0::2], x[..., 1::2, 0::2]),
                          torch.maximum(x[..., 0::2, 1::2], x[..., 1::2, 1::2]))  # fmt: skip
        rest //= 2
    expected = F.max_pool2d(bev.float(), pool) / 255.0
    torch.testing.assert_close(x.float() / 255.0, expected)
    with torch.no_grad():
        torch.testing.assert_close(enc(bev), enc.net(expected))


def test_pool_must_divide_the_bev():
    with pytest.raises(ValueError, match="pool=3"):
        BevEncoder(10, (32, 32), 3, 2, [4])


def test_non_finite_inputs_are_refused_with_the_name_of_the_input():
    m = small_model()
    bev, ego = inputs((2,))
    ego[1, 3] = float("nan")
    with pytest.raises(ValueError, match="ego holds 1 non-finite"):
        m.encode(bev, ego)
    z, a = torch.randn(2, 16), torch.zeros(2, 3, 2)
    a[0, 1, 0] = float("inf")
    with pytest.raises(ValueError, match="actions holds"):
        m.rollout(z, a)
    z[0, 0] = float("nan")
    with pytest.raises(ValueError, match="z0 holds"):
        m.rollout(z, torch.zeros(2, 3, 2))


def test_wrong_shapes_or_dtype_are_refused():
    m = small_model()
    bev, ego = inputs((2,))
    with pytest.raises(ValueError, match="uint8"):
        m.encode(bev.float(), ego)
    with pytest.raises(ValueError, match="ego"):
        m.encode(bev, ego[:, :3])
    with pytest.raises(ValueError, match="predictor_layers"):
        Predictor(8, 8, 0)


def test_statistics_normalise_inputs_and_decode_heads():
    m = small_model()
    bev, ego = inputs((5,))
    z_before = m.encode(bev, ego)
    mean, std = torch.randn(EGO), torch.rand(EGO) + 0.5
    m.set_statistics(mean, std, torch.zeros(5), torch.ones(5), torch.zeros(3 * len(EVENT_HEADS)))
    # shifting and scaling the ego vector the way the statistics say gives the same latent
    torch.testing.assert_close(m.encode(bev, ego * std + mean), z_before, atol=1e-5, rtol=1e-5)
    # a logit offset of log(w) divides the odds by w; regression outputs are de-normalised
    z = torch.randn(3, 16)
    raw = m.head_logits(z)
    m.set_statistics(
        mean,
        std,
        torch.full((5,), 2.0),
        torch.full((5,), 3.0),
        torch.full((3 * len(EVENT_HEADS),), np.log(4.0)),
    )
    h = m.heads(z)
    torch.testing.assert_close(h["collision"], torch.sigmoid(raw[:, 0:3] - np.log(4.0)))
    torch.testing.assert_close(h["progress"], raw[:, -3] * 3.0 + 2.0)
    # proximities come out in metres: the raw outputs times their fixed scales
    torch.testing.assert_close(h["proximity"], raw[:, -2:] * torch.tensor(PROXIMITY_SCALE))


def test_ego_statistics_leave_flags_and_constant_columns_raw():
    g = torch.Generator().manual_seed(0)
    ego = torch.randn(500, EGO, generator=g) * 3.0 + 1.0
    ego[:, 4] = 0.0  # a lane-change command never given in the data
    ego[:, 5] = (torch.rand(500, generator=g) < 0.3).float()  # a flag
    ego[:, 6] = 2.5  # a constant
    mean, std = ego_statistics(ego)
    assert mean[4] == 0.0 and std[4] == 1.0 and mean[5] == 0.0 and std[5] == 1.0
    assert mean[6] == 2.5 and std[6] == 1.0
    torch.testing.assert_close(std[:4], ego[:, :4].std(0))


def test_a_command_never_seen_in_training_keeps_predictions_finite_and_bounded():
    """Statistics from data where a command column is always 0; then the command is given: its
    normalised input is 1 (clipped at ``ego_clip`` at worst), and every head stays in range."""
    m = small_model()
    g = torch.Generator().manual_seed(1)
    data = torch.randn(400, EGO, generator=g)
    data[:, 4] = 0.0
    mean, std = ego_statistics(data)
    m.set_statistics(mean, std, torch.zeros(5), torch.ones(5), torch.zeros(3 * len(EVENT_HEADS)))
    bev, ego = inputs((8,))
    seen, unseen = ego.clone(), ego.clone()
    seen[:, 4], unseen[:, 4] = 0.0, 1.0
    assert float(m.normalise_ego(unseen)[:, 4].max()) == 1.0
    wild = ego.clone()
    wild[:, 2] = 1e6  # far outside anything seen
    assert float(m.normalise_ego(wild).abs().max()) <= m.config.ego_clip
    with torch.no_grad():
        for x in (unseen, wild):
            h = m.heads(m.rollout(m.encode(bev, x), torch.zeros(8, 15, 2)))
            assert all(bool(torch.isfinite(v).all()) for v in h.values())
        # beyond the clip the input saturates: a million is read as ego_clip standard deviations
        edge = ego.clone()
        edge[:, 2] = mean[2] + m.config.ego_clip * std[2]
        torch.testing.assert_close(m.encode(bev, wild), m.encode(bev, edge))


def test_fast_rollout_refuses_non_finite_inputs():
    p = Predictor(latent=4, hidden=8, layers=2)
    a = torch.zeros(2, 3, 2)
    a[1, 2, 1] = float("nan")
    with pytest.raises(ValueError, match="actions holds 1 non-finite"):
        FastRollout(p)(torch.zeros(2, 4), a)
