"""`drive learn`: the budget split (closed form), and a tiny run in a subprocess: a base
collection, a model, one planner-driven round and the model fine-tuned on both; every hour
counted; the round driven by the planner on model 0; a re-run reuses every stage; a fine-tune
from another architecture is refused naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from drive.cli import compose_config
from drive.pipelines.learn import budget, round_seed, stages
from tests.test_wm_cli import SMALL_MODEL, drive
from world_model.shards import read_manifest


def test_budget_splits_the_hours_between_base_and_rounds():
    cfg = compose_config("learn", ["hours=1", "base_share=0.4", "rounds=3"])
    base, rounds = budget(cfg)
    assert base == pytest.approx(0.4) and rounds == pytest.approx([0.2, 0.2, 0.2])
    assert base + sum(rounds) == pytest.approx(1.0)
    assert budget(compose_config("learn", ["hours=2", "rounds=0"])) == (2.0, [])
    assert len({round_seed(s, r) for s in range(5) for r in range(1, 4)} | set(range(5))) == 20


def test_stages_chain_each_round_to_the_model_before_it(tmp_path):
    cfg = compose_config("learn", ["hours=1", "rounds=2", f"out={tmp_path}"])
    plan = {s.key: s for s in stages(cfg)}
    assert list(plan) == ["collect/base", "train/0", "collect/1", "train/1", "collect/2", "train/2"]
    assert f"driver.checkpoint={tmp_path}/train/0/best.pt" in plan["collect/1"].overrides
    assert "driver=planner" in plan["collect/2"].overrides
    assert f"init={tmp_path}/train/1/best.pt" in plan["train/2"].overrides
    assert f"extra_data=[{tmp_path}/data/round1,{tmp_path}/data/round2]" in plan["train/2"].overrides
    # a shared base collection (the curve's nested budgets) is not collected again
    cfg = compose_config("learn", ["hours=1", f"base={tmp_path}/shared", f"out={tmp_path}"])
    assert "collect/base" not in {s.key for s in stages(cfg)}
    assert f"data={tmp_path}/shared" in stages(cfg)[0].overrides


@pytest.mark.slow
def test_learn_runs_a_planner_round_counts_every_hour_and_resumes(tmp_path):
    out = tmp_path / "learn"
    train = ["threads=1", *SMALL_MODEL, "loss.horizon=4", "loss.target_steps=[1,2,4]", "optim.batch_size=4",
             "optim.stats_batches=1", "optim.eval_every=2", "optim.eval_batches=1", "optim.probe_every=0",
             "val_fraction=0.3", "optim.steps=3"]  # fmt: skip
    args = ["learn", "hours=0.02", "rounds=1", "base_recipe=explore", "round_recipe=explore", f"out={out}",
            "executor=inline", 'collect=["worlds=2","towns=[grid:0]","shard_steps=100","job_hours=0.01"]',
            "train=[" + ",".join(f'"{t}"' for t in train) + "]", 'finetune=["optim.steps=4"]',
            'planner=["driver.optim.samples=32","driver.optim.iterations=1"]']  # fmt: skip
    proc = drive(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "learn.json").read_text())
    hours = summary["hours"]
    assert hours["base"] >= 0.01 - 1e-9 and hours["rounds"][0] >= 0.01 - 1e-9
    assert hours["total"] == pytest.approx(hours["base"] + hours["rounds"][0]) and hours["total"] < 0.03
    assert read_manifest(out / "data" / "round1").driver == "planner"
    run1 = json.loads((out / "train" / "1" / "run.json").read_text())
    assert run1["init"] == summary["checkpoints"][0] and run1["extra_data"] == [str(out / "data" / "round1")]
    trained = json.loads((out / "train" / "1" / "summary.json").read_text())
    assert trained["steps"] == 4 and trained["data_sim_hours"] == pytest.approx(hours["total"], abs=1e-4)
    assert summary["checkpoint"] == summary["checkpoints"][1] and Path(summary["checkpoint"]).exists()
    # a re-run reuses every stage
    lines = (out / "stages.jsonl").read_text().splitlines()
    proc = drive(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "stages.jsonl").read_text().splitlines() == lines and "reused" in proc.stderr
    # fine-tuning from a checkpoint of another architecture is refused, naming the field
    proc = drive("train", f"data={out / 'data' / 'base'}", "hours=null", f"init={summary['checkpoint']}",
                 f"out={tmp_path / 'other'}", *train, "model.latent=8", cwd=tmp_path)  # fmt: skip
    assert proc.returncode != 0 and "model.latent" in proc.stderr and "init=" in proc.stderr


def test_run_locked_refuses_a_second_run_into_the_same_folder(tmp_path) -> None:
    from drive.pipelines.stages import run_locked
    from sim_bridge import runfolder

    out = tmp_path / "run" / "nested"  # created on the way in
    inner: list[int] = []

    def body(folder):
        assert folder == out and folder.is_dir()
        with pytest.raises(
            runfolder.RunFolderBusy, match=r"another `drive learn` is running in .*learn\.lock"
        ):
            run_locked(out, "learn", "learn.lock", lambda _: inner.append(1) or 0)
        return 7

    assert run_locked(out, "learn", "learn.lock", body) == 7
    assert inner == []  # the second body never ran
    assert run_locked(out, "learn", "learn.lock", lambda _: 3) == 3  # released after the first
