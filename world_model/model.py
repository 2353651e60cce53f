"""The JEPA latent world model: ``encode`` observations to a latent, ``predict`` the next latent from
an action, ``rollout`` action sequences in one batched call, and cost heads on latents.

Letters: ``B`` batch, ``H`` horizon, ``D`` latent, ``C, H, W`` BEV image, ``E`` ego vector,
``K`` event windows (``ModelConfig.event_within``).

Head semantics: a latent ``z`` is the state *after* a step. ``collision(z)[..., k]`` is the
probability that the ego collides during that step or the ``event_within[k] - 1`` steps after it
(so ``event_within = [1, 5, 10]`` gives "this step", "within 0.5 s", "within 1 s" at 10 Hz);
``off_road`` and ``red_light`` likewise. ``motion(z)`` is that step's ego motion (dx, dy in the
frame of the step's start pose [m], dyaw [rad], end speed [m/s]); ``progress(z)`` its route
progress [m]; ``proximity(z)`` the nearest other actor and the free gap ahead at the step's end
[m] (``world_model.proximity``: dense targets that make the latent keep other actors). Training
applies the heads to *predicted* latents, as the planner does.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from world_model.config import ModelConfig
from world_model.proximity import PROXIMITY_COLUMNS, PROXIMITY_SCALE

#: event heads, in the order of their logits (each has ``len(event_within)`` outputs)
EVENT_HEADS = ("collision", "off_road", "red_light")
#: regression heads' columns (normalised by the data's mean and std in the model's buffers)
REGRESSION_COLUMNS = ("dx", "dy", "dyaw", "speed", "progress")
ACTION_DIM = 2


class BevEncoder(nn.Module):
    """``uint8 [N, C, H, W]`` → features ``[N, F]``: a ``pool``× max-pool on the uint8 image (cheap,
    and it shrinks what is converted to float), a patchify stem, then 3×3 stride-2 convs."""

    def __init__(
        self, in_channels: int, size: tuple[int, int], pool: int, stem: int, channels: list[int]
    ) -> None:
        super().__init__()
        if pool < 1 or size[0] % pool or size[1] % pool:
            raise ValueError(f"pool={pool} must be >= 1 and divide the BEV size {size}")
        self.pool = pool
        layers: list[nn.Module] = [nn.Conv2d(in_channels, channels[0], stem, stride=stem), nn.ReLU()]
        for c_in, c_out in itertools.pairwise(channels):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU()]
        layers.append(nn.Flatten())
        self.net = nn.Sequential(*layers)
        with torch.no_grad():
            self.out_features = int(
                self.forward(torch.zeros(1, in_channels, *size, dtype=torch.uint8)).shape[1]
            )

    def forward(self, bev: Tensor) -> Tensor:
        x, rest = bev, self.pool
        while rest % 2 == 0:  # 2×2 max-pool as two maxima of strided uint8 views (little memory traffic)
            x = torch.maximum(x[..., 0::2, :], x[..., 1::2, :])
            x = torch.maximum(x[..., 0::2], x[..., 1::2])
            rest //= 2
        x = x.to(torch.float32, copy=True).mul_(1.0 / 255.0)
        if rest > 1:
            x = F.max_pool2d(x, rest)
        return self.net(x)


class Predictor(nn.Module):
    """Residual MLP ``z' = z + f([z, a])``. The first layer is split into a latent part and an action
    part, so that a rollout projects all its actions in one matrix product (:meth:`rollout`)."""

    inp_z: nn.Linear
    inp_a: nn.Linear
    out: nn.Linear

    def __init__(self, latent: int, hidden: int, layers: int) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"predictor_layers must be >= 1, got {layers}")
        self.inp_z = nn.Linear(latent, hidden)
        self.inp_a = nn.Linear(ACTION_DIM, hidden, bias=False)
        self.hidden = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(layers - 1))
        self.out = nn.Linear(hidden, latent)

    def forward(self, z: Tensor, a: Tensor) -> Tensor:
        """``z: [B, D]``, ``a: [B, 2]`` → ``[B, D]``."""
        return self._step(z, self.inp_a(a))

    def _step(self, z: Tensor, a_proj: Tensor) -> Tensor:
        h = torch.relu(self.inp_z(z) + a_proj)
        for layer in self.hidden:
            h = torch.relu(layer(h))
        return z + self.out(h)

    def rollout(self, z: Tensor, actions: Tensor) -> Tensor:
        """``z: [B, D]``, ``actions: [B, H, 2]`` → ``[B, H, D]`` (differentiable)."""
        a_proj = self.inp_a(actions)  # every step's action term at once: [B, H, hidden]
        out = []
        for t in range(actions.shape[1]):
            z = self._step(z, a_proj[:, t])
            out.append(z)
        return torch.stack(out, dim=1)


class WorldModel(nn.Module):
    """Encoder, action-conditioned predictor and cost heads (see the module doc).

    ``bev_shape``: ``(C, H, W)`` of the BEV; ``ego_dim``: ``E``. Normalisation statistics
    (ego mean/std, regression targets' mean/std, event logit offsets) are buffers, set from data
    by :meth:`set_statistics` and saved with the weights.
    """

    ego_mean: Tensor
    ego_std: Tensor
    regression_mean: Tensor
    regression_std: Tensor
    event_logit_offset: Tensor
    proximity_scale: Tensor

    def __init__(self, config: ModelConfig, bev_shape: tuple[int, int, int], ego_dim: int) -> None:
        super().__init__()
        self.config = config
        self.bev_shape = tuple(int(v) for v in bev_shape)
        self.ego_dim = int(ego_dim)
        c = config
        D, K = c.latent, len(c.event_within)
        self.bev_net = BevEncoder(self.bev_shape[0], self.bev_shape[1:], c.pool, c.stem, c.channels)  # type: ignore[arg-type]
        self.ego_net = nn.Sequential(nn.Linear(ego_dim, c.ego_hidden), nn.ReLU())
        self.fuse = nn.Sequential(
            nn.Linear(self.bev_net.out_features + c.ego_hidden, c.fuse_hidden),
            nn.ReLU(),
            nn.Linear(c.fuse_hidden, D),
        )
        self.predictor = Predictor(D, c.predictor_hidden, c.predictor_layers)
        self.head_trunk = nn.Sequential(nn.Linear(D, c.head_hidden), nn.ReLU())
        self.head_out = nn.Linear(
            c.head_hidden, len(EVENT_HEADS) * K + len(REGRESSION_COLUMNS) + len(PROXIMITY_COLUMNS)
        )
        self.register_buffer("ego_mean", torch.zeros(ego_dim))
        self.register_buffer("ego_std", torch.ones(ego_dim))
        self.register_buffer("regression_mean", torch.zeros(len(REGRESSION_COLUMNS)))
        self.register_buffer("regression_std", torch.ones(len(REGRESSION_COLUMNS)))
        self.register_buffer("event_logit_offset", torch.zeros(len(EVENT_HEADS) * K))
        self.register_buffer(
            "proximity_scale", torch.tensor(PROXIMITY_SCALE, dtype=torch.float32), persistent=False
        )

    @property
    def latent(self) -> int:
        return self.config.latent

    @property
    def num_windows(self) -> int:
        """``K``, the number of event windows per event head."""
        return len(self.config.event_within)

    def shapes(self) -> dict[str, object]:
        """Everything needed to rebuild this model: its config and the data shapes."""
        return {"config": asdict(self.config), "bev_shape": list(self.bev_shape), "ego_dim": self.ego_dim}

    # ------------------------------------------------------------------ dynamics

    def encode(self, bev: Tensor, ego: Tensor) -> Tensor:
        """``bev: uint8 [..., C, H, W]``, ``ego: float32 [..., E]`` → ``z: [..., D]``.
        Raises ``ValueError`` on a wrongly shaped input or a non-finite ego vector."""
        if (
            bev.dtype != torch.uint8
            or tuple(bev.shape[-3:]) != self.bev_shape
            or ego.shape[-1] != self.ego_dim
        ):
            raise ValueError(
                f"encode expects bev uint8 [..., {', '.join(map(str, self.bev_shape))}] and ego [..., {self.ego_dim}]; "
                f"got {bev.dtype} {tuple(bev.shape)} and {tuple(ego.shape)}"
            )
        check_finite("ego", ego)
        lead = bev.shape[:-3]
        feats = self.bev_net(bev.reshape(-1, *bev.shape[-3:]))
        e = self.ego_net((ego.reshape(-1, ego.shape[-1]) - self.ego_mean) / self.ego_std)
        return self.fuse(torch.cat([feats, e], dim=-1)).reshape(*lead, -1)

    def predict(self, z: Tensor, a: Tensor) -> Tensor:
        """One step: ``z: [B, D]``, ``a: [B, 2]`` (accel, steer in [-1, 1]) → ``z': [B, D]``."""
        return self.predictor(z, a)

    def rollout(self, z0: Tensor, actions: Tensor) -> Tensor:
        """``z0: [B, D]``, ``actions: [B, H, 2]`` → predicted latents after each action ``[B, H, D]``
        (for fast planning without gradients use :class:`world_model.fast_rollout.FastRollout`).
        Raises ``ValueError`` on non-finite inputs."""
        check_finite("z0", z0)
        check_finite("actions", actions)
        return self.predictor.rollout(z0, actions)

    # ------------------------------------------------------------------ heads

    def head_logits(self, z: Tensor) -> Tensor:
        """Raw outputs of every head ``[..., 3K + 7]``: event logits (``EVENT_HEADS`` × ``K``, before
        the calibration offset), normalised regressions (``REGRESSION_COLUMNS``), then proximities
        over their scales (``PROXIMITY_COLUMNS`` / ``PROXIMITY_SCALE``)."""
        return self.head_out(self.head_trunk(z))

    def heads(self, z: Tensor) -> dict[str, Tensor]:
        """Every head from one pass of the shared trunk (what a planner's cost uses): event
        probabilities ``[..., K]`` per :data:`EVENT_HEADS`, ``motion [..., 4]``, ``progress [...]``,
        ``proximity [..., 2]``."""
        return self.decode_heads(self.head_logits(z))

    def collision(self, z: Tensor) -> Tensor:
        """P(collision within each of ``event_within`` steps) ``[..., K]``."""
        return self.heads(z)["collision"]

    def off_road(self, z: Tensor) -> Tensor:
        """P(leaving the drivable area within each of ``event_within`` steps) ``[..., K]``."""
        return self.heads(z)["off_road"]

    def red_light(self, z: Tensor) -> Tensor:
        """P(running a red light within each of ``event_within`` steps) ``[..., K]``."""
        return self.heads(z)["red_light"]

    def motion(self, z: Tensor) -> Tensor:
        """The step's ego motion ``[..., 4]``: dx, dy [m], dyaw [rad], end speed [m/s]."""
        return self.heads(z)["motion"]

    def progress(self, z: Tensor) -> Tensor:
        """The step's route progress ``[...]`` [m]."""
        return self.heads(z)["progress"]

    def proximity(self, z: Tensor) -> Tensor:
        """Nearest other actor and free gap ahead at the step's end ``[..., 2]`` [m]."""
        return self.heads(z)["proximity"]

    def decode_heads(self, raw: Tensor) -> dict[str, Tensor]:
        """:meth:`heads` from raw outputs ``[..., 3K + 7]`` of :meth:`head_logits` (a caller that
        checks the raw outputs first, as the planner does, decodes them without a second pass)."""
        K, n_ev = self.num_windows, len(EVENT_HEADS) * self.num_windows
        probs = torch.sigmoid(raw[..., :n_ev] - self.event_logit_offset)
        out = {name: probs[..., i * K : (i + 1) * K] for i, name in enumerate(EVENT_HEADS)}
        n_reg = len(REGRESSION_COLUMNS)
        reg = raw[..., n_ev : n_ev + n_reg] * self.regression_std + self.regression_mean
        out["motion"] = reg[..., :4]
        out["progress"] = reg[..., 4]
        out["proximity"] = raw[..., n_ev + n_reg :] * self.proximity_scale
        return out

    # ------------------------------------------------------------------ statistics

    def set_statistics(
        self,
        ego_mean: Tensor,
        ego_std: Tensor,
        regression_mean: Tensor,
        regression_std: Tensor,
        event_logit_offset: Tensor,
    ) -> None:
        """Set the normalisation buffers (shapes ``[E]``, ``[E]``, ``[5]``, ``[5]``, ``[3K]``).
        Standard deviations are floored at 1e-3 of their unit so constant columns stay finite."""
        with torch.no_grad():
            self.ego_mean.copy_(ego_mean)
            self.ego_std.copy_(ego_std.clamp_min(1e-3))
            self.regression_mean.copy_(regression_mean)
            self.regression_std.copy_(regression_std.clamp_min(1e-3))
            self.event_logit_offset.copy_(event_logit_offset)


def check_finite(name: str, x: Tensor) -> None:
    """Raise ``ValueError`` naming ``name`` when ``x`` holds a NaN or an infinity."""
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(
            f"{name} holds {bad} non-finite value(s) (NaN or inf) of {x.numel()}; check the observation "
            "or action that produced it (a diverged training run shows it as NaN latents)"
        )


def reference_predictor(latent: int = 64, hidden: int = 256) -> Predictor:
    """The plain residual MLP used as the speed reference by ``drive bench wm``: latent 64, two
    256-wide hidden layers, input ``[z, a]``."""
    return Predictor(latent, hidden, 2)


__all__ = [
    "EVENT_HEADS",
    "PROXIMITY_COLUMNS",
    "REGRESSION_COLUMNS",
    "BevEncoder",
    "Predictor",
    "WorldModel",
    "check_finite",
    "reference_predictor",
]
