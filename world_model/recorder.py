"""From simulator outputs to stored steps: each step's event row, and per-world episode buffers.

:func:`step_events` turns one decision (observations before and after, the ``StepEvents``) into the
:data:`~world_model.batch.EVENT_NAMES` row of every world. :class:`EpisodeRecorder` keeps one open
episode per world of a batched simulator: ``begin`` when a world (re)starts, ``record`` after every
step, ``end`` when the world's episode is over (which returns the finished
:class:`~world_model.shards.Episode`). It sees only ``sim_bridge.api`` arrays, never a simulator.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim_bridge.api import EgoFeature, ObjectFeature, Observation, StepEvents
from world_model.batch import EVENT, NUM_EVENTS
from world_model.shards import EndReason, Episode, EpisodeMeta, pack_bev

#: ``nearest`` is capped at this distance (and is this value when no actor is listed) [m]
NEAREST_CAP = 50.0


def step_events(obs0: Observation, obs1: Observation, events: StepEvents, done: np.ndarray) -> np.ndarray:
    """``float32 [B, NUM_EVENTS]``: what followed each world's action (:data:`EVENT_NAMES`).

    ``obs0`` / ``obs1``: observations before and after the step (their privileged ``pose`` gives
    the ego's motion; ``obs1``'s object list the nearest actor, centre to centre); ``done [B]``:
    the episode ends after this step (collision or route end).
    """
    B = obs0.num_worlds
    out = np.zeros((B, NUM_EVENTS), dtype=np.float32)
    out[:, EVENT["collision"]] = events.collision
    out[:, EVENT["off_road"]] = events.off_road
    out[:, EVENT["red_light"]] = events.red_light >= 0
    out[:, EVENT["stop_sign"]] = events.stop_sign >= 0
    out[:, EVENT["wrong_way"]] = events.wrong_way
    out[:, EVENT["lane_invasion"]] = events.lane_invasion
    remaining0 = obs0.ego[:, EgoFeature.ROUTE_REMAINING].astype(np.float64)
    remaining1 = obs1.ego[:, EgoFeature.ROUTE_REMAINING].astype(np.float64)
    out[:, EVENT["progress"]] = np.maximum(remaining0 - remaining1, 0.0)
    out[:, EVENT["speed"]] = events.ego_speed
    x0, y0, yaw0 = obs0.pose[:, 0], obs0.pose[:, 1], obs0.pose[:, 2]
    ddx, ddy = obs1.pose[:, 0] - x0, obs1.pose[:, 1] - y0
    c, s = np.cos(yaw0), np.sin(yaw0)
    out[:, EVENT["dx"]] = c * ddx + s * ddy
    out[:, EVENT["dy"]] = -s * ddx + c * ddy
    out[:, EVENT["dyaw"]] = (obs1.pose[:, 2] - yaw0 + np.pi) % (2.0 * np.pi) - np.pi
    dist = np.hypot(obs1.objects[..., ObjectFeature.X], obs1.objects[..., ObjectFeature.Y])
    dist = np.where(obs1.objects_mask, dist, np.inf)
    out[:, EVENT["nearest"]] = np.minimum(dist.min(axis=1, initial=np.inf), NEAREST_CAP)
    out[:, EVENT["done"]] = done
    return out


class EpisodeRecorder:
    """One open episode per world of a batch (see module doc). Steps are kept compact while the
    episode runs: the BEV bit-packed (~11 KB a step at 10 × 96 × 96), objects as float16."""

    def __init__(self, num_worlds: int) -> None:
        self.num_worlds = int(num_worlds)
        self._id = np.full(self.num_worlds, -1, dtype=np.int64)
        self._town: list[str] = [""] * self.num_worlds
        self._meta: list[EpisodeMeta] = [EpisodeMeta()] * self.num_worlds
        self._steps: list[list[tuple[np.ndarray, ...]]] = [[] for _ in range(self.num_worlds)]
        self._bev_shape: tuple[int, int, int] | None = None

    def begin(
        self, worlds: Sequence[int], ids: Sequence[int], town: str, metas: Sequence[EpisodeMeta] | None = None
    ) -> None:
        """Open episodes ``ids`` (their seeds) in ``worlds``, all on map ``town`` (a map key),
        coming from where ``metas`` say (default: plain episodes)."""
        metas = [EpisodeMeta()] * len(worlds) if metas is None else metas
        for w, i, meta in zip(worlds, ids, metas, strict=True):
            if self._id[w] >= 0:
                raise RuntimeError(f"world {w} still has episode {self._id[w]} open; end it first")
            self._id[w] = int(i)
            self._town[w] = town
            self._meta[w] = meta
            self._steps[w] = []

    def lengths(self) -> np.ndarray:
        """``int64 [B]`` steps recorded so far in each world's open episode (0 where none is open)."""
        return np.array([len(s) for s in self._steps], dtype=np.int64)

    def record(self, obs0: Observation, action: np.ndarray, obs1: Observation, events: StepEvents,
               done: np.ndarray) -> np.ndarray:  # fmt: skip
        """Append one step to every open episode: ``obs0`` (the state before ``action [B, 2]``),
        the action, and the events that followed (``obs1``, ``events``, ``done [B]``). Returns the
        event rows ``float32 [B, NUM_EVENTS]``."""
        rows = step_events(obs0, obs1, events, done)
        bits = pack_bev(obs0.bev)
        self._bev_shape = tuple(int(v) for v in obs0.bev.shape[1:])  # type: ignore[assignment]
        objects = obs0.objects.astype(np.float16)
        action = np.asarray(action, dtype=np.float32)
        for b in np.flatnonzero(self._id >= 0):  # per-world lists; the arrays above are batched
            self._steps[b].append(
                (bits[b], obs0.ego[b], objects[b], obs0.objects_mask[b], action[b], rows[b])
            )
        return rows

    def end(self, worlds: Sequence[int], reasons: Sequence[EndReason]) -> list[Episode]:
        """Close the open episodes of ``worlds`` (ended for ``reasons``) and return those holding at
        least one step."""
        out = []
        for w, reason in zip(worlds, reasons, strict=True):
            steps, eid = self._steps[w], int(self._id[w])
            self._id[w] = -1
            self._steps[w] = []
            if eid < 0 or not steps:
                continue
            bits, ego, objects, mask, action, rows = (np.stack(a) for a in zip(*steps, strict=True))
            assert self._bev_shape is not None
            out.append(Episode(id=eid, town=self._town[w], end=EndReason(reason), bev_bits=bits,
                               bev_shape=self._bev_shape, ego=ego.astype(np.float32), objects=objects,
                               objects_mask=mask, action=action, events=rows, meta=self._meta[w]))  # fmt: skip
        return out
