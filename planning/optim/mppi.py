"""Model-predictive path integral control: refit to the exponentially weighted samples
(TD-MPC2's planner; ``drive/conf/agent/planner.yaml``: ``optimizer: mppi``)."""

from __future__ import annotations

import numpy as np

from planning.optim.base import Optimizer


class MPPI(Optimizer):
    """Weighted mean and std of all sequences of each world with weights
    ``exp(-(cost - min) / (temperature · std(cost)))`` (see ``SamplerConfig.temperature``)."""

    name = "mppi"

    def _refit(self, candidates: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``candidates [B, N, H, 2]``, ``total [B, N]`` → weighted mean, std ``[B, H, 2]``."""
        spread = np.maximum(total.std(axis=1, keepdims=True), 1e-9)
        scaled = (total - total.min(axis=1, keepdims=True)) / (self.config.temperature * spread)
        weights = np.exp(-scaled)
        weights /= weights.sum(axis=1, keepdims=True)  # [B, N]
        w = weights[:, :, None, None].astype(np.float32)
        mean = (w * candidates).sum(axis=1)
        std = np.sqrt((w * (candidates - mean[:, None]) ** 2).sum(axis=1))
        return mean, std


__all__ = ["MPPI"]
