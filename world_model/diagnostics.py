"""Diagnostics of a world model: collapse of the embeddings (std, effective rank), quality of the
event heads (AUROC, expected calibration error) and nearest-neighbour retrieval of latents.
Pure functions of arrays; the trainer calls them and reports through its callback."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor


def embedding_std(z: Tensor) -> float:
    """Mean over dimensions of the per-dimension std of ``z: [N, D]`` across the batch."""
    return float(z.detach().float().std(dim=0, unbiased=False).mean())


def effective_rank(z: Tensor) -> float:
    """``exp(entropy)`` of the normalised singular values of the centred ``z: [N, D]`` (Roy &
    Vetterli 2007): ``D`` for isotropic embeddings, 1 when they lie on a line, 0 when constant."""
    zc = z.detach().double()
    zc = zc - zc.mean(0)
    s = torch.linalg.svdvals(zc)
    total = float(s.sum())
    if total <= 1e-12 * max(1.0, float(z.detach().abs().max())) * zc.shape[0]:
        return 0.0
    p = s / s.sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


@dataclass(frozen=True)
class CollapseReport:
    """Collapse statistics of one batch of embeddings."""

    std: float
    """Mean per-dimension std."""
    effective_rank: float
    collapsed: bool
    reason: str
    """Why it counts as collapsed ('' when healthy)."""


def check_collapse(z: Tensor, min_std: float = 1e-2, min_rank_fraction: float = 0.05) -> CollapseReport:
    """Flag collapse of ``z: [N, D]``: complete (mean std below ``min_std``) or dimensional
    (effective rank below ``max(1.5, min_rank_fraction · D)``)."""
    std, rank = embedding_std(z), effective_rank(z)
    min_rank = max(1.5, min_rank_fraction * z.shape[-1])
    if std < min_std:
        reason = f"complete collapse: mean embedding std {std:.3g} < {min_std}"
    elif rank < min_rank:
        reason = f"dimensional collapse: effective rank {rank:.2f} < {min_rank:.2f} of {z.shape[-1]} dims"
    else:
        reason = ""
    return CollapseReport(std=std, effective_rank=rank, collapsed=bool(reason), reason=reason)


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U with mid-ranks for ties); NaN without both classes."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel() > 0.5
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # mid-ranks of tied groups
    first = np.r_[True, sorted_scores[1:] != sorted_scores[:-1]]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(scores)]
    mid = 0.5 * (starts + ends - 1) + 1.0
    ranks[order] = mid[group]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE with ``bins`` equal-width bins: ``Σ_b (n_b / n) |mean(label) − mean(prob)|``; NaN if empty."""
    probs = np.asarray(probs, dtype=np.float64).ravel()
    labels = (np.asarray(labels).ravel() > 0.5).astype(np.float64)
    if len(probs) == 0:
        return float("nan")
    idx = np.minimum((probs * bins).astype(np.int64), bins - 1)
    count = np.bincount(idx, minlength=bins)
    gap = np.abs(np.bincount(idx, labels, bins) - np.bincount(idx, probs, bins))
    return float(gap.sum() / len(probs)) if count.sum() else float("nan")


def nearest_neighbours(query: Tensor, bank: Tensor) -> Tensor:
    """Index in ``bank: [N, D]`` of the nearest (Euclidean) row to each of ``query: [Q, D]`` → ``[Q]``."""
    d2 = query.square().sum(-1, keepdim=True) - 2.0 * query @ bank.T + bank.square().sum(-1)
    return d2.argmin(dim=-1)
