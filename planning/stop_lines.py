"""Which stop line the planner must hold, from the ego vector and a little memory.

The ego vector names the next stop line on the route (``STOP_DISTANCE`` from the ego's centre,
capped; ``STOP_IS_RED`` for a red or yellow light; ``STOP_IS_SIGN`` for a stop sign): the agent's
own observation, as a camera reading the light would give it. A red light is held while it is red.
A stop sign is held until the ego has come to rest with its front bumper within
``STOP_PROXIMITY`` of the line (the Leaderboard's RunningStopTest), then released until the next
line: that needs memory, which the ego vector has not, so :class:`StopLineMemory` keeps it per
world. The ``stop_line`` cost (``planning.costs``) prices predicted travel past a held line.
:class:`StandstillClock` is the other memory the planner keeps per world: how long the ego has
stood (the ``progress`` term's ``patience``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sim_bridge.api import EgoFeature
from sim_bridge.violations import STOP_PROXIMITY, STOP_SPEED

#: the distance the ego vector reports when no stop line is ahead (``STOP_DISTANCE_CAP``) is at
#: least this [m]; such a column holds nothing
_FAR = 49.0
#: a line whose distance grows by more than this since the last decision is a new line [m]
_NEW_LINE = 1.0


class StopLineMemory:
    """Per world: has the ego already stopped for the stop sign ahead? ``update(ego)`` returns the
    centre-to-line distance ``[B]`` of the line to hold (``inf``: none)."""

    def __init__(self, num_worlds: int = 0, front: float = 2.3) -> None:
        self.front = float(front)
        """The ego's centre-to-front-bumper distance [m]."""
        self.reset(num_worlds)

    def reset(self, num_worlds: int, worlds: Sequence[int] | None = None) -> None:
        """Forget ``worlds`` (default: all, resizing to ``num_worlds``)."""
        if worlds is None or len(getattr(self, "_released", ())) != num_worlds:
            self._released = np.zeros(num_worlds, dtype=bool)
            self._last = np.full(num_worlds, np.inf)
            return
        w = np.asarray(list(worlds), dtype=np.int64)
        self._released[w] = False
        self._last[w] = np.inf

    def update(self, ego: np.ndarray) -> np.ndarray:
        """``ego [B, E]`` of this decision → ``[B]`` distance of the held line [m] (``inf``: none)."""
        d = ego[:, EgoFeature.STOP_DISTANCE].astype(np.float64)
        red = ego[:, EgoFeature.STOP_IS_RED] > 0.5
        sign = (ego[:, EgoFeature.STOP_IS_SIGN] > 0.5) & (d < _FAR)
        new_line = ~sign | (d > self._last + _NEW_LINE)
        self._released[new_line] = False
        stopped = ego[:, EgoFeature.SPEED] < STOP_SPEED
        self._released |= sign & stopped & (d - self.front <= STOP_PROXIMITY)
        self._last = np.where(sign, d, np.inf)
        hold = (red & (d < _FAR)) | (sign & ~self._released)
        return np.where(hold, d, np.inf).astype(np.float32)


class StandstillClock:
    """Per world: for how long has the ego been standing? ``update(ego, dt)`` returns the seconds
    ``[B]`` of the ongoing standstill (speed below ``speed`` m/s at every decision of it; 0 while
    moving), counting this decision's ``dt``. The ``progress`` term's ``patience`` reads it."""

    def __init__(self, num_worlds: int = 0, speed: float = 0.3) -> None:
        self.speed = float(speed)
        """Below this the ego stands [m/s]."""
        self.reset(num_worlds)

    def reset(self, num_worlds: int, worlds: Sequence[int] | None = None) -> None:
        """Forget ``worlds`` (default: all, resizing to ``num_worlds``)."""
        if worlds is None or len(getattr(self, "_waited", ())) != num_worlds:
            self._waited = np.zeros(num_worlds)
            return
        self._waited[np.asarray(list(worlds), dtype=np.int64)] = 0.0

    def update(self, ego: np.ndarray, dt: float) -> np.ndarray:
        """``ego [B, E]`` of this decision, decision period ``dt`` [s] → ``[B]`` seconds stood."""
        standing = ego[:, EgoFeature.SPEED] < self.speed
        self._waited = np.where(standing, self._waited + dt, 0.0)
        return self._waited.astype(np.float32)


__all__ = ["StandstillClock", "StopLineMemory"]
