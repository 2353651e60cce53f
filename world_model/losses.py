"""Training losses of the world model: latent prediction over a horizon, the anti-collapse terms
(SIGReg, VICReg), and the cost heads' targets and class-balanced losses. Pure functions of tensors.

Letters: ``B`` batch, ``T`` window steps, ``H`` horizon, ``D`` latent, ``N`` samples, ``K`` event
windows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from world_model.batch import EVENT, EVENT_HEADS


def latent_loss(pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Masked mean squared error of predicted latents.

    ``pred``, ``target``: ``[B, H, D]``; ``mask``: ``bool [B, H]`` (the target frame exists).
    Returns the scalar loss (mean over valid steps and latent dimensions) and the error per horizon
    step ``[H]`` (mean over valid windows; 0 where none is valid).
    """
    err = (pred - target).square().mean(-1)  # [B, H]
    m = mask.to(err.dtype)
    per_h = (err * m).sum(0) / m.sum(0).clamp_min(1.0)
    return (err * m).sum() / m.sum().clamp_min(1.0), per_h


def sigreg(z: Tensor, directions: Tensor, knots: int = 17, t_max: float = 3.0) -> Tensor:
    """SIGReg (LeJEPA): the Epps–Pulley statistic of ``z``'s 1-D projections against N(0, 1),
    averaged over ``directions``. Zero in expectation for isotropic standard normal embeddings.

    ``z: [N, D]``; ``directions: [D, M]`` unit columns. For each projection ``x = z u`` the
    statistic is ``∫ |φ̂(t) − e^{−t²/2}|² e^{−t²/2} dt`` over ``t ∈ [−t_max, t_max]`` (trapezoid on
    ``knots`` points of the half line; the integrand is even), with ``φ̂`` the empirical
    characteristic function.
    """
    x = z @ directions  # [N, M]
    t = torch.linspace(0.0, t_max, knots, device=z.device, dtype=z.dtype)
    xt = x.unsqueeze(-1) * t  # [N, M, knots]
    gauss = torch.exp(-0.5 * t.square())
    err = (torch.cos(xt).mean(0) - gauss).square() + torch.sin(xt).mean(0).square()  # [M, knots]
    return 2.0 * torch.trapezoid(err * gauss, t, dim=-1).mean()


def random_directions(dim: int, count: int, generator: torch.Generator) -> Tensor:
    """``[dim, count]`` random unit vectors (columns), drawn on the CPU from ``generator``."""
    u = torch.randn(dim, count, generator=generator)
    return u / u.norm(dim=0, keepdim=True)


def vicreg_terms(z: Tensor, eps: float = 1e-4) -> tuple[Tensor, Tensor]:
    """VICReg's variance hinge ``mean(relu(1 − std_d))`` and covariance penalty (sum of squared
    off-diagonal covariances / D) of ``z: [N, D]``."""
    n, d = z.shape
    zc = z - z.mean(0)
    std = torch.sqrt(zc.square().sum(0) / max(n - 1, 1) + eps)
    cov = zc.T @ zc / max(n - 1, 1)
    off = cov - torch.diag(torch.diagonal(cov))
    return F.relu(1.0 - std).mean(), off.square().sum() / d


# ---------------------------------------------------------------------------- head targets


