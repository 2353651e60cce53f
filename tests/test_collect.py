"""Experience collection: the exploration driver, and `drive collect` end to end (budget, shards,
manifest, resume after kill -9, refusing other settings)."""

from __future__ import annotations

import fcntl
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from drive.cli import compose_config
from drive.pipelines.collect import (
    MAX_EPISODES,
    WORKERS_LOCK_FILE,
    CollectError,
    _lock,
    episode_seed,
    map_ref,
    run,
)
from planning.base import AgentInfo
from planning.explore import ExplorationDriver, ExploreConfig, _ou, _route_curvature, _shifted_targets
from sim_bridge.api import EgoFeature, MapRef, WorldSpec
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator
from world_model.batch import EVENT
from world_model.dataset import open_dataset
from world_model.shards import file_sha256, read_manifest, read_shard

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore"}
_X = [int(EgoFeature.ROUTE_X0) + 2 * k for k in range(4)]
_Y = [x + 1 for x in _X]
GRID = WorldSpec(map=MapRef(town="grid", seed=0), vehicles=30, pedestrians=10, route_length=1000.0)


# --------------------------------------------------------------------------- exploration driver


def _drive(seeds: list[int], steps: int, spec: WorldSpec = GRID, config: ExploreConfig | None = None):
    """Run the explorer in one world per seed; actions ``[steps, B, 2]`` and the event flags."""
    sim = EmbeddedSimulator(EmbeddedConfig(num_worlds=len(seeds), threads=1))
    obs = sim.reset(spec, seeds)
    driver = ExplorationDriver(config)
    driver.seed(range(len(seeds)), seeds)
    driver.reset(AgentInfo(num_worlds=len(seeds), dt=sim.dt, ego=sim.ego_vehicle))
    actions, flags = [], []
    for _ in range(steps):
        a = driver.act(obs)
        obs, ev = sim.step(a)
        actions.append(a)
        flags.append(np.stack([ev.collision, ev.off_road], axis=1))
    sim.close()
    return np.stack(actions), np.stack(flags)


def test_explorer_is_deterministic_per_seed_whatever_the_batch():
    a, _ = _drive([11, 12, 13], 120)
    b, _ = _drive([11, 12, 13], 120)
    alone, _ = _drive([12], 120)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:, 1], alone[:, 0])  # world of seed 12 alone or among others
    assert not np.array_equal(a[:, 0], a[:, 2])
    assert np.abs(a).max() <= 1.0


def test_explorer_collides_and_leaves_the_road_in_a_minute_with_traffic():
    _, flags = _drive([0, 1, 2, 3], 600)  # 4 worlds x 60 s
    collisions, off_road = flags.sum(axis=(0, 1))
    assert collisions > 0 and off_road > 0


def test_explorer_without_noise_follows_the_route_at_its_target_speed():
    calm = ExploreConfig(offset_std=0, lane_change_rate=0, steer_noise=0, accel_noise=0, random_rate=0,
                         max_speed_factor=0.5, speed_period=1e9)  # fmt: skip
    _, flags = _drive(
        [5], 300, WorldSpec(map=MapRef(town="straight", seed=0), vehicles=0, pedestrians=0), calm
    )
    assert flags.sum() == 0


def test_offset_targets_and_ou_statistics():
    ego = np.zeros((1, len(EgoFeature)))
    for k in range(4):  # a straight route ahead along +x
        ego[0, EgoFeature.ROUTE_X0 + 2 * k] = 5.0 * (k + 1)
    tx, ty = _shifted_targets(ego, np.array([1.5]))
    np.testing.assert_allclose(tx, [[5, 10, 15, 20]])
    np.testing.assert_allclose(ty, 1.5)  # shifted to the left
    rng = np.random.default_rng(0)
    x, samples = np.zeros(2000), []
    for _ in range(300):
        x = _ou(x, rng.standard_normal(2000), 0.4, 0.5, 0.1)
        samples.append(x)
    assert np.std(samples[-1]) == pytest.approx(0.4, rel=0.05)  # stationary std
    lag = np.corrcoef(samples[-1], samples[-6])[0, 1]  # 0.5 s apart: correlation e^-1
    assert lag == pytest.approx(math.exp(-1.0), abs=0.05)


