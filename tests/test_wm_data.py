"""Experience storage and training windows: shards (round trip, corruption), the manifest, budget
prefixes, windows inside episodes, the split, the recorder's event rows."""

from __future__ import annotations

import io
import itertools
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim_bridge.api import EgoFeature, ObjectFeature, Observation, StepEvents
from sim_bridge.sensors.layout import EGO_DIM, OBJECT_DIM
from world_model.batch import EVENT, NUM_EVENTS
from world_model.dataset import DatasetError, WindowMix, episode_unit, open_dataset
from world_model.proximity import GAP_CAP, NEAREST_VISIBLE
from world_model.recorder import NEAREST_CAP, EpisodeRecorder, step_events
from world_model.shards import (
    EndReason,
    Episode,
    Manifest,
    ShardError,
    encode_shard,
    file_sha256,
    npz_bytes,
    pack_bev,
    read_manifest,
    read_shard,
    unpack_bev,
    write_manifest,
    write_shard,
)

C, H, W, N = 3, 8, 12, 4
DT = 0.1


def make_episode(eid: int, T: int, rng: np.random.Generator, end: EndReason = EndReason.COLLISION) -> Episode:
    """An episode whose ego vector says where each step belongs: column 0 the episode id, column 1
    the step index (so windows can be checked against what they should hold)."""
    bev = (rng.random((T, C, H, W)) < 0.2).astype(np.uint8) * 255
    ego = rng.standard_normal((T, EGO_DIM)).astype(np.float32)
    ego[:, 0], ego[:, 1] = eid, np.arange(T)
    events = rng.random((T, NUM_EVENTS)).astype(np.float32)
    events[:, EVENT["done"]] = 0.0
    events[-1, EVENT["done"]] = float(end in (EndReason.COLLISION, EndReason.ROUTE_END))
    return Episode(
        id=eid, town="grid:0" if eid % 2 else "highway:0", end=end, bev_bits=pack_bev(bev), bev_shape=(C, H, W),
        ego=ego, objects=rng.standard_normal((T, N, OBJECT_DIM)).astype(np.float16),
        objects_mask=rng.random((T, N)) < 0.5, action=rng.uniform(-1, 1, (T, 2)).astype(np.float32), events=events,
    )  # fmt: skip


