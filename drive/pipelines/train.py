"""``drive train data=<collection> hours=0.5``: train the JEPA world model on a budget prefix.

**Data.** Windows of ``window`` steps (default ``loss.horizon + 1``) over the first ``hours`` of
the collection (``world_model.dataset``); whole episodes are split into train and validation by a
hash of their id (``val_fraction``, ``split_seed``), so the splits of nested prefixes are nested.

**Budget.** ``optim.steps`` optimiser steps or ``max_minutes`` of wall time, whichever comes first
(a checkpoint is written when either ends). Defaults (2000 steps of 32 windows, 14 minutes) are
sized for one simulated hour on the project's 2-core CPU.

**Threads.** ``threads=2`` by default: on the idle 2-core machine a step takes ~0.17 s with two
intra-op threads against ~0.32 s with one (183 vs 99 windows/s), so the default 4000 steps of a
1 h model end in ~12 min. On a machine shared with other work set ``threads=1``: there two threads
made a step ~10× *slower* (each small matrix product waits for the preempted second thread);
``max_minutes`` bounds the wall time either way. ``device=auto`` uses CUDA when present.

**Run folder** (``out``): ``last.pt`` (atomic checkpoint: weights, optimiser, generators),
``best.pt`` (the same at the lowest validation loss so far; what to evaluate on a small budget),
``run.json`` (the settings; a resumed run must match them but for :data:`RESUMABLE`),
``summary.json`` (steps, wall time, best step, last validation metrics), ``tensorboard/`` (losses, prediction
error per horizon, embedding std and effective rank, head AUROC / ECE, retrieval images).
Re-running the same command resumes from ``last.pt``; a raised ``optim.steps`` trains further.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from drive.build import from_dict
from sim_bridge import runfolder
from sim_bridge.runfolder import write_json_atomic
from sim_bridge.sensors.pictures import bev_to_rgb
from world_model.config import LossConfig, ModelConfig, OptimConfig
from world_model.dataset import DatasetError, WindowDataset, WindowMix, open_dataset
from world_model.model import WorldModel
from world_model.train import (
    CHECKPOINT_FILE,
    CheckpointError,
    CheckpointMismatchError,
    RetrievalProbe,
    check_shapes,
    read_checkpoint,
    resolve_device,
    train,
)

log = logging.getLogger("drive.train")

RUN_FILE = "run.json"
#: settings that may change when a run resumes (budget, machine, logging)
RESUMABLE = (
    "optim.steps", "optim.log_every", "optim.eval_every", "optim.eval_batches", "optim.probe_every",
    "optim.checkpoint_every", "max_minutes", "device", "threads", "tensorboard", "out", "cache_dir",
)  # fmt: skip


class TensorBoardCallback:
    """Writes the trainer's scalars and retrieval probes to ``folder`` and logs a line per
    validation."""

    def __init__(self, folder: Path | None) -> None:
        self.writer: Any = None
        if folder is not None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(folder))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if self.writer is not None:
            for key, value in values.items():
                if math.isfinite(value):
                    self.writer.add_scalar(key, value, step)
        if "pred/err_mean" in values:
            last = max(int(k.rsplit("h", 1)[1]) for k in values if k.startswith("pred/copy_last_err_h"))
            log.info(
                "step %d: val latent error at h%d %.4f (copy-last %.4f), effective rank %.1f, "
                "collision AUROC within 1 s %.3f",
                step,
                last,
                values[f"pred/err_h{last}"],
                values[f"pred/copy_last_err_h{last}"],
                values.get("collapse/val_effective_rank", float("nan")),
                values.get("heads/auroc_collision_10", float("nan")),
            )
        elif "loss/total" in values:
            log.info(
                "step %d: loss %.4f (latent %.4f, events %.4f), %.1f windows/s",
                step,
                values["loss/total"],
                values["loss/latent"],
                values.get("loss/events", float("nan")),
                values.get("perf/windows_per_s", float("nan")),
            )

    def probe(self, step: int, probe: RetrievalProbe) -> None:
        if self.writer is not None:
            self.writer.add_image("probe/retrieval", probe_grid(probe), step, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def probe_grid(probe: RetrievalProbe, gap: int = 4) -> np.ndarray:
    """One picture ``uint8 [rows·H', (1 + 2S)·W', 3]`` of a retrieval probe: per query row, the
    BEV at the rollout start, then for each probed step the true BEV and the retrieved one."""
    Q, S = probe.truth.shape[:2]
    tiles = []
    for q in range(Q):
        row = [bev_to_rgb(probe.inputs[q])]
        for s in range(S):
            row += [bev_to_rgb(probe.truth[q, s]), bev_to_rgb(probe.retrieved[q, s])]
        h, w = row[0].shape[:2]
        line = np.full((h, len(row) * (w + gap) - gap, 3), 255, dtype=np.uint8)
        for i, tile in enumerate(row):
            line[:, i * (w + gap) : i * (w + gap) + w] = tile
        tiles.append(line)
    h, width = tiles[0].shape[:2]
    grid = np.full((Q * (h + gap) - gap, width, 3), 255, dtype=np.uint8)
    for q, line in enumerate(tiles):
        grid[q * (h + gap) : q * (h + gap) + h] = line
    return grid


def check_run(out: Path, settings: dict[str, Any]) -> None:
    """Write ``out/run.json`` for a new run; for an existing one, refuse settings that differ
    (naming the fields, ``sim_bridge.runfolder``) but for :data:`RESUMABLE`."""
    path = out / RUN_FILE
    if path.exists():
        try:
            runfolder.check_settings(json.loads(path.read_text()), settings, where=str(out), ignore=RESUMABLE)
        except runfolder.SettingsMismatch as e:
            raise SystemExit(f"drive train: {e}") from None
    write_json_atomic(path, settings)


def open_splits(
    cfg: DictConfig, window: int
) -> tuple[WindowDataset | WindowMix, WindowDataset | WindowMix | None]:
    """The train split and (when it holds episodes) the validation split of the budget prefix of
    ``cfg.data``, with every collection of ``cfg.extra_data`` whole beside it."""
    kwargs: dict[str, Any] = dict(
        hours=None if cfg.hours is None else float(cfg.hours),
        window=window,
        val_fraction=float(cfg.val_fraction),
        seed=int(cfg.split_seed),
        cache_dir=cfg.cache_dir,
    )
    extra = [str(p) for p in (cfg.get("extra_data") or [])]

    def split(name: str) -> WindowDataset | WindowMix:
        parts = [open_dataset(cfg.data, split=name, **kwargs)]
        for path in extra:  # whole collections beside the budget prefix
            try:
                parts.append(open_dataset(path, split=name, **{**kwargs, "hours": None}))
            except DatasetError as exc:  # a tiny extra collection can hold no validation episode
                if name == "train":
                    raise
                log.warning("%s: no validation episodes (%s)", path, exc)
        return parts[0] if len(parts) == 1 else WindowMix(parts)

    data = split("train")
    try:
        val = split("val")
    except ValueError as exc:
        log.warning("no validation split: %s", exc)
        val = None
    return data, val


def run(cfg: DictConfig) -> int:
    started = time.perf_counter()
    if OmegaConf.is_missing(cfg, "data"):
        raise SystemExit(
            "drive train: give the collection folder, e.g. `drive train data=outputs/collect/explore`"
        )
    settings: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
    model_cfg: ModelConfig = from_dict(ModelConfig, settings["model"])
    loss_cfg: LossConfig = from_dict(LossConfig, settings["loss"])
    optim_cfg: OptimConfig = from_dict(OptimConfig, settings["optim"])
    if cfg.threads > 0:
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(str(cfg.device))
    window = int(cfg.window) or loss_cfg.horizon + 1
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    check_run(out, settings)

    data, val = open_splits(cfg, window)
    log.info(
        "data %s: %.3f h prefix → train %d episodes (%.3f h, %d windows), val %s; device %s, %d thread(s)",
        cfg.data,
        data.prefix_seconds / 3600.0,
        len(data.episodes),
        data.sim_seconds / 3600.0,
        len(data),
        "none" if val is None else f"{len(val.episodes)} episodes ({val.sim_seconds / 3600.0:.3f} h)",
        device,
        torch.get_num_threads(),
    )
    torch.manual_seed(optim_cfg.seed)
    model = WorldModel(model_cfg, data.bev_shape, int(data.ego.shape[1]))  # type: ignore[arg-type]
    if cfg.get("init") and not (out / CHECKPOINT_FILE).exists():
        init_weights(model, str(cfg.init))
    callback = TensorBoardCallback(out / "tensorboard" if cfg.tensorboard else None)
    try:
        summary = train(model, data, val, loss_cfg, optim_cfg, out, callback, device, float(cfg.max_minutes))
    finally:
        callback.close()
    summary.update(
        data=str(cfg.data),
        hours=cfg.hours,
        extra_data=[str(p) for p in (cfg.get("extra_data") or [])],
        init=cfg.get("init"),
        data_sim_hours=round(data.prefix_seconds / 3600.0, 4),
        train_sim_hours=round(data.sim_seconds / 3600.0, 4),
        val_sim_hours=None if val is None else round(val.sim_seconds / 3600.0, 4),
        threads=torch.get_num_threads(),
        device=str(device),
        total_wall_seconds=round(time.perf_counter() - started, 1),
    )
    write_json_atomic(out / "summary.json", json_safe(summary))
    brief = {k: v for k, v in summary.items() if k != "eval"}
    brief.update({k: round(v, 4) for k, v in summary["eval"].items() if _headline(k) and math.isfinite(v)})
    print(json.dumps(brief), flush=True)
    return 0


def init_weights(model: WorldModel, path: str) -> None:
    """Load the weights of the checkpoint at ``path`` into ``model`` (fine-tuning); raises
    ``SystemExit`` naming the differing fields when the checkpoint is another architecture."""
    try:
        state = read_checkpoint(path, "cpu")
        check_shapes(state["shapes"], model, path)
    except (OSError, CheckpointError, CheckpointMismatchError) as e:
        raise SystemExit(f"drive train: init={path}: {e}") from None
    model.load_state_dict(state["model"])
    log.info("init: weights of %s", path)


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float replaced by ``None`` (JSON has no NaN)."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _headline(key: str) -> bool:
    return key in ("pred/err_mean", "collapse/val_effective_rank", "heads/auroc_collision_5",
                   "heads/auroc_collision_10", "heads/ece_collision_10")  # fmt: skip