@given(radius=st.floats(8.0, 500.0), lateral=st.floats(-3.0, 3.0), yaw=st.floats(-0.5, 0.5),
       side=st.sampled_from([-1.0, 1.0]))  # fmt: skip
def test_route_curvature_is_that_of_the_route_not_of_the_ego_offset(radius, lateral, yaw, side):
    """Targets every 5 m along a circle of ``radius``, seen from an ego displaced sideways and
    turned: the curvature is 1/radius (chord-angle formula), whatever the ego's offset."""
    s = 5.0 * np.arange(1, 5)
    px, py = radius * np.sin(s / radius), side * radius * (1.0 - np.cos(s / radius))
    c, n = math.cos(yaw), math.sin(yaw)
    ego = np.zeros((1, len(EgoFeature)))
    ego[0, _X] = c * px - n * (py - lateral)
    ego[0, _Y] = n * px + c * (py - lateral)
    chord = 2.0 * radius * math.sin(2.5 / radius)  # consecutive chords turn by 5/R
    assert _route_curvature(ego)[0] == pytest.approx(5.0 / radius / chord, rel=1e-6)
    assert _route_curvature(ego)[0] == pytest.approx(1.0 / radius, rel=0.02)  # 1.7 % at R = 8 m
    straight = np.zeros((1, len(EgoFeature)))
    straight[0, _X], straight[0, _Y] = s, lateral  # a straight route 'lateral' m to the side
    assert _route_curvature(straight)[0] == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------------------------- collection


def test_episode_seeds_are_unique_and_bounded():
    seeds = {episode_seed(s, j, r, i) for s in (0, 1) for j in (0, 7) for r in (0, 2) for i in (0, 1, 99)}
    assert len(seeds) == 2 * 2 * 2 * 3
    with pytest.raises(CollectError, match="episode=100000"):
        episode_seed(0, 0, 0, MAX_EPISODES)
    assert map_ref("grid:3") == MapRef(town="grid", seed=3) and map_ref("xodr:a/b.xodr").xodr == "a/b.xodr"
    with pytest.raises(CollectError, match="name:seed"):
        map_ref("grid:x")


def test_compose_collect_config():
    cfg = compose_config("collect", ["driver=expert", "towns=[grid:1,highway:0]", "worlds=3", "hours=0.5"])
    assert cfg.driver.name == "expert" and list(cfg.towns) == ["grid:1", "highway:0"]
    assert cfg.sim.num_worlds == 3 and cfg.sim.threads == 1 and cfg.out == "outputs/collect/expert"


def _collect_args(out: Path, *extra: str) -> list[str]:
    return ["collect", f"out={out}", "executor=inline", "worlds=2", "towns=[grid:0]", *extra]


def test_resume_refuses_other_settings_and_extends_the_budget(tmp_path, capsys):
    out = tmp_path / "c"
    assert run(compose_config("collect", _collect_args(out, "hours=0.004", "shard_steps=50")[1:])) == 0
    first = read_manifest(out)
    assert first.complete and first.totals()["hours"] >= 0.004 and first.runs == 1
    capsys.readouterr()
    # other settings: refused, naming the fields
    assert run(compose_config("collect", _collect_args(out, "hours=0.004", "shard_steps=50", "worlds=3",
                                                       "seed=4")[1:])) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "worlds" in err and "seed" in err and "sim.num_worlds" in err
    # a larger budget extends it: the old shards are kept, new episodes have new seeds
    assert run(compose_config("collect", _collect_args(out, "hours=0.008", "shard_steps=50")[1:])) == 0
    second = read_manifest(out)
    assert second.complete and second.runs == 2
    assert 0.008 <= second.totals()["hours"] < 0.008 + 2 * 2 * 0.1 / 3600
    assert {s.sha256 for s in first.shards} <= {s.sha256 for s in second.shards}
    seeds = [i for s in second.shards for i in s.seeds]
    assert len(seeds) == len(set(seeds))


