"""Traffic-light cycles from the map's signals.

The lights of one junction form a group; within it, lights whose approaches are parallel or
opposite share a phase (north-south, then east-west). Phases take turns: green, yellow, all-red.
Each world runs every group's cycle from a seeded offset; a spec can freeze single lights.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sim_bridge.api import LightState
from sim_bridge.maps.road_map import RoadMap, SignalKind


class SignalPlan(NamedTuple):
    """Per signal ``[S]``: its group, its phase in the group, and the group's phase count."""

    group: np.ndarray
    phase: np.ndarray
    num_phases: np.ndarray
    is_light: np.ndarray


def build_signal_plan(rm: RoadMap) -> SignalPlan:
    """Group lights by junction and phase them by approach direction (cached on the map)."""
    cached = rm.cache.get("signal_plan")
    if cached is not None:
        return cached
    S = len(rm.signal_kind)
    is_light = np.asarray(rm.signal_kind) == SignalKind.TRAFFIC_LIGHT
    heading = np.zeros(S)
    stop_signal = np.asarray(rm.stop_signal, dtype=np.int64)
    if len(stop_signal):
        _, yaw = rm.pose_at(np.asarray(rm.stop_lane), np.asarray(rm.stop_s))
        first = {}
        for k, sig in enumerate(stop_signal):
            first.setdefault(int(sig), yaw[k])
        for sig, h in first.items():
            heading[sig] = h
    group = np.full(S, -1, dtype=np.int64)
    phase = np.zeros(S, dtype=np.int64)
    junctions = np.asarray(rm.signal_junction)
    keys: dict[int, int] = {}
    reps: dict[int, list[float]] = {}
    for sig in range(S):
        if not is_light[sig]:
            continue
        key = int(junctions[sig]) if junctions[sig] >= 0 else -1 - sig
        g = keys.setdefault(key, len(keys))
        group[sig] = g
        phases = reps.setdefault(g, [])
        for p, h in enumerate(phases):
            if abs(np.cos(heading[sig] - h)) > 0.7:
                phase[sig] = p
                break
        else:
            phase[sig] = len(phases)
            phases.append(heading[sig])
    num_phases = np.array([len(reps.get(int(g), [0.0])) if g >= 0 else 1 for g in group], dtype=np.int64)
    plan = SignalPlan(group, phase, num_phases, is_light)
    rm.cache["signal_plan"] = plan
    return plan


def signal_states(plan: SignalPlan, time: np.ndarray, offset: np.ndarray, timing: np.ndarray, frozen: np.ndarray) -> np.ndarray:
    """``int8 [B, S]`` :class:`LightState` of every signal at ``time [B]`` [s].

    ``offset [B, S]`` cycle offsets [s]; ``timing [B, 3]`` (green, yellow, all-red) [s];
    ``frozen [B, S]`` a fixed state or -1. Stop signs read GREEN.
    """
    green, yellow, all_red = (timing[:, i : i + 1] for i in range(3))
    per_phase = green + yellow + all_red
    cycle = per_phase * plan.num_phases[None, :]
    t = np.remainder(time[:, None] + offset, cycle)
    active_phase = np.floor(t / per_phase)
    r = t - active_phase * per_phase
    mine = active_phase == plan.phase[None, :]
    state = np.where(
        mine & (r < green), LightState.GREEN, np.where(mine & (r < green + yellow), LightState.YELLOW, LightState.RED)
    ).astype(np.int8)
    state[:, ~plan.is_light] = LightState.GREEN
    return np.where(frozen >= 0, frozen, state).astype(np.int8)
