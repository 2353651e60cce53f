"""Training of the behaviour-cloning policy (``planning.bc``) on demonstration windows.

Each training example is a window of ``chunk`` steps of an expert episode (``world_model.dataset``:
the same budget prefix and hash split of whole episodes as the world model's training): the
observation at its first step, and the ``chunk`` actions the expert took from there. The loss is
the mean squared error of the predicted chunk against them, over the window's valid steps.

Everything random is seeded (weights: the caller; batches: a numpy generator whose state is in
the checkpoint), so a resumed run continues exactly as an uninterrupted one. ``out/last.pt`` is
written atomically every ``checkpoint_every`` steps and at the end; ``out/best.pt`` whenever the
validation loss reaches a new low (no validation split: every checkpoint is the best).
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from planning.bc import BC_CHECKPOINT_FORMAT
from sim_bridge import runfolder
from world_model.batch import Windows

LAST_FILE = "last.pt"
BEST_FILE = "best.pt"
#: settings that may change when a run resumes
RESUMABLE_OPTIM = ("steps", "log_every", "eval_every", "eval_batches", "checkpoint_every")


@dataclass
class BCOptimConfig:
    """Optimiser and schedule of behaviour-cloning training."""

    steps: int = 2000
    """Optimiser steps."""
    batch_size: int = 64
    """Windows per step."""
    lr: float = 1.0e-3
    """AdamW learning rate (constant after a linear warm-up)."""
    warmup: int = 50
    """Warm-up steps."""
    weight_decay: float = 1.0e-4
    grad_clip: float = 1.0
    """Gradient norm clip."""
    stats_batches: int = 4
    """Batches whose first frames set the ego normalisation."""
    log_every: int = 50
    eval_every: int = 200
    """Validation every this many steps (and at the end)."""
    eval_batches: int = 8
    checkpoint_every: int = 200
    seed: int = 0
    """Seed of the batches."""


def chunk_loss(pred: torch.Tensor, action: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean squared error of ``pred [N, T, 2]`` against ``action [N, T, 2]`` over ``valid [N, T]``."""
    mask = valid.to(pred.dtype).unsqueeze(-1)
    return ((pred - action) ** 2 * mask).sum() / (mask.sum() * pred.shape[-1]).clamp_min(1.0)