def test_resume_sets_aside_a_damaged_orphan_and_waits_for_running_jobs(tmp_path, capsys):
    out = tmp_path / "c"
    assert run(compose_config("collect", _collect_args(out, "hours=0.002")[1:])) == 0
    (out / "job00001-000.npz").write_bytes(b"PK\x03\x04 not a whole zip")  # as if damaged on disk
    (out / ".job00001-001.npz.abc.tmp").write_bytes(b"half")  # a kill during an atomic write
    # a job of a killed earlier run still holds the workers' lock: refused, nothing touched
    with _lock(out / WORKERS_LOCK_FILE, fcntl.LOCK_SH):
        assert run(compose_config("collect", _collect_args(out, "hours=0.004")[1:])) == 2
    assert "still running" in capsys.readouterr().err and (out / "job00001-000.npz").exists()
    assert run(compose_config("collect", _collect_args(out, "hours=0.004")[1:])) == 0
    manifest = read_manifest(out)
    assert (out / "job00001-000.npz.corrupt").exists() and not list(out.glob(".*.tmp"))
    assert manifest.complete and manifest.totals()["hours"] >= 0.004
    assert all(file_sha256(out / s.file) == s.sha256 for s in manifest.shards)


def _drive_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "drive.cli", *args], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip


@pytest.mark.slow
def test_collect_with_the_expert_end_to_end(tmp_path):
    out = tmp_path / "expert"
    proc = _drive_cli("collect", "hours=0.02", "driver=expert", "workers=1", f"out={out}", "worlds=4")
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    manifest = read_manifest(out)
    totals = manifest.totals()
    assert summary["hours"] == totals["hours"] and manifest.complete and manifest.driver == "expert"
    assert 0.02 <= totals["hours"] < 0.02 + 4 * 0.1 / 3600  # the budget, to one batched step
    assert manifest.config["driver"]["name"] == "expert" and "code_version" in manifest.to_dict()
    seeds = [i for s in manifest.shards for i in s.seeds]
    assert len(seeds) == len(set(seeds))
    for info in manifest.shards:
        assert file_sha256(out / info.file) == info.sha256
        shard = read_shard(out / info.file, sha256=info.sha256)
        ev, ends = shard["events"], shard["ep_end"]
        last = shard["ep_start"] + shard["ep_length"] - 1
        # done exactly on the last step of episodes that ended in a collision or at the route's end
        np.testing.assert_array_equal(np.flatnonzero(ev[:, EVENT["done"]] > 0.5), last[ends <= 1])
        assert (ev[last[ends == 0], EVENT["collision"]] == 1).all()
        assert ev[:, EVENT["speed"]].max() > 3.0 and (ev[:, EVENT["dx"]] > -0.5).all()
    ds = open_dataset(out, window=8, split="all")
    assert ds.steps == totals["steps"] and len(ds) > 0


def _shards_on_disk(out: Path) -> list[Path]:
    return sorted(out.glob("job*-*.npz"))


@pytest.mark.slow
def test_collect_resumes_after_kill_without_duplicates(tmp_path):
    out = tmp_path / "explore"
    args = [
        "collect",
        "hours=0.06",
        "job_hours=0.02",
        "shard_steps=100",
        "workers=1",
        "worlds=4",
        "towns=[grid:0]",
        f"out={out}",
    ]
    proc = _drive_cli(*args)
    deadline = time.time() + 120
    while time.time() < deadline and not _shards_on_disk(out):
        if proc.poll() is not None:
            pytest.fail(f"collect ended before its first shard: {proc.stderr.read()[-2000:]}")
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # parent and worker
    proc.wait()
    before = {p.name: file_sha256(p) for p in _shards_on_disk(out)}
    assert before and not read_manifest(out).complete
    proc = _drive_cli(*args)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    manifest = read_manifest(out)
    totals = manifest.totals()
    assert manifest.complete and manifest.runs == 2
    # the budget, over by less than one batched step per job attempt (3 jobs, at most 2 attempts each)
    assert 0.06 <= totals["hours"] < 0.06 + 6 * 4 * 0.1 / 3600
    files = {s.file: s.sha256 for s in manifest.shards}
    assert all(files.get(name) == sha for name, sha in before.items())  # kept, not rewritten
    assert sorted(files) == [p.name for p in _shards_on_disk(out)]
    seeds = [i for s in manifest.shards for i in s.seeds]
    assert len(seeds) == len(set(seeds))
    ids = np.concatenate([read_shard(out / f, sha256=h)["ep_id"] for f, h in files.items()])
    assert len(ids) == len(set(ids.tolist())) == totals["episodes"]
