"""Collection recipes (``recipe=hazards``): hazard moments, counterfactual branches forked at them,
scenario-family situations; the budget counts every kind, the same seed gives the same shards, the
trainer's dataset reads the result, and shards and manifests written before recipes still read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from drive.cli import compose_config
from drive.pipelines.branches import Brancher, BranchesConfig, branch_actions, sequence_names
from drive.pipelines.collect import run
from drive.pipelines.hazards import TRIGGERS, HazardConfig, at_hazard, hazard_flags
from drive.pipelines.situations import draw_params, is_situation, placeable, situation
from scenarios.families import FAMILIES, make_scenario
from scenarios.families.params import PARAMS
from scenarios.suites import Footprint
from sim_bridge.api import EgoFeature, MapRef, Observation
from sim_bridge.api import ObjectFeature as OF
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.sensors.layout import EGO_DIM, OBJECT_DIM
from world_model.batch import EVENT, NUM_EVENTS
from world_model.dataset import open_dataset
from world_model.shards import (
    OPTIONAL,
    EndReason,
    Episode,
    EpisodeKind,
    ShardError,
    ShardInfo,
    encode_shard,
    episode_metas,
    npz_bytes,
    pack_bev,
    read_manifest,
    read_shard,
)

HAZARDS = [
    "recipe=hazards",
    "branches.k=4",
    "branches.steps=10",
    "branches.max_share=0.5",
    "branches.every=0.5",
]
NONE = Footprint(frozenset(), frozenset(), {})


# ------------------------------------------------------------------------------------- hazards


def _obs(speed: float, objects: list[dict[str, float]], stop: float = 50.0, red: bool = False) -> Observation:
    """One world's observation with an ego at ``speed`` [m/s] and the listed objects (ego frame)."""
    ego = np.zeros((1, EGO_DIM), np.float32)
    ego[0, EgoFeature.SPEED] = speed
    ego[0, EgoFeature.STOP_DISTANCE] = stop
    ego[0, EgoFeature.STOP_IS_RED] = float(red)
    rows = np.zeros((1, 4, OBJECT_DIM), np.float32)
    mask = np.zeros((1, 4), bool)
    for i, o in enumerate(objects):
        rows[0, i, [OF.COS_YAW, OF.LENGTH, OF.WIDTH]] = 1.0, o.get("length", 4.6), o.get("width", 1.9)
        rows[0, i, [OF.X, OF.Y, OF.VX]] = o["x"], o.get("y", 0.0), o.get("vx", 0.0)
        rows[0, i, OF.IS_PEDESTRIAN if o.get("walker") else OF.IS_VEHICLE] = 1.0
        mask[0, i] = True
    return Observation(
        np.zeros((1, 1, 4, 4), np.uint8), ego, rows, mask, np.zeros((1, 4), np.int32), np.zeros((1, 3))
    )


def test_hazard_moments_closed_form():
    cfg = HazardConfig()
    flags = lambda obs: dict(zip(TRIGGERS, hazard_flags(obs, cfg)[0].tolist(), strict=True))  # noqa: E731
    # a car 5 m ahead (gap 5 - 2.3 - 2.3 = 0.4 m): close ahead; at 10 m/s against a standing car, TTC < 2 s
    assert flags(_obs(10.0, [{"x": 5.0}])) == dict.fromkeys(TRIGGERS, False) | {
        "close_ahead": True,
        "ttc": True,
    }
    # the same car in the next lane (3.5 m to the left): nothing
    assert not any(flags(_obs(10.0, [{"x": 5.0, "y": 3.5, "vx": 10.0}])).values())
    # a stopped car 30 m ahead at 15 m/s: gap 25.4 m, TTC (30 - 4.6) / 15 = 1.7 s
    assert flags(_obs(15.0, [{"x": 30.0}]))["ttc"] and not flags(_obs(15.0, [{"x": 30.0}]))["close_ahead"]
    assert not flags(_obs(10.0, [{"x": 30.0}]))["ttc"]  # 2.5 s
    # a walker on the kerb 8 m ahead, 3 m to the right; one 20 m ahead is not yet a hazard
    walker = {"x": 8.0, "y": -3.0, "walker": True, "length": 0.6, "width": 0.6}
    assert (
        flags(_obs(8.0, [walker]))["pedestrian"]
        and not flags(_obs(8.0, [walker | {"x": 20.0}]))["pedestrian"]
    )
    # a red light's stop line 10 m ahead while moving; at a standstill it is a standstill instead
    assert flags(_obs(8.0, [], stop=10.0, red=True))["stop_line"]
    assert flags(_obs(0.2, [], stop=10.0, red=True)) == dict.fromkeys(TRIGGERS, False) | {"standstill": True}
    assert not flags(_obs(8.0, [], stop=10.0, red=False))["stop_line"]
    # only the named triggers count
    assert not at_hazard(_obs(0.2, []), cfg, ["close_ahead", "ttc"])[0]


