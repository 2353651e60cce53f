"""Training windows over a collection: :func:`open_dataset` → :class:`WindowDataset` → ``Windows``.

**Budget prefix.** ``hours`` selects the first episodes of the collection in manifest order (shards
by job, then sequence; episodes in storage order) until that much simulated experience is reached,
so the first 0.1 h, 0.5 h and 1 h of one collection are nested subsets. ``hours=None`` takes all.

**Split.** Whole episodes go to ``val`` when a hash of (episode id, ``seed``) falls below
``val_fraction``, else to ``train``. The hash depends on the episode alone, so the splits of nested
prefixes are nested too (an episode never changes side when the budget grows). A counterfactual
branch is hashed by its parent's id (``ShardInfo.roots``): it starts from one of the parent's
states, so it lands on the parent's side and validation never sees a state training saw. A
prefix so small that every root hashes to one side (a few episodes and their branches) gives the
root nearest the border to the other side, so both splits hold something; a prefix of one
episode and its branches splits the branches themselves. Only such prefixes break the nesting.

**Windows.** ``T`` consecutive steps of one episode, starting at any step that leaves at least
``min_valid`` steps of the episode in the window (default ``T // 2``; an episode shorter than that
still gives one window from its first step). Steps past the episode's last one are padding: zeros
with ``valid = False`` (NaN proximity). A window never holds steps of two episodes.

**Proximity.** The shards' object lists are read once to derive the proximity targets
(``world_model.proximity``: nearest actor and free gap ahead at the end of each step), then dropped.

**Memory.** The BEV dominates (10 × 96 × 96 bytes a step, 3.3 GB per simulated hour at 10 Hz).
It is kept *bit-packed* (as stored in the shards: 1 bit per pixel, 0.41 GB per hour) and unpacked
per batch (``np.unpackbits``), either in RAM (default) or, with ``cache_dir``, in an uncompressed
``.npy`` per shard written once and memory-mapped (``np.load(mmap_mode="r")``), so the resident
memory is only what the batches touch and the cache is shared between processes. The other arrays
(ego, action, events) are small and held in RAM.
"""

from __future__ import annotations

import dataclasses
import io
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from sim_bridge.runfolder import write_bytes_atomic
from world_model.batch import EVENT, Windows
from world_model.proximity import proximity_columns
from world_model.shards import Manifest, read_manifest, read_shard, unpack_bev

SPLITS = ("train", "val", "all")
_LOADED = ("bev_bits", "ego", "action", "events", "objects", "objects_mask")


