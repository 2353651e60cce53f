"""Training of the world model: the optimiser, one step, evaluation, checkpoints and resume.

The loss of a batch of windows (``T >= horizon + 1`` steps):

- encode frame 0 (online encoder, with gradient) → ``z0``; encode frames ``1 … H`` through the
  target (the online encoder under stop-gradient, or its EMA copy) → ``z*``;
- roll ``z0`` out with the window's actions → ``ẑ [B, H, D]``; latent loss ``|ẑ − z*|²`` masked by
  the target frames' ``valid``;
- anti-collapse on ``z0``: SIGReg (random directions from a seeded generator) or VICReg, measured
  over ``z0`` and (``regulariser_on_targets``) the target encodings too, so that its estimate sees
  ``B·(S + 1)`` samples rather than ``B`` (in ``D = 64`` dimensions, 32 samples span at most 31);
- cost heads on the *predicted* latents (as the planner uses them): event heads with class-balanced
  BCE (or focal), regression heads (ego motion, progress) on normalised targets, and proximity
  heads (nearest actor, free gap ahead; ``world_model.proximity``) whose dense targets make the
  latent keep the other actors that the rare collision labels alone do not teach it to see.

Everything random is seeded (weights: the caller; batches: a numpy generator; SIGReg directions: a
torch generator), so on the CPU the same seed gives bit-identical losses, and a resumed run
continues exactly as an uninterrupted one (the generators' states are in the checkpoint).
Logging goes through a :class:`TrainCallback`; nothing here knows about TensorBoard.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from sim_bridge import runfolder
from world_model import losses
from world_model.batch import Windows
from world_model.config import LossConfig, ModelConfig, OptimConfig
from world_model.diagnostics import auroc, check_collapse, expected_calibration_error, nearest_neighbours
from world_model.model import EVENT_HEADS, PROXIMITY_COLUMNS, REGRESSION_COLUMNS, WorldModel, ego_statistics

CHECKPOINT_FORMAT = 1
CHECKPOINT_FILE = "last.pt"
#: the checkpoint of the lowest validation loss so far (``loss/val_total``), written beside ``last.pt``
BEST_FILE = "best.pt"
#: optimiser settings that may change when a run resumes (everything else must match)
RESUMABLE_OPTIM = ("steps", "log_every", "eval_every", "eval_batches", "probe_every", "checkpoint_every")


class WindowSource(Protocol):
    """Where batches come from (``world_model.dataset.WindowDataset`` is one)."""

    window: int

    def sample(self, rng: np.random.Generator, batch_size: int) -> Windows: ...


class TrainCallback(Protocol):
    """Receives what training reports (the pipeline writes it to TensorBoard)."""

    def scalars(self, step: int, values: dict[str, float]) -> None:
        """Namespaced scalars (``loss/latent``, ``pred/err_h5``, ``collapse/effective_rank`` …)."""

    def probe(self, step: int, probe: RetrievalProbe) -> None:
        """A nearest-neighbour retrieval probe (for an image grid)."""


@dataclass(frozen=True)
class RetrievalProbe:
    """Predicted latents shown as the validation frames nearest to them (by latent distance).

    ``inputs``: ``uint8 [Q, C, H, W]`` the BEV at the rollout start; ``truth`` and ``retrieved``:
    ``uint8 [Q, S, C, H, W]`` the true BEV after each of ``steps`` and the bank frame nearest to
    the predicted latent; ``distance``: ``[Q, S]`` that latent distance.
    """

    inputs: np.ndarray
    truth: np.ndarray
    retrieved: np.ndarray
    steps: tuple[int, ...]
    distance: np.ndarray


class CheckpointError(ValueError):
    """A file that is not a readable world-model checkpoint (names the file)."""


class CheckpointMismatchError(ValueError):
    """A checkpoint was written for a model with a different config or data shapes."""


class DeviceError(ValueError):
    """A device name torch does not know, or a CUDA device this machine lacks."""


def resolve_device(name: str) -> torch.device:
    """``auto`` → the first CUDA device when present, else the CPU; anything else as given, checked
    (:class:`DeviceError`)."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"device={name!r}: give cpu, cuda, cuda:<index> or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"device={name!r}: no CUDA device is available here; use device=cpu or device=auto")
    return device


