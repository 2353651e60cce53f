"""Counterfactual accuracy: can the model tell the outcomes of *different actions* from one state?

The observational figures of ``drive wm-eval`` score the model along the actions the data's driver
took. A planner instead compares many action sequences from the same state, so what matters is
whether the model ranks them as reality does. The pipeline (``drive/pipelines/counterfactual.py``)
forks a simulator at held-out states into ``K`` action sequences and runs each for real; this
module holds what sees only arrays: the model's predictions for the same sequences
(:func:`predict_branches`) and the figures comparing the two (:func:`counterfactual_metrics`).

Letters: ``S`` states, ``K`` action sequences (branches) per state, ``H`` horizon steps, ``D``
latent. Figures (all *within* a state, pooled or averaged over states):

- **paired AUROC** of a branch's predicted risk (P(event within the horizon) composed from the
  per-step heads, ``1 − Π_h (1 − p_h)``) against whether the event happened on that branch, over
  every (positive, negative) pair of branches of the same state, pooled over the states that have
  both outcomes (:func:`paired_auroc`); for collision and off-road;
- **Spearman** rank correlation between predicted total risk (sum of the collision, off-road and
  red-light risks) and the true one (how many of the three happened), averaged over states whose
  true total varies (:func:`mean_spearman`); a constant prediction scores 0;
- **choice**: in the states whose true total varies, the share where the branch of lowest
  predicted total risk has the lowest true total (what a planner picking the safest sequence gets);
- **motion error** per horizon step: ego position error [m] in the start pose's frame and speed
  error [m/s], over the branch steps up to and including the first true collision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from world_model.fast_rollout import FastRollout
from world_model.model import WorldModel

#: risks combined into the total (true: how many happened; predicted: the sum of the risks)
RISKS = ("collision", "off_road", "red_light")


@dataclass(frozen=True)
class Branches:
    """``K`` action sequences from each of ``S`` states over ``H`` steps, predicted or true.

    Event arrays ``[S, K, H]`` hold the probability (predicted) or 0/1 (true) of the event in each
    step; ``xy [S, K, H, 2]`` is the ego position after each step in the start pose's frame (x
    forward, y left) [m]; ``speed [S, K, H]`` [m/s]; ``valid [S, K, H]`` marks steps whose motion
    is compared (true branches: up to and including the first collision).
    """

    collision: np.ndarray
    off_road: np.ndarray
    red_light: np.ndarray
    xy: np.ndarray
    speed: np.ndarray
    valid: np.ndarray

    def risk(self, name: str) -> np.ndarray:
        """``[S, K]`` P(``name`` within the horizon): ``1 − Π_h (1 − p_h)`` (for 0/1 truths: any)."""
        p = np.clip(getattr(self, name).astype(np.float64), 0.0, 1.0)
        return 1.0 - np.prod(1.0 - p, axis=-1)

    def total_risk(self) -> np.ndarray:
        """``[S, K]`` sum of the :data:`RISKS` (0 … 3)."""
        return sum((self.risk(name) for name in RISKS), np.zeros(self.collision.shape[:2]))


def compose_motion(dx: np.ndarray, dy: np.ndarray, dyaw: np.ndarray) -> np.ndarray:
    """``[..., H, 2]`` position after each step in the start pose's frame [m], from per-step motion
    ``[..., H]`` (displacement in the frame of each step's start pose, heading change [rad])."""
    yaw = np.concatenate([np.zeros_like(dyaw[..., :1]), np.cumsum(dyaw, axis=-1)[..., :-1]], axis=-1)
    step_x = np.cos(yaw) * dx - np.sin(yaw) * dy
    step_y = np.sin(yaw) * dx + np.cos(yaw) * dy
    return np.stack([np.cumsum(step_x, axis=-1), np.cumsum(step_y, axis=-1)], axis=-1)


@torch.no_grad()
def predict_branches(model: WorldModel, z0: torch.Tensor, actions: np.ndarray) -> Branches:
    """The model's :class:`Branches` for ``actions [S, K, H, 2]`` from the encodings ``z0 [S, D]``:
    per-step event probabilities from the first window of each event head (``event_within[0]``
    steps; 1 = the step itself), motion composed from the motion head."""
    S, K, H, _ = actions.shape
    z = z0.repeat_interleave(K, dim=0)
    act = torch.as_tensor(actions.reshape(S * K, H, 2), dtype=z.dtype, device=z.device)
    heads = model.heads(FastRollout(model.predictor)(z, act))
    ev = {name: heads[name][..., 0].reshape(S, K, H).cpu().numpy() for name in RISKS}
    motion = heads["motion"].reshape(S, K, H, 4).cpu().numpy().astype(np.float64)
    xy = compose_motion(motion[..., 0], motion[..., 1], motion[..., 2])
    return Branches(**ev, xy=xy, speed=motion[..., 3], valid=np.ones((S, K, H), dtype=bool))


def mean_branches(members: list[Branches]) -> Branches:
    """The members' mean of predicted :class:`Branches` (an ensemble's prediction; ``valid`` where
    every member is)."""
    fields = [name for name in Branches.__dataclass_fields__ if name != "valid"]
    mean = {name: np.mean([getattr(b, name) for b in members], axis=0) for name in fields}
    return Branches(**mean, valid=np.logical_and.reduce([b.valid for b in members]))


def paired_auroc(score: np.ndarray, label: np.ndarray) -> tuple[float, int, int]:
    """Within-state ranking AUROC of ``score [S, K]`` against 0/1 ``label [S, K]``: over every pair
    (positive, negative branch) of the same state, the share where the positive scores higher
    (ties ½), pooled over states. Returns (AUROC, states with both outcomes, pairs); NaN without
    any such state."""
    label = np.asarray(label) > 0.5
    pos = label[:, :, None] & ~label[:, None, :]  # [S, K, K]: branch i positive, j negative
    diff = score[:, :, None] - score[:, None, :]
    pairs = int(pos.sum())
    if pairs == 0:
        return float("nan"), 0, 0
    wins = float((diff > 0)[pos].sum() + 0.5 * (diff == 0)[pos].sum())
    states = int((label.any(1) & (~label).any(1)).sum())
    return wins / pairs, states, pairs


def _ranks(x: np.ndarray) -> np.ndarray:
    """Mid-ranks of each row of ``x [S, K]`` (ties share their mean rank)."""
    return (x[:, :, None] > x[:, None, :]).sum(-1) + 0.5 * ((x[:, :, None] == x[:, None, :]).sum(-1) - 1)


def mean_spearman(pred: np.ndarray, truth: np.ndarray) -> tuple[float, int]:
    """Spearman rank correlation of ``pred`` and ``truth`` (``[S, K]``) within each state, averaged
    over the states whose truth varies (a state with a constant prediction scores 0). Returns (mean
    correlation, states); NaN without any state."""
    varies = truth.max(1) > truth.min(1)
    if not varies.any():
        return float("nan"), 0
    rp, rt = _ranks(pred[varies]), _ranks(truth[varies])
    rp = rp - rp.mean(1, keepdims=True)
    rt = rt - rt.mean(1, keepdims=True)
    norm = np.sqrt((rp**2).sum(1) * (rt**2).sum(1))
    rho = np.where(norm > 0, (rp * rt).sum(1) / np.where(norm > 0, norm, 1.0), 0.0)
    return float(rho.mean()), int(varies.sum())


def choice_accuracy(pred: np.ndarray, truth: np.ndarray) -> tuple[float, int]:
    """Over states whose ``truth [S, K]`` varies: the share where the branch of lowest ``pred`` has
    the lowest truth (the first such branch on ties). Returns (share, states); NaN without any."""
    varies = truth.max(1) > truth.min(1)
    if not varies.any():
        return float("nan"), 0
    pick = pred[varies].argmin(1)
    t = truth[varies]
    return float((t[np.arange(len(t)), pick] == t.min(1)).mean()), int(varies.sum())


def counterfactual_metrics(pred: Branches, true: Branches) -> dict[str, Any]:
    """Every figure of the module doc for one group of states (JSON-ready)."""
    S, K, H = true.collision.shape
    out: dict[str, Any] = {"states": S, "branches": S * K}
    for name in ("collision", "off_road"):
        y = true.risk(name)
        a, states, pairs = paired_auroc(pred.risk(name), y)
        out[name] = {
            "paired_auroc": a,
            "states_with_both": states,
            "pairs": pairs,
            "rate": float(y.mean()),
            "mean_predicted": float(pred.risk(name).mean()),
        }
    rho, n = mean_spearman(pred.total_risk(), true.total_risk())
    out["total_risk"] = {"spearman": rho, "states": n}
    acc, n = choice_accuracy(pred.total_risk(), true.total_risk())
    out["choice"] = {"accuracy": acc, "states": n}
    ok = true.valid & pred.valid
    pos_err = np.linalg.norm(pred.xy - true.xy, axis=-1)
    speed_err = np.abs(pred.speed - true.speed)
    count = ok.sum((0, 1))
    out["motion"] = [
        {
            "step": h + 1,
            "branches": int(count[h]),
            "position_error": float(pos_err[..., h][ok[..., h]].mean()) if count[h] else float("nan"),
            "speed_error": float(speed_err[..., h][ok[..., h]].mean()) if count[h] else float("nan"),
        }
        for h in range(H)
    ]
    return out


__all__ = [
    "RISKS",
    "Branches",
    "choice_accuracy",
    "compose_motion",
    "counterfactual_metrics",
    "mean_spearman",
    "paired_auroc",
    "predict_branches",
]
