"""``drive wm-eval checkpoint=<run>/last.pt data=<collection>``: diagnostics of a world model on
held-out episodes, written as JSON and printed as a table.

Every step of the selected episodes is encoded once (``z``); a rollout starts at every step, with
the episode's own actions, for up to ``horizon`` steps (steps past the episode's end are masked;
the heads' figures need no successor frame). Figures:

- **prediction error** per horizon step ``k``: mean over dimensions of ``(ẑ_k − z_{t+k})²``,
  beside the copy-last-latent baseline ``(z_t − z_{t+k})²``, and both relative to the variance of
  ``z`` (1 = as bad as predicting the mean);
- **collision head**: AUROC and expected calibration error (10 bins) of P(collision within 0.5 s /
  1 s from now), read from the first predicted latent's window heads; the same windows composed
  the way a planner reads a candidate action sequence, ``1 − Π_k (1 − p_k)`` over the per-step
  heads of ``ẑ_1 … ẑ_n`` rolled out with the actions taken (``…_rollout``); and the rollout's own
  collision probability ``k`` steps ahead (``event_within[0]`` window of ``ẑ_k``) against a
  collision in step ``k − 1``;
- **proximity heads** per horizon step: mean absolute error [m] and R² of the nearest-actor
  distance and the free gap ahead read from ``ẑ_k`` (``world_model.proximity``);
- **linear probes** (ridge, closed form): from ``ẑ_k`` to the ego displacement after ``k`` steps
  (x forward, y left in the start pose [m]) and to the nearest-agent distance at ``t + k`` [m]
  (raw, and clipped at :data:`NEAREST_VISIBLE`, the range the BEV shows in every direction) and
  to the free gap ahead;
  fitted on half of the episodes (by a hash of their id), R² on the other half; the same probes
  from the true encoding ``z_{t+k}`` and from ``z_t`` (copy-last) for reference;
- **collapse**: effective rank and mean std of ``z``.

With ``probe.enabled`` a coarse-BEV probe is trained on the model's frozen latents and ``probe.gif``
(predicted BEV futures beside the real ones on held-out windows) is written beside the report
(``drive/pipelines/wm_probe.py``).

With ``counterfactual.enabled`` the report also holds ``counterfactual``: the model against reality
on several action sequences from the same held-out scenario states (``drive/pipelines/
counterfactual.py``), which says whether it can choose between actions.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from drive import build
from drive.pipelines.counterfactual import evaluate_counterfactual
from drive.pipelines.counterfactual import table as counterfactual_table
from drive.pipelines.train import json_safe
from drive.schemas import CounterfactualConfig
from sim_bridge.runfolder import write_json_atomic
from world_model import losses
from world_model.batch import EVENT
from world_model.counterfactual import compose_motion
from world_model.dataset import WindowDataset, episode_unit, select_prefix
from world_model.diagnostics import auroc, effective_rank, embedding_std, expected_calibration_error
from world_model.fast_rollout import FastRollout
from world_model.model import EVENT_HEADS, PROXIMITY_COLUMNS, WorldModel
from world_model.proximity import NEAREST_VISIBLE
from world_model.shards import read_manifest
from world_model.train import load_model, resolve_device

log = logging.getLogger("drive.wm_eval")

#: horizon steps shown in the printed table (all steps are in the JSON)
TABLE_STEPS = (1, 2, 3, 5, 7, 10, 15)


@dataclass(frozen=True)
class Steps:
    """The selected episodes' steps, in storage order. ``S`` steps, ``M`` episodes."""

    z: np.ndarray
    """``float32 [S, D]`` encodings."""
    action: np.ndarray
    """``float32 [S, 2]``"""
    events: np.ndarray
    """``float32 [S, NUM_EVENTS]``"""
    episode: np.ndarray
    """``int64 [S]`` episode id of each step."""
    end: np.ndarray
    """``int64 [S]`` one past the last row of each step's episode."""
    proximity: np.ndarray
    """``float32 [S, 2]`` nearest actor and free gap ahead at the end of each step [m] (NaN: unknown)."""


