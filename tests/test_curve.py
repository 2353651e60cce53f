"""drive curve: the competence bar on hand-made results, hours to competence, the plot's numbers, and
`drive curve curve=quick` with tiny budgets killed once (kill -9 of its process group) and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from drive.cli import compose_config
from drive.pipelines.curve import CurvePlan, summary_by_learner
from drive.pipelines.curve_report import describe_wall_time, markdown, plot, wall_time, write_outputs
from scenarios.competence import BAR, describe_bar, exam_metrics, failures, hours_to_competence, passes
from world_model.train import read_checkpoint


def metrics(ds: float, success: float, ped: int = 0, crashed: int = 0) -> dict:
    return {"driving_score": ds, "success_rate": success, "pedestrian_collisions": ped, "crashed": crashed}


def test_the_bar_is_mean_ds_80_success_70_and_no_pedestrian_collision() -> None:
    assert (BAR.min_driving_score, BAR.min_success_rate, BAR.max_pedestrian_collisions) == (80.0, 0.7, 0)
    assert passes(metrics(80.0, 0.70))
    assert failures(metrics(79.9, 0.70)) == ["driving score 79.9 < 80"]
    assert failures(metrics(95.0, 0.69)) == ["success 69% < 70%"]
    assert failures(metrics(95.0, 0.9, ped=1)) == [
        "1 at-fault pedestrian collision(s)"
    ]  # total only: read it
    # the bar counts the collisions at the ego's fault; a walker into the ego's rear does not fail it
    assert passes(metrics(95.0, 0.9, ped=1) | {"pedestrian_collisions_at_fault": 0})
    assert failures(metrics(95.0, 0.9, ped=2) | {"pedestrian_collisions_at_fault": 1}) == [
        "1 at-fault pedestrian collision(s)"
    ]
    assert not passes(metrics(float("nan"), 1.0))  # a NaN score never passes
    assert not passes(metrics(90.0, 0.9, crashed=1))  # crashed episodes are never silently scored
    assert (
        "driving score >= 80" in describe_bar() and "70%" in describe_bar() and "at-fault" in describe_bar()
    )


KINDS = ("collisions_pedestrian", "collisions_vehicle", "collisions_layout", "red_light")
SUMMARY = {"overall": {"driving_score": {"mean": 85.0}, "success_rate": 0.75, "km_driven": 2.0, "episodes": 8,
                       "crashed": 0, "agent_errors": 1, "infractions": dict.fromkeys(KINDS, 0) | {"collisions_pedestrian": 1},
                       "infractions_per_km": {"collisions_pedestrian": 0.5, "collisions_vehicle": 1.0,
                                              "collisions_layout": 0.5, "red_light": 3.0}}}  # fmt: skip


def test_exam_metrics_read_a_suite_summary() -> None:
    m = exam_metrics(SUMMARY)
    assert m["collisions_per_km"] == 2.0 and m["pedestrian_collisions"] == 1 and m["agent_errors"] == 1
    assert m["pedestrian_collisions_at_fault"] == 1  # a summary without the at-fault count: the total
    assert failures(m) == ["1 at-fault pedestrian collision(s)"]
    overall = SUMMARY["overall"] | {
        "at_fault_collisions": {"collisions_pedestrian": 0, "collisions_vehicle": 0}
    }
    m = exam_metrics({"overall": overall})
    assert (m["pedestrian_collisions"], m["pedestrian_collisions_at_fault"]) == (1, 0) and passes(m)


def test_hours_to_competence_is_the_first_budget_all_of_whose_seeds_pass() -> None:
    runs = [(0.1, 0, False), (0.1, 1, False), (0.5, 0, True), (0.5, 1, False), (1.0, 0, True), (1.0, 1, True),
            (2.0, 0, True), (2.0, 1, True)]  # fmt: skip
    assert hours_to_competence(runs, seeds=[0, 1]) == 1.0
    assert hours_to_competence([(0.1, 0, False), (4.0, 0, False)]) is None  # "not reached" is an answer
    # a budget with a seed still missing is not yet a pass
    assert hours_to_competence([(0.5, 0, True), (1.0, 0, True), (1.0, 1, True)], seeds=[0, 1]) == 1.0
    assert hours_to_competence([], seeds=[0]) is None


def _record(learner: str, budget: float | None, seed: int | None, ds: float, col: float, ok: bool) -> dict:
    return {"key": f"{learner}/{budget}/{seed}", "learner": learner, "budget_hours": budget, "seed": seed,
            "driving_score": ds, "success_rate": 0.8 if ok else 0.1, "collisions_per_km": col,
            "pedestrian_collisions": 0, "passed": ok, "failures": [] if ok else ["driving score low"]}  # fmt: skip


def test_plot_draws_the_records_numbers(tmp_path: Path) -> None:
    records = [_record("planner", 0.1, 0, 20.0, 3.0, False), _record("planner", 0.1, 1, 40.0, 1.0, False),
               _record("planner", 1.0, 0, 85.0, 0.5, True), _record("planner", 1.0, 1, 90.0, 0.0, True),
               _record("bc", 0.1, 0, 50.0, 2.0, False), _record("expert", None, None, 97.0, 0.1, True)]  # fmt: skip
    drawn = plot(records, ["planner", "bc"], tmp_path / "c.png", tmp_path / "c.svg")
    assert (tmp_path / "c.png").stat().st_size > 0 and b"<svg" in (tmp_path / "c.svg").read_bytes()
    assert drawn["learners"]["planner"]["mean_ds"] == [[0.1, 30.0], [1.0, 87.5]]
    assert drawn["learners"]["planner"]["mean_collisions"] == [[0.1, 2.0], [1.0, 0.25]]
    assert sorted(map(tuple, drawn["learners"]["planner"]["points_ds"])) == [(0.1, 20.0), (0.1, 40.0), (1.0, 85.0),
                                                                             (1.0, 90.0)]  # fmt: skip
    assert drawn["references"] == {"expert": [97.0, 0.1]}
    summary = summary_by_learner(
        records, CurvePlan(learners=["planner", "bc"], budgets=[0.1, 1.0], seeds=[0, 1])
    )
    assert summary["planner"]["hours_to_competence"] == 1.0 and summary["bc"]["hours_to_competence"] is None


def test_curve_md_names_trainings_cut_short_by_their_wall_time_cap() -> None:
    records = [_record("planner", 1.0, 0, 70.0, 1.0, False), _record("planner", 1.0, 1, 72.0, 1.0, False)]
    records[0]["train_summary"] = {"steps": 3000, "stopped_by": "steps"}
    records[1]["train_summary"] = {"steps": 2680, "stopped_by": "max_minutes"}
    plan = CurvePlan(learners=["planner"], budgets=[1.0], seeds=[0, 1])
    md = markdown(records, summary_by_learner(records, plan), "exam")
    assert "Not step-budgeted:** 1 training(s)" in md and f"{records[1]['key']} (2680 steps)" in md
    assert records[0]["key"] + " (" not in md
    del records[1]["train_summary"]
    assert "Not step-budgeted" not in markdown(records, summary_by_learner(records, plan), "exam")


def test_wall_time_sums_invocations_and_counts_a_killed_one_to_its_last_finished_job() -> None:
    """Three invocations: one ended (100 s), one killed after finishing jobs at +100 and +250 s (a
    job of the next invocation finished later is not its own), one ended (50 s): 400 s in all."""
    invocations = [
        {"event": "start", "at": 0.0},
        {"event": "end", "at": 100.0, "wall_seconds": 100.0},
        {"event": "start", "at": 1000.0},
        {"event": "start", "at": 2000.0},
        {"event": "end", "at": 2050.0, "wall_seconds": 50.0},
    ]
    records = [{"finished_at": 1100.0}, {"finished_at": 1250.0}, {"finished_at": 2040.0}, {}]
    timing = wall_time(invocations, records)
    assert timing == {"seconds": 400.0, "invocations": 3, "interrupted": 1, "untimed": 1}
    text = describe_wall_time(timing)
    assert "0.11 h over 3" in text and "1 interrupted" in text and "1 record(s)" in text
    assert wall_time(invocations[:1], [])["seconds"] == 0.0  # killed before its first job
    assert "not recorded" in describe_wall_time(wall_time([], records))
    md = markdown([], {}, "exam", timing)
    assert text in md


def test_wall_time_counts_jobs_of_points_since_dropped_from_the_plan(tmp_path: Path) -> None:
    """A killed invocation ran a 4 h point, then the plan was narrowed to 1 h on resume: the killed
    invocation is still counted to the 4 h job it finished (``timed``: every record of the folder)."""
    kept = {**_record("planner", 1.0, 0, 85.0, 0.5, True), "finished_at": 100.0}
    dropped = {**_record("planner", 4.0, 0, 90.0, 0.2, True), "finished_at": 700.0}
    invocations = [{"event": "start", "at": 0.0}, {"event": "start", "at": 1000.0},
                   {"event": "end", "at": 1060.0, "wall_seconds": 60.0}]  # fmt: skip
    plan = CurvePlan(learners=["planner"], budgets=[1.0], seeds=[0])
    narrow = write_outputs(tmp_path, [kept], plan, "exam", tensorboard=False, invocations=invocations)
    assert "Wall time: 0.04 h" in narrow["table"]  # 100 s + 60 s: the dropped job not seen
    whole = write_outputs(tmp_path, [kept], plan, "exam", tensorboard=False, invocations=invocations,
                          timed=[kept, dropped])  # fmt: skip
    assert "Wall time: 0.21 h" in whole["table"]  # 700 s + 60 s
    assert "Wall time: 0.21 h" in (tmp_path / "curve.md").read_text()


def test_compose_curve_plans() -> None:
    cfg = compose_config("curve", [])
    assert cfg.suite.name == "exam" and list(cfg.curve.budgets) == [0.25, 1.0, 4.0]
    assert list(cfg.curve.references) == ["lane_follower", "expert", "planner_untrained"]
    assert list(cfg.curve.seeds) == [0, 1, 2] and list(cfg.curve.learners) == ["planner", "bc"]
    cfg = compose_config("curve", ["curve=quick"])
    assert (
        cfg.suite.name == "smoke" and list(cfg.curve.budgets) == [0.05, 0.25] and list(cfg.curve.seeds) == [0]
    )
    assert cfg.out == "outputs/curve/quick"


def test_planner_learns_from_the_hazards_recipe_and_planner_explore_from_plain_exploration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drive.pipelines import curve as curve_module

    cfg = compose_config("curve", ["curve.budgets=[0.1,0.5]", "curve.seeds=[3]", f"out={tmp_path}",
                                   "curve.learners=[planner,planner_explore,bc]"])  # fmt: skip
    curve = curve_module.Curve(cfg)
    data = {j.learner: j.data for j in curve.jobs() if j.seed is not None}
    assert data == {"planner": str(tmp_path / "data/explore-hazards-s3"),
                    "planner_explore": str(tmp_path / "data/explore-s3"), "bc": str(tmp_path / "data/expert-s3"),
                    "planner_untrained": str(tmp_path / "data/explore-hazards-s3")}  # fmt: skip
    calls: list[list[str]] = []
    monkeypatch.setattr(curve_module, "_command", lambda name, overrides: calls.append([name, *overrides]))
    curve.collect(curve.jobs())
    recipes = {next(a for a in c if a.startswith("out=")): [a for a in c if a.startswith(("recipe=", "driver="))]
               for c in calls}  # fmt: skip
    assert recipes == {
        f"out={tmp_path / 'data/explore-hazards-s3'}": ["driver=explore", "recipe=hazards"],
        f"out={tmp_path / 'data/explore-s3'}": ["driver=explore", "recipe=explore"],
        f"out={tmp_path / 'data/expert-s3'}": ["driver=expert", "recipe=explore"],
    }
    assert all("hours=0.5" in c for c in calls)  # one collection of the largest budget each


def test_the_untrained_planner_reference_is_the_planner_on_a_model_of_zero_steps(tmp_path: Path) -> None:
    """``reference/planner_untrained``: ``drive train optim.steps=0`` (after the plan's own train
    overrides) on the planner's first seed and smallest budget, examined as ``agent=planner`` with
    the planner's exam overrides; drawn as a reference (no budget)."""
    from drive.pipelines import curve as curve_module

    cfg = compose_config("curve", ["curve.budgets=[1.0,0.5]", "curve.seeds=[3,4]", f"out={tmp_path}",
                                   "curve.agents.planner=[\"agent.optim.samples=48\"]"])  # fmt: skip
    jobs = {j.key: j for j in curve_module.Curve(cfg).jobs()}
    job = jobs["reference/planner_untrained"]
    assert job.agent == "planner" and job.budget is None and job.seed == 3 and job.trainer == "train"
    assert job.data == str(tmp_path / "data/explore-hazards-s3")
    assert job.train_overrides[-1] == "optim.steps=0" and "optim.steps=3000" in job.train_overrides
    assert (
        "hours=0.5" in job.train_overrides
        and f"out={tmp_path / 'references/planner_untrained/train'}" in job.train_overrides
    )
    assert job.eval_overrides[-1] == "agent.optim.samples=48"
    assert jobs["reference/expert"].trainer is None
    bad = compose_config("curve", ["curve.learners=[bc]", f"out={tmp_path}"])
    curve_module.UNTRAINED["bc_untrained"] = "bc"
    try:
        bad.curve.references = ["bc_untrained"]
        with pytest.raises(curve_module.CurveError, match="bc_untrained: learner bc does not train"):
            curve_module.Curve(bad)
    finally:
        del curve_module.UNTRAINED["bc_untrained"]


