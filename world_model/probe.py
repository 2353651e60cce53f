"""A diagnostic probe: a coarse BEV decoded from a *frozen* latent.

The world model never reconstructs pixels (JEPA); to *see* what a latent holds, a small decoder is
trained afterwards on latents that are plain arrays (encodings ``z_t`` and predicted latents
``ẑ_{t+k}`` of rollouts, computed with the model in inference mode), to predict a coarse BEV: the
drivable area, vehicles and pedestrians, block-pooled to ``size × size`` (a block is on when any
of its pixels is). Its gradient never reaches the model: the probe sees only arrays, and owns its
own parameters and optimiser (``drive wm-eval probe.enabled=true`` trains it and draws predicted
BEV futures beside the real ones).

Letters: ``N`` latents, ``D`` latent size, ``K`` probed channels, ``S`` probe side [px].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sim_bridge.sensors.layout import BevChannel

#: BEV channels the probe decodes, in this order
PROBE_CHANNELS: tuple[int, ...] = (BevChannel.DRIVABLE, BevChannel.VEHICLES, BevChannel.PEDESTRIANS)


def coarse_bev(bev: np.ndarray, size: int, channels: tuple[int, ...] = PROBE_CHANNELS) -> np.ndarray:
    """``uint8 [N, C, H, W]`` → ``float32 [N, K, size, size]`` in ``{0, 1}``: each channel of
    ``channels`` max-pooled over ``H/size × W/size`` blocks (``H`` and ``W`` multiples of
    ``size``)."""
    bev = np.asarray(bev)
    n, _, h, w = bev.shape
    if h % size or w % size:
        raise ValueError(f"the BEV's side {h}×{w} must be a multiple of the probe's size={size}")
    picked = bev[:, list(channels)] > 0
    blocks = picked.reshape(n, len(channels), size, h // size, size, w // size)
    return np.asarray(blocks.any(axis=(3, 5)), dtype=np.float32)


class BevProbe(nn.Module):
    """``z [N, D]`` → logits ``[N, K, S, S]``: a two-layer perceptron."""

    def __init__(
        self, latent: int, size: int, channels: int = len(PROBE_CHANNELS), hidden: int = 256
    ) -> None:
        super().__init__()
        self.size, self.channels = int(size), int(channels)
        self.net = nn.Sequential(
            nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, self.channels * self.size * self.size)
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, self.channels, self.size, self.size)


@dataclass(frozen=True)
class ProbeFit:
    """A trained probe and its training curve."""

    probe: BevProbe
    losses: list[float]
    """Binary cross-entropy per step (mean over the batch's blocks)."""

    @torch.no_grad()
    def predict(self, z: np.ndarray) -> np.ndarray:
        """``z: [N, D]`` → ``float32 [N, K, S, S]`` probabilities."""
        self.probe.eval()
        return torch.sigmoid(self.probe(torch.as_tensor(np.asarray(z, dtype=np.float32)))).numpy()


def train_probe(
    z: np.ndarray,
    target: np.ndarray,
    steps: int,
    batch_size: int = 256,
    lr: float = 3e-3,
    hidden: int = 256,
    seed: int = 0,
) -> ProbeFit:
    """Fit a :class:`BevProbe` to ``target [N, K, S, S]`` (in ``[0, 1]``) from the frozen latents
    ``z [N, D]`` (numpy: no graph leads back to a model) with Adam for ``steps`` minibatches of
    binary cross-entropy, unweighted so that its outputs are probabilities (the GIF's brightness)."""
    z = np.asarray(z, dtype=np.float32)
    target = np.asarray(target, dtype=np.float32)
    if z.ndim != 2 or target.ndim != 4 or len(z) != len(target) or target.shape[2] != target.shape[3]:
        raise ValueError(
            f"train_probe needs z [N, D] and target [N, K, S, S]; got {z.shape} and {target.shape}"
        )
    gen = torch.Generator().manual_seed(int(seed))
    torch.manual_seed(int(seed))
    probe = BevProbe(z.shape[1], target.shape[2], target.shape[1], hidden)
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    zt, yt = torch.from_numpy(z), torch.from_numpy(target)
    # z normalised by the probe's own statistics (part of the probe: it lives in its first layer)
    mean, std = zt.mean(0), zt.std(0).clamp_min(1e-6)
    with torch.no_grad():
        first = probe.net[0]
        assert isinstance(first, nn.Linear)
        first.weight.div_(std)
        first.bias.sub_(first.weight @ mean)
    losses = []
    probe.train()
    for _ in range(int(steps)):
        idx = torch.randint(0, len(zt), (min(batch_size, len(zt)),), generator=gen)
        logits = probe(zt[idx])
        loss = nn.functional.binary_cross_entropy_with_logits(logits, yt[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    probe.eval()
    return ProbeFit(probe, losses)


__all__ = ["PROBE_CHANNELS", "BevProbe", "ProbeFit", "coarse_bev", "train_probe"]
