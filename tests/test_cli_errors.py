"""Every mistake a user makes gets one clear line and a non-zero exit (issue 14), met as the user
meets it: ``python -m drive.cli …`` in a subprocess, checking the exit status and the message."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}
ENV.pop("DRIVE_DEBUG", None)


def drive(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "drive.cli", *args],
        cwd=cwd,
        env=env or ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )


def one_line_error(proc: subprocess.CompletedProcess, prefix: str) -> str:
    """The refusal's message: exit status 2, no traceback, last stderr line starting ``prefix``."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(prefix), proc.stderr[-2000:]
    return last


# ------------------------------------------------------------------------- the configuration


@pytest.mark.parametrize("key", ["+steps=5", "steps=5", "optim.stepz=5"])
def test_unknown_keys_are_refused_with_the_nearest_real_field(tmp_path, key):
    line = one_line_error(drive("train", "data=nowhere", key, cwd=tmp_path), "drive train: bad configuration")
    assert key in line and "did you mean optim.steps" in line
    assert "+key" not in line and "append" not in line  # Hydra's advice to force the key in is gone
    assert not (tmp_path / "outputs").exists()  # nothing ran


@pytest.mark.parametrize(
    ("command", "value", "allowed"),
    [
        ("eval", "workers=-3", ">= 0"),
        ("eval", "executor=foo", "one of inline, local, ray"),
        ("render", "steps=-5", ">= 1"),
        ("collect", "vehicles=[5, -1]", ">= 0"),
        ("collect", "branches.k=0", ">= 1"),
    ],
)
def test_values_out_of_range_are_refused_when_the_config_is_composed(tmp_path, command, value, allowed):
    line = one_line_error(drive(command, value, cwd=tmp_path), f"drive {command}: bad configuration: {value}")
    assert f"must be {allowed}" in line
    assert not (tmp_path / "outputs").exists()


