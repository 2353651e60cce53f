"""The fused per-decision kernel: NPC decisions, physics sub-steps, ego events, background density.

One compiled loop over a range of worlds, releasing the GIL, so that the simulator can run
disjoint ranges on several threads. Each world is independent: the result depends neither on the
thread count nor on which other worlds share the batch.
"""

from __future__ import annotations

import numba
import numpy as np

from sim_bridge.embedded.contact import ContactParams, resolve_contacts_world
from sim_bridge.embedded.events import ego_events_world
from sim_bridge.embedded.fields import (
    ACCEL,
    ACCEL_CMD,
    ACTIVE,
    BACKGROUND,
    FIRST_BG_VEHICLE,
    SPEED,
    STEER,
    STEER_CMD,
    STUCK,
    WHEELBASE,
    YAW,
    X,
    Y,
)  # fmt: skip
from sim_bridge.embedded.kinematics import Limits, bicycle
from sim_bridge.embedded.pedestrians import walk_world
from sim_bridge.embedded.spawning import spawn_pedestrians_world, spawn_vehicles_world
from sim_bridge.embedded.traffic import DriverParams, advance_world, drive_world


@numba.njit(cache=True, nogil=True)
def step_worlds(
    m, F, I, plan, seed, W, light, stop_ok, time, NV: int, NP: int, p: DriverParams, lim: Limits,
    contact: ContactParams, substeps: int, dt: float, targets: np.ndarray, radius: np.ndarray, respawn_distance: float,
    speed_spread: float, hit: np.ndarray, hit_facts: np.ndarray, red: np.ndarray, stop_run: np.ndarray, driven: np.ndarray,
    b0: int, b1: int,
) -> None:  # fmt: skip
    """Advance worlds ``[b0, b1)`` by one decision step of ``substeps`` physics steps of ``dt`` [s]:
    each moves the vehicles and walkers, then resolves contacts (``contact``), then records events.

    The ego's ``ACCEL_CMD``/``STEER_CMD`` must be set; NPCs decide here. Outputs ``[B]``: first
    collision slot ``hit`` (and ``hit_facts [B, 2]``: the other's speed and bearing at contact), red-light and stop-sign signal indices (-1 none), distance ``driven``
    [m]. ``targets [B, 2]``: background vehicles and pedestrians to keep within ``radius [B]`` [m].
    """
    for b in range(b0, b1):
        drive_world(m, F, I, plan, seed, W, light, NV, p, b)
        for _ in range(substeps):
            px = F[X, b, 0]
            py = F[Y, b, 0]
            for i in range(NV):
                if not I[ACTIVE, b, i]:
                    continue
                (F[X, b, i], F[Y, b, i], F[YAW, b, i], F[SPEED, b, i], F[STEER, b, i], F[ACCEL, b, i]) = bicycle(
                    F[X, b, i], F[Y, b, i], F[YAW, b, i], F[SPEED, b, i], F[STEER, b, i], F[ACCEL_CMD, b, i],
                    F[STEER_CMD, b, i], F[WHEELBASE, b, i], lim, dt,
                )  # fmt: skip
                F[STUCK, b, i] = F[STUCK, b, i] + dt if F[SPEED, b, i] < 0.1 else 0.0
            advance_world(m, F, I, plan, seed, W, NV, b)
            walk_world(m, F, I, seed, W, NV, NP, dt, b)
            resolve_contacts_world(F, I, NV, NP, contact, hit, hit_facts, b)
            ego_events_world(m, F, I, light, stop_ok, px, py, red, stop_run, b)
            driven[b] += np.hypot(F[X, b, 0] - px, F[Y, b, 0] - py)
            time[b] += dt
        for i in range(W[FIRST_BG_VEHICLE, b], NV):  # dissolve gridlocks (see DriverModel.stuck_timeout)
            if I[ACTIVE, b, i] and I[BACKGROUND, b, i] and F[STUCK, b, i] > p.stuck_timeout:
                I[ACTIVE, b, i] = 0
        spawn_vehicles_world(
            m, F, I, plan, seed, W, NV, targets[b, 0], radius[b], respawn_distance, 1, speed_spread, b
        )
        spawn_pedestrians_world(m, F, I, seed, W, NV, NP, targets[b, 1], radius[b], respawn_distance, 1, b)


@numba.njit(cache=True)
def spawn_all(
    m,
    F,
    I,
    plan,
    seed,
    W,
    NV: int,
    NP: int,
    targets: np.ndarray,
    radius: np.ndarray,
    speed_spread: float,
) -> None:
    """Fill every world whose ``targets [B, 2]`` are non-negative with background actors (reset)."""
    B = F.shape[1]
    for b in range(B):
        if targets[b, 0] >= 0:
            spawn_vehicles_world(
                m, F, I, plan, seed, W, NV, targets[b, 0], radius[b], 8.0, NV, speed_spread, b
            )
        if targets[b, 1] >= 0:
            spawn_pedestrians_world(m, F, I, seed, W, NV, NP, targets[b, 1], radius[b], 3.0, NP, b)
