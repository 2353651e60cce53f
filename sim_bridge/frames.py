"""The one place where CARLA's frame meets ours.

CARLA (and its OpenDRIVE parser) is left-handed: x forward/east, y right/south, yaw in degrees
clockwise seen from above. Ours is right-handed: x east, y north, yaw in radians counter-clockwise.
Everything that reads from or writes to ``carla`` converts here and nowhere else.
"""

from __future__ import annotations

import numpy as np


def carla_to_map(x, y, yaw_deg=0.0):
    """CARLA ``(x, y)`` [m] and ``yaw`` [deg] → ours ``(x, y)`` [m] and ``yaw`` [rad] in ``(-pi, pi]``.

    Works on scalars or arrays of any matching shape.
    """
    return x, -np.asarray(y) if np.ndim(y) else -y, wrap_angle(-np.radians(yaw_deg))


def map_to_carla(x, y, yaw=0.0):
    """Ours ``(x, y)`` [m], ``yaw`` [rad] → CARLA ``(x, y)`` [m], ``yaw`` [deg]."""
    return x, -np.asarray(y) if np.ndim(y) else -y, -np.degrees(yaw)


def wrap_angle(a):
    """Wrap angles [rad] to ``(-pi, pi]`` (scalar or array)."""
    w = np.remainder(np.asarray(a, dtype=np.float64) + np.pi, 2.0 * np.pi) - np.pi
    w = np.where(w == -np.pi, np.pi, w)
    return float(w) if np.ndim(a) == 0 else w
