"""Proximity of other actors to the ego, from the recorded object lists: dense targets of the world
model's proximity heads. Collisions are rare (about a hundred per hour of exploration), distances
to other actors are known at every step; predicting them from the (predicted) latent makes the
encoder keep other actors, which the collision head then reads.

Columns (:data:`PROXIMITY_COLUMNS`), both at the *end* of a step (the observation after its action),
both clipped to what the default BEV shows (96 px at 0.5 m, the ego 16 m from the bottom edge):

- ``nearest``: distance between the ego's centre and the nearest other actor's centre [m], at most
  :data:`NEAREST_VISIBLE` (the BEV's reach behind the ego, its shortest);
- ``gap_ahead``: free distance from the ego's front bumper to the nearest actor box that overlaps
  the ego's forward corridor (the ego's width plus :data:`CORRIDOR_MARGIN` each side) [m], at most
  :data:`GAP_CAP` (within the BEV's 32 m ahead).

Letters: ``S`` steps, ``N`` objects.
"""

from __future__ import annotations

import numpy as np

from sim_bridge.api import ObjectFeature as OF

#: the proximity heads' columns, in order
PROXIMITY_COLUMNS = ("nearest", "gap_ahead")
#: cap of ``nearest`` [m]
NEAREST_VISIBLE = 16.0
#: cap of ``gap_ahead`` [m]
GAP_CAP = 30.0
#: scale of each column: the heads regress ``value / scale`` (both columns then lie in [0, 1])
PROXIMITY_SCALE = (NEAREST_VISIBLE, GAP_CAP)
#: the ego's box [m] (``sim_bridge.embedded``: EGO_LENGTH, EGO_WIDTH)
EGO_HALF_LENGTH, EGO_HALF_WIDTH = 2.3, 0.95
#: lateral margin of the forward corridor on each side [m]
CORRIDOR_MARGIN = 0.3


def box_extents(
    cos_rel: np.ndarray, sin_rel: np.ndarray, half_l: np.ndarray, half_w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Half extents [m] of a box (half length ``half_l``, half width ``half_w``) turned by an angle
    of cosine ``cos_rel`` and sine ``sin_rel`` from the ego's heading: ``(across, along)`` it
    (broadcast shapes)."""
    c, s = np.abs(cos_rel), np.abs(sin_rel)
    return half_w * c + half_l * s, half_l * c + half_w * s


def gap_ahead(objects: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``float32 [S]`` free distance ahead in the ego's corridor [m], in ``[0, GAP_CAP]``.

    ``objects: float [S, N, OBJECT_DIM]`` in the ego frame (x forward, y left; ``ObjectFeature``
    columns), ``mask: bool [S, N]``. An object counts when its centre is ahead of the ego's centre
    and its box's lateral extent (yaw-aware) reaches into the corridor; the gap is its centre's x
    minus its longitudinal half extent minus the ego's half length, floored at 0.
    """
    x, y = objects[..., OF.X], objects[..., OF.Y]
    half_l, half_w = 0.5 * objects[..., OF.LENGTH], 0.5 * objects[..., OF.WIDTH]
    lat_extent, lon_extent = box_extents(objects[..., OF.COS_YAW], objects[..., OF.SIN_YAW], half_l, half_w)
    inside = mask & (x > 0.0) & (np.abs(y) - lat_extent < EGO_HALF_WIDTH + CORRIDOR_MARGIN)
    gap = np.where(inside, x - lon_extent - EGO_HALF_LENGTH, np.inf).min(axis=-1, initial=np.inf)
    return np.clip(gap, 0.0, GAP_CAP).astype(np.float32)


def end_of_step(per_observation: np.ndarray, ep_start: np.ndarray, ep_length: np.ndarray) -> np.ndarray:
    """Shift a per-observation column ``[S]`` to the end of each step: row ``t`` takes the value of
    observation ``t + 1`` of the same episode; an episode's last step (no next observation) gets
    NaN. ``ep_start``, ``ep_length``: ``[M]`` the episodes' first rows and lengths."""
    out = np.full(per_observation.shape, np.nan, dtype=np.float32)
    for start, length in zip(ep_start.tolist(), ep_length.tolist(), strict=True):
        if length > 1:
            out[start : start + length - 1] = per_observation[start + 1 : start + length]
    return out


def proximity_columns(
    objects: np.ndarray,
    mask: np.ndarray,
    nearest: np.ndarray,
    ep_start: np.ndarray,
    ep_length: np.ndarray,
) -> np.ndarray:
    """``float32 [S, 2]`` (:data:`PROXIMITY_COLUMNS`) of one shard's steps: ``nearest`` from the
    recorded ``nearest`` event (already at the end of the step) clipped at ``NEAREST_VISIBLE``, and
    ``gap_ahead`` of the next observation's objects (NaN at an episode's last step)."""
    gap = end_of_step(gap_ahead(objects, mask), ep_start, ep_length)
    return np.stack([np.minimum(nearest, NEAREST_VISIBLE).astype(np.float32), gap], axis=-1)


__all__ = [
    "CORRIDOR_MARGIN",
    "GAP_CAP",
    "NEAREST_VISIBLE",
    "PROXIMITY_COLUMNS",
    "PROXIMITY_SCALE",
    "end_of_step",
    "gap_ahead",
    "proximity_columns",
]
