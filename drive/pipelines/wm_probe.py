"""``drive wm-eval … probe.enabled=true``: the coarse-BEV probe (``world_model.probe``) trained on a
model's frozen latents, and a GIF of its predicted BEV futures beside the real ones.

Training rows, from the ``train`` split of the data: every step's encoding ``z_t`` with the coarse
BEV of step ``t``, and the predicted latents ``ẑ_{t+k}`` (``k = 1 … horizon``, rolled out with the
episode's own actions from every ``probe.stride``-th step) with the coarse BEV of step ``t + k``.
The model runs in inference mode only; the probe sees arrays.

Held out, from the ``val`` split: ``probe.windows`` starts spread over the episodes, each rolled out
``horizon`` steps; frame ``k`` of the GIF shows, for every window, the real coarse BEV of step
``t + k`` (left) beside the probe's reading of ``ẑ_{t+k}`` (right; ``k = 0``: of the encoding ``z_t``).
The report gets the probe's IoU per channel and horizon step on every held-out rollout.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig
from PIL import Image, ImageDraw, ImageFont

from sim_bridge.replay_video import write_video
from sim_bridge.sensors.layout import BevChannel
from world_model.dataset import WindowDataset
from world_model.fast_rollout import FastRollout
from world_model.model import WorldModel
from world_model.probe import PROBE_CHANNELS, ProbeFit, coarse_bev, train_probe

log = logging.getLogger("drive.wm_eval")

#: colour of each probed channel in the GIF, painted in ``PROBE_CHANNELS`` order
PROBE_RGB: dict[int, tuple[int, int, int]] = {
    BevChannel.DRIVABLE: (95, 95, 95),
    BevChannel.VEHICLES: (60, 160, 255),
    BevChannel.PEDESTRIANS: (255, 120, 200),
}
_SCALE = 8  # GIF pixels per probe block
_HEADER = 80


@dataclass(frozen=True)
class Encoded:
    """A split's steps: encodings, coarse BEVs, actions, episode ends. ``S`` steps."""

    z: np.ndarray  # float32 [S, D]
    coarse: np.ndarray  # float32 [S, K, P, P]
    action: np.ndarray  # float32 [S, 2]
    end: np.ndarray  # int64 [S] one past the last row of the step's episode


@torch.no_grad()
def encode_coarse(model: WorldModel, ds: WindowDataset, size: int, batch_size: int, device: Any) -> Encoded:
    """Encode every step of ``ds`` (one-step windows) and pool its BEV to the probe's size."""
    zs, coarse = [], []
    for i in range(0, len(ds), batch_size):
        b = ds.batch(np.arange(i, min(i + batch_size, len(ds))))
        zs.append(
            model.encode(torch.from_numpy(b.bev[:, 0]).to(device), torch.from_numpy(b.ego[:, 0]).to(device))
        )
        coarse.append(coarse_bev(b.bev[:, 0], size))
    ends = np.cumsum(ds.episode_lengths)
    return Encoded(
        z=torch.cat(zs).float().cpu().numpy(),
        coarse=np.concatenate(coarse),
        action=ds.action.astype(np.float32),
        end=np.repeat(ends, ds.episode_lengths).astype(np.int64),
    )


@torch.no_grad()
def rollouts(
    model: WorldModel, enc: Encoded, starts: np.ndarray, horizon: int, device: Any, batch_size: int = 256
) -> np.ndarray:
    """``ẑ [n, H, D]`` from ``z_t`` of ``starts`` (each with ``horizon`` steps left in its episode)
    with the episode's own actions."""
    roll = FastRollout(model.predictor)
    parts = []
    for i in range(0, len(starts), batch_size):
        s = starts[i : i + batch_size]
        z0 = torch.from_numpy(enc.z[s]).to(device)
        actions = torch.from_numpy(enc.action[s[:, None] + np.arange(horizon)]).to(device)
        parts.append(roll(z0, actions).float().cpu().numpy())
    return np.concatenate(parts) if parts else np.zeros((0, horizon, enc.z.shape[1]), np.float32)


def full_starts(enc: Encoded, horizon: int) -> np.ndarray:
    """Steps with ``horizon`` successors in their own episode."""
    s = np.arange(len(enc.z))
    return s[s + horizon < enc.end]


def iou(pred: np.ndarray, real: np.ndarray) -> np.ndarray:
    """``[K]`` intersection over union of ``pred > 0.5`` and ``real`` (``[..., K, P, P]``); NaN for
    a channel empty in both."""
    p = np.moveaxis(pred > 0.5, -3, 0).reshape(pred.shape[-3], -1)
    r = np.moveaxis(real > 0.5, -3, 0).reshape(real.shape[-3], -1)
    union = (p | r).sum(1)
    return np.where(union > 0, (p & r).sum(1) / np.maximum(union, 1), np.nan)


def picture(coarse: np.ndarray) -> np.ndarray:
    """``[K, P, P]`` values in ``[0, 1]`` (a probability or a truth) → ``uint8 [P·8, P·8, 3]``:
    each channel's colour blended over black by its value, in ``PROBE_CHANNELS`` order."""
    k, p, _ = coarse.shape
    rgb = np.zeros((p, p, 3), dtype=np.float64)
    for c, ch in enumerate(PROBE_CHANNELS[:k]):
        a = np.clip(coarse[c], 0.0, 1.0)[..., None]
        rgb = rgb * (1.0 - a) + np.asarray(PROBE_RGB[ch], dtype=np.float64) * a
    img = rgb.astype(np.uint8)
    return np.repeat(np.repeat(img, _SCALE, axis=0), _SCALE, axis=1)


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):
        return ImageFont.load_default()


