"""Behaviour cloning: the imitation baseline of the hours-to-competence curve.

A policy with the world model's encoder architecture (``world_model.model.BevEncoder`` over the
BEV, an MLP over the standardised ego vector, a fusing MLP to a latent of ``D``) and an action
head predicting an action *chunk* of ``T`` steps of ``[accel, steer]`` (tanh, so in ``[-1, 1]``).
It is trained on the expert's demonstrations (``drive collect driver=expert``; ``planning.bc_train``,
``drive train-bc``) and driven receding-horizon: every ``execute`` steps the chunk is predicted
again from the current observation and its first ``execute`` actions are played (``execute=1``:
only the first action of each chunk).

Letters: ``B`` worlds or batch, ``T`` chunk steps, ``E`` ego vector, ``C, H, W`` BEV, ``D`` latent.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from planning.base import Agent, AgentError
from sim_bridge.api import Observation

BC_CHECKPOINT_FORMAT = 1


@dataclass
class BCNetConfig:
    """Architecture of the behaviour-cloning policy (the world model's encoder, an action head)."""

    latent: int = 64
    """Latent size ``D`` of the encoder (as the world model's)."""
    pool: int = 2
    """Max-pool factor on the uint8 BEV before the convolutions (as the world model's)."""
    stem: int = 2
    """Kernel and stride of the patchify convolution [px]."""
    channels: list[int] = field(default_factory=lambda: [32, 64, 128, 128])
    """BEV convolution channels: the stem, then 3×3 stride-2 layers."""
    ego_hidden: int = 64
    """Width of the MLP over the standardised ego vector."""
    ego_clip: float = 5.0
    """The standardised ego vector is clipped to ± this many standard deviations."""
    fuse_hidden: int = 256
    """Width of the layer fusing BEV and ego features into the latent."""
    head_hidden: int = 256
    """Width of the action head's hidden layer."""
    chunk: int = 5
    """Steps ``T`` of the predicted action chunk (10 Hz: 0.5 s)."""


@dataclass
class BCConfig:
    """``agent=bc``: drive with a behaviour-cloning checkpoint (``drive train-bc``)."""

    checkpoint: str = ""
    """``best.pt`` (or ``last.pt``) written by ``drive train-bc``."""
    execute: int = 1
    """Actions of each predicted chunk played before predicting again (1: receding horizon)."""
    device: str = "cpu"
    """Torch device of the policy."""
    threads: int = 1
    """Intra-op threads of torch on the CPU (0: torch's default)."""


def build_net(config: BCNetConfig, bev_shape: tuple[int, int, int], ego_dim: int) -> Any:
    """The policy network (a ``torch.nn.Module``; torch is imported here, not at module import)."""
    import torch
    from torch import Tensor, nn

    from world_model.model import ACTION_DIM, BevEncoder

    class BCNet(nn.Module):
        """``encode(bev, ego) -> z [N, D]``; ``forward(bev, ego) -> chunk [N, T, 2]`` in [-1, 1]."""

        ego_mean: Tensor
        ego_std: Tensor

        def __init__(self) -> None:
            super().__init__()
            c = config
            self.config = config
            self.bev_shape = tuple(int(v) for v in bev_shape)
            self.ego_dim = int(ego_dim)
            self.bev_net = BevEncoder(self.bev_shape[0], self.bev_shape[1:], c.pool, c.stem, list(c.channels))  # type: ignore[arg-type]
            self.ego_net = nn.Sequential(nn.Linear(ego_dim, c.ego_hidden), nn.ReLU())
            self.fuse = nn.Sequential(
                nn.Linear(self.bev_net.out_features + c.ego_hidden, c.fuse_hidden),
                nn.ReLU(),
                nn.Linear(c.fuse_hidden, c.latent),
            )
            self.head = nn.Sequential(
                nn.ReLU(),
                nn.Linear(c.latent, c.head_hidden),
                nn.ReLU(),
                nn.Linear(c.head_hidden, c.chunk * ACTION_DIM),
            )
            self.register_buffer("ego_mean", torch.zeros(ego_dim))
            self.register_buffer("ego_std", torch.ones(ego_dim))

        def shapes(self) -> dict[str, Any]:
            return {"config": asdict(self.config), "bev_shape": list(self.bev_shape), "ego_dim": self.ego_dim}

        def encode(self, bev: Tensor, ego: Tensor) -> Tensor:
            """``bev: uint8 [N, C, H, W]``, ``ego: [N, E]`` → ``z: [N, D]``."""
            e = ((ego - self.ego_mean) / self.ego_std).clamp(-self.config.ego_clip, self.config.ego_clip)
            return self.fuse(torch.cat([self.bev_net(bev), self.ego_net(e)], dim=-1))

        def forward(self, bev: Tensor, ego: Tensor) -> Tensor:
            """``[N, T, 2]`` action chunk."""
            return torch.tanh(self.head(self.encode(bev, ego))).reshape(
                len(bev), self.config.chunk, ACTION_DIM
            )

    return BCNet()


def load_policy(path: str | Path, device: str = "cpu") -> Any:
    """The policy stored in a ``drive train-bc`` checkpoint, in eval mode on ``device``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no behaviour-cloning checkpoint at {path} (train one with `drive train-bc data=<expert collection>`)"
        )
    state = torch.load(path, map_location=device, weights_only=True)
    if (
        not isinstance(state, dict)
        or state.get("format") != BC_CHECKPOINT_FORMAT
        or state.get("kind") != "bc"
    ):
        raise ValueError(f"{path} is not a behaviour-cloning checkpoint of format {BC_CHECKPOINT_FORMAT}")
    shapes = state["shapes"]
    net = build_net(BCNetConfig(**shapes["config"]), tuple(shapes["bev_shape"]), int(shapes["ego_dim"]))
    net.load_state_dict(state["model"])
    return net.to(device).eval()


class BCAgent(Agent):
    """Plays a behaviour-cloning policy's action chunks receding-horizon (see the module doc).

    ``net``: a policy to drive with instead of loading ``config.checkpoint`` (tests)."""

    name = "bc"

    def __init__(self, config: BCConfig | None = None, net: Any = None) -> None:
        import torch

        self.config = cfg = config or BCConfig()
        if cfg.execute < 1:
            raise ValueError(f"agent.execute={cfg.execute} must be >= 1")
        if cfg.threads > 0:
            torch.set_num_threads(int(cfg.threads))
        if net is None:
            if not cfg.checkpoint:
                raise ValueError(
                    "the bc agent needs a policy: pass agent.checkpoint=<best.pt of `drive train-bc`> "
                    "(collect demonstrations with `drive collect driver=expert`, then `drive train-bc data=…`)"
                )
            net = load_policy(cfg.checkpoint, cfg.device)
        self.net = net.eval()
        if cfg.execute > self.net.config.chunk:
            raise ValueError(
                f"agent.execute={cfg.execute} exceeds the policy's chunk of {self.net.config.chunk} steps"
            )
        self._chunk = np.zeros((0, self.net.config.chunk, 2), dtype=np.float32)  # [B, T, 2]
        self._age = np.zeros(0, dtype=np.int64)  # [B] actions played from the current chunk

    def _reset(self, worlds: list[int]) -> None:
        B = self.info.num_worlds
        if len(self._age) != B:
            self._chunk = np.zeros((B, self.net.config.chunk, 2), dtype=np.float32)
            self._age = np.full(B, self.config.execute, dtype=np.int64)
        self._age[worlds] = self.config.execute  # predict afresh at the first step

    def _act(self, obs: Observation) -> np.ndarray:
        import torch

        B = obs.num_worlds
        if len(self._age) != B:
            self._chunk = np.zeros((B, self.net.config.chunk, 2), dtype=np.float32)
            self._age = np.full(B, self.config.execute, dtype=np.int64)
        if tuple(obs.bev.shape[1:]) != self.net.bev_shape or obs.ego.shape[1] != self.net.ego_dim:
            raise AgentError(
                f"bc: the policy expects BEV {self.net.bev_shape} and ego [{self.net.ego_dim}], the simulator "
                f"gives {tuple(obs.bev.shape[1:])} and [{obs.ego.shape[1]}]: use a policy trained on this sensor setup"
            )
        stale = np.flatnonzero(self._age >= self.config.execute)
        if len(stale):
            with torch.no_grad():
                bev = torch.from_numpy(np.ascontiguousarray(obs.bev[stale]))
                ego = torch.from_numpy(np.ascontiguousarray(obs.ego[stale], dtype=np.float32))
                chunk = self.net(bev, ego).cpu().numpy()
            bad = stale[~np.isfinite(chunk).all(axis=(1, 2))].tolist()
            if bad:
                raise AgentError(f"bc: the policy predicted NaN/inf actions for world(s) {bad}")
            self._chunk[stale] = chunk
            self._age[stale] = 0
        out = self._chunk[np.arange(B), self._age]
        self._age += 1
        return out


__all__ = ["BCAgent", "BCConfig", "BCNetConfig", "build_net", "load_policy"]
