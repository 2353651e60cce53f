"""Experience on disk: episodes in compressed NPZ shards, and the collection's ``manifest.json``.

A collection folder holds::

    manifest.json          Manifest: config, code version, driver, one entry per shard, totals
    job00003-001.npz       shard 1 of collection job 3: whole episodes (never split across shards)

A shard is a zip of ``.npy`` members (``np.load`` reads it), one row per step, episodes one after
another (``S`` steps, ``M`` episodes):

==================  ===============================  =============================================
member              dtype, shape                     what
==================  ===============================  =============================================
``bev_bits``        uint8 ``[S, C, H, ceil(W/8)]``   BEV observation, bit-packed along ``W``
                                                     (``np.packbits``; the BEV holds only 0/255)
``bev_shape``       int64 ``[3]``                    ``C, H, W``
``ego``             float32 ``[S, E]``               ego vector (``EgoFeature``)
``objects``         float16 ``[S, N, F]``            object list (``ObjectFeature``)
``objects_mask``    bool ``[S, N]``
``action``          float32 ``[S, 2]``               accel, steer taken at the step
``events``          float32 ``[S, K]``               ``world_model.batch.EVENT_NAMES``
``episode``         int64 ``[S]``                    episode id (= its seed) of each step
``step``            int32 ``[S]``                    index of the step in its episode
``town``            int16 ``[S]``                    index into ``towns``
``ep_id``           int64 ``[M]``                    episode ids, in storage order
``ep_start``        int64 ``[M]``                    first row of each episode
``ep_length``       int64 ``[M]``                    its steps
``ep_end``          int8 ``[M]``                     :class:`EndReason`
``towns``           str ``[U]``                      map keys (``MapRef.key()``)
``event_names``     str ``[K]``                      the event columns when written
``dt``              float64 ``[]``                   decision period [s]
``format``          int64 ``[]``                     :data:`FORMAT_VERSION`
``ep_kind``         int8 ``[M]``                     :class:`EpisodeKind` (optional, see below)
``ep_parent``       int64 ``[M]``                    a branch's parent episode id, else -1
``ep_fork_step``    int32 ``[M]``                    step of the parent a branch starts at, else -1
``ep_family``       int16 ``[M]``                    index into ``families`` (-1: none)
``ep_sequence``     int16 ``[M]``                    a branch's index into ``sequences`` (-1: none)
``families``        str ``[U]``                      scenario families of situations and their branches
``sequences``       str ``[U]``                      names of the branches' action sequences
==================  ===============================  =============================================

The last seven members (:data:`OPTIONAL`) describe where an episode comes from
(:class:`EpisodeMeta`): a plain episode (a random route with traffic), a scenario-family
*situation*, or a counterfactual *branch* forked from another episode at one of its steps and
driven by a fixed action sequence. Shards written before they existed lack them and read as plain
episodes; a reader that does not know them (``np.load``) ignores them.

Shards and the manifest are written atomically (temporary file, fsync, ``os.replace``), so a kill
at any instant leaves complete files only. :func:`read_shard` refuses a truncated or corrupt shard
(bad zip or CRC, wrong sha256, missing arrays, inconsistent lengths) with a :class:`ShardError`
naming the file and what is wrong.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim_bridge.runfolder import write_bytes_atomic, write_json_atomic
from world_model.batch import EVENT, EVENT_NAMES, NUM_EVENTS

FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
#: zlib level of shard members (1: bit-packed BEVs compress ~2× less well than at 9, 5× faster)
COMPRESS_LEVEL = 1

PER_STEP = ("bev_bits", "ego", "objects", "objects_mask", "action", "events", "episode", "step", "town")
PER_EPISODE = ("ep_id", "ep_start", "ep_length", "ep_end")
META = ("bev_shape", "towns", "event_names", "dt", "format")
#: members describing each episode's origin (:class:`EpisodeMeta`); absent from older shards
OPTIONAL_PER_EPISODE = ("ep_kind", "ep_parent", "ep_fork_step", "ep_family", "ep_sequence")
OPTIONAL = (*OPTIONAL_PER_EPISODE, "families", "sequences")
ARRAYS = PER_STEP + PER_EPISODE + META + OPTIONAL
_DTYPES = {
    "bev_bits": np.uint8, "ego": np.float32, "objects": np.float16, "objects_mask": np.bool_,
    "action": np.float32, "events": np.float32, "episode": np.int64, "step": np.int32, "town": np.int16,
    "ep_id": np.int64, "ep_start": np.int64, "ep_length": np.int64, "ep_end": np.int8,
    "ep_kind": np.int8, "ep_parent": np.int64, "ep_fork_step": np.int32, "ep_family": np.int16,
    "ep_sequence": np.int16,
}  # fmt: skip


class EndReason(enum.IntEnum):
    """Why an episode ended. Only COLLISION and ROUTE_END are terminal (``done`` = 1 on the last
    step); the others are truncations (the world could have gone on)."""

    COLLISION = 0
    ROUTE_END = 1
    MAX_LENGTH = 2
    OFF_ROUTE = 3
    BUDGET = 4
    """The collection job's budget ran out mid-episode."""
    HORIZON = 5
    """A counterfactual branch reached its length."""