# ------------------------------------------------------------------------------------ branches


def test_sequences_are_named_and_shaped_as_asked():
    assert sequence_names(["keep", "brake", "random"], 5) == [
        "keep",
        "brake",
        "random_0",
        "random_1",
        "random_2",
    ]
    assert sequence_names(["keep", "brake", "accelerate"], 2) == ["keep", "brake"]
    names = sequence_names(["keep", "brake", "accelerate", "swerve_left", "swerve_right", "random"], 6)
    acts = branch_actions(names, np.array([0.2, 0.1]), 16, 0.5, np.random.default_rng(0))
    assert acts.shape == (6, 16, 2) and acts.dtype == np.float32 and np.abs(acts).max() <= 1.0
    np.testing.assert_allclose(acts[:5, 0], [[0.2, 0.1], [-1.0, 0.1], [1.0, 0.1], [0.2, 0.5], [0.2, -0.5]])
    # standing (the last action a brake): the swerves pull away, the rest is as before
    still = branch_actions(names, np.array([-1.0, 0.0]), 16, 0.5, np.random.default_rng(0), True, 0.5)
    np.testing.assert_allclose(still[:5, 0], [[-1.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.5, 0.5], [0.5, -0.5]])
    moving = branch_actions(names, np.array([-1.0, 0.0]), 16, 0.5, np.random.default_rng(0), False, 0.5)
    np.testing.assert_allclose(moving[3:5, 0], [[-1.0, 0.5], [-1.0, -0.5]])


def test_swerve_branches_from_a_standstill_move_off_sideways():
    spec = make_scenario("lead_vehicle_brake", {"lead_gap": 15.0}, seed=11, town=MapRef("highway", 0))
    sim = EmbeddedSimulator(EmbeddedConfig(num_worlds=1, threads=1))
    obs = sim.reset([spec.world], [11])
    for _ in range(40):  # brake to a standstill
        obs, _ = sim.step(np.array([[-1.0, 0.0]]))
    assert obs.ego[0, EgoFeature.SPEED] < 0.1
    brancher = Brancher(sim, BranchesConfig(enabled=True, k=5, steps=12), route_end_distance=5.0,
                        max_route_deviation=30.0)  # fmt: skip
    by_name = {
        e.meta.sequence: e
        for e in brancher.run(sim, 0, obs, 1, 40, "lead_vehicle_brake", range(5), "highway:0")
    }
    brancher.close()
    sim.close()
    top = {n: float(e.ego[:, EgoFeature.SPEED].max()) for n, e in by_name.items()}
    assert top["keep"] < 0.1 and top["brake"] < 0.1  # held the brake
    assert top["swerve_left"] > 1.0 and top["swerve_right"] > 1.0, top  # moved off
    turn = {n: float(e.events[:, EVENT["dyaw"]].sum()) for n, e in by_name.items() if n.startswith("swerve")}
    assert turn["swerve_left"] > 0.05 and turn["swerve_right"] < -0.05, turn  # to each side


def test_branches_start_from_the_parent_state_bit_for_bit_and_follow_their_own_actions():
    spec = make_scenario("lead_vehicle_brake", {"lead_gap": 15.0}, seed=11, town=MapRef("highway", 0))
    sim = EmbeddedSimulator(EmbeddedConfig(num_worlds=2, threads=1))
    obs = sim.reset([spec.world, spec.world], [11, 12])
    for _ in range(12):
        obs, _ = sim.step(np.tile([0.6, 0.0], (2, 1)))
    cfg = BranchesConfig(enabled=True, k=6, steps=10)
    brancher = Brancher(sim, cfg, route_end_distance=5.0, max_route_deviation=30.0)
    runs = [
        brancher.run(sim, 1, obs, 77, 12, "lead_vehicle_brake", list(range(100, 106)), "highway:0")
        for _ in "ab"
    ]
    brancher.close()
    branches = runs[0]
    assert sorted(e.id for e in branches) == list(range(100, 106))
    assert {e.meta.sequence for e in branches} == set(brancher.names)
    first = pack_bev(obs.bev[1])
    for e in branches:
        assert e.meta.kind == EpisodeKind.BRANCH and (e.meta.parent, e.meta.fork_step) == (77, 12)
        assert e.meta.family == "lead_vehicle_brake" and 1 <= e.steps <= 10
        # every branch's first observation is the parent's at the fork, bit for bit
        np.testing.assert_array_equal(e.bev_bits[0], first)
        np.testing.assert_array_equal(e.ego[0], obs.ego[1])
        np.testing.assert_array_equal(e.objects[0], obs.objects[1].astype(np.float16))
        assert e.end in (EndReason.HORIZON, EndReason.COLLISION)
    # … their actions differ, and so do their outcomes
    by_name = {e.meta.sequence: e for e in branches}
    assert len({e.action.tobytes() for e in branches}) == len(branches)
    speed = {n: float(e.ego[-1, EgoFeature.SPEED]) for n, e in by_name.items()}
    assert speed["brake"] < speed["keep"] < speed["accelerate"]
    # the parent world is untouched, and the same fork replays bit for bit
    np.testing.assert_array_equal(sim.observe().bev, obs.bev)
    for a, b in zip(runs[0], runs[1], strict=True):
        np.testing.assert_array_equal(a.bev_bits, b.bev_bits)
        np.testing.assert_array_equal(a.events, b.events)
    sim.close()