def _tensors(batch: Windows, T: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    return (
        torch.from_numpy(np.ascontiguousarray(batch.bev[:, 0])).to(device),
        torch.from_numpy(np.ascontiguousarray(batch.ego[:, 0], dtype=np.float32)).to(device),
        torch.from_numpy(np.ascontiguousarray(batch.action[:, :T], dtype=np.float32)).to(device),
        torch.from_numpy(np.ascontiguousarray(batch.valid[:, :T], dtype=bool)).to(device),
    )


class BCTrainer:
    """Optimiser, generator and checkpoints around a policy network (``planning.bc.build_net``)."""

    def __init__(self, net: Any, optim: BCOptimConfig, device: torch.device) -> None:
        self.net = net.to(device)
        self.optim_cfg = optim
        self.device = device
        self.optimizer = torch.optim.AdamW(net.parameters(), lr=optim.lr, weight_decay=optim.weight_decay)
        self.step = 0
        self.best_val = math.inf
        self.best_step = 0
        self.rng = np.random.default_rng(optim.seed)

    def fit_statistics(self, batches: list[Windows]) -> None:
        """The ego normalisation from the first frames of ``batches``."""
        ego = np.concatenate([b.ego[:, 0] for b in batches]).astype(np.float32)
        self.net.ego_mean.copy_(torch.from_numpy(ego.mean(0)))
        self.net.ego_std.copy_(torch.from_numpy(np.maximum(ego.std(0), 1e-3)))

    def train_step(self, batch: Windows) -> dict[str, float]:
        self.net.train()
        o = self.optim_cfg
        lr = o.lr * min(1.0, (self.step + 1) / max(o.warmup, 1))
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        bev, ego, action, valid = _tensors(batch, self.net.config.chunk, self.device)
        loss = chunk_loss(self.net(bev, ego), action, valid)
        if not bool(torch.isfinite(loss)):
            raise FloatingPointError(
                f"non-finite behaviour-cloning loss at step {self.step}; lower optim.lr and resume"
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad = torch.nn.utils.clip_grad_norm_(self.net.parameters(), o.grad_clip)
        self.optimizer.step()
        self.step += 1
        return {"loss/bc": float(loss.detach()), "optim/lr": lr, "optim/grad_norm": float(grad)}

    @torch.no_grad()
    def evaluate(self, batches: list[Windows]) -> dict[str, float]:
        """``loss/val_bc`` (mean over ``batches``) and the first action's error per column."""
        self.net.eval()
        losses, first = [], []
        for b in batches:
            bev, ego, action, valid = _tensors(b, self.net.config.chunk, self.device)
            pred = self.net(bev, ego)
            losses.append(float(chunk_loss(pred, action, valid)))
            first.append((pred[:, 0] - action[:, 0]).abs()[valid[:, 0]].cpu().numpy())
        err = np.concatenate(first) if first else np.zeros((0, 2))
        return {
            "loss/val_bc": float(np.mean(losses)) if losses else float("nan"),
            "val/mae_accel": float(err[:, 0].mean()) if len(err) else float("nan"),
            "val/mae_steer": float(err[:, 1].mean()) if len(err) else float("nan"),
        }

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        return {
            "format": BC_CHECKPOINT_FORMAT,
            "kind": "bc",
            "step": self.step,
            "model": self.net.state_dict(),
            "shapes": self.net.shapes(),
            "optimizer": self.optimizer.state_dict(),
            "rng": self.rng.bit_generator.state,
            "optim_config": asdict(self.optim_cfg),
            "best_val": self.best_val,
            "best_step": self.best_step,
        }

    def save(self, path: Path) -> None:
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        runfolder.write_bytes_atomic(path, buf.getvalue())

    def load(self, path: Path) -> None:
        """Resume from ``path``; the architecture, data shapes and optimiser settings (but
        :data:`RESUMABLE_OPTIM`) must match, else ``SettingsMismatch`` names the fields."""
        state = torch.load(path, map_location=self.device, weights_only=True)
        stored = {"shapes": state["shapes"], "optim": state["optim_config"]}
        now = {"shapes": self.net.shapes(), "optim": asdict(self.optim_cfg)}
        runfolder.check_settings(
            stored, now, where=str(path), ignore=[f"optim.{k}" for k in RESUMABLE_OPTIM],
            advice="Use the checkpoint's settings, or train into a new out folder.",
        )  # fmt: skip
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.rng.bit_generator.state = state["rng"]
        self.step = int(state["step"])
        self.best_val = float(state["best_val"])
        self.best_step = int(state["best_step"])


def train_bc(
    net: Any,
    data: Any,
    val: Any | None,
    optim: BCOptimConfig,
    out: str | Path,
    on_scalars: Callable[[int, dict[str, float]], None] | None = None,
    device: torch.device | str = "cpu",
    max_minutes: float = 0.0,
) -> dict[str, Any]:
    """Train ``net`` on windows of ``data`` (``sample(rng, n) -> Windows`` of ``>= chunk`` steps) up
    to ``optim.steps``, resuming from ``out/last.pt``; see the module doc. Returns a summary."""
    device = torch.device(device)
    out = Path(out)
    trainer = BCTrainer(net, optim, device)
    last = out / LAST_FILE
    resumed_from = 0
    if last.exists():
        trainer.load(last)
        resumed_from = trainer.step
    else:
        stats_rng = np.random.default_rng(optim.seed + 104729)
        trainer.fit_statistics([data.sample(stats_rng, optim.batch_size) for _ in range(optim.stats_batches)])

    def val_batches() -> list[Windows]:
        assert val is not None
        r = np.random.default_rng(optim.seed + 1)  # the same validation batches every time
        return [val.sample(r, optim.batch_size) for _ in range(optim.eval_batches)]

    t0 = time.perf_counter()
    last_eval: dict[str, float] = {}
    first_loss = last_loss = float("nan")
    while trainer.step < optim.steps:
        scalars = trainer.train_step(data.sample(trainer.rng, optim.batch_size))
        step = trainer.step
        last_loss = scalars["loss/bc"]
        if step == resumed_from + 1:
            first_loss = last_loss
        if on_scalars is not None and (step % optim.log_every == 0 or step == 1):
            on_scalars(step, scalars)
        out_of_time = max_minutes > 0 and (time.perf_counter() - t0) > 60.0 * max_minutes
        end = step == optim.steps or out_of_time
        if step % optim.eval_every == 0 or end:
            if val is not None:
                last_eval = trainer.evaluate(val_batches())
                if on_scalars is not None:
                    on_scalars(step, last_eval)
                if last_eval["loss/val_bc"] < trainer.best_val:  # NaN never counts as better
                    trainer.best_val, trainer.best_step = last_eval["loss/val_bc"], step
                    trainer.save(out / BEST_FILE)
            else:
                trainer.best_step = step
                trainer.save(out / BEST_FILE)
        if step % optim.checkpoint_every == 0 or end:
            trainer.save(last)
        if out_of_time:
            break
    return {
        "steps": trainer.step,
        "stopped_by": "steps" if trainer.step >= optim.steps else "max_minutes",
        "resumed_from": resumed_from,
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "first_loss": first_loss,
        "last_loss": last_loss,
        "checkpoint": str(last),
        "best_checkpoint": str(out / BEST_FILE) if (out / BEST_FILE).exists() else None,
        "best_step": trainer.best_step,
        "best_val_bc": trainer.best_val if math.isfinite(trainer.best_val) else None,
        "eval": last_eval,
    }


__all__ = ["BCOptimConfig", "BCTrainer", "chunk_loss", "train_bc"]
