"""The data contract between experience storage and the world model: steps and training windows.

A *step* is what the car saw, did and suffered at one decision: the observation arrays of
``sim_bridge.api.Observation`` (BEV, ego vector; the object list is kept for diagnostics), the
action taken, and the events that followed (:data:`EVENT_NAMES`). Experience is stored as episodes
of steps (``world_model.data``); training reads fixed-length *windows* of ``T`` consecutive steps
of one episode (:class:`Windows`). The world model sees only these arrays, never a simulator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: per-step event columns (float32; flags 0/1), recorded after the step's action was applied
EVENT_NAMES = (
    "collision",  # the ego hit an actor during the step
    "off_road",  # part of the ego's footprint left the drivable area
    "red_light",  # the ego crossed the stop line of a red light
    "stop_sign",  # the ego passed a stop sign without stopping
    "wrong_way",
    "lane_invasion",
    "progress",  # route progress gained during the step [m]
    "speed",  # ego speed at the end of the step [m/s]
    "dx",  # ego displacement during the step in the frame of its start pose: forward [m]
    "dy",  # … left [m]
    "dyaw",  # heading change during the step [rad]
    "nearest",  # distance to the nearest other actor at the end of the step, capped at 50 [m]
    "done",  # the episode ended after this step (collision or route end): no next observation
)
EVENT = {name: i for i, name in enumerate(EVENT_NAMES)}
#: the events the world model predicts with probability heads: every infraction the exam scores
#: that a planner can cause (collisions, leaving the road, running a red light or a stop sign)
EVENT_HEADS = ("collision", "off_road", "red_light", "stop_sign")
NUM_EVENTS = len(EVENT_NAMES)


@dataclass(frozen=True)
class Windows:
    """A batch of training windows, ``B`` windows of ``T`` consecutive steps of one episode each.

    - ``bev``: ``uint8 [B, T, C, H, W]`` observations (0/255 per channel)
    - ``ego``: ``float32 [B, T, E]`` ego vectors
    - ``action``: ``float32 [B, T, 2]`` the action taken at each step (accel, steer in [-1, 1])
    - ``events``: ``float32 [B, T, NUM_EVENTS]`` what followed each action (:data:`EVENT_NAMES`)
    - ``valid``: ``bool [B, T]`` False for steps after an episode's end inside the window (padding)
    - ``episode``: ``int64 [B]`` episode ids, ``start``: ``int64 [B]`` index of the first step
    - ``proximity``: ``float32 [B, T, 2]`` nearest actor and free gap ahead at the end of each step
      [m] (``world_model.proximity``; NaN where unknown), or ``None`` when the source has no
      object lists (the proximity heads then get no targets)

    Step ``t``'s observation is the state before ``action[:, t]``; ``events[:, t]`` happened during
    that action; the observation at ``t + 1`` is the state after it.
    """

    bev: np.ndarray
    ego: np.ndarray
    action: np.ndarray
    events: np.ndarray
    valid: np.ndarray
    episode: np.ndarray
    start: np.ndarray
    proximity: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(B, T)``"""
        return self.action.shape[:2]
