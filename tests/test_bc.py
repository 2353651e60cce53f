"""Behaviour cloning: it fits a known mapping, resumes exactly, refuses NaN as every agent does, and
drives a suite end to end (`drive collect driver=expert` → `drive train-bc` → `drive eval agent=bc`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from planning import registry
from planning.base import AgentError, AgentInfo
from planning.bc import BCAgent, BCConfig, BCNetConfig, build_net, load_policy
from planning.bc_train import BCOptimConfig, train_bc
from sim_bridge.api import EgoVehicle, Observation
from world_model.batch import NUM_EVENTS, Windows

TINY = BCNetConfig(latent=16, channels=[4, 8], ego_hidden=16, fuse_hidden=32, head_hidden=32, chunk=3)
BEV = (2, 8, 8)
E = 4


def expert_chunk(ego: np.ndarray, T: int) -> np.ndarray:
    """The synthetic expert: accel = tanh(ego0), steer = -0.5·ego1, held for the chunk."""
    a = np.stack([np.tanh(ego[:, 0]), -0.5 * np.clip(ego[:, 1], -1.5, 1.5)], axis=-1)
    return np.repeat(a[:, None], T, axis=1).astype(np.float32)


class Synthetic:
    """A WindowSource of random observations whose actions follow :func:`expert_chunk`."""

    window = TINY.chunk

    def sample(self, rng: np.random.Generator, batch_size: int) -> Windows:
        B, T = batch_size, self.window
        ego = rng.normal(size=(B, T, E)).astype(np.float32)
        ego[:, :] = ego[:, :1]
        bev = (rng.random((B, T, *BEV)) < 0.2).astype(np.uint8) * 255
        valid = np.ones((B, T), dtype=bool)
        valid[: B // 4, -1] = False  # padded steps must not count
        return Windows(bev=bev, ego=ego, action=expert_chunk(ego[:, 0], T),
                       events=np.zeros((B, T, NUM_EVENTS), np.float32), valid=valid,
                       episode=np.arange(B), start=np.zeros(B, np.int64))  # fmt: skip


def test_bc_fits_a_known_mapping_and_predicts_it(tmp_path: Path, one_torch_thread: None) -> None:
    torch.manual_seed(0)
    net = build_net(TINY, BEV, E)
    optim = BCOptimConfig(steps=300, batch_size=64, lr=3e-3, warmup=10, eval_every=100, eval_batches=2,
                          checkpoint_every=100, log_every=1000)  # fmt: skip
    summary = train_bc(net, Synthetic(), Synthetic(), optim, tmp_path)
    assert summary["steps"] == 300 and summary["last_loss"] < 0.2 * summary["first_loss"]
    assert summary["eval"]["loss/val_bc"] < 0.02
    policy = load_policy(tmp_path / "best.pt")
    ego = np.array([[1.0, 1.0, 0, 0], [-1.0, -1.0, 0, 0], [0.0, 0.0, 0, 0]], np.float32)
    bev = np.zeros((3, *BEV), np.uint8)
    with torch.no_grad():
        pred = policy(torch.from_numpy(bev), torch.from_numpy(ego)).numpy()
    np.testing.assert_allclose(pred, expert_chunk(ego, TINY.chunk), atol=0.15)


def test_bc_resume_continues_exactly(tmp_path: Path, one_torch_thread: None) -> None:
    def run(out: Path, steps: int) -> dict:
        torch.manual_seed(0)
        optim = BCOptimConfig(steps=steps, batch_size=8, eval_every=4, checkpoint_every=4, log_every=1000)
        return train_bc(build_net(TINY, BEV, E), Synthetic(), None, optim, out)

    straight = run(tmp_path / "a", 8)
    run(tmp_path / "b", 4)
    resumed = run(tmp_path / "b", 8)
    assert resumed["resumed_from"] == 4 and resumed["steps"] == 8
    a = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight["last_loss"] == resumed["last_loss"]


def _obs(B: int) -> Observation:
    return Observation(bev=np.zeros((B, *BEV), np.uint8), ego=np.zeros((B, E), np.float32),
                       objects=np.zeros((B, 1, 8), np.float32), objects_mask=np.zeros((B, 1), bool),
                       object_ids=np.full((B, 1), -1, np.int32), pose=np.zeros((B, 3)))  # fmt: skip


def _info(B: int) -> AgentInfo:
    return AgentInfo(num_worlds=B, dt=0.1, ego=EgoVehicle())


def test_bc_agent_plays_chunks_receding_horizon(one_torch_thread: None) -> None:
    net = build_net(TINY, BEV, E)
    calls = []
    forward = net.forward

    def counting(bev: torch.Tensor, ego: torch.Tensor) -> torch.Tensor:
        calls.append(len(bev))
        return forward(bev, ego)

    net.forward = counting  # type: ignore[method-assign]
    agent = BCAgent(BCConfig(execute=2), net=net)
    agent.reset(_info(2))
    for _ in range(3):
        assert agent.act(_obs(2)).shape == (2, 2)
    assert calls == [2, 2]  # a new chunk every `execute` steps (steps 1 and 3)
    agent.reset(_info(2), worlds=[1])
    agent.act(_obs(2))
    assert calls == [2, 2, 1]  # a restarted world predicts afresh, the other plays on


def test_nan_from_the_policy_is_an_agent_error(one_torch_thread: None) -> None:
    net = build_net(TINY, BEV, E)
    with torch.no_grad():
        net.head[-1].bias.fill_(float("nan"))
    agent = BCAgent(BCConfig(), net=net)
    agent.reset(_info(2))
    with pytest.raises(AgentError, match=r"bc: .*NaN.*world\(s\) \[0, 1\]"):
        agent.act(_obs(2))


def test_bc_is_in_the_registry_and_needs_a_checkpoint() -> None:
    assert "bc" in registry.names()
    with pytest.raises(ValueError, match=r"agent\.checkpoint"):
        registry.build_agent("bc", BCConfig())
    from drive.cli import compose_config

    cfg = compose_config("eval", ["agent=bc", "agent.checkpoint=x.pt", "agent.execute=2"])
    assert cfg.agent.name == "bc" and cfg.agent.execute == 2


ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}
ROOT = Path(__file__).resolve().parents[1]
TINY_ARGS = (
    "net.latent=16",
    "net.channels=[8,16]",
    "net.ego_hidden=8",
    "net.fuse_hidden=32",
    "net.head_hidden=16",
)


def _drive(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "drive.cli", *args], cwd=cwd, env=ENV, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


@pytest.mark.slow
def test_collect_expert_train_bc_and_eval_on_smoke(tmp_path: Path) -> None:
    data, run, ev = tmp_path / "data", tmp_path / "bc", tmp_path / "eval"
    proc = _drive("collect", "driver=expert", "hours=0.01", f"out={data}", "executor=inline", "worlds=2",
                  "towns=[grid:0]", "shard_steps=50", "max_episode_seconds=20", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    args = ["train-bc", f"data={data}", "hours=null", f"out={run}", *TINY_ARGS, "optim.steps=6",
            "optim.batch_size=8", "optim.eval_every=3", "optim.eval_batches=1", "val_fraction=0.3",
            "tensorboard=false"]  # fmt: skip
    proc = _drive(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6 and (run / "best.pt").exists()
    # a changed architecture on resume is refused, naming the field
    proc = _drive(*args[:-1], "net.latent=8", "tensorboard=false", cwd=tmp_path)
    assert proc.returncode != 0 and "net.latent" in proc.stderr
    proc = _drive("eval", "agent=bc", f"agent.checkpoint={run / 'best.pt'}", "suite=smoke", f"out={ev}",
                  "executor=inline", "save_replays=none", "worst_gifs=0", "tensorboard=false", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in (ev / "results.jsonl").read_text().splitlines() if x.strip()]
    assert len(lines) == 4 and all(r["status"] in ("done", "agent_error") for r in lines)  # smoke: 4 episodes
    assert all(r["agent"] == "bc" for r in lines)
