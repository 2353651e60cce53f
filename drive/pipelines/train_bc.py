"""``drive train-bc data=<expert collection> hours=0.5``: the behaviour-cloning baseline.

**Data.** Windows of ``net.chunk`` steps over the first ``hours`` of a collection of expert
demonstrations (``drive collect driver=expert``), split into train and validation by a hash of
each episode's id (``world_model.dataset``, as ``drive train``), so the splits of nested budget
prefixes are nested. The policy learns the expert's next ``chunk`` actions from its observation
(``planning.bc_train``).

**Run folder** (``out``): ``last.pt`` (atomic checkpoint: weights, optimiser, generator),
``best.pt`` (lowest validation loss; what ``agent=bc agent.checkpoint=…`` drives with),
``run.json`` (the settings manifest, ``sim_bridge.runfolder``: a resumed run must match it but for
:data:`RESUMABLE`), ``summary.json``, ``tensorboard/``. Re-running the same command resumes.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from drive.build import from_dict
from drive.pipelines.train import json_safe
from planning.bc import BCNetConfig, build_net
from planning.bc_train import BCOptimConfig, train_bc
from sim_bridge import runfolder
from world_model.dataset import open_dataset
from world_model.train import resolve_device

log = logging.getLogger("drive.train_bc")

#: settings that may change when a run resumes (budget, machine, logging)
RESUMABLE = (
    "optim.steps", "optim.log_every", "optim.eval_every", "optim.eval_batches", "optim.checkpoint_every",
    "max_minutes", "device", "threads", "tensorboard", "out",
)  # fmt: skip


def run(cfg: DictConfig) -> int:
    if OmegaConf.is_missing(cfg, "data"):
        raise SystemExit(
            "drive train-bc: give the demonstrations, e.g. `drive train-bc data=outputs/collect/expert` "
            "(collect them with `drive collect driver=expert`)"
        )
    settings: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    net_cfg: BCNetConfig = from_dict(BCNetConfig, settings["net"])
    optim_cfg: BCOptimConfig = from_dict(BCOptimConfig, settings["optim"])
    if cfg.threads > 0:
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(str(cfg.device))
    out = Path(cfg.out)
    try:
        runfolder.open_manifest(out, settings, kind="train-bc", resumable=RESUMABLE)
    except runfolder.SettingsMismatch as e:
        raise SystemExit(f"drive train-bc: {e}") from None
    kwargs: dict[str, Any] = dict(
        hours=None if cfg.hours is None else float(cfg.hours),
        window=net_cfg.chunk,
        val_fraction=float(cfg.val_fraction),
        seed=int(cfg.split_seed),
        min_valid=1,
    )
    data = open_dataset(cfg.data, split="train", **kwargs)
    try:
        val = open_dataset(cfg.data, split="val", **kwargs)
    except ValueError as exc:
        log.warning("no validation split: %s", exc)
        val = None
    log.info("demonstrations %s: %.3f h prefix → train %d episodes (%d windows), val %s",
             cfg.data, data.prefix_seconds / 3600.0, len(data.episodes), len(data),
             "none" if val is None else f"{len(val.episodes)} episodes")  # fmt: skip
    torch.manual_seed(optim_cfg.seed)
    net = build_net(net_cfg, data.bev_shape, int(data.ego.shape[1]))  # type: ignore[arg-type]
    writer: Any = None
    if cfg.tensorboard:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out / "tensorboard"))

    def on_scalars(step: int, values: dict[str, float]) -> None:
        if writer is not None:
            for k, v in values.items():
                if math.isfinite(v):
                    writer.add_scalar(k, v, step)
        log.info("step %d: %s", step, ", ".join(f"{k} {v:.4f}" for k, v in values.items()))

    try:
        summary = train_bc(net, data, val, optim_cfg, out, on_scalars, device, float(cfg.max_minutes))
    finally:
        if writer is not None:
            writer.close()
    summary.update(data=str(cfg.data), hours=cfg.hours, train_sim_hours=round(data.sim_seconds / 3600.0, 4))
    safe = json_safe(summary)
    runfolder.write_json_atomic(out / "summary.json", safe)
    print(json.dumps({k: v for k, v in safe.items() if k != "eval"}), flush=True)
    return 0