def episode_unit(ids: np.ndarray, seed: int) -> np.ndarray:
    """A uniform number in ``[0, 1)`` per episode id, fixed by ``(id, seed)`` (SplitMix64)."""
    x = np.asarray(ids, dtype=np.int64).astype(np.uint64) ^ _mix(
        np.array([seed], dtype=np.int64).astype(np.uint64)
    )
    return (_mix(x) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def _mix(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on ``uint64`` arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class DatasetError(ValueError):
    """The collection cannot give what was asked (budget, split, cache); the message says why."""


def select_prefix(manifest: Manifest, hours: float | None) -> list[tuple[int, list[int]]]:
    """The budget prefix: ``(shard index, [episode index in that shard, …])`` in collection order,
    whole episodes until ``hours`` of simulated time are reached (all for ``None``)."""
    total = sum(s.sim_seconds for s in manifest.shards)
    budget = np.inf if hours is None else float(hours) * 3600.0
    if hours is not None and (not hours > 0.0 or budget > total + 1e-6):
        raise DatasetError(
            f"hours={hours}: the collection holds {total / 3600.0:.4f} simulated hours; ask for a "
            "positive budget up to that (or collect more: re-run `drive collect` with larger hours)"
        )
    out: list[tuple[int, list[int]]] = []
    seconds = 0.0
    for k, shard in enumerate(manifest.shards):
        picked = []
        for e, n in enumerate(shard.lengths):
            if seconds >= budget - 1e-6:
                break
            picked.append(e)
            seconds += n * manifest.dt
        if picked:
            out.append((k, picked))
        if seconds >= budget - 1e-6:
            break
    return out


class _Windowed:
    """Sampling and iteration over any source of numbered windows (``len`` and ``batch``)."""

    def __len__(self) -> int:
        raise NotImplementedError

    def batch(self, indices: Sequence[int] | np.ndarray) -> Windows:
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, batch_size: int) -> Windows:
        """``batch_size`` windows drawn uniformly (over every window) with replacement."""
        return self.batch(rng.integers(0, len(self), size=batch_size))

    def iterate(self, batch_size: int, shuffle: bool = True, rng: np.random.Generator | None = None,
                drop_last: bool = False) -> Iterator[Windows]:  # fmt: skip
        """Every window once, in batches (shuffled with ``rng`` when ``shuffle``)."""
        order = np.arange(len(self))
        if shuffle:
            order = (rng if rng is not None else np.random.default_rng()).permutation(order)
        stop = len(order) - (len(order) % batch_size if drop_last else 0)
        for i in range(0, stop, batch_size):
            yield self.batch(order[i : i + batch_size])


class WindowDataset(_Windowed):
    """Windows of ``window`` steps over the selected episodes (see module doc)."""

    def __init__(
        self,
        path: Path,
        manifest: Manifest,
        prefix: list[tuple[int, list[int]]],
        window: int,
        split: str,
        val_fraction: float,
        seed: int,
        min_valid: int,
        cache_dir: Path | None,
    ) -> None:
        self.path = path
        self.window = window
        self.split = split
        self.dt = manifest.dt
        """Decision period [s]."""
        # --- which episodes: the prefix, then the split
        ids = np.array([manifest.shards[k].seeds[e] for k, eps in prefix for e in eps], dtype=np.int64)
        roots = np.array([manifest.shards[k].roots[e] for k, eps in prefix for e in eps], dtype=np.int64)
        lengths = np.array([manifest.shards[k].lengths[e] for k, eps in prefix for e in eps], dtype=np.int64)
        self.prefix_seconds = float(lengths.sum() * self.dt)
        """Simulated time of the budget prefix, both splits [s]."""
        if len(np.unique(roots)) < 2:  # one episode and its branches: split the branches apart
            roots = ids
        unit = episode_unit(roots, seed)
        in_val = unit < val_fraction  # a branch goes where its parent goes
        # a tiny prefix of few roots (e.g. one exploration episode and its branches beside a
        # situation) can hash every root to one side: give each side the root nearest the border
        if 0.0 < val_fraction < 1.0 and len(np.unique(roots)) >= 2:
            if in_val.all():
                in_val &= roots != roots[np.argmax(unit)]
            elif not in_val.any():
                in_val |= roots == roots[np.argmin(unit)]
        keep = {"train": ~in_val, "val": in_val, "all": np.ones_like(in_val)}[split]
        kept = set(ids[keep].tolist())

        # --- load the kept episodes' steps, shard by shard
        bev_parts: list[np.ndarray] = []
        seg_of: list[np.ndarray] = []
        row_of: list[np.ndarray] = []
        small: dict[str, list[np.ndarray]] = {"ego": [], "action": [], "events": []}
        proximity: list[np.ndarray] = []
        ep_ids, ep_len = [], []
        for k, eps in prefix:
            info = manifest.shards[k]
            chosen = [e for e in eps if info.seeds[e] in kept]
            if not chosen:
                continue
            shard = read_shard(path / info.file, sha256=info.sha256, arrays=_LOADED)
            starts, lens = shard["ep_start"], shard["ep_length"]
            rows = np.concatenate([np.arange(starts[e], starts[e] + lens[e]) for e in chosen])
            for name in small:
                small[name].append(shard[name][rows])
            prox = proximity_columns(shard["objects"], shard["objects_mask"], shard["events"][:, EVENT["nearest"]],
                                     starts, lens)  # fmt: skip
            proximity.append(prox[rows])
            ep_ids += [int(shard["ep_id"][e]) for e in chosen]
            ep_len += [int(lens[e]) for e in chosen]
            if cache_dir is None:
                bev_parts.append(np.ascontiguousarray(shard["bev_bits"][rows]))
            else:
                bev_parts.append(_cached(cache_dir, info.sha256, shard["bev_bits"]))
                seg_of.append(np.full(len(rows), len(bev_parts) - 1, dtype=np.int32))
                row_of.append(rows.astype(np.int64))
            self.bev_shape = tuple(int(v) for v in shard["bev_shape"])
        if not ep_ids:
            raise DatasetError(
                f"split {split!r} of {path} holds no episodes ({len(ids)} in the {self.prefix_seconds / 3600:.3f} h "
                f"prefix, val_fraction={val_fraction}); raise hours or change val_fraction"
            )
        self.ego = np.concatenate(small["ego"])
        self.action = np.concatenate(small["action"])
        self.events = np.concatenate(small["events"])
        self.proximity = np.concatenate(proximity)
        """``float32 [S, 2]`` proximity targets (``world_model.proximity``; NaN where unknown)."""
        if cache_dir is None:
            self._bev: list[np.ndarray] = [np.concatenate(bev_parts)]
            self._seg = np.zeros(len(self.ego), dtype=np.int32)
            self._row = np.arange(len(self.ego), dtype=np.int64)
        else:
            self._bev = bev_parts
            self._seg = np.concatenate(seg_of)
            self._row = np.concatenate(row_of)
        self.episodes = np.array(ep_ids, dtype=np.int64)
        """Episode ids of this split, in collection order."""
        self.episode_lengths = np.array(ep_len, dtype=np.int64)
        ep_offset = np.concatenate([[0], np.cumsum(self.episode_lengths)[:-1]])
        # --- window starts: every step leaving at least min_valid steps of its episode
        n_starts = np.maximum(self.episode_lengths - min_valid + 1, 1)
        ep_of_window = np.repeat(np.arange(len(ep_ids)), n_starts)
        first = np.repeat(np.cumsum(n_starts) - n_starts, n_starts)
        self._local = np.arange(len(ep_of_window)) - first  # start step within the episode
        self._start = ep_offset[ep_of_window] + self._local  # global row of the first step
        self._end = (ep_offset + self.episode_lengths)[ep_of_window]  # one past the episode's last row
        self._episode = self.episodes[ep_of_window]

    # ------------------------------------------------------------------ sizes

    def __len__(self) -> int:
        return len(self._start)

    @property
    def steps(self) -> int:
        """Steps of this split."""
        return len(self.ego)

    @property
    def sim_seconds(self) -> float:
        """Simulated time of this split [s]."""
        return float(self.steps * self.dt)

    @property
    def nbytes(self) -> int:
        """Bytes held in RAM (memory-mapped BEV excluded)."""
        arrays = [self.ego, self.action, self.events, self.proximity, self._seg, self._row, self._start, self._end,
                  self._local, self._episode]  # fmt: skip
        held = sum(b.nbytes for b in self._bev if not isinstance(b, np.memmap))
        return held + sum(a.nbytes for a in arrays)

    # ------------------------------------------------------------------ batches

    def batch(self, indices: Sequence[int] | np.ndarray) -> Windows:
        """The windows at ``indices`` (``[B]`` in ``[0, len)``) as one :class:`Windows` batch."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"window indices must lie in [0, {len(self)}); got {idx.min()}…{idx.max()}")
        T = self.window
        rows = self._start[idx, None] + np.arange(T)  # [B, T]
        valid = rows < self._end[idx, None]
        rows = np.minimum(rows, self._end[idx, None] - 1)
        flat = rows.reshape(-1)
        C, H, W = self.bev_shape
        bits = np.empty((len(flat), C, H, (W + 7) // 8), dtype=np.uint8)
        seg = self._seg[flat]
        for s in np.unique(seg):  # one gather per segment (a single one in RAM mode)
            pick = np.flatnonzero(seg == s)
            bits[pick] = self._bev[int(s)][self._row[flat[pick]]]
        bev = unpack_bev(bits, W).reshape(len(idx), T, C, H, W)
        pad = ~valid
        ego, action, events, proximity = (
            self.ego[rows],
            self.action[rows],
            self.events[rows],
            self.proximity[rows],
        )
        if pad.any():
            bev[pad] = 0
            ego[pad] = 0.0
            action[pad] = 0.0
            events[pad] = 0.0
            proximity[pad] = np.nan
        return Windows(bev=bev, ego=ego, action=action, events=events, valid=valid,
                       episode=self._episode[idx].copy(), start=self._local[idx].copy(),
                       proximity=proximity)  # fmt: skip


def _cached(cache_dir: Path, sha256: str, bits: np.ndarray) -> np.ndarray:
    """The shard's packed BEV as a read-only memory map of ``cache_dir/<sha256>.bev_bits.npy``
    (written once, atomically; the checksum names the content, so a stale cache cannot be read)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"{sha256}.bev_bits.npy"
    if not path.exists():
        header = np.lib.format.header_data_from_array_1_0(bits)
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, header)
        write_bytes_atomic(path, buf.getvalue() + np.ascontiguousarray(bits).tobytes())
    arr = np.load(path, mmap_mode="r")
    if arr.shape != bits.shape or arr.dtype != bits.dtype:
        raise DatasetError(
            f"BEV cache {path} holds {arr.dtype} {arr.shape}, expected {bits.dtype} {bits.shape}; delete it"
        )
    return arr


