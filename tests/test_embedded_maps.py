"""The embedded simulator on every procedural town and every real OpenDRIVE map in shared/maps: a
minute of busy traffic (20 vehicles, 10 pedestrians where there are sidewalks) around an ego driven
by the lane follower. No exception, no NaN, NPC boxes overlapping rarely, nobody stuck for long.

The lane follower is blind to other actors and stops at the end of its route; a world whose ego
finished its route is reset (a partial reset) so that a parked ego does not hold up the traffic
behind it, which would say nothing about the NPC drivers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from planning.base import AgentInfo
from planning.lane_follower import LaneFollower
from sim_bridge.api import MapRef, WorldSpec
from sim_bridge.embedded.config import EmbeddedConfig
from sim_bridge.embedded.simulator import EmbeddedSimulator
from sim_bridge.maps.towns import TOWNS

SHARED_MAPS = Path(__file__).resolve().parents[2] / "shared" / "maps"
REAL_MAPS = sorted(p.name for p in SHARED_MAPS.glob("*.xodr")) if SHARED_MAPS.is_dir() else []
NV, NP = 24, 12  # vehicle slots (ego included), pedestrian slots
B = 2
STEPS = 600  # 60 s
#: NPC–NPC overlapping box pairs summed over steps, per world and minute. Measured on these two
#: worlds: 0.5 on `grid` (one short contact inside a junction), 0 elsewhere; over 16 worlds per
#: map (``python tests/test_embedded_maps.py 16``): 1.06 on `grid`, 0 elsewhere.
MAX_OVERLAP_PAIR_STEPS = 5
#: longest an NPC may stand still [s]: red lights last 15 s, a stop-controlled approach waits for a
#: gap in the through traffic (measured at most 24.6 s over 16 worlds per map)
MAX_STUCK = 45.0


def _overlapping_pairs(st, b: int, slots: np.ndarray) -> int:
    """How many pairs of the boxes in ``slots`` of world ``b`` overlap (separating axes, vectorised)."""
    x, y, yaw = st.x[b, slots], st.y[b, slots], st.yaw[b, slots]
    hl, hw = 0.5 * st.length[b, slots], 0.5 * st.width[b, slots]
    c, s = np.cos(yaw), np.sin(yaw)
    dx, dy = x[None, :] - x[:, None], y[None, :] - y[:, None]
    separated = np.zeros((len(slots), len(slots)), dtype=bool)
    axes = (
        (c[:, None], s[:, None]),
        (-s[:, None], c[:, None]),
        (c[None, :], s[None, :]),
        (-s[None, :], c[None, :]),
    )
    for ax, ay in axes:
        reach = (
            hl[:, None] * np.abs(c[:, None] * ax + s[:, None] * ay)
            + hw[:, None] * np.abs(-s[:, None] * ax + c[:, None] * ay)
            + hl[None, :] * np.abs(c[None, :] * ax + s[None, :] * ay)
            + hw[None, :] * np.abs(-s[None, :] * ax + c[None, :] * ay)
        )
        separated |= np.abs(dx * ax + dy * ay) > reach
    return int(np.triu(~separated, k=1).sum())


def soak(ref: MapRef, num_worlds: int = B, steps: int = STEPS, first_seed: int = 0) -> dict[str, float]:
    """Drive ``num_worlds`` busy worlds on ``ref`` for ``steps`` decisions; check every step's state
    and observation for NaN; returns overlap and standstill figures (also used for the report)."""
    config = EmbeddedConfig(num_worlds=num_worlds, render_bev=False, max_vehicles=NV, max_pedestrians=NP)
    spec = WorldSpec(map=ref, vehicles=20, pedestrians=10, route_length=2000.0)
    with EmbeddedSimulator(config) as sim:
        obs = sim.reset(spec, seed=list(range(first_seed, first_seed + num_worlds)))
        agent = LaneFollower()
        agent.reset(AgentInfo(num_worlds, sim.dt, sim.ego_vehicle))
        st = sim.state
        overlaps, resets, max_stuck, vehicles = 0, 0, 0.0, []
        stuck = np.zeros((num_worlds, NV))
        ids = st.ids[:, :NV].copy()
        for step in range(steps):
            obs, ev = sim.step(agent.act(obs))
            assert np.isfinite(st.F).all(), f"NaN/inf in the state at step {step}"
            for name in ("bev", "ego", "objects"):
                assert np.isfinite(getattr(obs, name)).all(), (
                    f"NaN/inf in observation {name!r} at step {step}"
                )
            active = st.active[:, :NV] == 1
            same = active & (st.ids[:, :NV] == ids)
            stuck = np.where(same & (st.speed[:, :NV] < 0.1), stuck + sim.dt, 0.0)
            stuck[:, 0] = 0.0  # the ego is not an NPC
            max_stuck = max(max_stuck, float(stuck.max()))
            for b in range(num_worlds):
                overlaps += _overlapping_pairs(st, b, np.flatnonzero(active[b, 1:]) + 1)
            vehicles.append(active[:, 1:].sum(axis=1))
            done = np.flatnonzero(ev.route_length - ev.route_progress < 8.0)
            if len(done):  # a parked ego would hold up the traffic behind it: start it afresh
                obs = sim.reset(spec, seed=[10_000 + 97 * step + int(d) for d in done], worlds=done)
                stuck[done] = 0.0
                resets += len(done)
            ids = st.ids[:, :NV].copy()
        pedestrians = int((st.active[:, NV : NV + NP] == 1).sum())
        has_sidewalks = len(sim.road_map.sidewalk_lanes) > 0
    return {
        "overlap_pair_steps_per_world_minute": overlaps / (num_worlds * steps * sim.dt / 60.0),
        "max_stuck": max_stuck,
        "mean_vehicles": float(np.mean(vehicles)),
        "pedestrians": pedestrians,
        "has_sidewalks": has_sidewalks,
        "resets": resets,
    }


def _check(figures: dict[str, float]) -> None:
    assert figures["overlap_pair_steps_per_world_minute"] <= MAX_OVERLAP_PAIR_STEPS, figures
    assert figures["max_stuck"] <= MAX_STUCK, figures
    assert figures["mean_vehicles"] >= 5.0, figures  # there was traffic
    if figures["has_sidewalks"]:
        assert figures["pedestrians"] >= B, figures


@pytest.mark.parametrize("town", sorted(TOWNS))
def test_busy_minute_on_each_procedural_town(town: str) -> None:
    _check(soak(MapRef(town)))


@pytest.mark.skipif(not REAL_MAPS, reason=f"real OpenDRIVE maps not found at {SHARED_MAPS}")
@pytest.mark.parametrize("name", REAL_MAPS)
def test_busy_minute_on_each_real_map(name: str) -> None:
    _check(soak(MapRef(xodr=str(SHARED_MAPS / name))))


if __name__ == "__main__":  # the figures of the report: python tests/test_embedded_maps.py [worlds]
    import sys

    worlds = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    refs = [MapRef(t) for t in sorted(TOWNS)] + [MapRef(xodr=str(SHARED_MAPS / n)) for n in REAL_MAPS]
    for ref in refs:
        print(ref.key().rsplit("/", 1)[-1], soak(ref, num_worlds=worlds), flush=True)
