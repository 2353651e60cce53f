"""``drive bench wm``: world-model speed figures, one JSON line each.

- ``train``: training throughput (windows/s and ms per optimiser step) of the configured model and
  objective, on synthetic windows of the configured shapes (or on a collection's windows with
  ``data=…``), per thread count;
- ``rollout``: latency (wall and CPU time) of one rollout of ``samples`` action sequences × ``horizon`` steps without
  gradients (median of ``repeats``), per thread count, for the model's predictor run eagerly
  (``Predictor.rollout``) and through :class:`world_model.fast_rollout.FastRollout`, beside the
  eager *reference* predictor (latent 64, two 256-wide hidden layers: ``reference_predictor``)
  measured in the same process, so that the ratio is comparable on a busy machine.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from drive.build import from_dict
from world_model.batch import EVENT, NUM_EVENTS, Windows
from world_model.config import LossConfig, ModelConfig, OptimConfig
from world_model.dataset import open_dataset
from world_model.fast_rollout import FastRollout
from world_model.model import Predictor, WorldModel, reference_predictor
from world_model.train import Trainer, load_model


class SyntheticWindows:
    """Random windows of the given shapes (binary BEV, unit-scale ego, actions in [-1, 1], rare
    collisions), drawn from a pool made once, so that a batch costs what a copy costs: for timing."""

    def __init__(
        self, window: int, bev_shape: tuple[int, int, int], ego_dim: int, pool: int = 64, seed: int = 0
    ) -> None:
        self.window = window
        rng = np.random.default_rng(seed)
        T = window
        self.bev = (rng.integers(0, 10, (pool, T, *bev_shape), dtype=np.uint8) == 0).astype(np.uint8) * 255
        self.ego = rng.standard_normal((pool, T, ego_dim)).astype(np.float32)
        self.action = rng.uniform(-1.0, 1.0, (pool, T, 2)).astype(np.float32)
        self.events = np.zeros((pool, T, NUM_EVENTS), dtype=np.float32)
        self.events[..., EVENT["collision"]] = rng.random((pool, T)) < 0.01
        self.events[..., EVENT["speed"]] = rng.uniform(0.0, 15.0, (pool, T))
        self.events[..., EVENT["dx"]] = self.events[..., EVENT["speed"]] * 0.1

    def sample(self, rng: np.random.Generator, batch_size: int) -> Windows:
        idx = rng.integers(0, len(self.bev), batch_size)
        return Windows(
            bev=self.bev[idx],
            ego=self.ego[idx],
            action=self.action[idx],
            events=self.events[idx],
            valid=np.ones((batch_size, self.window), dtype=bool),
            episode=idx.astype(np.int64),
            start=np.zeros(batch_size, dtype=np.int64),
        )


def time_rollout(
    fn: Any, z0: torch.Tensor, actions: torch.Tensor, repeats: int, warmup: int
) -> tuple[float, float]:
    """Median wall time and median CPU time of this process of ``fn(z0, actions)`` over
    ``repeats`` calls after ``warmup`` [ms]. With one thread, the CPU time is what the call takes
    on an idle core even when other work preempts it (the wall time then grows, the CPU time not)."""
    for _ in range(warmup):
        fn(z0, actions)
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn(z0, actions)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return 1000.0 * float(np.median(wall)), 1000.0 * float(np.median(cpu))


def rollout_figures(
    predictor: Predictor, reference: Predictor, cfg: DictConfig, latent: int
) -> list[dict[str, Any]]:
    """Rollout latency of the reference (eager), the model's predictor (eager and fast), per thread count."""
    gen = torch.Generator().manual_seed(int(cfg.seed))
    N, H = int(cfg.samples), int(cfg.horizon)
    actions = torch.rand(N, H, 2, generator=gen) * 2.0 - 1.0
    z_model = torch.randn(N, latent, generator=gen)
    z_ref = torch.randn(N, reference.out.out_features, generator=gen)
    fast = FastRollout(predictor)

    @torch.no_grad()
    def eager(p: Predictor) -> Any:
        return lambda z, a: p.rollout(z, a)

    rows = []
    for threads in cfg.threads:
        torch.set_num_threads(int(threads))
        ref_ms, ref_cpu = time_rollout(eager(reference), z_ref, actions, int(cfg.repeats), int(cfg.warmup))
        for path, fn in (("eager", eager(predictor)), ("fast", fast)):
            ms, cpu = time_rollout(fn, z_model, actions, int(cfg.repeats), int(cfg.warmup))
            rows.append(
                {
                    "figure": "rollout",
                    "path": path,
                    "samples": N,
                    "horizon": H,
                    "threads": int(threads),
                    "latent": latent,
                    "predictor_hidden": predictor.out.in_features,
                    "predictor_layers": len(predictor.hidden) + 1,
                    "ms": round(ms, 3),
                    "cpu_ms": round(cpu, 3),
                    "reference_eager_ms": round(ref_ms, 3),
                    "reference_eager_cpu_ms": round(ref_cpu, 3),
                    "ratio_to_reference": round(ms / ref_ms, 3),
                }
            )
    return rows


