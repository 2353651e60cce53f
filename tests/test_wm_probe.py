"""The coarse-BEV probe: it learns a tiny synthetic mapping from latents, leaves the world model's
parameters untouched, and ``drive wm-eval probe.enabled=true`` writes a GIF of ``horizon + 1``
frames of held-out predicted BEV futures beside the real ones."""

from __future__ import annotations

import numpy as np
import pytest

from sim_bridge.sensors.layout import BevChannel
from world_model.probe import PROBE_CHANNELS, coarse_bev, train_probe


def test_coarse_bev_pools_blocks_of_the_probed_channels():
    bev = np.zeros((1, len(BevChannel), 8, 8), dtype=np.uint8)
    bev[0, BevChannel.VEHICLES, 5, 2] = 255  # one pixel in block (2, 1) of a 4 × 4 grid
    bev[0, BevChannel.DRIVABLE, :4] = 255  # the top half
    bev[0, BevChannel.LANE_BOUNDARY] = 255  # not probed
    c = coarse_bev(bev, 4)
    assert c.shape == (1, len(PROBE_CHANNELS), 4, 4) and c.dtype == np.float32
    vehicles = c[0, PROBE_CHANNELS.index(BevChannel.VEHICLES)]
    assert vehicles[2, 1] == 1.0 and vehicles.sum() == 1.0
    np.testing.assert_array_equal(c[0, PROBE_CHANNELS.index(BevChannel.DRIVABLE)].sum(axis=1), [4, 4, 0, 0])
    with pytest.raises(ValueError, match="multiple"):
        coarse_bev(bev, 3)


def test_probe_learns_a_tiny_synthetic_mapping(one_torch_thread):
    """Latent dimension ``i`` on ⇔ block ``i`` of channel 0 on: a mapping the probe must learn."""
    rng = np.random.default_rng(0)
    n, size = 512, 3
    on = rng.random((n, size * size)) < 0.3
    z = np.concatenate(
        [on.astype(np.float32) * 2.0 - 1.0, rng.normal(size=(n, 4)).astype(np.float32)], axis=1
    )
    target = np.zeros((n, 1, size, size), dtype=np.float32)
    target[:, 0] = on.reshape(n, size, size)
    fit = train_probe(z[:400], target[:400], steps=300, batch_size=64, lr=1e-2, hidden=32)
    assert fit.losses[-1] < 0.2 * fit.losses[0]
    pred = fit.predict(z[400:])
    assert pred.shape == (112, 1, size, size)
    assert ((pred > 0.5) == (target[400:] > 0.5)).mean() > 0.97  # held-out rows


def test_training_the_probe_leaves_the_world_model_unchanged(one_torch_thread):
    import torch

    from sim_bridge.api import EGO_DIM
    from world_model.config import ModelConfig
    from world_model.model import WorldModel

    torch.manual_seed(0)
    cfg = ModelConfig(
        latent=8, channels=[4, 4], ego_hidden=8, fuse_hidden=16, predictor_hidden=16, head_hidden=8
    )
    model = WorldModel(cfg, (len(BevChannel), 32, 32), EGO_DIM)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bev = (torch.rand(64, len(BevChannel), 32, 32) > 0.7).to(torch.uint8) * 255
    ego = torch.randn(64, EGO_DIM)
    with torch.no_grad():
        z0 = model.encode(bev, ego)
        z = torch.cat([z0, model.rollout(z0, torch.zeros(64, 3, 2)).reshape(-1, 8)[:64]])
    target = coarse_bev(torch.cat([bev, bev]).numpy(), 8)
    fit = train_probe(z.numpy(), target, steps=20, batch_size=32)
    assert len(fit.losses) == 20
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
    # and the probe owns none of the model's tensors
    model_ptrs = {p.data_ptr() for p in model.parameters()}
    assert not model_ptrs & {p.data_ptr() for p in fit.probe.parameters()}