class EpisodeKind(enum.IntEnum):
    """Where an episode comes from (``ep_kind``; the manifest counts simulated time per kind)."""

    PLAIN = 0
    """A random route with background traffic."""
    SITUATION = 1
    """A scenario-family episode (a hazard placed on the route)."""
    BRANCH = 2
    """A counterfactual branch: forked from another episode's state, driven by a fixed action
    sequence."""


@dataclass(frozen=True)
class EpisodeMeta:
    """Where an episode comes from (see :class:`EpisodeKind`)."""

    kind: EpisodeKind = EpisodeKind.PLAIN
    family: str = ""
    """Scenario family of a situation, and of the branches forked from one ('' otherwise)."""
    parent: int = -1
    """A branch's parent episode id (-1 otherwise)."""
    fork_step: int = -1
    """The step of the parent whose state the branch starts from (its first observation is the
    parent's observation at that step; -1 otherwise)."""
    sequence: str = ""
    """A branch's action sequence (``keep``, ``brake`` …; '' otherwise)."""

    def root(self, episode: int) -> int:
        """The episode a branch was forked from, else ``episode`` itself: the unit a train /
        validation split keeps together (a branch shares its parent's states)."""
        return self.parent if self.kind == EpisodeKind.BRANCH and self.parent >= 0 else int(episode)


class ShardError(ValueError):
    """A shard file is missing, truncated, corrupt or inconsistent (the message names the file)."""


class ManifestError(ValueError):
    """A collection folder's manifest is missing, unreadable or inconsistent with its shards."""


# ------------------------------------------------------------------------------------ episodes


@dataclass
class Episode:
    """One recorded episode, ``T`` steps (see the module table for the arrays' meaning)."""

    id: int
    """Episode id, which is also the seed it was simulated with."""
    town: str
    """Map key (``MapRef.key()``)."""
    end: EndReason
    bev_bits: np.ndarray
    """``uint8 [T, C, H, ceil(W/8)]``"""
    bev_shape: tuple[int, int, int]
    """``C, H, W``"""
    ego: np.ndarray
    """``float32 [T, E]``"""
    objects: np.ndarray
    """``float16 [T, N, F]``"""
    objects_mask: np.ndarray
    """``bool [T, N]``"""
    action: np.ndarray
    """``float32 [T, 2]``"""
    events: np.ndarray
    """``float32 [T, NUM_EVENTS]``"""
    meta: EpisodeMeta = field(default_factory=EpisodeMeta)

    @property
    def steps(self) -> int:
        return len(self.action)


def pack_bev(bev: np.ndarray) -> np.ndarray:
    """``uint8 [..., W]`` of 0/255 → bits packed along ``W`` (``[..., ceil(W/8)]``). Raises
    ``ValueError`` if any value is neither 0 nor 255 (the BEV contract; bits could not hold it)."""
    if ((bev + np.uint8(1)) > 1).any():  # 255 wraps to 0, 0 to 1: anything else is > 1
        bad = np.unique(bev[(bev != 0) & (bev != 255)])[:5].tolist()
        raise ValueError(
            f"BEV values other than 0 and 255 ({bad}…): the shard format stores the BEV as bits "
            "(sim_bridge.api.Observation: channels are 0 or 255). Fix the renderer, or extend "
            "world_model/shards.py with a raw uint8 member."
        )
    return np.packbits(bev, axis=-1)