def train_figures(
    model: WorldModel, source: Any, loss: LossConfig, optim: OptimConfig, cfg: DictConfig
) -> list[dict[str, Any]]:
    """Training throughput per thread count (two untimed steps first)."""
    rows = []
    for threads in cfg.threads:
        torch.set_num_threads(int(threads))
        trainer = Trainer(model, loss, optim, torch.device("cpu"))
        rng = np.random.default_rng(int(cfg.seed))
        trainer.fit_statistics([source.sample(rng, optim.batch_size)])
        for _ in range(2):
            trainer.train_step(source.sample(rng, optim.batch_size))
        step_s, load_s = [], []
        for _ in range(int(cfg.train_steps)):
            t0 = time.perf_counter()
            batch = source.sample(rng, optim.batch_size)
            t1 = time.perf_counter()
            trainer.train_step(batch)
            step_s.append(time.perf_counter() - t1)
            load_s.append(t1 - t0)
        step, load = float(np.median(step_s)), float(np.median(load_s))
        rows.append(
            {
                "figure": "train",
                "threads": int(threads),
                "batch_size": optim.batch_size,
                "window": source.window,
                "target_frames": len(trainer.target_steps),
                "data": "synthetic" if cfg.data is None else str(cfg.data),
                "ms_per_step": round(1000.0 * step, 1),
                "ms_per_batch_load": round(1000.0 * load, 1),
                "windows_per_s": round(optim.batch_size / (step + load), 1),
                "parameters": sum(p.numel() for p in model.parameters()),
            }
        )
    return rows


def run(cfg: DictConfig) -> int:
    settings = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(settings, dict)
    loss: LossConfig = from_dict(LossConfig, settings["loss"])
    optim: OptimConfig = from_dict(OptimConfig, settings["optim"])
    window = loss.horizon + 1
    if cfg.data is not None:
        source: Any = open_dataset(cfg.data, hours=None, window=window, split="all")
        bev_shape, ego_dim = source.bev_shape, int(source.ego.shape[1])
    else:
        bev_shape = (int(cfg.bev_channels), int(cfg.bev_size), int(cfg.bev_size))
        ego_dim = int(cfg.ego_dim)
        source = SyntheticWindows(window, bev_shape, ego_dim, seed=int(cfg.seed))
    torch.manual_seed(int(cfg.seed))
    if cfg.checkpoint:
        model = load_model(cfg.checkpoint)
    else:
        model = WorldModel(from_dict(ModelConfig, settings["model"]), bev_shape, ego_dim)
    reference = reference_predictor(64, int(cfg.reference_hidden))
    for row in rollout_figures(model.predictor, reference, cfg, model.latent):
        print(json.dumps(row), flush=True)
    if cfg.train_steps > 0:
        if tuple(model.bev_shape) != tuple(bev_shape) or model.ego_dim != ego_dim:
            raise SystemExit(
                f"drive bench wm: the checkpoint's model takes bev {model.bev_shape}, ego {model.ego_dim}; "
                f"the data has {bev_shape}, {ego_dim}"
            )
        for row in train_figures(model, source, loss, optim, cfg):
            print(json.dumps(row), flush=True)
    return 0