def probe_frames(real: np.ndarray, pred: np.ndarray, dt: float) -> list[np.ndarray]:
    """``real, pred [W, H + 1, K, P, P]`` → ``H + 1`` frames: a row per window, the real coarse BEV
    left of the probe's reading, the step ``k`` and its time in the header."""
    n_win, n_steps = real.shape[:2]
    side = real.shape[-1] * _SCALE
    gap = 6
    width = 2 * side + 3 * gap
    font = _font(16)
    frames = []
    for k in range(n_steps):
        canvas = np.full((_HEADER + n_win * (side + gap), width, 3), 255, np.uint8)
        for w in range(n_win):
            top = _HEADER + w * (side + gap)
            canvas[top : top + side, gap : gap + side] = picture(real[w, k])
            canvas[top : top + side, 2 * gap + side : 2 * gap + 2 * side] = picture(pred[w, k])
        img = Image.fromarray(canvas)
        draw = ImageDraw.Draw(img)
        what = "encoding z_t" if k == 0 else f"predicted latent, {k} step(s) = {k * dt:.1f} s ahead"
        draw.text((gap, 6), f"k = {k}: {what}", fill=(0, 0, 0), font=font)
        draw.text((gap, 28), "grey drivable, blue vehicles, pink pedestrians", fill=(0, 0, 0), font=font)
        draw.text((gap, 54), "real (coarse BEV)", fill=(0, 0, 0), font=font)
        draw.text((2 * gap + side, 54), "probe (brightness = P)", fill=(0, 0, 0), font=font)
        frames.append(np.asarray(img))
    return frames


def run_probe(model: WorldModel, cfg: DictConfig, open_steps: Any, device: Any, out: Path) -> dict[str, Any]:
    """Train the probe on the ``train`` split and draw ``out`` (a GIF) from the ``val`` split (see the
    module doc); returns the report's ``probe`` entry. ``open_steps(cfg)`` opens a split's steps."""
    pc = cfg.probe
    H, P = int(cfg.horizon), int(pc.size)
    splits = {}
    for split in ("train", "val"):
        sub = copy.deepcopy(cfg)
        sub.split = split
        try:
            splits[split] = open_steps(sub)
        except ValueError as e:  # an empty split
            raise SystemExit(
                f"drive wm-eval: the probe trains on the 'train' split and shows the 'val' split: {e}"
            ) from e
    train_enc = encode_coarse(model, splits["train"], P, int(cfg.batch_size), device)
    starts = full_starts(train_enc, H)[:: max(1, int(pc.stride))]
    z_parts, y_parts = [train_enc.z], [train_enc.coarse]
    if len(starts):
        pred = rollouts(model, train_enc, starts, H, device, int(cfg.batch_size))  # [n, H, D]
        z_parts.append(pred.reshape(-1, pred.shape[-1]))
        y_parts.append(train_enc.coarse[(starts[:, None] + 1 + np.arange(H)).reshape(-1)])
    z, y = np.concatenate(z_parts), np.concatenate(y_parts)
    log.info("probe: %d training rows (%d encodings, %d predicted latents), %d steps", len(z), len(train_enc.z),
             len(z) - len(train_enc.z), int(pc.steps))  # fmt: skip
    fit: ProbeFit = train_probe(z, y, int(pc.steps), int(pc.batch_size), float(pc.lr), seed=int(pc.seed))
    # --- held out
    val_enc = encode_coarse(model, splits["val"], P, int(cfg.batch_size), device)
    val_starts = full_starts(val_enc, H)
    if not len(val_starts):
        raise SystemExit(f"drive wm-eval: no held-out episode is longer than horizon={H} steps for the probe")
    pred = rollouts(model, val_enc, val_starts, H, device, int(cfg.batch_size))
    z_all = np.concatenate([val_enc.z[val_starts, None], pred], axis=1)  # [n, H + 1, D]
    read = fit.predict(z_all.reshape(-1, z_all.shape[-1])).reshape(
        *z_all.shape[:2], len(PROBE_CHANNELS), P, P
    )
    real = val_enc.coarse[val_starts[:, None] + np.arange(H + 1)]  # [n, H + 1, K, P, P]
    names = [BevChannel(c).name.lower() for c in PROBE_CHANNELS]
    per_step = [
        dict(zip(names, (float(v) for v in iou(read[:, k], real[:, k])), strict=True)) for k in range(H + 1)
    ]
    shown = val_starts[
        np.linspace(0, len(val_starts) - 1, min(int(pc.windows), len(val_starts))).round().astype(int)
    ]
    pick = np.searchsorted(val_starts, shown)
    dt = float(splits["val"].dt)
    write_video(probe_frames(real[pick], read[pick], dt), out, fps=int(pc.fps))
    log.info("probe: GIF of %d held-out windows × %d steps written to %s", len(pick), H + 1, out)
    return {
        "gif": str(out),
        "size": P,
        "channels": names,
        "train_rows": len(z),
        "steps": int(pc.steps),
        "loss_first": fit.losses[0] if fit.losses else None,
        "loss_last": fit.losses[-1] if fit.losses else None,
        "held_out_rollouts": len(val_starts),
        "iou": per_step,
    }


__all__ = ["encode_coarse", "iou", "picture", "probe_frames", "run_probe"]