def unpack_bev(bits: np.ndarray, width: int) -> np.ndarray:
    """Inverse of :func:`pack_bev`: ``uint8 [..., W]`` of 0/255."""
    out = np.unpackbits(bits, axis=-1, count=width)
    np.multiply(out, np.uint8(255), out=out)
    return out


# -------------------------------------------------------------------------------------- shards


@dataclass(frozen=True)
class ShardInfo:
    """A shard's manifest entry."""

    file: str
    """File name inside the collection folder."""
    sha256: str
    bytes: int
    steps: int
    episodes: int
    sim_seconds: float
    """Simulated time of its steps (steps × dt) [s]."""
    seeds: tuple[int, ...]
    """Episode seeds (= ids), in storage order."""
    lengths: tuple[int, ...]
    """Steps of each of those episodes."""
    towns: dict[str, float]
    """Simulated seconds per map key."""
    ends: dict[str, int]
    """Episodes per :class:`EndReason` name."""
    job: int
    """Collection job that wrote it."""
    seq: int
    """Its number among the job's shards."""
    roots: tuple[int, ...] = ()
    """Per episode: the episode a branch was forked from, else the episode itself
    (:meth:`EpisodeMeta.root`); empty in manifests written before branches (read: ``seeds``)."""
    kinds: dict[str, float] = field(default_factory=dict)
    """Simulated seconds per :class:`EpisodeKind` name (``plain``, ``situation``, ``branch``)."""
    families: dict[str, float] = field(default_factory=dict)
    """Simulated seconds per scenario family (situations and their branches)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file, "sha256": self.sha256, "bytes": self.bytes, "steps": self.steps,
            "episodes": self.episodes, "sim_seconds": self.sim_seconds, "seeds": list(self.seeds), "lengths": list(self.lengths),
            "towns": dict(self.towns), "ends": dict(self.ends), "job": self.job, "seq": self.seq,
            "roots": list(self.roots), "kinds": dict(self.kinds), "families": dict(self.families),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShardInfo:
        d = dict(data)
        d["seeds"] = tuple(int(s) for s in d["seeds"])
        d["lengths"] = tuple(int(n) for n in d["lengths"])
        # manifests written before episode kinds: every episode plain, its own root
        d["roots"] = tuple(int(s) for s in d.get("roots") or d["seeds"])
        d["kinds"] = dict(d.get("kinds") or {EpisodeKind.PLAIN.name.lower(): d["sim_seconds"]})
        d["families"] = dict(d.get("families") or {})
        return cls(**d)


def shard_name(job: int, seq: int) -> str:
    """File name of shard ``seq`` of collection job ``job``."""
    return f"job{job:05d}-{seq:03d}.npz"


def parse_shard_name(name: str) -> tuple[int, int] | None:
    """``(job, seq)`` of a shard file name, ``None`` if it is not one."""
    if not (name.startswith("job") and name.endswith(".npz") and "-" in name):
        return None
    job, _, seq = name[3:-4].partition("-")
    return (int(job), int(seq)) if job.isdigit() and seq.isdigit() else None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def encode_shard(
    episodes: Sequence[Episode], dt: float, level: int = COMPRESS_LEVEL
) -> dict[str, np.ndarray]:
    """The member arrays of a shard holding ``episodes`` (in order)."""
    if not episodes:
        raise ValueError("a shard needs at least one episode")
    shapes = {e.bev_shape for e in episodes}
    if len(shapes) != 1:
        raise ValueError(f"episodes of one shard must share the BEV shape; got {sorted(shapes)}")
    towns = sorted({e.town for e in episodes})
    lengths = np.array([e.steps for e in episodes], dtype=np.int64)
    if (lengths < 1).any():
        raise ValueError("every episode of a shard needs at least one step")
    town_of = np.array([towns.index(e.town) for e in episodes], dtype=np.int16)
    metas = [e.meta for e in episodes]
    families = sorted({m.family for m in metas if m.family})
    sequences = sorted({m.sequence for m in metas if m.sequence})
    return {
        "bev_bits": np.concatenate([e.bev_bits for e in episodes]),
        "ego": np.concatenate([e.ego for e in episodes]).astype(np.float32, copy=False),
        "objects": np.concatenate([e.objects for e in episodes]).astype(np.float16, copy=False),
        "objects_mask": np.concatenate([e.objects_mask for e in episodes]),
        "action": np.concatenate([e.action for e in episodes]).astype(np.float32, copy=False),
        "events": np.concatenate([e.events for e in episodes]).astype(np.float32, copy=False),
        "episode": np.repeat(np.array([e.id for e in episodes], dtype=np.int64), lengths),
        "step": np.concatenate([np.arange(n, dtype=np.int32) for n in lengths]),
        "town": np.repeat(town_of, lengths),
        "ep_id": np.array([e.id for e in episodes], dtype=np.int64),
        "ep_start": np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64),
        "ep_length": lengths,
        "ep_end": np.array([int(e.end) for e in episodes], dtype=np.int8),
        "bev_shape": np.array(episodes[0].bev_shape, dtype=np.int64),
        "towns": np.array(towns, dtype=np.str_),
        "event_names": np.array(EVENT_NAMES, dtype=np.str_),
        "dt": np.array(float(dt)),
        "format": np.array(FORMAT_VERSION, dtype=np.int64),
        "ep_kind": np.array([int(m.kind) for m in metas], dtype=np.int8),
        "ep_parent": np.array([m.parent for m in metas], dtype=np.int64),
        "ep_fork_step": np.array([m.fork_step for m in metas], dtype=np.int32),
        "ep_family": np.array([families.index(m.family) if m.family else -1 for m in metas], dtype=np.int16),
        "ep_sequence": np.array(
            [sequences.index(m.sequence) if m.sequence else -1 for m in metas], dtype=np.int16
        ),
        "families": np.array(families, dtype=np.str_),
        "sequences": np.array(sequences, dtype=np.str_),
    }


def episode_metas(arrays: dict[str, np.ndarray]) -> list[EpisodeMeta]:
    """The :class:`EpisodeMeta` of each episode of a shard's arrays (all plain for a shard written
    before the :data:`OPTIONAL` members existed)."""
    M = len(arrays["ep_id"])
    if "ep_kind" not in arrays:
        return [EpisodeMeta() for _ in range(M)]
    families = [str(f) for f in arrays["families"]]
    sequences = [str(q) for q in arrays["sequences"]]
    columns = (
        arrays[n].tolist() for n in ("ep_kind", "ep_parent", "ep_fork_step", "ep_family", "ep_sequence")
    )
    return [
        EpisodeMeta(EpisodeKind(k), families[f] if f >= 0 else "", p, t, sequences[q] if q >= 0 else "")
        for k, p, t, f, q in zip(*columns, strict=True)
    ]


def npz_bytes(arrays: dict[str, np.ndarray], level: int = COMPRESS_LEVEL) -> bytes:
    """A compressed NPZ (zip of ``.npy`` members, deflate at ``level``) in memory."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=level) as zf:
        for name, arr in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(arr), allow_pickle=False)
    return buf.getvalue()