def make_collection(folder: Path, shards: list[list[int]], seed: int = 0) -> Manifest:
    """A collection folder with one shard per list of episode lengths (jobs 0, 1, …; ids 0, 1, …)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.create({"test": True}, driver="test", dt=DT, code_version="")
    eid = 0
    for job, lengths in enumerate(shards):
        episodes = []
        for T in lengths:
            episodes.append(make_episode(eid, T, rng))
            eid += 1
        manifest.shards.append(write_shard(folder, episodes, DT, job=job, seq=0))
    manifest.complete = True
    write_manifest(folder, manifest)
    return manifest


# ----------------------------------------------------------------------------------------- shards


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 19), st.integers(0, 2**31))
def test_bev_bits_round_trip_any_width(n, h, w, seed):
    bev = (np.random.default_rng(seed).random((n, 2, h, w)) < 0.5).astype(np.uint8) * 255
    bits = pack_bev(bev)
    assert bits.shape == (n, 2, h, math.ceil(w / 8))
    np.testing.assert_array_equal(unpack_bev(bits, w), bev)


def test_pack_refuses_values_other_than_0_and_255():
    bev = np.zeros((1, 1, 2, 8), np.uint8)
    bev[0, 0, 1, 3] = 128
    with pytest.raises(ValueError, match="other than 0 and 255"):
        pack_bev(bev)


def test_shard_round_trip_is_bit_identical(tmp_path):
    rng = np.random.default_rng(1)
    episodes = [make_episode(7, 5, rng), make_episode(3, 9, rng, EndReason.BUDGET), make_episode(11, 1, rng)]
    info = write_shard(tmp_path, episodes, DT, job=2, seq=4)
    assert info.file == "job00002-004.npz" and info.sha256 == file_sha256(tmp_path / info.file)
    assert (info.steps, info.episodes, info.seeds, info.lengths) == (15, 3, (7, 3, 11), (5, 9, 1))
    assert info.sim_seconds == pytest.approx(1.5)
    assert info.towns == {"grid:0": pytest.approx(1.5)} and info.ends == {"collision": 2, "budget": 1}
    shard = read_shard(tmp_path / info.file, sha256=info.sha256)
    start = 0
    for e in episodes:
        rows = slice(start, start + e.steps)
        for name in ("bev_bits", "ego", "objects", "objects_mask", "action", "events"):
            got, want = shard[name][rows], getattr(e, name)
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), name
        assert (shard["episode"][rows] == e.id).all()
        np.testing.assert_array_equal(shard["step"][rows], np.arange(e.steps))
        start += e.steps
    np.testing.assert_array_equal(shard["ep_end"], [0, 4, 0])
    assert shard.dt == DT and [str(t) for t in shard["towns"]] == ["grid:0"]


def _write(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    path.write_bytes(npz_bytes(arrays))
    return path


@pytest.fixture
def good_arrays():
    rng = np.random.default_rng(2)
    return encode_shard([make_episode(1, 6, rng), make_episode(2, 4, rng)], DT)


def test_truncated_shard_names_the_file(tmp_path, good_arrays):
    path = _write(tmp_path / "job00000-000.npz", good_arrays)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ShardError, match=r"job00000-000\.npz.*truncated or corrupt"):
        read_shard(path)


def test_flipped_byte_is_caught_by_crc_or_checksum(tmp_path, good_arrays):
    path = _write(tmp_path / "s.npz", good_arrays)
    sha = file_sha256(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ShardError, match=r"s\.npz.*sha256"):
        read_shard(path, sha256=sha)
    with pytest.raises(ShardError, match=r"s\.npz"):  # no checksum: the zip CRCs catch it
        read_shard(path)


def test_missing_arrays_and_inconsistent_lengths_are_named(tmp_path, good_arrays):
    broken = {k: v for k, v in good_arrays.items() if k != "events"}
    with pytest.raises(ShardError, match=r"a\.npz: missing arrays \['events'\]"):
        read_shard(_write(tmp_path / "a.npz", broken))
    longer = dict(good_arrays, ego=np.concatenate([good_arrays["ego"], good_arrays["ego"][:1]]))
    with pytest.raises(ShardError, match=r"b\.npz: per-step arrays have inconsistent lengths.*'ego': 11"):
        read_shard(_write(tmp_path / "b.npz", longer))
    wrong_ids = dict(good_arrays, episode=good_arrays["episode"][::-1].copy())
    with pytest.raises(ShardError, match=r"c\.npz: per-step episode ids disagree"):
        read_shard(_write(tmp_path / "c.npz", wrong_ids))
    with pytest.raises(ShardError, match=r"d\.npz: cannot be read"):
        read_shard(tmp_path / "d.npz")
    events = good_arrays["events"].copy()
    events[0, EVENT["done"]] = 1.0
    with pytest.raises(ShardError, match=r"e\.npz: 'done' is set on a step that is not the last"):
        read_shard(_write(tmp_path / "e.npz", dict(good_arrays, events=events)))


def test_manifest_checksums_guard_the_dataset(tmp_path):
    manifest = make_collection(tmp_path / "c", [[20, 30], [25]])
    stored = read_manifest(tmp_path / "c")
    assert [s.sha256 for s in stored.shards] == [
        file_sha256(tmp_path / "c" / s.file) for s in manifest.shards
    ]
    assert stored.totals()["steps"] == 75 and stored.totals()["hours"] == pytest.approx(7.5 / 3600)
    victim = tmp_path / "c" / manifest.shards[1].file
    data = bytearray(victim.read_bytes())
    data[-30] ^= 0x01  # in the zip directory: still a zip, but not the file that was written
    victim.write_bytes(bytes(data))
    with pytest.raises(ShardError, match=r"job00001-000\.npz: sha256"):
        open_dataset(tmp_path / "c", window=4, split="all")


# ---------------------------------------------------------------------------------------- dataset


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    folder = tmp_path_factory.mktemp("collection")
    rng = np.random.default_rng(3)
    shards = [[int(n) for n in rng.integers(1, 60, size=k)] for k in (3, 5, 2, 4, 6, 3)]
    make_collection(folder, shards)
    return folder


def _episodes(ds) -> set[int]:
    return set(ds.episodes.tolist())


def test_budget_prefixes_are_nested_and_reach_their_budget(collection):
    total = read_manifest(collection).totals()["hours"]
    hours = [0.1 * total, 0.35 * total, 0.7 * total, total]
    sets = {split: [_episodes(open_dataset(collection, h, window=8, split=split)) for h in hours]
            for split in ("all", "train", "val")}  # fmt: skip
    for split, seq in sets.items():
        for small, large in itertools.pairwise(seq):
            assert small <= large, split
    for h in hours:
        ds = open_dataset(collection, h, window=8, split="all")
        assert ds.prefix_seconds >= h * 3600 - 1e-6
        assert ds.prefix_seconds - ds.episode_lengths[-1] * DT < h * 3600  # the smallest such prefix
    with pytest.raises(ValueError, match=r"holds 0\.0"):
        open_dataset(collection, total * 1.5)


def test_extending_a_collection_keeps_the_prefixes_of_its_whole_rounds(tmp_path):
    """Two towns, so rounds of two jobs, each job two shards. A collection of one round (jobs 0, 1)
    lists its shards round-robin (0-0, 1-0, 0-1, 1-1); extended by a second round (jobs 2, 3) it
    lists those four first and in the same order, so every budget prefix of the smaller collection
    holds the same episodes in the larger one (round-robin over all jobs put 2-0 and 3-0 before
    0-1). A manifest written in another order is read in this one."""
    rng = np.random.default_rng(5)
    folder = tmp_path / "c"
    folder.mkdir()

    def collect(jobs: range) -> Manifest:
        manifest = Manifest.create({"towns": ["grid:0", "grid:1"]}, driver="test", dt=DT, code_version="")
        eid = 0
        for job in jobs:
            for seq in range(2):
                episodes = [make_episode(eid + k, 10 + 5 * seq, rng) for k in range(2)]
                eid += 2
                manifest.shards.append(write_shard(folder, episodes, DT, job=job, seq=seq))
        manifest.complete = True
        write_manifest(folder, manifest)
        return read_manifest(folder)

    small = [sh.file for sh in collect(range(2)).shards]
    assert small == ["job00000-000.npz", "job00001-000.npz", "job00000-001.npz", "job00001-001.npz"]
    large = collect(range(4))
    assert [sh.file for sh in large.shards][:4] == small
    assert [sh.file for sh in large.shards][4:] == [
        "job00002-000.npz",
        "job00003-000.npz",
        "job00002-001.npz",
        "job00003-001.npz",
    ]
    data = json.loads((folder / "manifest.json").read_text())
    data["shards"] = data["shards"][::-1]  # an older order on disk
    (folder / "manifest.json").write_text(json.dumps(data))
    assert [sh.file for sh in read_manifest(folder).shards] == [sh.file for sh in large.shards]


def test_windows_stay_inside_one_episode_and_mark_padding(collection):
    T = 16
    ds = open_dataset(collection, window=T, split="all", min_valid=3)
    lengths = dict(zip(ds.episodes.tolist(), ds.episode_lengths.tolist()))
    assert len(ds) == sum(max(n - 3 + 1, 1) for n in lengths.values())
    w = ds.batch(np.arange(len(ds)))
    assert w.bev.shape == (len(ds), T, C, H, W) and w.bev.dtype == np.uint8
    t = np.arange(T)
    expect_valid = (w.start[:, None] + t) < np.array([lengths[e] for e in w.episode.tolist()])[:, None]
    np.testing.assert_array_equal(w.valid, expect_valid)
    assert (w.valid.sum(axis=1) >= np.minimum(3, [lengths[e] for e in w.episode.tolist()])).all()
    # every valid step belongs to the window's episode, consecutively from its start
    np.testing.assert_array_equal(
        np.where(w.valid, w.ego[..., 0], -1), np.where(w.valid, w.episode[:, None], -1)
    )
    np.testing.assert_array_equal(
        np.where(w.valid, w.ego[..., 1], -1), np.where(w.valid, w.start[:, None] + t, -1)
    )
    pad = ~w.valid
    assert (
        not w.bev[pad].any() and not w.ego[pad].any() and not w.action[pad].any() and not w.events[pad].any()
    )
    # a done step is the last valid one of its window
    done = w.events[..., EVENT["done"]] > 0.5
    last = w.valid & ~np.concatenate([w.valid[:, 1:], np.zeros((len(w.valid), 1), bool)], axis=1)
    assert not (done & ~last).any()
    # proximity: NaN on padding; the gap ahead is unknown exactly at an episode's last step (no next
    # observation) and lies in [0, GAP_CAP] elsewhere; nearest is the recorded event capped
    assert w.proximity is not None and np.isnan(w.proximity[pad]).all()
    ep_len = np.array([lengths[e] for e in w.episode.tolist()])[:, None]
    final = w.valid & ((w.start[:, None] + t) == ep_len - 1)
    gap = w.proximity[..., 1]
    assert np.isnan(gap[final]).all() and np.isfinite(gap[w.valid & ~final]).all()
    assert ((gap[w.valid & ~final] >= 0) & (gap[w.valid & ~final] <= GAP_CAP)).all()
    np.testing.assert_allclose(
        w.proximity[..., 0][w.valid],
        np.minimum(w.events[..., EVENT["nearest"]][w.valid], NEAREST_VISIBLE),
        rtol=1e-6,
    )


def test_windows_hold_the_stored_bev(collection, tmp_path):
    ds = open_dataset(collection, window=5, split="all")
    manifest = read_manifest(collection)
    shard = read_shard(collection / manifest.shards[0].file)
    w = ds.batch([0])
    first = unpack_bev(shard["bev_bits"][:5], W)
    np.testing.assert_array_equal(w.bev[0][w.valid[0]], first[: w.valid[0].sum()])
    mapped = open_dataset(collection, window=5, split="all", cache_dir=tmp_path / "cache")
    idx = np.random.default_rng(0).integers(0, len(ds), 40)
    a, b = ds.batch(idx), mapped.batch(idx)
    for name in ("bev", "ego", "action", "events", "valid", "episode", "start"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert any(isinstance(x, np.memmap) for x in mapped._bev) and mapped.nbytes < ds.nbytes


def test_val_split_is_disjoint_by_episode_and_deterministic(collection):
    train = open_dataset(collection, window=4, split="train", val_fraction=0.3, seed=5)
    val = open_dataset(collection, window=4, split="val", val_fraction=0.3, seed=5)
    every = open_dataset(collection, window=4, split="all")
    assert _episodes(train).isdisjoint(_episodes(val))
    assert _episodes(train) | _episodes(val) == _episodes(every)
    assert _episodes(open_dataset(collection, window=4, split="val", val_fraction=0.3, seed=5)) == _episodes(
        val
    )
    windows = val.batch(np.arange(len(val)))
    assert set(windows.episode.tolist()) <= _episodes(val)


def test_episode_hash_is_uniform_and_seeded():
    ids = np.arange(20_000)
    u = episode_unit(ids, 0)
    assert ((u >= 0) & (u < 1)).all() and abs((u < 0.1).mean() - 0.1) < 0.01
    assert not np.array_equal(u, episode_unit(ids, 1))
    np.testing.assert_array_equal(u[5:9], episode_unit(ids[5:9], 0))  # depends on the id alone


def test_sample_and_iterate(collection):
    ds = open_dataset(collection, window=6, split="all")
    seen = np.concatenate(
        [np.stack([b.episode, b.start], 1) for b in ds.iterate(7, rng=np.random.default_rng(0))]
    )
    assert len(seen) == len(ds) and len({tuple(r) for r in seen.tolist()}) == len(ds)
    b = ds.sample(np.random.default_rng(1), 9)
    assert b.shape == (9, 6) and b.events.shape == (9, 6, NUM_EVENTS)


# --------------------------------------------------------------------------------------- recorder


def _obs(pose, remaining, objects_xy=(), B=1) -> Observation:
    ego = np.zeros((B, EGO_DIM), np.float32)
    ego[:, EgoFeature.ROUTE_REMAINING] = remaining
    objects = np.zeros((B, 3, OBJECT_DIM), np.float32)
    mask = np.zeros((B, 3), bool)
    for i, (x, y) in enumerate(objects_xy):
        objects[:, i, ObjectFeature.X], objects[:, i, ObjectFeature.Y] = x, y
        mask[:, i] = True
    return Observation(bev=np.zeros((B, C, H, W), np.uint8), ego=ego, objects=objects, objects_mask=mask,
                       object_ids=np.zeros((B, 3), np.int32), pose=np.array([pose], dtype=np.float64))  # fmt: skip


def _events(**flags) -> StepEvents:
    values = {
        "sim_time": 0.1, "collision": False, "collision_actor": -1, "collision_kind": -1,
        "collision_other_speed": 0.0, "collision_bearing": 0.0, "off_road": False, "lane_invasion": False,
        "wrong_way": False, "on_route_lanes": True, "red_light": -1, "stop_sign": -1, "route_progress": 0.0,
        "route_length": 100.0, "route_deviation": 0.0, "distance_driven": 0.0, "ego_x": 0.0, "ego_y": 0.0,
        "ego_yaw": 0.0, "ego_speed": 0.0, "ego_accel": 0.0, "speed_limit": 10.0, "traffic_speed": 0.0,
    }  # fmt: skip
    values.update(flags)
    return StepEvents(**{k: np.array([v]) for k, v in values.items()})


def test_step_events_closed_form():
    # heading north at (10, 5); moves 2 m north and 0.5 m west: 2 m forward, 0.5 m left
    obs0 = _obs((10.0, 5.0, math.pi / 2), remaining=50.0)
    obs1 = _obs((9.5, 7.0, math.pi / 2 + 0.1), remaining=48.0, objects_xy=[(3.0, 4.0), (30.0, 0.0)])
    row = step_events(obs0, obs1, _events(collision=True, red_light=3, ego_speed=20.0), np.array([True]))[0]
    assert row[EVENT["dx"]] == pytest.approx(2.0) and row[EVENT["dy"]] == pytest.approx(0.5)
    assert row[EVENT["dyaw"]] == pytest.approx(0.1) and row[EVENT["progress"]] == pytest.approx(2.0)
    assert row[EVENT["nearest"]] == pytest.approx(5.0) and row[EVENT["speed"]] == pytest.approx(20.0)
    assert row[EVENT["collision"]] == 1 and row[EVENT["red_light"]] == 1 and row[EVENT["stop_sign"]] == 0
    assert row[EVENT["done"]] == 1 and row[EVENT["off_road"]] == 0
    # the heading wraps across ±pi; no listed object: nearest is the cap
    wrap = step_events(_obs((0, 0, math.pi - 0.05), 5.0), _obs((0, 0, -math.pi + 0.05), 5.0), _events(),
                       np.array([False]))[0]  # fmt: skip
    assert wrap[EVENT["dyaw"]] == pytest.approx(0.1) and wrap[EVENT["nearest"]] == NEAREST_CAP


def test_recorder_keeps_episodes_per_world():
    rec = EpisodeRecorder(1)
    rec.begin([0], [42], "grid:0")
    for k in range(3):
        o0, o1 = _obs((k, 0, 0), 10.0 - k), _obs((k + 1, 0, 0), 9.0 - k)
        rec.record(o0, np.array([[0.5, -0.1]]), o1, _events(), np.array([k == 2]))
    assert rec.lengths().tolist() == [3]
    (ep,) = rec.end([0], [EndReason.COLLISION])
    assert (ep.id, ep.town, ep.steps, ep.end) == (42, "grid:0", 3, EndReason.COLLISION)
    np.testing.assert_allclose(ep.events[:, EVENT["dx"]], 1.0)
    np.testing.assert_array_equal(ep.events[:, EVENT["done"]], [0, 0, 1])
    assert ep.bev_bits.shape == (3, C, H, 2) and ep.action.dtype == np.float32
    assert rec.lengths().tolist() == [0] and rec.end([0], [EndReason.BUDGET]) == []


def test_npz_is_readable_by_numpy(tmp_path, good_arrays):
    with zipfile.ZipFile(io.BytesIO(npz_bytes(good_arrays))) as zf:
        assert set(zf.namelist()) == {f"{k}.npy" for k in good_arrays}
    path = _write(tmp_path / "x.npz", good_arrays)
    with np.load(path) as npz:
        np.testing.assert_array_equal(npz["ego"], good_arrays["ego"])


def test_a_prefix_whose_episodes_all_hash_to_one_side_still_gives_both_splits(tmp_path):
    """Two episodes that both hash to ``train`` at ``val_fraction=0.3``: the one nearest the border
    goes to ``val``, so a tiny budget still trains and validates."""
    from world_model.dataset import episode_unit

    seed = next(s for s in range(1000) if (episode_unit(np.array([0, 1]), s) >= 0.3).all())
    folder = tmp_path / "two"
    make_collection(folder, [[30, 30]])
    train = open_dataset(folder, window=4, split="train", val_fraction=0.3, seed=seed)
    val = open_dataset(folder, window=4, split="val", val_fraction=0.3, seed=seed)
    assert len(_episodes(train)) == 1 and len(_episodes(val)) == 1
    assert _episodes(val) == {int(np.argmin(episode_unit(np.array([0, 1]), seed)))}


def test_window_mix_holds_every_window_of_every_part_in_the_order_asked(collection, tmp_path):
    other = tmp_path / "other"
    make_collection(other, [[20, 7], [33]], seed=5)  # ids 0, 1, 2: they meet the first's ids
    a = open_dataset(collection, window=6, split="all")
    b = open_dataset(other, window=6, split="all")
    mix = WindowMix([a, b])
    assert len(mix) == len(a) + len(b) and mix.sim_seconds == a.sim_seconds + b.sim_seconds
    assert mix.prefix_seconds == a.prefix_seconds + b.prefix_seconds and len(mix.ego) == a.steps + b.steps
    assert len(set(mix.episodes.tolist())) == len(a.episodes) + len(b.episodes)  # ids kept apart
    idx = np.array([len(a) + 3, 0, len(mix) - 1, 5, len(a)])
    got = mix.batch(idx)
    for row, i in enumerate(idx):
        part, j = (a, i) if i < len(a) else (b, i - len(a))
        want = part.batch([j])
        np.testing.assert_array_equal(got.ego[row], want.ego[0])  # column 0: episode id, 1: step
        np.testing.assert_array_equal(got.bev[row], want.bev[0])
        np.testing.assert_array_equal(got.valid[row], want.valid[0])
        assert (got.episode[row] >> 58) == (i >= len(a))
    seen = np.concatenate(
        [np.stack([b_.episode, b_.start], 1) for b_ in mix.iterate(7, rng=np.random.default_rng(0))]
    )
    assert len({tuple(r) for r in seen.tolist()}) == len(mix)
    with pytest.raises(IndexError):
        mix.batch([len(mix)])
    with pytest.raises(DatasetError, match="window 8 vs 6"):
        WindowMix([a, open_dataset(other, window=8, split="all")])
