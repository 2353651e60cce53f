"""What a planner imagined at one decision, for pictures and diagnostics (``drive render``).

:func:`decision_of` reads an optimiser's :class:`planning.optim.base.Plan` whose rollouts are
:class:`planning.futures.Futures` (the world-model planner's and the oracle planner's): the last
sampling round's candidates with their imagined ego positions and per-term costs, and the chosen
sequence with its own imagined future (which may come from an earlier round). Nothing is logged
or copied during planning: the planners keep their last ``Plan`` and build this on request
(``last_decision``).

Letters: ``B`` worlds, ``N`` candidates of the last sampling round, ``H`` horizon.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planning.futures import Futures
from planning.optim.base import Plan


@dataclass(frozen=True)
class Decision:
    """One decision of ``B`` worlds. Positions are in the ego frame of the planning time (x
    forward, y left [m], as :attr:`planning.futures.Futures.xy`)."""

    actions: np.ndarray
    """``float32 [B, N, H, 2]`` the last sampling round's candidate sequences."""
    xy: np.ndarray
    """``float32 [B, N, H, 2]`` their imagined ego positions at the end of each step [m]."""
    costs: dict[str, np.ndarray]
    """``{term: [B, N]}`` their weighted cost terms."""
    total: np.ndarray
    """``float64 [B, N]`` the sum of :attr:`costs`."""
    chosen_actions: np.ndarray
    """``float32 [B, H, 2]`` the sequence chosen (its first action was executed)."""
    chosen_xy: np.ndarray
    """``float32 [B, H, 2]`` its imagined ego positions [m]."""
    chosen_costs: dict[str, np.ndarray]
    """``{term: [B]}`` its weighted cost terms."""
    chosen_collision: np.ndarray
    """``float32 [B, H]`` its predicted per-step collision probability."""

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(B, N, H)``."""
        B, N, H = self.actions.shape[:3]
        return int(B), int(N), int(H)

    def collision_within_horizon(self) -> np.ndarray:
        """``[B]`` P(the chosen plan collides at some step of the horizon) ``= 1 - Π (1 - p_h)``."""
        p = np.clip(self.chosen_collision.astype(np.float64), 0.0, 1.0)
        return 1.0 - np.prod(1.0 - p, axis=1)


def decision_of(plan: Plan) -> Decision:
    """The :class:`Decision` of ``plan`` (its rounds' rollouts must be :class:`Futures`)."""
    if not plan.rounds or plan.chosen_round is None or plan.chosen_index is None:
        raise ValueError("the plan keeps no rounds: it was not made by planning.optim.Optimizer.plan")
    for r in plan.rounds:
        if not isinstance(r.rollout, Futures):
            raise TypeError(f"decision_of reads Futures rollouts; got {type(r.rollout).__name__}")
    # the last *sampling* round: with ``select: mean`` the final round is the mean alone
    sampled = [r for r in plan.rounds if r.candidates.shape[1] > 1] or list(plan.rounds)
    last = sampled[-1]
    # per world (on request only, never in the planning loop): its chosen round and candidate
    chosen = [plan.rounds[int(k)] for k in plan.chosen_round]
    idx = plan.chosen_index
    chosen_xy = np.stack([r.rollout.xy[b, idx[b]] for b, r in enumerate(chosen)])
    chosen_collision = np.stack([r.rollout.collision[b, idx[b]] for b, r in enumerate(chosen)])
    total = np.zeros(last.candidates.shape[:2], dtype=np.float64)
    for value in last.costs.values():
        total += value
    return Decision(
        actions=last.candidates,
        xy=last.rollout.xy,
        costs=dict(last.costs),
        total=total,
        chosen_actions=plan.actions,
        chosen_xy=chosen_xy.astype(np.float32),
        chosen_costs=dict(plan.costs),
        chosen_collision=chosen_collision.astype(np.float32),
    )


__all__ = ["Decision", "decision_of"]