def write_shard(folder: str | Path, episodes: Sequence[Episode], dt: float, job: int, seq: int) -> ShardInfo:
    """Write ``episodes`` as shard ``seq`` of ``job`` into ``folder`` atomically; its manifest entry."""
    arrays = encode_shard(episodes, dt)
    data = npz_bytes(arrays)
    name = shard_name(job, seq)
    write_bytes_atomic(Path(folder) / name, data)
    return _info(name, data, arrays, dt, job, seq)


def _info(name: str, data: bytes, arrays: dict[str, np.ndarray], dt: float, job: int, seq: int) -> ShardInfo:
    lengths = arrays["ep_length"]
    towns: dict[str, float] = {}
    for t, n in zip(arrays["towns"][arrays["town"][arrays["ep_start"]]], lengths, strict=True):
        towns[str(t)] = round(towns.get(str(t), 0.0) + float(n) * dt, 6)
    ends: dict[str, int] = {}
    for e in arrays["ep_end"]:
        key = EndReason(int(e)).name.lower()
        ends[key] = ends.get(key, 0) + 1
    metas = episode_metas(arrays)
    kinds: dict[str, float] = {}
    families: dict[str, float] = {}
    for meta, n in zip(metas, lengths.tolist(), strict=True):
        kind = meta.kind.name.lower()
        kinds[kind] = round(kinds.get(kind, 0.0) + n * dt, 6)
        if meta.family:
            families[meta.family] = round(families.get(meta.family, 0.0) + n * dt, 6)
    steps = int(lengths.sum())
    return ShardInfo(
        file=name, sha256=sha256_bytes(data), bytes=len(data), steps=steps, episodes=len(lengths),
        sim_seconds=round(steps * dt, 6), seeds=tuple(int(i) for i in arrays["ep_id"]),
        lengths=tuple(int(n) for n in lengths), towns=towns,
        ends=ends, job=job, seq=seq,
        roots=tuple(m.root(int(i)) for m, i in zip(metas, arrays["ep_id"].tolist(), strict=True)),
        kinds=kinds, families=families,
    )  # fmt: skip