def open_steps(cfg: DictConfig) -> WindowDataset:
    """Every step of the selected episodes as one-step windows (``window=1``): the ``hours``
    prefix of ``data`` without its first ``after_hours``, then the ``split`` of the hash split."""
    path = Path(cfg.data)
    manifest = read_manifest(path)
    hours = None if cfg.hours is None else float(cfg.hours)
    chosen = select_prefix(manifest, hours)
    if cfg.after_hours > 0:
        skip = {(k, e) for k, eps in select_prefix(manifest, float(cfg.after_hours)) for e in eps}
        chosen = [(k, [e for e in eps if (k, e) not in skip]) for k, eps in chosen]
        chosen = [(k, eps) for k, eps in chosen if eps]
        if not chosen:
            raise SystemExit(
                f"drive wm-eval: no episodes of {path} lie after its first {cfg.after_hours} h "
                f"(hours={cfg.hours}); collect more or lower after_hours"
            )
    if cfg.split not in ("all", "train", "val"):
        raise SystemExit(f"drive wm-eval: split={cfg.split!r}; choose all, train or val")
    return WindowDataset(path, manifest, chosen, window=1, split=str(cfg.split), val_fraction=float(cfg.val_fraction),
                         seed=int(cfg.split_seed), min_valid=1, cache_dir=None)  # fmt: skip


@torch.no_grad()
def encode_steps(model: WorldModel, ds: WindowDataset, batch_size: int, device: torch.device) -> Steps:
    """Encode every step of ``ds`` (one-step windows, in storage order)."""
    zs = []
    for i in range(0, len(ds), batch_size):
        b = ds.batch(np.arange(i, min(i + batch_size, len(ds))))
        bev = torch.from_numpy(b.bev[:, 0]).to(device)
        ego = torch.from_numpy(b.ego[:, 0]).to(device)
        zs.append(model.encode(bev, ego).float().cpu().numpy())
    ends = np.cumsum(ds.episode_lengths)
    return Steps(
        z=np.concatenate(zs),
        action=ds.action.astype(np.float32),
        events=ds.events.astype(np.float32),
        episode=np.repeat(ds.episodes, ds.episode_lengths),
        end=np.repeat(ends, ds.episode_lengths),
        proximity=ds.proximity.astype(np.float32),
    )