TINY = [
    "curve=quick", "curve.budgets=[0.005,0.01]", "executor=local", "workers=1", "tensorboard=true",
    'curve.collect=["worlds=2","job_hours=0.01","towns=[grid:0]","shard_steps=50","max_episode_seconds=20"]',
    'curve.train=["model.latent=16","model.channels=[8,16]","model.ego_hidden=8","model.fuse_hidden=32",'
    '"model.predictor_hidden=32","model.head_hidden=16","loss.horizon=4","loss.target_steps=[1,2,4]",'
    '"optim.batch_size=4","optim.stats_batches=1","optim.steps=4","optim.eval_every=2","optim.eval_batches=1",'
    '"optim.probe_every=0","val_fraction=0.3","threads=1","tensorboard=false"]',
    'curve.train_bc=["net.latent=16","net.channels=[8,16]","net.ego_hidden=8","net.fuse_hidden=32",'
    '"net.head_hidden=16","optim.steps=4","optim.batch_size=8","optim.eval_every=2","optim.eval_batches=1",'
    '"val_fraction=0.3","tensorboard=false"]',
    'curve.agents.planner=["agent.optim.samples=32","agent.optim.iterations=2"]',
]  # fmt: skip
KEYS = {"planner/h0.005/s0", "planner/h0.01/s0", "bc/h0.005/s0", "bc/h0.01/s0", "reference/lane_follower",
        "reference/expert", "reference/planner_untrained"}  # fmt: skip


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