@dataclass
class Shard:
    """A shard read back: its member arrays (only those asked for) and where it came from."""

    path: Path
    arrays: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[name]

    @property
    def steps(self) -> int:
        return int(self.arrays["ep_length"].sum())

    @property
    def dt(self) -> float:
        return float(self.arrays["dt"])

    def info(self, job: int, seq: int) -> ShardInfo:
        """Its manifest entry (reads the file again for the checksum)."""
        data = self.path.read_bytes()
        return _info(self.path.name, data, self.arrays, self.dt, job, seq)


def read_shard(path: str | Path, sha256: str | None = None, arrays: Collection[str] | None = None) -> Shard:
    """Read and check a shard. ``sha256``: the expected checksum (from the manifest); ``arrays``:
    per-step members to load (default all; the episode table and metadata are always loaded).

    Raises :class:`ShardError` naming the file for a missing file, a checksum mismatch, a bad zip
    or CRC (truncated or corrupt), missing members, wrong dtypes, or inconsistent lengths.
    """
    path = Path(path)
    want = list(PER_STEP if arrays is None else arrays)
    unknown = sorted(set(want) - set(PER_STEP))
    if unknown:
        raise ValueError(f"unknown shard arrays {unknown}; per-step arrays are {list(PER_STEP)}")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ShardError(f"shard {path}: cannot be read ({e.strerror or e})") from e
    if sha256 is not None and sha256_bytes(data) != sha256:
        raise ShardError(
            f"shard {path}: sha256 {sha256_bytes(data)[:16]}… does not match the manifest's {sha256[:16]}… "
            f"(the file was changed or damaged after it was written); {_repair(path)}"
        )
    out: dict[str, np.ndarray] = {}
    try:
        if sha256 is None:  # no checksum to trust: check every member's CRC instead
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                bad = zf.testzip()
            if bad is not None:
                raise ShardError(f"shard {path}: member {bad} fails its CRC check (corrupt); {_repair(path)}")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            missing = [n for n in (*want, *PER_EPISODE, *META) if n not in npz.files]
            if missing:
                raise ShardError(f"shard {path}: missing arrays {missing} (present: {sorted(npz.files)})")
            for name in (*want, *PER_EPISODE, *META):
                out[name] = npz[name]
            present = [n for n in OPTIONAL if n in npz.files]
            if present and len(present) != len(OPTIONAL):
                raise ShardError(
                    f"shard {path}: has {present} of the episode-origin arrays {list(OPTIONAL)}, not all"
                )
            for name in present:
                out[name] = npz[name]
    except ShardError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError) as e:
        raise ShardError(
            f"shard {path}: not a readable NPZ, truncated or corrupt ({type(e).__name__}); {_repair(path)}"
        ) from e
    _check(path, out)
    return Shard(path=path, arrays=out)


def _repair(path: Path) -> str:
    """What to do about a damaged shard: the one way to repair a collection."""
    return (
        f"re-run the `drive collect out={path.parent} …` command that wrote it (same settings): it sets "
        "damaged or missing shards aside and collects their share again"
    )