def open_dataset(
    path: str | Path,
    hours: float | None = None,
    window: int = 16,
    split: str = "train",
    val_fraction: float = 0.1,
    seed: int = 0,
    min_valid: int | None = None,
    cache_dir: str | Path | None = None,
) -> WindowDataset:
    """Windows of ``window`` steps over the first ``hours`` of the collection at ``path`` (see the
    module doc for the prefix, the split, padding and memory).

    ``split``: ``train``, ``val`` or ``all``; ``min_valid``: least real steps in a window (default
    ``window // 2``); ``cache_dir``: memory-map the BEV from uncompressed files there instead of
    holding it in RAM. Shards are checked against the manifest's sha256 as they are read.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}; choose one of {', '.join(SPLITS)}")
    if window < 1:
        raise ValueError(f"window must be >= 1 step, got {window}")
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must lie in [0, 1], got {val_fraction}")
    min_valid = max(window // 2, 1) if min_valid is None else int(min_valid)
    if not 1 <= min_valid <= window:
        raise ValueError(f"min_valid must lie in [1, window={window}], got {min_valid}")
    path = Path(path)
    manifest = read_manifest(path)
    if not manifest.complete:
        warnings.warn(
            f"{path}: the collection is not complete (still running, or killed): its budget prefixes "
            "may change when it is resumed",
            stacklevel=2,
        )
    prefix = select_prefix(manifest, hours)
    return WindowDataset(path, manifest, prefix, window, split, val_fraction, seed, min_valid,
                         None if cache_dir is None else Path(cache_dir))  # fmt: skip


class WindowMix(_Windowed):
    """Several :class:`WindowDataset` s as one source of windows (``drive train extra_data=…``):
    the window indices of ``parts[0]`` come first, then those of ``parts[1]`` …, so sampling is
    uniform over every window of every part. The parts must share the window length, the BEV
    shape and the ego vector's width. Episode ids are offset by ``part << 58`` so that two
    collections' ids never meet (collection episode ids stay far below ``2**58``)."""

    def __init__(self, parts: Sequence[WindowDataset]) -> None:
        if not parts:
            raise ValueError("WindowMix needs at least one dataset")
        first = parts[0]
        for p in parts[1:]:
            if (
                p.window != first.window
                or p.bev_shape != first.bev_shape
                or p.ego.shape[1] != first.ego.shape[1]
            ):
                raise DatasetError(
                    f"{p.path} cannot train beside {first.path}: window {p.window} vs {first.window}, BEV "
                    f"{p.bev_shape} vs {first.bev_shape}, ego width {p.ego.shape[1]} vs {first.ego.shape[1]} "
                    "(collect every part with the same sim.bev settings)"
                )
        self.parts = list(parts)
        self.window = first.window
        self.dt = first.dt
        self.bev_shape = first.bev_shape
        self.split = first.split
        self._offsets = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self._offsets[-1])

    @property
    def ego(self) -> np.ndarray:
        """``float32 [S, E]`` every part's ego vectors, concatenated."""
        return np.concatenate([p.ego for p in self.parts])

    @property
    def episodes(self) -> np.ndarray:
        """Episode ids of every part (offset per part, see the class doc)."""
        return np.concatenate([p.episodes + (k << 58) for k, p in enumerate(self.parts)])

    @property
    def steps(self) -> int:
        return sum(p.steps for p in self.parts)

    @property
    def sim_seconds(self) -> float:
        """Simulated time of this split, every part [s]."""
        return sum(p.sim_seconds for p in self.parts)

    @property
    def prefix_seconds(self) -> float:
        """Simulated time of every part's budget prefix, both splits [s]."""
        return sum(p.prefix_seconds for p in self.parts)

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts)

    def batch(self, indices: Sequence[int] | np.ndarray) -> Windows:
        """The windows at ``indices`` (``[B]`` in ``[0, len)``), in the given order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"window indices must lie in [0, {len(self)}); got {idx.min()}…{idx.max()}")
        part = np.searchsorted(self._offsets, idx, side="right") - 1
        pieces, where = [], []
        for k in np.unique(part):
            pick = np.flatnonzero(part == k)
            pieces.append(self.parts[int(k)].batch(idx[pick] - self._offsets[k]))
            pieces[-1] = dataclasses.replace(pieces[-1], episode=pieces[-1].episode + (int(k) << 58))
            where.append(pick)
        order = np.argsort(np.concatenate(where), kind="stable")  # back to the order asked for
        fields = {f.name: np.concatenate([getattr(b, f.name) for b in pieces])[order]
                  for f in dataclasses.fields(Windows) if getattr(pieces[0], f.name) is not None}  # fmt: skip
        return Windows(**fields)