def event_targets(events: Tensor, valid: Tensor, within: list[int], horizon: int) -> tuple[Tensor, Tensor]:
    """Targets of the event heads for the latents after steps ``0 … horizon − 1`` of a window.

    ``events: [B, T, NUM_EVENTS]``, ``valid: bool [B, T]``. For step ``j`` and window ``n``, the
    target is 1 if the event happens in steps ``j … j + n − 1`` (``EVENT_HEADS``:
    ``[B, H, len(EVENT_HEADS), K]``). A target counts (mask) when step ``j`` is real and the window either covers
    all ``n`` steps or the episode ended (``done``) before they run out; never by the label itself,
    so the kept labels are not biased toward positives.
    """
    T = events.shape[1]
    cols = [EVENT[name] for name in EVENT_HEADS]
    flags = (events[..., cols] > 0.5) & valid.unsqueeze(-1)  # [B, T, len(EVENT_HEADS)]
    done = (events[..., EVENT["done"]] > 0.5) & valid  # [B, T]
    # ended[b, s]: the episode ended at or before step s (no more events can come)
    ended = torch.cummax(done.to(torch.int8), dim=1).values.bool()
    # cumulative counts with a leading zero, for window sums
    csum = F.pad(torch.cumsum(flags.to(torch.int32), dim=1), (0, 0, 1, 0))  # [B, T + 1, heads]
    j = torch.arange(horizon, device=events.device)
    targets, masks = [], []
    for n in within:
        stop = (j + n).clamp(max=T)  # [H]
        count = csum[:, stop] - csum[:, j]  # [B, H, heads]
        covered = (j + n <= T).unsqueeze(0) | ended[:, stop - 1]  # [B, H]
        targets.append((count > 0).to(events.dtype))
        masks.append((covered & valid[:, :horizon]).unsqueeze(-1).expand(-1, -1, len(cols)))
    return torch.stack(targets, -1), torch.stack(masks, -1)


def regression_targets(events: Tensor, horizon: int) -> Tensor:
    """``[B, H, 5]``: dx, dy, dyaw, speed, progress of steps ``0 … horizon − 1`` (raw units)."""
    cols = [EVENT["dx"], EVENT["dy"], EVENT["dyaw"], EVENT["speed"], EVENT["progress"]]
    return events[:, :horizon, cols]


# ---------------------------------------------------------------------------- head losses


def balanced_bce(logits: Tensor, targets: Tensor, mask: Tensor, pos_weight: Tensor) -> Tensor:
    """Masked binary cross-entropy with a positive weight per output (broadcast on the last dims).
    With the logits offset by ``log(pos_weight)`` at inference, probabilities stay calibrated."""
    loss = F.binary_cross_entropy_with_logits(logits, targets, pos_weight=pos_weight, reduction="none")
    m = mask.to(loss.dtype)
    return (loss * m).sum() / m.sum().clamp_min(1.0)


def focal_loss(logits: Tensor, targets: Tensor, mask: Tensor, gamma: float) -> Tensor:
    """Masked focal loss ``−(1 − p_t)^γ log p_t`` (Lin et al. 2017), no class prior."""
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p_t = torch.exp(-ce)
    loss = (1.0 - p_t).pow(gamma) * ce
    m = mask.to(loss.dtype)
    return (loss * m).sum() / m.sum().clamp_min(1.0)


def regression_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Masked smooth-L1 of normalised regressions; ``pred``, ``target: [B, H, R]``, ``mask: [B, H]``."""
    loss = F.smooth_l1_loss(pred, target, reduction="none").mean(-1)
    m = mask.to(loss.dtype)
    return (loss * m).sum() / m.sum().clamp_min(1.0)


def proximity_loss(pred: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Masked smooth-L1 of the proximity heads; ``pred``, ``target: [B, H, P]`` (scaled to
    ``[0, 1]``; NaN where the target is unknown), ``mask: bool [B, H]``. Unknown targets and
    masked steps count for nothing; 0 when nothing is known."""
    known = torch.isfinite(target) & mask.unsqueeze(-1)
    loss = F.smooth_l1_loss(pred, torch.where(known, target, pred.detach()), reduction="none", beta=0.1)
    m = known.to(loss.dtype)
    return (loss * m).sum() / m.sum().clamp_min(1.0)


def positive_weight(rate: Tensor, cap: float) -> Tensor:
    """Class-balancing weight ``(1 − p) / p`` of positives from their rate ``p``, in ``[1, cap]``."""
    p = rate.clamp(1e-6, 1.0 - 1e-6)
    return ((1.0 - p) / p).clamp(1.0, cap)


def log_weight(weight: Tensor) -> Tensor:
    """The logit offset ``log(w)`` that undoes a positive weight ``w`` (prior correction)."""
    return torch.log(weight)
