"""The ego's signal violations each physics step, by the shared rule (``sim_bridge.violations``:
CARLA Leaderboard definitions); its collisions are recorded by ``contact``. Criteria in
``scenarios/`` turn these into infractions.
"""

from __future__ import annotations

import numba
import numpy as np

from sim_bridge.embedded.fields import LENGTH, SPEED, YAW, X, Y
from sim_bridge.violations import signal_violations


@numba.njit(cache=True)
def ego_events_world(
    m, F, I, light, stop_ok, prev_x: float, prev_y: float, red: np.ndarray, stop_run: np.ndarray,
    b: int,
) -> None:  # fmt: skip
    """After a physics step: record world ``b``'s red-light run and stop-sign run.

    ``prev_x, prev_y`` the ego centre before the step; outputs ``[B]`` are only written where still
    -1 (the first event of the decision step wins). ``stop_ok [B, K]`` is updated.
    """
    r, run = signal_violations(
        m.stop_f, m.stop_i, light[b], stop_ok[b], prev_x, prev_y, F[X, b, 0], F[Y, b, 0], F[YAW, b, 0],
        F[SPEED, b, 0], F[LENGTH, b, 0],
    )  # fmt: skip
    if r >= 0 and red[b] < 0:
        red[b] = r
    if run >= 0 and stop_run[b] < 0:
        stop_run[b] = run
