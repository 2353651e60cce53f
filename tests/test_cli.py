"""The `drive` command: Hydra composition, and real subprocess runs with tiny budgets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from drive.cli import StageFailed, compose_config, main, run_command

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}


def run_drive(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "drive.cli", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_compose_applies_typed_overrides():
    cfg = compose_config("render", ["world.town=straight", "steps=7", "sim.num_worlds=3", "sim.bev.size=64"])
    assert cfg.world.town == "straight" and cfg.steps == 7
    assert cfg.sim.num_worlds == 3 and cfg.sim.bev.size == 64
    assert cfg.sim.physics_dt == pytest.approx(0.05)  # from sim/embedded.yaml
    assert cfg.agent.name == "lane_follower"


@pytest.mark.parametrize("override", ["steps=many", "sim.bev.size=big", "world.not_a_field=1"])
def test_compose_rejects_bad_values_and_unknown_keys(override):
    with pytest.raises((HydraException, OmegaConfBaseException)):
        compose_config("render", [override])


def test_cli_help_and_unknown_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "render" in out and "bench sim" in out and "demo" in out
    assert main(["fly"]) == 2
    assert main(["render", "steps=oops"]) == 2
    assert "bad configuration" in capsys.readouterr().err


def test_cli_prints_config_without_running(capsys):
    assert main(["render", "world.town=tee", "--cfg"]) == 0
    assert "town: tee" in capsys.readouterr().out


@pytest.mark.slow
def test_render_writes_a_gif_and_a_replay_that_renders_again(tmp_path):
    gif = tmp_path / "ep.gif"
    proc = run_drive(
        "render", "world.town=straight", "world.vehicles=3", "world.pedestrians=2", "steps=12", "every=3",
        "map_window=60", f"out={gif}", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames = iio.imread(gif)
    assert frames.shape[0] == 5  # steps 0, 3, 6, 9, 12
    assert frames.shape[-1] == 3 and frames.std() > 0  # a real picture, not blank
    replay = gif.with_suffix(".npz")
    assert replay.exists()
    again = tmp_path / "again.gif"
    proc = run_drive("render", f"replay={replay}", "every=3", "map_window=60", f"out={again}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_array_equal(iio.imread(again), frames)
    mp4 = tmp_path / "again.mp4"
    proc = run_drive("render", f"replay={replay}", "every=3", "map_window=60", f"out={mp4}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    video = iio.imread(mp4, plugin="FFMPEG")
    assert video.shape[0] == 5 and video.shape[1:3] == tuple(-(-n // 16) * 16 for n in frames.shape[1:3])


@pytest.mark.slow
def test_bench_sim_prints_one_json_line_per_configuration(tmp_path):
    proc = run_drive(
        "bench", "sim", "world.town=straight", "world.pedestrians=0", "configs=[[1,3,false],[2,3,true]]",
        "steps=5", "warmup=1", cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [(r["worlds"], r["vehicles"], r["bev"]) for r in rows] == [(1, 3, False), (2, 3, True)]
    for r in rows:
        assert r["steps_per_s"] > 0 and r["sim_s_per_wall_s"] == pytest.approx(
            r["world_steps_per_s"] * 0.1, rel=0.02
        )
        assert r["peak_rss_mb"] > 50


def test_run_command_runs_a_pipeline_in_process_and_words_its_refusals():
    with pytest.raises(StageFailed, match=r"^drive train: bad configuration: steps=5: .*optim\.steps"):
        run_command("train", ["steps=5"])
    with pytest.raises(StageFailed, match=r"^drive train: give the collection folder"):
        run_command("train", [])  # the pipeline's own refusal (SystemExit), its prefix not repeated