def to_tensors(batch: Windows, device: torch.device) -> dict[str, Tensor]:
    """The batch's arrays as tensors on ``device`` (BEV stays ``uint8``)."""
    return {
        "bev": torch.from_numpy(np.ascontiguousarray(batch.bev)).to(device),
        "ego": torch.from_numpy(np.ascontiguousarray(batch.ego, dtype=np.float32)).to(device),
        "action": torch.from_numpy(np.ascontiguousarray(batch.action, dtype=np.float32)).to(device),
        "events": torch.from_numpy(np.ascontiguousarray(batch.events, dtype=np.float32)).to(device),
        "valid": torch.from_numpy(np.ascontiguousarray(batch.valid, dtype=bool)).to(device),
        "proximity": torch.from_numpy(
            np.full((*batch.valid.shape, len(PROXIMITY_COLUMNS)), np.nan, dtype=np.float32)
            if batch.proximity is None
            else np.ascontiguousarray(batch.proximity, dtype=np.float32)
        ).to(device),
    }


class Trainer:
    """Optimiser, target encoder and generators around a :class:`WorldModel` (see module doc)."""

    def __init__(self, model: WorldModel, loss: LossConfig, optim: OptimConfig, device: torch.device) -> None:
        if loss.regulariser not in ("sigreg", "vicreg", "none"):
            raise ValueError(f"loss.regulariser={loss.regulariser!r}; choose sigreg, vicreg or none")
        if loss.event_loss not in ("balanced", "focal"):
            raise ValueError(f"loss.event_loss={loss.event_loss!r}; choose balanced or focal")
        if not 0.0 <= loss.ema < 1.0:
            raise ValueError(f"loss.ema must lie in [0, 1), got {loss.ema}")
        if loss.horizon < 1 or any(not 1 <= s <= loss.horizon for s in loss.target_steps):
            raise ValueError(
                f"loss.target_steps={list(loss.target_steps)} must lie in [1, horizon={loss.horizon}]"
            )
        self.target_steps = sorted(set(loss.target_steps)) or list(range(1, loss.horizon + 1))
        """Rollout steps compared with target encodings (1-based)."""
        self.model = model.to(device)
        self.loss_cfg = loss
        self.optim_cfg = optim
        self.device = device
        self.target: WorldModel | None = None
        if loss.ema > 0.0:
            self.target = copy.deepcopy(self.model).requires_grad_(False)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=optim.lr, weight_decay=optim.weight_decay
        )
        self.step = 0
        self.best_val = math.inf
        """Lowest validation loss seen (``loss/val_total``); ``best_step`` is where."""
        self.best_step = 0
        self.rng = np.random.default_rng(optim.seed)
        """Draws training batches."""
        self.generator = torch.Generator().manual_seed(optim.seed + 7919)
        """Draws SIGReg directions."""
        K = model.num_windows
        self.pos_weight = torch.ones(len(EVENT_HEADS), K, device=device)

    # ------------------------------------------------------------------ statistics

    def fit_statistics(self, batches: list[Windows]) -> dict[str, float]:
        """Set the model's normalisation buffers and the event heads' positive weights from
        ``batches`` (valid steps only). Returns the event rates (``rate/<head>_<n>``)."""
        m, H = self.model, self.loss_cfg.horizon
        ego, reg, ev_t, ev_m = [], [], [], []
        for b in batches:
            t = to_tensors(b, torch.device("cpu"))
            v = t["valid"]
            ego.append(t["ego"][v])
            h = min(H, t["events"].shape[1])
            reg.append(losses.regression_targets(t["events"], h)[v[:, :h]])
            targets, mask = losses.event_targets(t["events"], v, m.config.event_within, h)
            ev_t.append((targets * mask).sum((0, 1)))
            ev_m.append(mask.sum((0, 1)))
        ego_all, reg_all = torch.cat(ego), torch.cat(reg)
        rate = (torch.stack(ev_t).sum(0) + 0.5) / (torch.stack(ev_m).sum(0) + 1.0)  # [3, K], smoothed
        if self.loss_cfg.event_loss == "balanced":
            self.pos_weight = losses.positive_weight(rate, self.loss_cfg.max_pos_weight).to(self.device)
            offset = losses.log_weight(self.pos_weight).reshape(-1)
        else:
            self.pos_weight = torch.ones_like(rate, device=self.device)
            offset = torch.zeros(rate.numel())
        m.set_statistics(
            *ego_statistics(ego_all), reg_all.mean(0), reg_all.std(0), offset.to(m.ego_mean.device)
        )
        if self.target is not None:
            self.target.load_state_dict(m.state_dict())
        return {
            f"rate/{name}_{n}": float(rate[i, k])
            for i, name in enumerate(EVENT_HEADS)
            for k, n in enumerate(m.config.event_within)
        }

    # ------------------------------------------------------------------ loss

    def compute_loss(
        self, t: dict[str, Tensor], regularise: bool = True
    ) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        """Total loss of one batch of tensors (:func:`to_tensors`), its named terms, and the
        intermediate tensors (``z0``, ``pred`` ``[B, H, D]``, ``target`` ``[B, S, D]`` at
        :attr:`target_steps`, ``logits``) for diagnostics. ``regularise=False`` leaves out the
        anti-collapse term (evaluation: it would draw SIGReg directions from the training generator)."""
        cfg, m = self.loss_cfg, self.model
        bev, ego, action, events, valid = t["bev"], t["ego"], t["action"], t["events"], t["valid"]
        H, steps = cfg.horizon, self.target_steps
        if bev.shape[1] < H + 1:
            raise ValueError(
                f"windows of {bev.shape[1]} steps cannot train horizon {H}; use window >= {H + 1}"
            )
        # --- encode: the start with gradient, the target frames without
        z0 = m.encode(bev[:, 0], ego[:, 0])
        with torch.no_grad():
            target = (self.target or m).encode(bev[:, steps], ego[:, steps])  # [B, S, D]
        # --- roll out and compare at the target steps
        pred = m.rollout(z0, action[:, :H])
        idx = [s - 1 for s in steps]
        latent, per_s = losses.latent_loss(pred[:, idx], target, valid[:, steps])
        terms: dict[str, Tensor] = {"latent": latent}
        total = latent
        # --- anti-collapse
        reg_z = z0
        if cfg.regulariser_on_targets and self.target is None:
            reg_z = torch.cat([z0, target[valid[:, steps]]])  # the gradient reaches z0's rows only
        if not regularise:
            pass
        elif cfg.regulariser == "sigreg":
            dirs = losses.random_directions(m.latent, cfg.sigreg_projections, self.generator).to(z0.device)
            terms["sigreg"] = losses.sigreg(reg_z, dirs, cfg.sigreg_knots)
            total = total + cfg.sigreg_weight * terms["sigreg"]
        elif cfg.regulariser == "vicreg":
            terms["vicreg_var"], terms["vicreg_cov"] = losses.vicreg_terms(reg_z)
            total = total + cfg.vicreg_variance_weight * terms["vicreg_var"]
            total = total + cfg.vicreg_covariance_weight * terms["vicreg_cov"]
        # --- cost heads on the predicted latents
        logits = m.head_logits(pred)  # [B, H, len(EVENT_HEADS) K + 7]
        n_ev = len(EVENT_HEADS) * m.num_windows
        ev_logits = logits[..., :n_ev].reshape(*logits.shape[:2], len(EVENT_HEADS), m.num_windows)
        ev_target, ev_mask = losses.event_targets(events, valid, m.config.event_within, H)
        if cfg.event_loss == "balanced":
            terms["events"] = losses.balanced_bce(ev_logits, ev_target, ev_mask, self.pos_weight)
        else:
            terms["events"] = losses.focal_loss(ev_logits, ev_target, ev_mask, cfg.focal_gamma)
        n_reg = len(REGRESSION_COLUMNS)
        reg_target = (losses.regression_targets(events, H) - m.regression_mean) / m.regression_std
        terms["motion"] = losses.regression_loss(logits[..., n_ev : n_ev + n_reg], reg_target, valid[:, :H])
        prox = t["proximity"][:, :H] / m.proximity_scale  # [B, H, 2], NaN where unknown
        terms["proximity"] = losses.proximity_loss(logits[..., n_ev + n_reg :], prox, valid[:, :H])
        total = total + cfg.event_weight * terms["events"] + cfg.motion_weight * terms["motion"]
        total = total + cfg.proximity_weight * terms["proximity"]
        terms["total"] = total
        for j, s in enumerate(steps):
            terms[f"err_h{s}"] = per_s[j]
        extras = {"z0": z0, "pred": pred, "target": target, "logits": logits, "ev_target": ev_target,
                  "ev_mask": ev_mask}  # fmt: skip
        return total, terms, extras

    # ------------------------------------------------------------------ step

    def learning_rate(self, step: int) -> float:
        """Linear warm-up to ``lr``, then cosine decay to 10 % of it at ``steps``."""
        o = self.optim_cfg
        if step < o.warmup:
            return o.lr * (step + 1) / o.warmup
        frac = min(1.0, (step - o.warmup) / max(1, o.steps - o.warmup))
        return o.lr * (0.1 + 0.45 * (1.0 + math.cos(math.pi * frac)))

    def train_step(self, batch: Windows) -> dict[str, float]:
        """One optimiser step on ``batch``; returns the scalars of this step (``loss/…``,
        ``pred/err_h{k}``, ``collapse/…``, ``optim/…``)."""
        self.model.train()
        lr = self.learning_rate(self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        loss, terms, extras = self.compute_loss(to_tensors(batch, self.device))
        if not bool(torch.isfinite(loss)):
            bad = {k: float(v) for k, v in terms.items() if not bool(torch.isfinite(v))}
            raise FloatingPointError(
                f"non-finite training loss at step {self.step} (terms {bad}); lower optim.lr or "
                "raise the anti-collapse weight, and resume from the last checkpoint"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.optim_cfg.grad_clip)
        self.optimizer.step()
        if self.target is not None:
            self._update_target()
        self.step += 1
        out = {f"loss/{k}": float(v.detach()) for k, v in terms.items() if not k.startswith("err_h")}
        out.update({f"pred/train_err_h{s}": float(terms[f"err_h{s}"].detach()) for s in self.target_steps})
        report = check_collapse(extras["z0"])
        out["collapse/std"] = report.std
        out["collapse/effective_rank"] = report.effective_rank
        out["optim/lr"] = lr
        out["optim/grad_norm"] = float(grad_norm)
        return out

    @torch.no_grad()
    def _update_target(self) -> None:
        assert self.target is not None
        tau = self.loss_cfg.ema
        src: list[Tensor] = list(self.model.parameters())
        dst: list[Tensor] = list(self.target.parameters())
        torch._foreach_lerp_(dst, src, 1.0 - tau)

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(self, batches: list[Windows]) -> dict[str, float]:
        """Validation metrics over ``batches``: prediction error at each target step (absolute,
        relative to the target's variance, and the copy-last-latent baseline's), collapse
        statistics of the start embeddings, event heads' AUROC / ECE / positives, regression
        heads' mean absolute error (raw units)."""
        self.model.eval()
        m, H, steps = self.model, self.loss_cfg.horizon, self.target_steps
        S = len(steps)
        z0s, sq, sq_copy, cnt, tvar = [], torch.zeros(S), torch.zeros(S), torch.zeros(S), []
        probs, labels, masks, reg_err, reg_mask, prox_err = [], [], [], [], [], []
        n_ev = len(EVENT_HEADS) * m.num_windows
        val_total = []
        for b in batches:
            total, _, x = self.compute_loss(t := to_tensors(b, self.device), regularise=False)
            val_total.append(float(total))
            valid_t = t["valid"][:, steps]  # [B, S]
            err = (x["pred"][:, [s - 1 for s in steps]] - x["target"]).square().mean(-1)  # [B, S]
            err_copy = (x["z0"].unsqueeze(1) - x["target"]).square().mean(-1)
            sq += (err * valid_t).sum(0).cpu()
            sq_copy += (err_copy * valid_t).sum(0).cpu()
            cnt += valid_t.sum(0).cpu()
            tvar.append(x["target"][valid_t].cpu())
            z0s.append(x["z0"].cpu())
            p = torch.sigmoid(x["logits"][..., :n_ev] - m.event_logit_offset)
            probs.append(p.reshape(*p.shape[:2], len(EVENT_HEADS), m.num_windows).cpu())
            labels.append(x["ev_target"].cpu())
            masks.append(x["ev_mask"].cpu())
            n_reg = len(REGRESSION_COLUMNS)
            reg = x["logits"][..., n_ev : n_ev + n_reg] * m.regression_std + m.regression_mean
            reg_err.append((reg - losses.regression_targets(t["events"], H)).abs().cpu())
            reg_mask.append(t["valid"][:, :H].cpu())
            prox = x["logits"][..., n_ev + n_reg :] * m.proximity_scale
            prox_err.append((prox - t["proximity"][:, :H]).abs().cpu())
        out: dict[str, float] = {}
        per_s, copy_s = sq / cnt.clamp_min(1.0), sq_copy / cnt.clamp_min(1.0)
        var = float(torch.cat(tvar).var(0).mean()) if tvar else float("nan")
        for j, k in enumerate(steps):
            out[f"pred/err_h{k}"] = float(per_s[j])
            out[f"pred/copy_last_err_h{k}"] = float(copy_s[j])
            out[f"pred/rel_err_h{k}"] = float(per_s[j]) / max(var, 1e-12)
        out["pred/err_mean"] = float(sq.sum() / cnt.sum().clamp_min(1.0))
        out["loss/val_total"] = float(np.mean(val_total)) if val_total else float("nan")
        out["pred/target_var"] = var
        report = check_collapse(torch.cat(z0s))
        out["collapse/val_std"] = report.std
        out["collapse/val_effective_rank"] = report.effective_rank
        out["collapse/flag"] = float(report.collapsed)
        P, L, M = torch.cat(probs), torch.cat(labels), torch.cat(masks)
        for i, name in enumerate(EVENT_HEADS):
            for k, n in enumerate(m.config.event_within):
                sel = M[..., i, k]
                p_sel, l_sel = P[..., i, k][sel].numpy(), L[..., i, k][sel].numpy()
                out[f"heads/auroc_{name}_{n}"] = auroc(p_sel, l_sel)
                out[f"heads/ece_{name}_{n}"] = expected_calibration_error(p_sel, l_sel)
                out[f"heads/positives_{name}_{n}"] = float(l_sel.sum())
        E, EM = torch.cat(reg_err), torch.cat(reg_mask)
        for j, name in enumerate(REGRESSION_COLUMNS):
            out[f"heads/mae_{name}"] = float(E[..., j][EM].mean()) if EM.any() else float("nan")
        PE = torch.cat(prox_err)  # NaN where the target is unknown
        for j, name in enumerate(PROXIMITY_COLUMNS):
            known = EM & torch.isfinite(PE[..., j])
            out[f"heads/mae_{name}"] = float(PE[..., j][known].mean()) if known.any() else float("nan")
        return out

    @torch.no_grad()
    def retrieval_probe(
        self, queries: Windows, bank: list[Windows], steps: tuple[int, ...] = (1, 5, 10), count: int = 4
    ) -> RetrievalProbe:
        """Roll out the first ``count`` windows of ``queries`` and find, for each predicted latent
        at ``steps``, the nearest encoding among every valid frame of ``bank`` batches."""
        self.model.eval()
        m = self.model
        queries = dataclasses.replace(
            queries,
            **{
                f.name: a[:count]
                for f in dataclasses.fields(Windows)
                if (a := getattr(queries, f.name)) is not None
            },
        )
        steps = tuple(s for s in steps if s <= min(self.loss_cfg.horizon, queries.shape[1] - 1))
        bank_z, bank_bev = [], []
        for b in bank:
            t = to_tensors(b, self.device)
            v = t["valid"]
            bank_z.append(m.encode(t["bev"][v], t["ego"][v]).cpu())
            bank_bev.append(b.bev[b.valid])
        bz, bb = torch.cat(bank_z), np.concatenate(bank_bev)
        t = to_tensors(queries, self.device)
        z0 = m.encode(t["bev"][:, 0], t["ego"][:, 0])
        pred = m.rollout(z0, t["action"][:, : max(steps)]).cpu()
        idx = torch.stack([nearest_neighbours(pred[:, s - 1], bz) for s in steps], dim=1)  # [Q, S]
        dist = torch.stack([(pred[:, s - 1] - bz[idx[:, i]]).norm(dim=-1) for i, s in enumerate(steps)], 1)
        return RetrievalProbe(
            inputs=queries.bev[:, 0].copy(),
            truth=np.stack([queries.bev[:, s] for s in steps], axis=1),
            retrieved=bb[idx.numpy()],
            steps=steps,
            distance=dist.numpy(),
        )

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "format": CHECKPOINT_FORMAT,
            "step": self.step,
            "model": self.model.state_dict(),
            "shapes": self.model.shapes(),
            "target": None if self.target is None else self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "pos_weight": self.pos_weight.cpu(),
            "rng": self.rng.bit_generator.state,
            "generator": self.generator.get_state(),
            "loss_config": asdict(self.loss_cfg),
            "optim_config": asdict(self.optim_cfg),
            "best_val": self.best_val,
            "best_step": self.best_step,
        }

    def load_state_dict(self, state: dict[str, Any], path: str | Path = "checkpoint") -> None:
        """Restore a :meth:`state_dict`. The model's config and shapes, the loss config and the
        optimiser config (but :data:`RESUMABLE_OPTIM`) must match; otherwise
        :class:`CheckpointMismatchError` names every differing field."""
        diffs = shape_differences(state.get("shapes", {}), self.model)
        diffs += field_differences(state.get("loss_config", {}), asdict(self.loss_cfg), "loss.")
        optim_now = {k: v for k, v in asdict(self.optim_cfg).items() if k not in RESUMABLE_OPTIM}
        optim_old = {k: v for k, v in state.get("optim_config", {}).items() if k not in RESUMABLE_OPTIM}
        diffs += field_differences(optim_old, optim_now, "optim.")
        if diffs:
            raise CheckpointMismatchError(
                f"{path} was written with different settings; differing fields: {'; '.join(diffs)}. "
                "Use the checkpoint's settings, or train into a new out folder."
            )
        self.model.load_state_dict(state["model"])
        if self.target is not None:
            self.target.load_state_dict(
                state["target"] if state.get("target") is not None else state["model"]
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.pos_weight = state["pos_weight"].to(self.device)
        self.rng.bit_generator.state = state["rng"]
        self.generator.set_state(state["generator"])
        self.step = int(state["step"])
        self.best_val = float(state.get("best_val", math.inf))
        self.best_step = int(state.get("best_step", 0))

    def save(self, path: str | Path) -> None:
        """Write the checkpoint atomically (temporary file in the same folder, then ``os.replace``)."""
        save_atomic(self.state_dict(), Path(path))

    def load(self, path: str | Path) -> None:
        """Resume from the checkpoint at ``path`` (see :meth:`load_state_dict`)."""
        self.load_state_dict(read_checkpoint(path, self.device), path)


# ---------------------------------------------------------------------------- checkpoint files


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically (``sim_bridge.runfolder``: never a partial file)."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    runfolder.write_bytes_atomic(path, buf.getvalue())


def read_checkpoint(path: str | Path, device: torch.device | str = "cpu") -> dict[str, Any]:
    """A checkpoint dict, read with ``weights_only=True`` (never anything else: unpickling a file
    may run code); :class:`CheckpointError` naming the file if it is not one. The loader's own
    message is not passed on: it suggests ``weights_only=False``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path} (train one with `drive train data=PATH out=…`)")
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError… by damage
        raise CheckpointError(
            f"{path} is not a world-model checkpoint (unreadable: {type(exc).__name__}); give the "
            "last.pt or best.pt that `drive train` wrote"
        ) from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a world-model checkpoint of format {CHECKPOINT_FORMAT}; give the last.pt or "
            "best.pt that `drive train` wrote"
        )
    return state


def field_differences(stored: dict[str, Any], now: dict[str, Any], prefix: str = "") -> list[str]:
    """``"<prefix><key>: checkpoint <old>, now <new>"`` for every key whose value differs (or is
    absent on one side); empty when they match (``sim_bridge.runfolder.differences``)."""
    return [prefix + d.describe("checkpoint") for d in runfolder.differences(stored, now)]


def shape_differences(stored: dict[str, Any], model: WorldModel) -> list[str]:
    """Differences between a checkpoint's ``shapes`` and ``model``'s, e.g.
    ``"model.latent: checkpoint 64, now 128"`` or ``"data.ego_dim: checkpoint 27, now 30"``."""
    now = model.shapes()
    data_now = {k: now[k] for k in ("bev_shape", "ego_dim")}
    data_old = {k: stored.get(k, "<absent>") for k in ("bev_shape", "ego_dim")}
    config_now = now["config"]
    assert isinstance(config_now, dict)
    return field_differences(data_old, data_now, "data.") + field_differences(
        stored.get("config", {}), config_now, "model."
    )


def check_shapes(stored: dict[str, Any], model: WorldModel, path: str | Path = "checkpoint") -> None:
    """Raise :class:`CheckpointMismatchError` naming every field that differs."""
    diffs = shape_differences(stored, model)
    if diffs:
        raise CheckpointMismatchError(
            f"{path} was written for a different world model; differing fields: "
            + "; ".join(diffs)
            + ". Use the checkpoint's settings, or train into a new out folder."
        )


def load_model(path: str | Path, device: torch.device | str = "cpu") -> WorldModel:
    """The :class:`WorldModel` stored in a checkpoint (built from its own config and shapes), in
    eval mode on ``device``."""
    state = read_checkpoint(path, device)
    shapes = state["shapes"]
    cfg = ModelConfig(**shapes["config"])
    model = WorldModel(cfg, tuple(shapes["bev_shape"]), int(shapes["ego_dim"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


# ---------------------------------------------------------------------------- the loop


def train(
    model: WorldModel,
    data: WindowSource,
    val: WindowSource | None,
    loss: LossConfig,
    optim: OptimConfig,
    out: str | Path,
    callback: TrainCallback | None = None,
    device: torch.device | str = "cpu",
    max_minutes: float = 0.0,
) -> dict[str, Any]:
    """Train ``model`` on windows from ``data`` up to ``optim.steps``, resuming from
    ``out/last.pt`` when it exists (same step count, optimiser and generators). Validation on
    ``val`` every ``eval_every`` steps and at the end; checkpoints every ``checkpoint_every`` steps
    and at the end, and ``out/best.pt`` whenever the validation loss (``loss/val_total``: the
    training loss without the anti-collapse term) reaches a new low — on small budgets the last
    step over-fits (0.1 h at 4000 steps), the best one need not. ``max_minutes`` > 0 stops early
    (with a checkpoint) after that wall time; ``optim.steps = 0`` writes the initial model as
    ``out/last.pt``. Returns a summary: steps, wall time, windows/s, the
    best step and its checkpoint, the last validation metrics."""
    device = torch.device(device)
    out = Path(out)
    trainer = Trainer(model, loss, optim, device)
    ckpt = out / CHECKPOINT_FILE
    resumed_from = 0
    if ckpt.exists():
        trainer.load(ckpt)
        resumed_from = trainer.step
    else:
        stats_rng = np.random.default_rng(optim.seed + 104729)
        rates = trainer.fit_statistics(
            [data.sample(stats_rng, optim.batch_size) for _ in range(optim.stats_batches)]
        )
        if callback is not None:
            callback.scalars(0, rates)

    def val_batches(n: int, seed: int) -> list[Windows]:
        assert val is not None
        r = np.random.default_rng(seed)  # the same validation batches every time
        return [val.sample(r, optim.batch_size) for _ in range(n)]

    t0 = time.perf_counter()
    windows, last_eval, train_seconds = 0, {}, 0.0
    while trainer.step < optim.steps:
        t_step = time.perf_counter()
        batch = data.sample(trainer.rng, optim.batch_size)
        scalars = trainer.train_step(batch)
        train_seconds += time.perf_counter() - t_step
        windows += optim.batch_size
        step = trainer.step
        if callback is not None and (step % optim.log_every == 0 or step == 1):
            scalars["perf/windows_per_s"] = windows / max(train_seconds, 1e-9)
            callback.scalars(step, scalars)
        out_of_time = max_minutes > 0 and (time.perf_counter() - t0) > 60.0 * max_minutes
        if val is not None and (step % optim.eval_every == 0 or step == optim.steps or out_of_time):
            last_eval = trainer.evaluate(val_batches(optim.eval_batches, optim.seed + 1))
            if last_eval["loss/val_total"] < trainer.best_val:  # NaN never counts as better
                trainer.best_val, trainer.best_step = last_eval["loss/val_total"], step
                trainer.save(out / BEST_FILE)
            if callback is not None:
                callback.scalars(step, last_eval)
        if val is not None and callback is not None and optim.probe_every and step % optim.probe_every == 0:
            bank = val_batches(4, optim.seed + 2)
            callback.probe(step, trainer.retrieval_probe(val_batches(1, optim.seed + 3)[0], bank))
        if step % optim.checkpoint_every == 0 or step == optim.steps or out_of_time:
            trainer.save(ckpt)
        if out_of_time:
            break
    if not ckpt.exists():  # optim.steps=0: the model at initialisation (a no-experience baseline)
        trainer.save(ckpt)
    wall = time.perf_counter() - t0
    return {
        "steps": trainer.step,
        "stopped_by": "steps" if trainer.step >= optim.steps else "max_minutes",
        "resumed_from": resumed_from,
        "wall_seconds": round(wall, 2),
        "windows_per_s": round(windows / max(train_seconds, 1e-9), 2),
        "checkpoint": str(ckpt),
        "best_checkpoint": str(out / BEST_FILE) if (out / BEST_FILE).exists() else None,
        "best_step": trainer.best_step,
        "best_val_total": trainer.best_val if math.isfinite(trainer.best_val) else None,
        "eval": last_eval,
    }


__all__ = [
    "BEST_FILE",
    "CheckpointError",
    "CheckpointMismatchError",
    "DeviceError",
    "RetrievalProbe",
    "TrainCallback",
    "Trainer",
    "WindowSource",
    "check_shapes",
    "field_differences",
    "load_model",
    "read_checkpoint",
    "resolve_device",
    "shape_differences",
    "train",
]