def _check(path: Path, a: dict[str, np.ndarray]) -> None:
    """Dtypes, lengths and the episode table of a shard's arrays; :class:`ShardError` if wrong."""

    def fail(what: str) -> ShardError:
        return ShardError(f"shard {path}: {what}")

    if int(a["format"]) != FORMAT_VERSION:
        raise fail(f"format {int(a['format'])}, this code reads format {FORMAT_VERSION}")
    names = tuple(str(n) for n in a["event_names"])
    if names != EVENT_NAMES:
        raise fail(f"event columns {names} differ from world_model.batch.EVENT_NAMES {EVENT_NAMES}")
    wrong = {n: str(v.dtype) for n, v in a.items() if n in _DTYPES and v.dtype != _DTYPES[n]}
    if wrong:
        raise fail(f"wrong dtypes {wrong}")
    lengths = a["ep_length"]
    M = len(a["ep_id"])
    table = [n for n in (*PER_EPISODE, *OPTIONAL_PER_EPISODE) if n in a]
    if any(len(a[n]) != M for n in table) or M == 0:
        raise fail(f"episode table lengths differ or are empty: { {n: len(a[n]) for n in table} }")
    if "ep_kind" in a:
        kinds = {int(k) for k in EpisodeKind}
        if not set(a["ep_kind"].tolist()) <= kinds:
            raise fail(f"ep_kind holds values outside {sorted(kinds)}")
        for index, table_name in (("ep_family", "families"), ("ep_sequence", "sequences")):
            if len(a[index]) and (a[index].min() < -1 or a[index].max() >= len(a[table_name])):
                raise fail(f"{index} indices out of range of the {table_name} table")
    S = int(lengths.sum())
    per_step = {n: len(a[n]) for n in PER_STEP if n in a}
    if any(v != S for v in per_step.values()):
        raise fail(f"per-step arrays have inconsistent lengths {per_step}; the episode table sums to {S}")
    if (lengths < 1).any() or not np.array_equal(
        a["ep_start"], np.concatenate([[0], np.cumsum(lengths)[:-1]])
    ):
        raise fail("episode starts and lengths do not tile the steps")
    if "episode" in a and not np.array_equal(a["episode"], np.repeat(a["ep_id"], lengths)):
        raise fail("per-step episode ids disagree with the episode table")
    if "step" in a and not np.array_equal(a["step"], np.arange(S) - np.repeat(a["ep_start"], lengths)):
        raise fail("per-step step indices are not 0, 1, … within each episode")
    if "events" in a and a["events"].shape[1:] != (NUM_EVENTS,):
        raise fail(f"events have shape {a['events'].shape}; expected [S, {NUM_EVENTS}]")
    if "events" in a:
        done = a["events"][:, EVENT["done"]] > 0.5
        if done.any() and not np.isin(np.flatnonzero(done), a["ep_start"] + lengths - 1).all():
            raise fail("'done' is set on a step that is not the last of its episode")
    C, H, W = (int(v) for v in a["bev_shape"])
    if "bev_bits" in a and a["bev_bits"].shape[1:] != (C, H, (W + 7) // 8):
        raise fail(
            f"bev_bits has shape {a['bev_bits'].shape}; bev_shape {C, H, W} needs [S, {C}, {H}, {(W + 7) // 8}]"
        )
    if "town" in a and len(a["town"]) and (a["town"].min() < 0 or a["town"].max() >= len(a["towns"])):
        raise fail("town indices out of range of the towns table")


# ------------------------------------------------------------------------------------ manifest


@dataclass
class Manifest:
    """What a collection folder holds (``manifest.json``). ``shards`` are in collection order
    (:func:`collection_order`)."""

    config: dict[str, Any]
    """The collection's resolved config (plain JSON values)."""
    driver: str
    dt: float
    """Decision period [s]."""
    code_version: str = ""
    created: str = ""
    """ISO 8601 UTC time of the first start."""
    runs: int = 0
    """How many times the collection was started (resumes included)."""
    shards: list[ShardInfo] = field(default_factory=list)
    complete: bool = False
    """Every job reached its budget."""
    wall_seconds: float = 0.0
    """Wall time of all runs together [s]."""
    format: int = FORMAT_VERSION

    @classmethod
    def create(cls, config: dict[str, Any], driver: str, dt: float, code_version: str) -> Manifest:
        now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        return cls(config=_plain(config), driver=driver, dt=float(dt), code_version=code_version, created=now)

    def totals(self) -> dict[str, Any]:
        steps = sum(s.steps for s in self.shards)
        seconds = sum(s.sim_seconds for s in self.shards)
        towns: dict[str, float] = {}
        ends: dict[str, int] = {}
        kinds: dict[str, float] = {}
        families: dict[str, float] = {}
        for s in self.shards:
            for t, v in s.towns.items():
                towns[t] = round(towns.get(t, 0.0) + v, 6)
            for k, v in s.ends.items():
                ends[k] = ends.get(k, 0) + v
            for k, v in s.kinds.items():
                kinds[k] = round(kinds.get(k, 0.0) + v, 6)
            for k, v in s.families.items():
                families[k] = round(families.get(k, 0.0) + v, 6)
        return {
            "shards": len(self.shards), "steps": steps, "episodes": sum(s.episodes for s in self.shards),
            "sim_seconds": round(seconds, 6), "hours": round(seconds / 3600.0, 9),
            "bytes": sum(s.bytes for s in self.shards), "town_seconds": towns, "ends": ends,
            "kind_seconds": kinds, "family_seconds": families,
        }  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format, "driver": self.driver, "dt": self.dt, "code_version": self.code_version,
            "created": self.created, "runs": self.runs, "complete": self.complete,
            "wall_seconds": round(self.wall_seconds, 3), "totals": self.totals(), "config": self.config,
            "shards": [s.to_dict() for s in self.shards],
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(
            config=data["config"], driver=data["driver"], dt=float(data["dt"]),
            code_version=data.get("code_version", ""), created=data.get("created", ""),
            runs=int(data.get("runs", 0)), shards=[ShardInfo.from_dict(s) for s in data["shards"]],
            complete=bool(data.get("complete", False)), wall_seconds=float(data.get("wall_seconds", 0.0)),
            format=int(data.get("format", FORMAT_VERSION)),
        )  # fmt: skip


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, allow_nan=False))


