"""`drive demo` with tiny budgets in a subprocess: every output is written, the table lists the
three agents with the figures of their suite runs, a re-run reuses every finished stage (and runs
only the one whose output went missing), and a changed budget is refused naming the field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest

from drive.cli import compose_config, main

AGENTS = ("planner", "expert", "lane_follower")
STAGES = ["collect", "train", "eval/planner", "eval/expert", "eval/lane_follower", "render"]
TINY = [
    "executor=inline", "hours=0.005", "train_steps=4", "gif_steps=10", "suite.name=tiny",
    "suite.entries=[{family:lead_vehicle_brake,params:{lead_gap:20.0},seeds:[0]}]",
    'collect=["worlds=2","job_hours=0.01","towns=[grid:0]","shard_steps=50","max_episode_seconds=20"]',
    'train=["model.latent=16","model.channels=[8,16]","model.ego_hidden=8","model.fuse_hidden=32",'
    '"model.predictor_hidden=32","model.head_hidden=16","loss.horizon=4","loss.target_steps=[1,2,4]",'
    '"optim.batch_size=4","optim.stats_batches=1","optim.eval_every=2","optim.eval_batches=1",'
    '"optim.probe_every=0","val_fraction=0.3","threads=1","tensorboard=false"]',
    'eval=["worst_gifs=0","save_replays=none","tensorboard=false"]', 'render=["every=5"]',
    'agents.planner=["agent.optim.samples=32","agent.optim.iterations=2"]',
]  # fmt: skip


def test_compose_demo_defaults() -> None:
    cfg = compose_config("demo", [])
    assert cfg.suite.name == "smoke" and cfg.out == "outputs/demo"
    assert list(cfg.references) == ["expert", "lane_follower"]
    assert cfg.hours > 0 and 0 < cfg.train_minutes <= 5  # the demo fits in minutes


def _demo(out: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "drive.cli", "demo", *TINY, f"out={out}"]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _stages(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "stages.jsonl").read_text().splitlines() if x.strip()]


@pytest.mark.slow
def test_demo_writes_everything_and_a_rerun_reuses_the_finished_stages(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    first = _demo(out, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    for name in ("run.json", "stages.jsonl", "suite.yaml", "collect/manifest.json", "train/summary.json",
                 "planner.gif", "planner.png", "planner.npz", "demo.md", "report.html", "demo.json"):  # fmt: skip
        assert (out / name).exists(), name
    for agent in AGENTS:
        for name in ("results.jsonl", "summary.json", "report.md", "report.html"):
            assert (out / "eval" / agent / name).exists(), f"eval/{agent}/{name}"
    assert iio.imread(out / "planner.gif").shape[0] == 3  # steps 0, 5, 10
    assert [r["stage"] for r in _stages(out)] == STAGES

    # the table: one block per agent, its overall row with the figures of its suite run
    demo = json.loads((out / "demo.json").read_text())
    assert set(demo["agents"]) == set(AGENTS)
    assert Path(demo["train"]["checkpoint"]).exists() and demo["train"]["steps"] == 4
    table = first.stdout[first.stdout.index("drive demo: suite tiny") :]
    for agent in AGENTS:
        row = next(line for line in table.splitlines() if line.startswith(agent + " "))
        assert row.split()[1:3] == ["ALL", "1"]
        assert float(row.split()[3]) == pytest.approx(demo["agents"][agent]["driving_score"], abs=0.05)
    md = (out / "demo.md").read_text()
    assert all(agent in md for agent in AGENTS) and "planner.gif" in md
    assert "planner.gif" in (out / "report.html").read_text()

    # a re-run reuses every finished stage; a stage whose output is gone runs again, alone
    results = {a: (out / "eval" / a / "results.jsonl").read_bytes() for a in AGENTS}
    manifest = (out / "collect" / "manifest.json").read_bytes()
    last_pt = (out / "train" / "last.pt").stat().st_mtime_ns
    (out / "planner.gif").unlink()
    again = _demo(out, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert [r["stage"] for r in _stages(out)] == [*STAGES, "render"]
    for stage in STAGES[:-1]:
        assert f"{stage}: finished in an earlier run" in again.stderr, stage
    assert results == {a: (out / "eval" / a / "results.jsonl").read_bytes() for a in AGENTS}
    assert (out / "collect" / "manifest.json").read_bytes() == manifest
    assert (out / "train" / "last.pt").stat().st_mtime_ns == last_pt
    assert (out / "planner.gif").exists()
    assert json.loads((out / "demo.json").read_text())["agents"] == demo["agents"]

    # another budget in the same folder is refused before anything runs, naming the field
    changed = [a if a != "hours=0.005" else "hours=0.01" for a in TINY]
    assert main(["demo", *changed, f"out={out}"]) == 2
    err = capsys.readouterr().err
    assert "drive demo:" in err and "settings.hours: stored 0.005, now 0.01" in err
    assert [r["stage"] for r in _stages(out)] == [*STAGES, "render"]