def ego_displacement(events: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``[N, H, 2]`` ego position after each of ``H`` steps in the start pose's frame (x forward,
    y left) [m], composed from the steps' ``dx, dy, dyaw`` (``events: [N, H, K]``); steps where
    ``valid: [N, H]`` is False add nothing."""
    dx = np.where(valid, events[..., EVENT["dx"]], 0.0)
    dy = np.where(valid, events[..., EVENT["dy"]], 0.0)
    dyaw = np.where(valid, events[..., EVENT["dyaw"]], 0.0)
    return compose_motion(dx, dy, dyaw)


def ridge_r2(
    x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, ridge: float
) -> list[float]:
    """R² per target column of a ridge regression ``y ≈ [x, 1] W`` fitted in closed form on the
    fit rows (penalty ``ridge`` × the mean feature variance, bias unpenalised), scored on the test
    rows. ``x: [N, D]``, ``y: [N, P]``; NaN when a side has fewer than 2 rows."""
    if len(x_fit) < 2 or len(x_test) < 2:
        return [float("nan")] * y_fit.shape[1]
    x_fit, x_test = x_fit.astype(np.float64), x_test.astype(np.float64)
    mean, y_mean = x_fit.mean(0), y_fit.mean(0)
    xc = x_fit - mean
    gram = xc.T @ xc
    lam = ridge * max(float(np.trace(gram)) / gram.shape[0], 1e-12)
    w = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), xc.T @ (y_fit - y_mean))
    pred = (x_test - mean) @ w + y_mean
    resid = ((y_test - pred) ** 2).sum(0)
    total = ((y_test - y_test.mean(0)) ** 2).sum(0)
    return [float(1.0 - r / t) if t > 0 else float("nan") for r, t in zip(resid, total, strict=True)]


@torch.no_grad()
def evaluate(
    model: WorldModel,
    steps: Steps,
    horizon: int,
    dt: float,
    ridge: float,
    batch_size: int,
    device: torch.device,
) -> dict[str, Any]:
    """Every figure of the module doc, as a JSON-ready dict (``dt``: decision period [s])."""
    S, D = steps.z.shape
    H = horizon
    starts = np.arange(S)  # a rollout from every step (the heads need no successor frame)
    # window rows (clipped to the episode) and masks: target k exists when t + k < end
    offs = np.arange(H + 1)
    win = starts[:, None] + offs  # [N, H + 1]
    valid = win < steps.end[starts, None]
    win = np.minimum(win, steps.end[starts, None] - 1)
    target_ok = valid[:, 1:]  # [N, H]
    # --- roll out from every start (fast path: no autograd)
    roll = FastRollout(model.predictor)
    preds = []
    for i in range(0, len(starts), batch_size):
        sl = slice(i, i + batch_size)
        z_start = torch.from_numpy(steps.z[starts[sl]]).to(device)
        act = np.where(valid[sl, :H, None], steps.action[win[sl, :H]], 0.0).astype(np.float32)
        preds.append(roll(z_start, torch.from_numpy(act).to(device)).cpu().numpy())
    pred = np.concatenate(preds)  # [N, H, D]
    z0 = steps.z[starts]
    target = steps.z[win[:, 1:]]  # [N, H, D]
    var = float(steps.z.var(0).mean())
    out: dict[str, Any] = {"windows": len(starts), "steps": int(S), "episodes": len(np.unique(steps.episode)),
                           "latent": D, "z_variance": var}  # fmt: skip
    # --- prediction error vs horizon
    err = ((pred - target) ** 2).mean(-1)
    err_copy = ((z0[:, None] - target) ** 2).mean(-1)
    n = target_ok.sum(0)
    out["prediction"] = [
        {
            "step": k + 1,
            "seconds": round((k + 1) * dt, 3),
            "windows": int(n[k]),
            "error": float(err[target_ok[:, k], k].mean()),
            "copy_last": float(err_copy[target_ok[:, k], k].mean()),
            "relative_error": float(err[target_ok[:, k], k].mean() / max(var, 1e-12)),
            "relative_copy_last": float(err_copy[target_ok[:, k], k].mean() / max(var, 1e-12)),
        }
        for k in range(H)
        if n[k] > 0
    ]
    # --- event heads: P(event within n steps) from the first predicted latent, and per rollout step
    ev_win = steps.events[win[:, :H]] * valid[:, :H, None]  # [N, H, K]
    ev_t = torch.from_numpy(ev_win)
    within = list(model.config.event_within)
    targets, masks = losses.event_targets(ev_t, torch.from_numpy(valid[:, :H]), within, H)  # [N, H, 3, K]
    probs = []
    for i in range(0, len(starts), batch_size):
        p = torch.stack(
            [model.heads(torch.from_numpy(pred[i : i + batch_size]).to(device))[h] for h in EVENT_HEADS], -2
        )
        probs.append(p.cpu())
    P = torch.cat(probs).numpy()  # [N, H, 3, K]
    T, M = targets.numpy(), masks.numpy()  # [N, H, 3, K]
    heads: dict[str, Any] = {}
    for i, name in enumerate(EVENT_HEADS):
        for k, w in enumerate(within):
            sel = M[:, 0, i, k]
            p, y = P[:, 0, i, k][sel], T[:, 0, i, k][sel]
            heads[f"{name}_within_{w * dt:g}s"] = {
                "auroc": auroc(p, y),
                "ece": expected_calibration_error(p, y),
                "positives": int(y.sum()),
                "count": len(y),
                "mean_probability": float(p.mean()) if len(p) else float("nan"),
                "rate": float(y.mean()) if len(y) else float("nan"),
            }
    # the planner's reading: P(collision within 1 s) composed from the per-step heads of the rollout
    # with the actions actually taken, 1 − Π_k (1 − p_k) over the steps of the window
    for k, w in enumerate(within):
        if w == 1:
            continue
        p_step = np.where(M[:, :w, 0, 0], P[:, :w, 0, 0], 0.0)  # this step's collision, steps 1…w
        p = 1.0 - np.prod(1.0 - p_step, axis=1)
        sel = M[:, 0, 0, k]
        y = T[:, 0, 0, k][sel]
        heads[f"collision_within_{w * dt:g}s_rollout"] = {
            "auroc": auroc(p[sel], y), "ece": expected_calibration_error(p[sel], y), "positives": int(y.sum()),
            "count": len(y), "mean_probability": float(p[sel].mean()) if sel.any() else float("nan"),
            "rate": float(y.mean()) if len(y) else float("nan"),
        }  # fmt: skip
    # --- proximity heads along the rollout: mean absolute error [m] and R² against the truth
    prox_true = np.where(valid[:, :H, None], steps.proximity[win[:, :H]], np.nan)  # [N, H, 2]
    prox_pred = np.concatenate(
        [model.proximity(torch.from_numpy(pred[i : i + batch_size]).to(device)).cpu().numpy()
         for i in range(0, len(starts), batch_size)]
    )  # fmt: skip
    proximity = []
    for k in range(H):
        row: dict[str, Any] = {"step": k + 1}
        for j, name in enumerate(PROXIMITY_COLUMNS):
            yt, yp = prox_true[:, k, j], prox_pred[:, k, j]
            ok = np.isfinite(yt)
            var = float(yt[ok].var()) if ok.sum() > 1 else float("nan")
            mse = float(((yp[ok] - yt[ok]) ** 2).mean()) if ok.any() else float("nan")
            row[name] = {"mae": float(np.abs(yp[ok] - yt[ok]).mean()) if ok.any() else float("nan"),
                         "r2": 1.0 - mse / var if var > 0 else float("nan")}  # fmt: skip
        proximity.append(row)
    out["proximity"] = proximity
    rollout_collision = []
    for k in range(H):
        sel = M[:, k, 0, 0]
        p, y = P[:, k, 0, 0][sel], T[:, k, 0, 0][sel]
        rollout_collision.append({"step": k + 1, "auroc": auroc(p, y), "ece": expected_calibration_error(p, y),
                                  "positives": int(y.sum())})  # fmt: skip
    out["heads"] = heads
    out["rollout_collision"] = rollout_collision
    # --- linear probes, fitted on half of the episodes
    fit = episode_unit(steps.episode[starts], 12345) < 0.5
    disp = ego_displacement(ev_win, valid[:, :H])  # [N, H, 2]
    nearest = steps.events[win[:, :H], EVENT["nearest"]]  # at t + k: the end of step t + k − 1
    gap = steps.proximity[win[:, :H], 1]  # likewise (NaN at an episode's last step)
    probes = []
    for k in range(H):
        ok = target_ok[:, k] & np.isfinite(gap[:, k])
        y = np.concatenate(
            [
                disp[:, k],
                nearest[:, k, None],
                np.minimum(nearest[:, k, None], NEAREST_VISIBLE),
                gap[:, k, None],
            ],
            1,
        )
        entry: dict[str, Any] = {"step": k + 1}
        for source, x in (("predicted", pred[:, k]), ("encoded", target[:, k]), ("copy_last", z0)):
            r2 = ridge_r2(x[ok & fit], y[ok & fit], x[ok & ~fit], y[ok & ~fit], ridge)
            entry[source] = {
                "dx": r2[0],
                "dy": r2[1],
                "nearest": r2[2],
                "nearest_visible": r2[3],
                "gap_ahead": r2[4],
            }
        probes.append(entry)
    out["probes"] = probes
    # --- collapse
    z = torch.from_numpy(steps.z)
    out["effective_rank"] = effective_rank(z)
    out["embedding_std"] = embedding_std(z)
    return out


def table(report: dict[str, Any]) -> str:
    """The report's headline figures as a text table."""
    lines = [
        f"{report['episodes']} episodes, {report['steps']} steps, {report['windows']} rollouts; "
        f"effective rank {report['effective_rank']:.1f} of {report['latent']}, z std {report['embedding_std']:.3f}",
        "",
        f"{'step':>4} {'s':>4} {'err':>8} {'copy':>8} {'rel':>6} {'rel_cp':>6}  "
        f"{'R2 dx':>6} {'R2 dy':>6} {'R2 near':>7} {'≤16m':>6} {'R2 gap':>6}  {'coll AUROC':>10}  "
        f"{'near MAE':>8} {'gap MAE':>7}",
    ]
    prox = {p["step"]: p for p in report.get("proximity", [])}
    by_step = {p["step"]: p for p in report["prediction"]}
    probes = {p["step"]: p for p in report["probes"]}
    coll = {c["step"]: c for c in report["rollout_collision"]}
    for k in TABLE_STEPS:
        if k not in by_step:
            continue
        p, r = by_step[k], probes[k]["predicted"]
        lines.append(
            f"{k:>4} {p['seconds']:>4.1f} {p['error']:>8.4f} {p['copy_last']:>8.4f} {p['relative_error']:>6.3f} "
            f"{p['relative_copy_last']:>6.3f}  {r['dx']:>6.3f} {r['dy']:>6.3f} {r['nearest']:>7.3f} "
            f"{r['nearest_visible']:>6.3f} {r['gap_ahead']:>6.3f}  "
            f"{coll[k]['auroc']:>10.3f}  "
            f"{prox[k]['nearest']['mae']:>8.2f} {prox[k]['gap_ahead']['mae']:>7.2f}"
        )
    lines.append("")
    for name, h in report["heads"].items():
        if name.startswith("collision"):
            lines.append(
                f"{name:<32} AUROC {h['auroc']:.3f}  ECE {h['ece']:.4f}  positives {h['positives']}/{h['count']}  "
                f"mean p {h['mean_probability']:.4f} vs rate {h['rate']:.4f}"
            )
    return "\n".join(lines)