def read_manifest(folder: str | Path) -> Manifest:
    """The manifest of a collection folder; :class:`ManifestError` if missing or unreadable."""
    path = Path(folder) / MANIFEST_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ManifestError(
            f"{path} not found: {folder} is not a collection folder (write one with `drive collect out={folder}`)"
        ) from None
    try:
        manifest = Manifest.from_dict(json.loads(text))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise ManifestError(f"{path} is not a valid collection manifest ({type(e).__name__}: {e})") from e
    if manifest.format != FORMAT_VERSION:
        raise ManifestError(f"{path}: format {manifest.format}; this code reads format {FORMAT_VERSION}")
    sort_shards(manifest)  # a manifest written in an older order is read in this one
    return manifest


def collection_order(shard: ShardInfo, round_jobs: int = 1) -> tuple[int, int, int]:
    """Sort key of the manifest: jobs in rounds of ``round_jobs`` (the collection's town count: job
    ``k`` drives town ``k % len(towns)``), round-robin within a round (every job's first shard,
    then every job's second, …), rounds in order. A budget prefix then draws on every town early,
    and extending a collection (more jobs, appended as new rounds) leaves every prefix of its whole
    rounds as it was: a model trained on the 0.25 h of a 1 h collection trains on the same
    episodes once the collection is extended to 4 h. (Round-robin over *all* jobs, the order until
    stop 24, moved every shard of the second round on behind the first shards of the new jobs.)"""
    return shard.job // max(int(round_jobs), 1), shard.seq, shard.job


def round_jobs(manifest: Manifest) -> int:
    """Jobs per round of :func:`collection_order`: the collection's town count (1 without towns)."""
    towns = manifest.config.get("towns") if isinstance(manifest.config, dict) else None
    return max(len(towns), 1) if isinstance(towns, list) else 1


def sort_shards(manifest: Manifest) -> None:
    """Put ``manifest.shards`` in collection order (:func:`collection_order`), in place."""
    jobs = round_jobs(manifest)
    manifest.shards.sort(key=lambda shard: collection_order(shard, jobs))


def write_manifest(folder: str | Path, manifest: Manifest) -> None:
    """Write ``manifest.json`` atomically (shards sorted into collection order first)."""
    sort_shards(manifest)
    write_json_atomic(Path(folder) / MANIFEST_FILE, manifest.to_dict())
