"""Triggers of scripted scenario behaviours (brake, cut-in, crossing, door opening).

A behaviour fires once, when the ego comes within ``trigger_distance`` or at ``trigger_time``.
What follows is done by the driver kernel (vehicles), the pedestrian kernel (crossers) or here
(a door widens its car's box towards one side).
"""

from __future__ import annotations

import numpy as np

from sim_bridge.api import ActorKind, BehaviourKind
from sim_bridge.embedded.state import STAND, WALK_FREE, WorldState
from sim_bridge.geometry import open_door

_TRIGGERED_KINDS = (
    BehaviourKind.STOPPED,
    BehaviourKind.BRAKE,
    BehaviourKind.CUT_IN,
    BehaviourKind.CROSS,
    BehaviourKind.OPEN_DOOR,
)


def update_triggers(state: WorldState) -> None:
    """Fire the triggers whose condition holds now, for every actor of every world (in place)."""
    pending = (state.active != 0) & (state.triggered == 0) & np.isin(state.beh_kind, _TRIGGERED_KINDS)
    pending[:, 0] = False
    if not pending.any():
        return
    dist = np.hypot(state.x - state.x[:, :1], state.y - state.y[:, :1])
    fire = pending & ((dist < state.trig_dist) | (state.time[:, None] >= state.trig_time))
    if not fire.any():
        return
    state.triggered[fire] = 1
    # pedestrians: a CROSS starts walking (vehicles are handled by the driver kernel)
    walk = (
        fire
        & (state.kind == ActorKind.PEDESTRIAN)
        & (state.beh_kind == BehaviourKind.CROSS)
        & (state.mode == STAND)
    )
    state.mode[walk] = WALK_FREE
    # statics: OPEN_DOOR widens the box on one side, keeping the other side in place
    door = fire & (state.kind == ActorKind.STATIC) & (state.beh_kind == BehaviourKind.OPEN_DOOR)
    if door.any():
        box = (state.base_x[door], state.base_y[door], state.yaw[door], state.base_width[door])
        state.x[door], state.y[door], state.width[door] = open_door(
            *box, state.door[door], state.beh_dir[door]
        )