def test_schema_entries_are_no_choice_and_not_offered(tmp_path):
    line = one_line_error(drive("eval", "agent=agent_schema", cwd=tmp_path), "drive eval: bad configuration")
    choices = line.split("agent must be one of ")[1].split(", ")
    assert {"expert", "lane_follower", "planner"} <= set(choices) and choices == sorted(choices)
    assert not any("schema" in c for c in choices)
    proc = drive("eval", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and "agent=bc|expert|lane_follower" in proc.stdout
    assert "_schema" not in proc.stdout


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_lists_every_key_with_type_default_allowed_values_and_description(tmp_path, flag):
    proc = drive("render", flag, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    at = lines.index("  steps: int = 200  [>= 1]")
    assert lines[at + 1].strip() == "Decision steps to run (live mode)."
    assert "  world.town: str = grid" in lines  # nested groups flattened, values as composed
    proc = drive("train", "-h", cwd=tmp_path)
    assert "  data: str = ??? (required)" in proc.stdout.splitlines()
    assert (
        "  optim.steps: int = 4000  [>= 0]" in proc.stdout.splitlines()
    )  # the YAML's value, not the class's


def test_a_value_of_the_wrong_type_is_one_line(tmp_path):
    line = one_line_error(drive("render", "steps=many", cwd=tmp_path), "drive render: bad configuration")
    assert "steps" in line and "'many'" in line
    line = one_line_error(
        drive("collect", "sim.num_worlds=${nope}", cwd=tmp_path), "drive collect: bad config"
    )
    assert line.endswith("sim.num_worlds: Interpolation key 'nope' not found")


# ------------------------------------------------------------------------------ run-time errors


def test_project_errors_at_run_time_are_one_line_and_the_traceback_is_behind_debug(tmp_path):
    missing = tmp_path / "no_such_suite.yaml"
    line = one_line_error(
        drive("eval", f"suite_file={missing}", cwd=tmp_path), "drive eval: cannot read suite"
    )
    assert str(missing) in line
    debug = drive("eval", f"suite_file={missing}", "--debug", cwd=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr and "SuiteError" in debug.stderr
    env = {**ENV, "DRIVE_DEBUG": "1"}
    assert "Traceback" in drive("eval", f"suite_file={missing}", cwd=tmp_path, env=env).stderr


def test_an_unknown_device_is_one_line(tmp_path):
    proc = drive("train", "data=anywhere", f"out={tmp_path / 't'}", "device=gpu", cwd=tmp_path)
    one_line_error(proc, "drive train: device='gpu': give cpu, cuda, cuda:<index> or auto")


def test_unknown_town_is_one_line(tmp_path):
    line = one_line_error(drive("render", "world.town=atlantis", cwd=tmp_path), "drive render: unknown town")
    assert "'atlantis'" in line and "grid" in line


def test_a_file_that_is_not_a_checkpoint_is_named_and_weights_only_is_never_suggested(tmp_path):
    garbage = tmp_path / "last.pt"
    garbage.write_bytes(b"not a checkpoint at all\n" * 10)
    proc = drive("wm-eval", f"checkpoint={garbage}", f"data={tmp_path}", cwd=tmp_path)
    line = one_line_error(proc, f"drive wm-eval: {garbage} is not a world-model checkpoint")
    assert "weights_only" not in proc.stderr and "issue" not in proc.stderr.lower()
    assert "drive train" in line


@pytest.mark.parametrize("gap", ["fast", "-500"])
def test_a_family_parameter_of_the_wrong_type_or_range_is_refused_before_anything_runs(tmp_path, gap):
    suite = tmp_path / "mine.yaml"
    suite.write_text(
        f"name: mine\nentries:\n  - family: lead_vehicle_brake\n    params: {{lead_gap: {gap}}}\n"
    )
    proc = drive("eval", f"suite_file={suite}", f"out={tmp_path / 'run'}", "executor=inline", cwd=tmp_path)
    line = one_line_error(proc, f"drive eval: {suite}: entries[0]: family 'lead_vehicle_brake': lead_gap=")
    assert "lead_gap must be a number in [5, 150] m" in line
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


# ------------------------------------------------------------------------------ collections


def test_a_damaged_or_missing_shard_is_repaired_by_re_running_the_collection(tmp_path):
    from world_model.shards import read_manifest, read_shard

    out = tmp_path / "c"
    collect = ("collect", f"out={out}", "executor=inline", "worlds=2", "towns=[grid:0]", "hours=0.004")
    assert drive(*collect, cwd=tmp_path).returncode == 0
    shard = out / read_manifest(out).shards[0].file
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    # training meets the damage and names the one repair
    proc = drive("train", f"data={out}", f"out={tmp_path / 't'}", "hours=null", cwd=tmp_path)
    line = one_line_error(proc, f"drive train: shard {shard}: sha256")
    assert f"re-run the `drive collect out={out} …` command that wrote it" in line
    # following it: the damaged shard is set aside and its share collected again
    proc = drive(*collect, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "will be collected again" in proc.stderr
    assert shard.with_name(shard.name + ".corrupt").exists()
    manifest = read_manifest(out)
    assert manifest.complete and manifest.totals()["hours"] >= 0.004
    for s in manifest.shards:
        read_shard(out / s.file, sha256=s.sha256)  # every listed shard reads with its checksum
    # a budget beyond what the collection holds
    proc = drive("train", f"data={out}", f"out={tmp_path / 't5'}", "hours=5", cwd=tmp_path)
    assert "the collection holds 0.00" in one_line_error(proc, "drive train: hours=5.0: ")
    # a deleted shard is repaired the same way
    (out / manifest.shards[0].file).unlink()
    assert drive(*collect, cwd=tmp_path).returncode == 0
    manifest = read_manifest(out)
    assert manifest.complete and manifest.totals()["hours"] >= 0.004
    assert all((out / s.file).exists() for s in manifest.shards)


# ------------------------------------------------------------------------------ processes


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_pool_workers_and_the_resource_tracker_die_with_a_killed_eval(tmp_path):
    import signal
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "drive.cli", "eval", "suite=nhtsa", "agent=lane_follower", "executor=local",
         "workers=1", f"out={tmp_path / 'run'}"],
        cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        children: list[int] = []
        while time.monotonic() < deadline and proc.poll() is None:
            children = _children(proc.pid)
            cmdlines = [Path(f"/proc/{c}/cmdline").read_bytes() for c in children if _alive(c)]
            if any(b"spawn_main" in c for c in cmdlines) and any(b"resource_tracker" in c for c in cmdlines):
                break
            time.sleep(0.2)
        assert proc.poll() is None and len(children) >= 2, "the pool worker never started"
        time.sleep(2.0)  # the worker is past its initializer, running an episode
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(c) for c in children):
            time.sleep(0.2)
        assert not [c for c in children if _alive(c)], "orphans left behind"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the test's own process group, whatever happened


def test_a_second_eval_into_the_same_folder_is_refused_naming_the_first(tmp_path):
    from scenarios.results import ResultStore

    out = tmp_path / "run"
    store = ResultStore(out)
    with store.owned():  # this process plays the first `drive eval`
        proc = drive("eval", f"out={out}", "executor=inline", cwd=tmp_path)
        line = one_line_error(proc, f"drive eval: another process (pid {os.getpid()}, since ")
        assert str(out) in line and "another out=" in line
    assert not (out / "manifest.json").exists()  # the second one touched nothing


def test_the_run_lock_of_a_killed_owner_is_taken_over(tmp_path):
    import signal

    from scenarios.results import RUN_LOCK_FILE, ResultStore, RunBusy

    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from scenarios.results import ResultStore\n"
         "with ResultStore(sys.argv[1]).owned():\n    print('held', flush=True); time.sleep(600)", str(out)],
        env=ENV, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunBusy, match=f"pid {holder.pid}"), ResultStore(out).owned():
            pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        with ResultStore(out).owned():
            assert (out / RUN_LOCK_FILE).read_text().startswith(f"pid {os.getpid()}, since ")
    finally:
        holder.kill()


# ------------------------------------------------------------------------------ eval reports