@pytest.mark.slow
def test_quick_curve_killed_and_resumed_finishes_every_record_once(tmp_path: Path) -> None:
    out = tmp_path / "curve"
    cmd = [sys.executable, "-m", "drive.cli", "curve", *TINY, f"out={out}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 900
    while not _lines(out / "curve.jsonl"):  # kill once the first point is finished
        if proc.poll() is not None:
            pytest.fail(f"curve ended before its first record: {proc.stderr.read()[-3000:]}")  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _lines(out / "curve.jsonl")
    first = before[0]
    exam_lines = len((Path(first["exam"]) / "results.jsonl").read_text().splitlines())

    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    records = _lines(out / "curve.jsonl")
    keys = [r["key"] for r in records]
    assert sorted(keys) == sorted(KEYS)  # every record once
    assert records[: len(before)] == before  # nothing finished was redone
    assert len((Path(first["exam"]) / "results.jsonl").read_text().splitlines()) == exam_lines
    assert describe_bar() in done.stdout
    # the nested budgets: each point trained on a prefix of its seed's collection of whole episodes
    # reaching its hours (episodes are <= 20 s here), the smaller prefix inside the larger
    for learner in ("planner", "bc"):
        small, large = (next(r for r in records if r["key"] == f"{learner}/h{h}/s0") for h in (0.005, 0.01))
        assert small["data"] == large["data"]
        for r in (small, large):
            assert r["budget_hours"] <= r["data_hours"] < r["budget_hours"] + 20.0 / 3600.0 + 1e-9
        assert small["data_hours"] <= large["data_hours"]
        assert Path(r["checkpoint"]).exists() and Path(r["results"]).exists()
    # outputs: the plot's numbers are the records'
    for name in ("curve.png", "curve.svg", "curve.md", "report.html", "run.json"):
        assert (out / name).exists(), name
    assert list((out / "tensorboard").glob("events.*"))
    drawn = plot(records, ["planner", "bc"], tmp_path / "p.png", tmp_path / "p.svg")
    for learner in ("planner", "bc"):
        mine = sorted((r["budget_hours"], r["driving_score"]) for r in records if r["learner"] == learner)
        np.testing.assert_allclose(sorted(map(tuple, drawn["learners"][learner]["points_ds"])), mine)
    untrained = next(r for r in records if r["key"] == "reference/planner_untrained")
    assert read_checkpoint(untrained["checkpoint"])["step"] == 0 and untrained["budget_hours"] is None
    assert "planner_untrained" in drawn["references"]
    expert = next(r for r in records if r["key"] == "reference/expert")
    assert drawn["references"]["expert"][0] == pytest.approx(expert["driving_score"])
    md = (out / "curve.md").read_text()
    assert describe_bar() in md and ("did **not** reach" in md or "reached competence" in md)
    # its wall time: the killed invocation to its last finished job, plus the one that ended
    events = [e["event"] for e in _lines(out / "invocations.jsonl")]
    assert events == ["start", "start", "end"] and all("finished_at" in r for r in records)
    assert "Wall time: " in md and "2 `drive curve` invocation(s), 1 interrupted" in md
    # a changed recipe is refused, naming the field
    bad = subprocess.run([*cmd[:-1], 'curve.train_bc=["optim.lr=0.5"]', f"out={out}"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert bad.returncode == 2 and "curve.train_bc" in bad.stderr


def test_planner_rounds_learns_on_a_prefix_of_the_shared_hazards_collection_and_counts_its_rounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from drive.pipelines import curve as curve_module

    cfg = compose_config("curve", ["curve.learners=[planner,planner_rounds]", "curve.budgets=[0.5]",
                                   "curve.seeds=[2]", "curve.references=[]", f"out={tmp_path}"])  # fmt: skip
    jobs = {j.learner: j for j in curve_module.Curve(cfg).jobs()}
    assert jobs["planner_rounds"].data == jobs["planner"].data  # one hazards collection per seed
    over = jobs["planner_rounds"].train_overrides
    assert jobs["planner_rounds"].trainer == "learn" and f"base={jobs['planner'].data}" in over
    assert "hours=0.5" in over and "seed=2" in over and "executor=inline" in over
    assert 'train=["optim.steps=3000","max_minutes=60","threads=1"]' in over  # the plan's train, handed on
    # the job's record: the last round's checkpoint, and every hour of every kind
    job = jobs["planner_rounds"]
    train_out = Path(str(job.train_out))
    ckpt = train_out / "train" / "2" / "best.pt"

    def fake(name: str, overrides: list[str]) -> None:
        if name == "learn":
            train_out.mkdir(parents=True, exist_ok=True)
            hours = {"budget": 0.5, "base": 0.2502, "rounds": [0.125, 0.1251], "total": 0.5003}
            (train_out / "learn.json").write_text(json.dumps({"hours": hours, "checkpoint": str(ckpt)}))
        else:
            assert f"agent.checkpoint={ckpt}" in overrides
            exam = Path(next(o[4:] for o in overrides if o.startswith("out=")))
            exam.mkdir(parents=True)
            (exam / "summary.json").write_text(json.dumps(SUMMARY))

    monkeypatch.setattr(curve_module, "_command", fake)
    record = curve_module.run_job(job)
    assert record["data_hours"] == 0.5003 and record["hours_by_kind"]["rounds"] == [0.125, 0.1251]
    assert record["checkpoint"] == str(ckpt)