def run(cfg: DictConfig) -> int:
    for key in ("checkpoint", "data"):
        if OmegaConf.is_missing(cfg, key):
            raise SystemExit(
                f"drive wm-eval: give {key}=…, e.g. `drive wm-eval checkpoint=outputs/train/h0.5/last.pt data=<collection>`"
            )
    if cfg.threads > 0:
        torch.set_num_threads(int(cfg.threads))
    device = resolve_device(str(cfg.device))
    model = load_model(cfg.checkpoint, device)
    ds = open_steps(cfg)
    log.info("encoding %d steps of %d episodes from %s", ds.steps, len(ds.episodes), cfg.data)
    steps = encode_steps(model, ds, int(cfg.batch_size), device)
    report = evaluate(model, steps, int(cfg.horizon), ds.dt, float(cfg.ridge), int(cfg.batch_size), device)
    report.update(checkpoint=str(cfg.checkpoint), data=str(cfg.data), hours=cfg.hours, after_hours=cfg.after_hours,
                  split=str(cfg.split))  # fmt: skip
    if cfg.counterfactual.enabled:
        cf = build.to_object(cfg.counterfactual, CounterfactualConfig)
        sim_node = read_manifest(Path(cfg.data)).config.get("sim", {})
        log.info(
            "counterfactual: %d families × %d seeds × %d states",
            len(cf.families),
            len(cf.seeds),
            len(cf.at_steps),
        )
        members = [model, *(load_model(path, device) for path in cfg.ensemble)]
        report["counterfactual"] = evaluate_counterfactual(members, sim_node, cf, device)
        report["counterfactual"]["ensemble"] = [str(cfg.checkpoint), *map(str, cfg.ensemble)]
    out = Path(cfg.out) if cfg.out else Path(cfg.checkpoint).with_name("wm_eval.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    if cfg.probe.enabled:
        from drive.pipelines.wm_probe import run_probe

        report["probe"] = run_probe(model, cfg, open_steps, device, out.with_name("probe.gif"))
    write_json_atomic(out, json_safe(report))
    print(table(report))
    if "counterfactual" in report:
        print()
        print(counterfactual_table(report["counterfactual"]))
    print(json.dumps({"report": str(out)}), flush=True)
    return 0