TWO_EPISODES = (
    "name: two\nentries:\n  - family: lead_vehicle_brake\n    params: {lead_gap: 20.0}\n    seeds: [0, 1]\n"
)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_crashed_episode_is_counted_left_out_of_the_scores_and_re_run_by_the_same_command(tmp_path):
    import json
    import signal
    import time

    suite = tmp_path / "two.yaml"
    suite.write_text(TWO_EPISODES)
    out = tmp_path / "run"
    args = ["eval", f"suite_file={suite}", f"out={out}", "executor=local", "workers=1", "agent=lane_follower",
            "worst_gifs=0", "tensorboard=false"]  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "drive.cli", *args], cwd=tmp_path, env=ENV, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip
    try:
        deadline, worker = time.monotonic() + 240, None
        while worker is None and time.monotonic() < deadline and proc.poll() is None:
            kids = [c for c in _children(proc.pid) if _alive(c)]
            worker = next((c for c in kids if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()), None)
            time.sleep(0.1)
        assert worker is not None, "no pool worker"
        time.sleep(0.5)
        os.kill(worker, signal.SIGKILL)  # dies before its first episode ends (imports alone take longer)
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 1, stderr[-3000:]
    # the first episode the worker took crashed (the longer route runs first: which seed depends on it)
    summary = json.loads((out / "summary.json").read_text())
    crashed = summary["left_out"]["crashed"]
    assert summary["overall"]["episodes"] == 1 and len(crashed) == 1
    assert crashed[0] in ("lead_vehicle_brake_000_s0", "lead_vehicle_brake_000_s1")
    assert stderr.strip().splitlines()[-1] == (
        f"drive eval: 1 of 2 episodes crashed ({crashed[0]}) and are left out of the scores above; "
        "re-run the same command to run them again"
    )
    assert "lead_vehicle_brake  1 " in stdout  # the table scores the one episode that ran
    report = (out / "report.md").read_text()
    assert "1 crashed episodes are left out of the scores" in report and "Run: {" not in report
    # the same command again runs only the crashed episode; the report totals the whole run
    again = drive(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "lead_vehicle_brake  2 " in again.stdout
    report = (out / "report.md").read_text()
    assert "Run: 2 episodes (0 crashed, 0 agent errors)" in report
    assert "This invocation ran 1 of them" in report and "1 come from earlier invocations" in report
    for column in ("DS:", "RC %:", "penalty:", "coll/km:"):  # every column explained, with its source
        line = next(x for x in report.splitlines() if x.startswith(f"- {column}"))
        assert "Leaderboard" in line


# ------------------------------------------------------------------------------ maps


def test_maps_carry_a_georeference_and_no_command_warns_about_one(tmp_path):
    import re

    from sim_bridge.maps.towns import make_town
    from sim_bridge.maps.xodr import DEFAULT_GEOREFERENCE

    text = make_town("straight", 0)
    assert f"<geoReference>{DEFAULT_GEOREFERENCE}</geoReference>" in text  # the maps we write
    bare = tmp_path / "bare.xodr"  # a map from elsewhere, without one
    bare.write_text(re.sub(r"\s*<geoReference>.*?</geoReference>", "", text))
    assert "geoReference" not in bare.read_text()
    proc = drive("render", f"world.xodr={bare}", "steps=2", f"out={tmp_path / 'x.gif'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cannot parse georeference" not in proc.stdout + proc.stderr


def test_report_plots_count_in_integers_and_keep_the_legend_off_the_bars(monkeypatch):
    from scenarios import report

    figures = {}

    def keep(fig):
        figures[len(figures)] = fig
        return ""

    monkeypatch.setattr(report, "_png", keep)
    stats = {"driving_score": {"mean": 100.0, "std": 0.0}, "route_completion": {"mean": 100.0}}
    summary = {
        "families": {"a": stats, "b": stats},
        "overall": {"infractions": {"red_light": 3, "stop_sign": 1}},
    }
    report._plots(summary)
    bars, counts = figures[0], figures[1]
    counts.canvas.draw()
    ticks = counts.axes[0].get_xticks()
    assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)  # no 0.5 of an infraction
    bars.canvas.draw()
    ax = bars.axes[0]
    legend = ax.get_legend().get_window_extent()
    assert legend.x0 >= ax.get_window_extent().x1  # beside the bars, which reach the top at 100


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["collect", "towns=[atlantis:0]"], "drive collect: town 'atlantis:0': unknown town 'atlantis'"),
        (
            ["collect", "towns=[xodr:nowhere.xodr]"],
            "drive collect: town 'xodr:nowhere.xodr': no OpenDRIVE file",
        ),
        (["eval", "agent.name=foo"], "drive eval: agent: unknown agent 'foo'; known agents:"),
        (["collect", "recipe=hazards", "towns=[grid:7]"], "drive collect: towns ['grid:7'] are held out"),
    ],
)
def test_names_that_would_fail_every_job_or_episode_are_refused_up_front(tmp_path, args, message):
    proc = drive(*args, f"out={tmp_path / 'run'}", "executor=inline", cwd=tmp_path)
    one_line_error(proc, message)
    assert not (tmp_path / "run" / "results.jsonl").exists()  # no episode scored DS 0 for it