# ---------------------------------------------------------------------------------- situations


def test_situation_parameters_stay_in_the_family_range_and_the_draws_are_seeded():
    rng = np.random.default_rng(0)
    for family in FAMILIES:
        for _ in range(20):
            params = draw_params(family, 0.5, rng)
            assert set(params) == set(FAMILIES[family].grid)
            for key, value in params.items():
                assert PARAMS[family][key].accepts(value), (family, key, value)
    grid0 = MapRef("grid", 0)
    fams = ["pedestrian_crossing", "parked_obstacle"]
    a, b = situation(5, grid0, fams, 0.5, NONE), situation(5, grid0, fams, 0.5, NONE)
    assert a is not None and a == b and a.world.map == grid0 and a.family in fams
    assert situation(6, grid0, ["merge_slow_traffic"], 0.5, NONE) is None  # no highway in a grid town
    fits = placeable(["merge_slow_traffic", "lead_vehicle_brake", "parked_obstacle"], grid0, 0.5)
    assert fits == ["lead_vehicle_brake", "parked_obstacle"]
    share = np.mean([is_situation(s, 0.3, NONE) for s in range(2000)])
    assert 0.27 < share < 0.33
    assert not is_situation(7, 1.0, Footprint(frozenset(), frozenset({7}), {}))  # a held-out seed


# ---------------------------------------------------------------------------------- collection


def _collect(out: Path, *extra: str) -> int:
    args = [f"out={out}", "executor=inline", "worlds=2", "towns=[grid:0]", "hours=0.01", "job_hours=0.01",
            "shard_steps=60", *HAZARDS, *extra]  # fmt: skip
    return run(compose_config("collect", args))


