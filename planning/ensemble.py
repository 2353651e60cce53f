"""An ensemble of world models as one rollout source: the members' mean future and their disagreement.

``K`` models trained on the same data from different seeds agree where the data taught them and
disagree where it did not (a state or an action the collection never reached). :class:`EnsembleFutures`
encodes the observation with every member, rolls the same ``[B, N, H, 2]`` sequences out in each
(:class:`planning.futures.ModelFutures`) and returns one :class:`planning.futures.Futures`:

- every field is the members' mean (event probabilities, ego geometry, proximities): averaging
  independent errors is what makes an ensemble's ranking better than its members'; or, with
  ``reduce="median"``, their element-wise median, which a single member far off the others (one
  that predicts leaving the road for every plan) cannot move;
- ``collision_spread [B, N, H]`` is the members' standard deviation of the per-step collision
  probability, which the ``disagreement`` cost term prices (``agent.costs.disagreement.weight``),
  so that a plan the members cannot agree on pays for it (epistemic risk, as in PETS or MBPO).

With one member it is that member's :class:`ModelFutures` and a spread of zero.

Letters: ``K`` members, ``B`` worlds, ``N`` sequences, ``H`` horizon, ``D`` latent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from planning.futures import STEP_FIELDS, Futures, ModelFutures

#: how the members' futures are combined
REDUCTIONS = ("mean", "median")


class EnsembleFutures:
    """Futures of ``K`` world models (see the module doc). ``models``: the members, each a
    :class:`world_model.model.WorldModel` with the same BEV shape and ego size; ``event_window``:
    as :class:`ModelFutures` (every member must have that window); ``reduce``: ``mean`` or
    ``median`` of the members."""

    def __init__(self, models: Sequence[Any], event_window: int | None = None, reduce: str = "mean") -> None:
        if not models:
            raise ValueError("an ensemble needs at least one world model")
        if reduce not in REDUCTIONS:
            raise ValueError(f"ensemble reduce={reduce!r}; allowed: {', '.join(REDUCTIONS)}")
        self.reduce = reduce
        first = models[0]
        for i, m in enumerate(models[1:], start=1):
            if tuple(m.bev_shape) != tuple(first.bev_shape) or m.ego_dim != first.ego_dim:
                raise ValueError(
                    f"ensemble member {i} expects BEV {tuple(m.bev_shape)} and ego [{m.ego_dim}], member 0 "
                    f"BEV {tuple(first.bev_shape)} and ego [{first.ego_dim}]: the members must be trained "
                    "on the same sensor setup"
                )
        self.members = [ModelFutures(m, event_window) for m in models]

    @property
    def size(self) -> int:
        """``K``, the number of members."""
        return len(self.members)

    def encode(self, bev: np.ndarray, ego: np.ndarray) -> list[Any]:
        """``bev: uint8 [B, C, H, W]``, ``ego: float32 [B, E]`` → one ``z0: torch [B, D]`` per member."""
        return [m.encode(bev, ego) for m in self.members]

    def futures(self, z0: list[Any], actions: np.ndarray) -> Futures:
        """``z0``: the members' latents (:meth:`encode`), ``actions: [B, N, H, 2]`` → the mean
        :class:`Futures` ``[B, N, H]`` with ``collision_spread`` set. Raises
        :class:`planning.futures.NonFiniteModelOutput` as a member does."""
        outs = [m.futures(z, actions) for m, z in zip(self.members, z0, strict=True)]
        if len(outs) == 1:
            return dataclasses.replace(outs[0], collision_spread=np.zeros_like(outs[0].collision))
        mean: dict[str, Any] = {}
        for name in (*STEP_FIELDS, "xy"):
            stack = np.stack([getattr(f, name) for f in outs])
            if self.reduce == "median":  # an infinite distance ("nothing there") sorts as the largest
                mean[name] = np.median(stack, axis=0).astype(np.float32)
            elif name in ("nearest", "gap_ahead"):  # inf means "nothing there": the mean of the finite ones
                finite = np.isfinite(stack)
                count = finite.sum(axis=0)
                total = np.where(finite, stack, 0.0).sum(axis=0)
                mean[name] = np.where(count > 0, total / np.maximum(count, 1), np.inf).astype(np.float32)
            else:
                mean[name] = stack.mean(axis=0, dtype=np.float32)
        collision = np.stack([f.collision for f in outs])  # [K, B, N, H]
        return Futures(**mean, pedestrian=None, collision_spread=collision.std(axis=0).astype(np.float32))


__all__ = ["REDUCTIONS", "EnsembleFutures"]
