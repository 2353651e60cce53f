"""The world-model commands: Hydra composition; end to end in subprocesses with tiny budgets
(``drive collect`` → ``drive train``, its resume and a refused mismatched resume → ``drive wm-eval``
on the episodes after the training prefix, with the coarse-BEV probe's GIF; ``drive bench wm``);
closed forms of wm-eval's helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drive.cli import compose_config, main

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}
SMALL_MODEL = (
    "model.latent=16", "model.channels=[8,16]", "model.ego_hidden=8", "model.fuse_hidden=32",
    "model.predictor_hidden=32", "model.head_hidden=16",
)  # fmt: skip


def drive(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "drive.cli", *args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )


def collect(out: Path, seed: int, hours: float, cwd: Path) -> None:
    proc = drive("collect", f"hours={hours}", f"seed={seed}", f"out={out}", "executor=inline", "worlds=2",
                 "towns=[grid:0]", "shard_steps=100", cwd=cwd)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_compose_train_wm_eval_and_bench_configs():
    cfg = compose_config("train", ["data=/x", "hours=0.1", "model.latent=32", "loss.regulariser=vicreg"])
    assert cfg.model.latent == 32 and cfg.loss.regulariser == "vicreg" and cfg.hours == 0.1
    assert cfg.out == "outputs/train/h0.1" and cfg.device == "cpu"
    assert cfg.model.predictor_hidden == 128  # from drive/conf/model/jepa.yaml
    cfg = compose_config("wm_eval", ["checkpoint=a.pt", "data=/x"])
    assert cfg.horizon == 15
    cfg = compose_config("bench_wm", [])
    assert cfg.samples == 512 and cfg.horizon == 15


@pytest.mark.slow
def test_collect_train_resume_and_wm_eval(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    collect(data, seed=0, hours=0.025, cwd=tmp_path)
    train_args = [
        "train", f"data={data}", "hours=0.015", f"out={run}", *SMALL_MODEL, "loss.horizon=4",
        "loss.target_steps=[1,2,4]", "optim.batch_size=4", "optim.stats_batches=1", "optim.eval_every=3",
        "optim.eval_batches=1", "optim.probe_every=3", "val_fraction=0.3", "threads=1",
    ]  # fmt: skip
    proc = drive(*train_args, "optim.steps=3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["resumed_from"] == 0 and (run / "last.pt").exists()
    assert summary["best_step"] == 3 and (run / "best.pt").exists()  # the only evaluation so far
    assert "pred/err_h4" in summary["eval"] and "pred/copy_last_err_h4" in summary["eval"]
    events = b"".join(p.read_bytes() for p in (run / "tensorboard").glob("events.out.tfevents.*"))
    for tag in (b"loss/latent", b"pred/err_h2", b"collapse/val_effective_rank", b"heads/ece_collision_1",
                b"probe/retrieval"):  # fmt: skip
        assert tag in events, tag
    # re-running with a larger step budget resumes from the checkpoint
    proc = drive(*train_args, "optim.steps=5", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["resumed_from"] == 3 and summary["steps"] == 5
    # a different model in the same run folder is refused, naming the field
    proc = drive(*train_args, "optim.steps=6", "model.latent=8", cwd=tmp_path)
    assert proc.returncode != 0 and "model.latent" in proc.stderr
    # diagnostics on the episodes after the training prefix
    report = tmp_path / "eval.json"
    proc = drive("wm-eval", f"checkpoint={run / 'last.pt'}", f"data={data}", "after_hours=0.015", "horizon=4",
                 f"out={report}", "counterfactual.enabled=false", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(report.read_text())
    assert [p["step"] for p in r["prediction"]] == [1, 2, 3, 4]
    assert all(p["error"] >= 0 and p["copy_last"] >= 0 for p in r["prediction"])
    train_steps = summary["train_sim_hours"] * 36000 + summary["val_sim_hours"] * 36000
    assert train_steps >= 0.015 * 36000 - 1  # the prefix is whole episodes up to 0.015 h …
    assert abs(r["steps"] - (0.025 * 36000 - train_steps)) < 2  # … the evaluation the rest (hours rounded)
    assert 0 < r["effective_rank"] <= 16
    assert {"collision_within_0.5s", "collision_within_1s", "collision_within_1s_rollout"} <= set(r["heads"])
    assert set(r["probes"][0]["predicted"]) == {"dx", "dy", "nearest", "nearest_visible", "gap_ahead"}
    near = [p["nearest"]["mae"] for p in r["proximity"]]
    assert len(near) == 4 and all(0.0 <= v <= 16.0 for v in near)  # metres, within the capped range
    assert "copy" in proc.stdout and "AUROC" in proc.stdout
    # the coarse-BEV probe, trained on the train split of all the data, shown on its val split: a GIF
    # of horizon + 1 frames beside the report
    import imageio.v3 as iio

    report = tmp_path / "probe" / "eval.json"
    proc = drive("wm-eval", f"checkpoint={run / 'last.pt'}", f"data={data}", "horizon=4", f"out={report}",
                 "counterfactual.enabled=false", "probe.enabled=true", "probe.steps=10", "probe.windows=2",
                 "val_fraction=0.5", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(report.read_text())
    gif = iio.imread(report.with_name("probe.gif"), index=None)
    assert gif.shape[0] == 5 and gif.shape[2] >= 2 * 24 * 8
    probe = r["probe"]
    assert (
        probe["steps"] == 10
        and len(probe["iou"]) == 5
        and probe["channels"] == ["drivable", "vehicles", "pedestrians"]
    )
    assert 0.0 <= probe["iou"][0]["drivable"] <= 1.0


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    assert main(["train", f"out={tmp_path / 'run'}"]) == 2
    assert capsys.readouterr().err.startswith(
        "drive train: give the collection folder, e.g. `drive train data="
    )
    assert main(["wm-eval", "data=/x"]) == 2
    assert "drive wm-eval: give checkpoint=" in capsys.readouterr().err


@pytest.mark.slow
def test_bench_wm_prints_one_json_line_per_figure(tmp_path):
    proc = drive("bench", "wm", "samples=32", "horizon=4", "repeats=2", "warmup=1", "threads=[1]",
                 "train_steps=1", "bev_size=32", "loss.horizon=4", "loss.target_steps=[1,4]", "optim.batch_size=2",
                 *SMALL_MODEL, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert [(r["figure"], r.get("path")) for r in rows] == [
        ("rollout", "eager"),
        ("rollout", "fast"),
        ("train", None),
    ]
    assert all(r["ms"] > 0 and r["reference_eager_ms"] > 0 for r in rows[:2])
    assert rows[2]["windows_per_s"] > 0 and rows[2]["target_frames"] == 2


def test_ego_displacement_composes_steps_in_the_start_frame():
    from drive.pipelines.wm_eval import ego_displacement
    from world_model.batch import EVENT, NUM_EVENTS

    events = np.zeros((1, 5, NUM_EVENTS), dtype=np.float32)
    events[..., EVENT["dx"]] = 1.0
    events[..., EVENT["dyaw"]] = np.pi / 2  # a square: forward 1 m, then turn left
    valid = np.array([[True, True, True, True, False]])
    xy = ego_displacement(events, valid)[0]
    np.testing.assert_allclose(xy, [[1, 0], [1, 1], [0, 1], [0, 0], [0, 0]], atol=1e-6)


def test_ridge_probe_r2_closed_forms():
    from drive.pipelines.wm_eval import ridge_r2

    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 6))
    w = rng.standard_normal((6, 2))
    y = x @ w + 3.0
    r2 = ridge_r2(x[:200], y[:200], x[200:], y[200:], ridge=1e-9)
    np.testing.assert_allclose(r2, [1.0, 1.0], atol=1e-6)
    noise = rng.standard_normal((400, 1))
    (r2_noise,) = ridge_r2(x[:200], noise[:200], x[200:], noise[200:], ridge=1e-3)
    assert r2_noise < 0.05  # nothing to find: no better than the mean
