"""The cross-entropy method: refit a Gaussian to the elite sequences (DINO-WM's and V-JEPA 2-AC's
planner; ``drive/conf/agent/planner.yaml``: ``optimizer: cem``)."""

from __future__ import annotations

import numpy as np

from planning.optim.base import Optimizer


class CEM(Optimizer):
    """Mean and std of the ``elites`` lowest-cost sequences of each world (see ``optim.base``)."""

    name = "cem"

    def _refit(self, candidates: np.ndarray, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``candidates [B, N, H, 2]``, ``total [B, N]`` → mean, std ``[B, H, 2]`` of the elites."""
        k = min(max(int(self.config.elites), 1), total.shape[1])
        elite = np.argpartition(total, k - 1, axis=1)[:, :k]  # [B, k]
        chosen = np.take_along_axis(candidates, elite[:, :, None, None], axis=1)  # [B, k, H, 2]
        return chosen.mean(axis=1), chosen.std(axis=1)


__all__ = ["CEM"]
