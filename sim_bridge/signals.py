"""Traffic-light cycles from the map's signals, the same for every backend (the embedded simulator
runs them; the scenario families and the CARLA-protocol server read them).

The lights of one junction form a group; within it, lights whose approaches are parallel or
opposite share a phase (north-south, then east-west). Phases take turns: green, yellow, all-red.
Each world runs every group's cycle from a seeded offset (:func:`signal_offsets`); a spec can
freeze single lights. The CARLA bridge sets CARLA's lights from these same functions
(:mod:`sim_bridge.carla.lights`), so both backends show the same light at the same time.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from sim_bridge.api import LightState, SignalTiming
from sim_bridge.maps.road_map import RoadMap, SignalKind

_GREEN, _YELLOW, _RED = int(LightState.GREEN), int(LightState.YELLOW), int(LightState.RED)


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
        first: dict[int, float] = {}
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


def signal_timing(timing: SignalTiming) -> np.ndarray:
    """``float [3]`` (green, yellow, all-red) [s], as :func:`signal_states` takes it per world."""
    return np.array([timing.green, timing.yellow, timing.all_red], dtype=np.float64)


def signal_offsets(plan: SignalPlan, timing: SignalTiming, rng: np.random.Generator) -> np.ndarray:
    """``float [S]`` cycle offset of every signal [s]: one seeded point of its group's cycle (one
    draw of ``rng`` per group, the same for every backend given the same ``rng`` state), or 0
    without ``random_offset``; 0 for signals in no group (stop signs)."""
    per_phase = float(signal_timing(timing).sum())
    groups = int(plan.group.max()) + 1 if len(plan.group) else 0
    group_offset = rng.random(max(groups, 1)) if timing.random_offset else np.zeros(max(groups, 1))
    return np.where(plan.group >= 0, group_offset[plan.group] * per_phase * plan.num_phases, 0.0)


@numba.njit(cache=True)
def _states(group_phase, num_phases, is_light, time, offset, timing, frozen, out) -> None:
    B, S = out.shape
    for b in range(B):
        green, yellow, all_red = timing[b, 0], timing[b, 1], timing[b, 2]
        per_phase = green + yellow + all_red
        for k in range(S):
            if frozen[b, k] >= 0:
                out[b, k] = frozen[b, k]
                continue
            if not is_light[k]:
                out[b, k] = _GREEN
                continue
            t = (time[b] + offset[b, k]) % (per_phase * num_phases[k])
            active = int(t // per_phase)
            r = t - active * per_phase
            if active != group_phase[k]:
                out[b, k] = _RED
            elif r < green:
                out[b, k] = _GREEN
            elif r < green + yellow:
                out[b, k] = _YELLOW
            else:
                out[b, k] = _RED


def signal_states(
    plan: SignalPlan, time: np.ndarray, offset: np.ndarray, timing: np.ndarray, frozen: np.ndarray
) -> np.ndarray:
    """``int8 [B, S]`` :class:`LightState` of every signal at ``time [B]`` [s].

    ``offset [B, S]`` cycle offsets [s]; ``timing [B, 3]`` (green, yellow, all-red) [s];
    ``frozen [B, S]`` a fixed state or -1. Stop signs read GREEN.
    """
    out = np.empty(frozen.shape, dtype=np.int8)
    _states(plan.phase, plan.num_phases, plan.is_light, time, offset, timing, frozen, out)
    return out