@pytest.fixture(scope="module")
def hazards(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("recipes") / "hazards"
    assert _collect(out) == 0
    return out


def test_every_kind_counts_in_the_budget_and_the_manifest(hazards, capsys):
    manifest = read_manifest(hazards)
    totals = manifest.totals()
    kinds = totals["kind_seconds"]
    assert set(kinds) == {"plain", "situation", "branch"}
    assert sum(kinds.values()) == pytest.approx(totals["sim_seconds"])
    # the budget, to one batched step: branches are in it, not on top of it
    assert 0.01 <= totals["hours"] < 0.01 + 2 * 0.1 / 3600
    branch = sum(s.kinds.get("branch", 0.0) for s in manifest.shards)
    assert 0.0 < branch <= 0.5 * totals["sim_seconds"] + 1e-6  # branches.max_share
    assert set(totals["family_seconds"]) <= set(FAMILIES) and totals["family_seconds"]
    # each stored episode says where it comes from; branches from one fork share their first state
    forks: dict[tuple[int, int], list[bytes]] = {}
    ids: dict[int, int] = {}
    for info in manifest.shards:
        shard = read_shard(hazards / info.file, sha256=info.sha256)
        assert all(k in shard.arrays for k in OPTIONAL)
        for e, (start, kind) in enumerate(zip(shard["ep_start"], shard["ep_kind"], strict=True)):
            ids[int(shard["ep_id"][e])] = int(kind)
            if kind == EpisodeKind.BRANCH:
                key = (int(shard["ep_parent"][e]), int(shard["ep_fork_step"][e]))
                forks.setdefault(key, []).append(
                    shard["bev_bits"][start].tobytes() + shard["ego"][start].tobytes()
                )
        assert info.roots == tuple(
            int(p) if k == EpisodeKind.BRANCH else int(i)
            for i, k, p in zip(shard["ep_id"], shard["ep_kind"], shard["ep_parent"], strict=True)
        )
    assert forks and all(len(v) == 4 and len(set(v)) == 1 for v in forks.values())
    assert all(ids[parent] != EpisodeKind.BRANCH for parent, _ in forks)  # parents are stored episodes


def test_the_same_seed_gives_the_same_shards(hazards, tmp_path):
    assert _collect(tmp_path / "again") == 0
    a, b = read_manifest(hazards), read_manifest(tmp_path / "again")
    assert [(s.file, s.sha256) for s in a.shards] == [(s.file, s.sha256) for s in b.shards]
    assert _collect(tmp_path / "other", "seed=1") == 0
    assert {s.sha256 for s in read_manifest(tmp_path / "other").shards}.isdisjoint(
        {s.sha256 for s in a.shards}
    )


def test_the_trainer_reads_branches_and_situations_and_keeps_branches_with_their_parent(hazards):
    manifest = read_manifest(hazards)
    root = {i: r for s in manifest.shards for i, r in zip(s.seeds, s.roots, strict=True)}
    train = open_dataset(hazards, window=16, split="train", val_fraction=0.5)
    val = open_dataset(hazards, window=16, split="val", val_fraction=0.5)
    assert train.steps + val.steps == manifest.totals()["steps"]
    sides = {}
    for side, ds in (("train", train), ("val", val)):
        for eid in ds.episodes.tolist():
            assert sides.setdefault(root[eid], side) == side  # a branch lands where its parent does
        w = ds.batch(np.arange(min(len(ds), 32)))
        assert w.bev.shape[1] == 16 and w.valid[:, :8].all()
    assert any(root[i] != i for i in train.episodes.tolist() + val.episodes.tolist())  # branches are in


def test_a_hazards_collection_extends_on_resume_with_new_ids_and_stored_parents(tmp_path):
    out = tmp_path / "grown"
    assert _collect(out, "hours=0.005") == 0
    first = read_manifest(out)
    assert _collect(out) == 0  # hours=0.01: the same job's share grows
    grown = read_manifest(out)
    assert grown.complete and grown.runs == 2 and 0.01 <= grown.totals()["hours"] < 0.01 + 2 * 0.1 / 3600
    assert {s.sha256 for s in first.shards} <= {s.sha256 for s in grown.shards}
    ids = [i for s in grown.shards for i in s.seeds]
    assert len(ids) == len(set(ids))
    assert {r for s in grown.shards for r in s.roots} <= set(ids)  # every branch's parent is stored
    assert grown.totals()["kind_seconds"]["branch"] > first.totals()["kind_seconds"].get("branch", 0.0)


def test_a_collection_from_before_recipes_resumes_as_plain_exploration(tmp_path, capsys):
    out = tmp_path / "plain"
    args = [f"out={out}", "executor=inline", "worlds=2", "towns=[grid:0]", "job_hours=0.002"]
    assert run(compose_config("collect", [*args, "hours=0.002"])) == 0
    manifest = read_manifest(out)
    assert manifest.totals()["kind_seconds"] == {"plain": manifest.totals()["sim_seconds"]}
    for key in ("recipe", "situations", "branches"):  # as an older collection stored it
        del manifest.config[key]
    data = manifest.to_dict()
    for s in data["shards"]:
        del s["roots"], s["kinds"], s["families"]
    (out / "manifest.json").write_text(json.dumps(data))
    assert run(compose_config("collect", [*args, "hours=0.004"])) == 0  # extended, not refused
    assert run(compose_config("collect", [*args, "hours=0.004", "recipe=hazards"])) == 2
    assert "situations" in capsys.readouterr().err


def test_shards_and_manifests_written_before_episode_kinds_read_as_plain(tmp_path):
    def episode(eid: int, T: int) -> Episode:
        return Episode(
            id=eid, town="grid:0", end=EndReason.BUDGET, bev_bits=pack_bev(np.zeros((T, 2, 4, 8), np.uint8)),
            bev_shape=(2, 4, 8), ego=np.zeros((T, EGO_DIM), np.float32),
            objects=np.zeros((T, 3, OBJECT_DIM), np.float16), objects_mask=np.zeros((T, 3), bool),
            action=np.zeros((T, 2), np.float32), events=np.zeros((T, NUM_EVENTS), np.float32),
        )  # fmt: skip

    arrays = encode_shard([episode(3, 5), episode(4, 2)], 0.1)
    old = {k: v for k, v in arrays.items() if k not in OPTIONAL}
    (tmp_path / "job00000-000.npz").write_bytes(npz_bytes(old))
    shard = read_shard(tmp_path / "job00000-000.npz")
    assert [m.kind for m in episode_metas(shard.arrays)] == [EpisodeKind.PLAIN] * 2
    info = shard.info(0, 0)
    assert info.kinds == {"plain": pytest.approx(0.7)} and info.roots == (3, 4) and info.families == {}
    legacy = {k: v for k, v in info.to_dict().items() if k not in ("roots", "kinds", "families")}
    assert ShardInfo.from_dict(legacy) == info
    # half of the origin members is a damaged shard, not an old one
    (tmp_path / "job00000-001.npz").write_bytes(npz_bytes({**old, "ep_kind": arrays["ep_kind"]}))
    with pytest.raises(ShardError, match="episode-origin arrays"):
        read_shard(tmp_path / "job00000-001.npz")
