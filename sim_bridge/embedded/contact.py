"""Collision response: bodies in contact are separated and exchange momentum; nothing passes through.

After every physics step each overlapping pair that involves a vehicle is resolved, as a rigid-body
engine resolves a contact (CARLA's PhysX does it with forces over sub-steps; here one impulse per
contact and physics step):

- **Contact normal and depth** from the separating-axis test of the two oriented boxes
  (``sim_bridge.geometry.box_gap``): the axis of least penetration, pointing from the first body to
  the second.
- **Separation**: the bodies are moved apart along the normal by the depth (plus ``SLOP``), shared in
  proportion to their inverse masses, so no overlap is left after the contact step.
- **Impulse** along the normal with restitution ``e``: for closing normal speed ``v_n`` the bodies
  exchange ``J = −(1 + e) v_n / (1/m₁ + 1/m₂)``. The vehicles are kinematic bicycles that only roll
  along their heading, so each keeps the component of its new velocity along its heading (never
  negative: no reverse); the sideways part is taken by the tyres. A rear-end hit at ``v`` into a
  standing car of the same mass leaves ``(1 − e) v / 2`` and ``(1 + e) v / 2``.
- **Static obstacles** have infinite mass. A vehicle standing still with its brake on holds like
  one (static friction, ``μ g ≈ 8 m/s²`` beats any throttle) unless it is hit faster than
  ``breakaway_speed``: a car cannot push a braked car, a crash can shove it.
- **Pedestrians** (80 kg) hit by a vehicle moving at them faster than ``KNOCK_SPEED`` are knocked
  down and thrown clear to the side of the vehicle (mode ``DOWN``: they lie still from then on);
  the vehicle loses the momentum it gives them. A walker brushing a standing vehicle steps back out.

Vehicles do not spin (no yaw impulse) and bodies have no damage model. The ego's first contact in a
decision step is reported as its collision.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from sim_bridge.embedded.fields import ACCEL_CMD, ACTIVE, LENGTH, MODE, SPEED, WIDTH, YAW, X, Y
from sim_bridge.embedded.state import DOWN
from sim_bridge.geometry import box_gap

#: bodies are separated this much beyond touching [m] (touching boxes count as overlapping)
SLOP = 1e-3
#: a vehicle moving towards a walker faster than this knocks it down [m/s]
KNOCK_SPEED = 1.0
#: footprint of the reference car whose mass is ``vehicle_mass`` [m²]
REFERENCE_AREA = 4.6 * 1.9


class ContactParams(NamedTuple):
    """Collision-response settings as the kernels read them (from ``CollisionResponse``)."""

    enabled: bool
    restitution: float
    vehicle_mass: float  # [kg] for a 4.6 × 1.9 m car; scaled by footprint
    pedestrian_mass: float  # [kg]
    breakaway_speed: float  # [m/s]

    @classmethod
    def of(cls, response) -> ContactParams:  # response: CollisionResponse
        return cls(
            bool(response.enabled), float(response.restitution), float(response.vehicle_mass),
            float(response.pedestrian_mass), float(response.breakaway_speed),
        )  # fmt: skip


@numba.njit(cache=True)
def _inverse_mass(F, I, b: int, i: int, NV: int, NP: int, closing: float, c: ContactParams) -> float:
    """``1 / m`` [1/kg] of body ``i`` in a contact closing at ``closing`` [m/s]; 0 for immovable."""
    if i >= NV + NP:
        return 0.0  # static obstacle
    if i >= NV:
        return 1.0 / c.pedestrian_mass
    if F[SPEED, b, i] <= 0.0 and F[ACCEL_CMD, b, i] <= 0.0 and closing < c.breakaway_speed:
        return 0.0  # held by its brake
    area = max(F[LENGTH, b, i] * F[WIDTH, b, i], 1.0)
    return REFERENCE_AREA / (c.vehicle_mass * area)


@numba.njit(cache=True)
def _knock_down(F, I, b: int, i: int, a: int) -> None:
    """Pedestrian ``a`` hit by vehicle ``i``: it falls, thrown clear to the vehicle's side."""
    ci = np.cos(F[YAW, b, i])
    si = np.sin(F[YAW, b, i])
    dx = F[X, b, a] - F[X, b, i]
    dy = F[Y, b, a] - F[Y, b, i]
    lat = -dx * si + dy * ci
    side = 1.0 if lat >= 0.0 else -1.0
    ca = np.cos(F[YAW, b, a])
    sa = np.sin(F[YAW, b, a])
    # the walker's half extent across the vehicle's lateral axis
    reach = 0.5 * F[LENGTH, b, a] * abs(-ca * si + sa * ci) + 0.5 * F[WIDTH, b, a] * abs(ca * ci + sa * si)
    shift = 0.5 * F[WIDTH, b, i] + reach + SLOP - side * lat
    F[X, b, a] += -si * side * shift
    F[Y, b, a] += ci * side * shift
    F[SPEED, b, a] = 0.0
    I[MODE, b, a] = DOWN


@numba.njit(cache=True)
def _resolve(F, I, b: int, i: int, j: int, NV: int, NP: int, c: ContactParams) -> None:
    """Resolve the contact between vehicle ``i`` and body ``j`` (``j > i``), in place."""
    gap, nx, ny = box_gap(
        F[X, b, i], F[Y, b, i], F[YAW, b, i], F[LENGTH, b, i], F[WIDTH, b, i],
        F[X, b, j], F[Y, b, j], F[YAW, b, j], F[LENGTH, b, j], F[WIDTH, b, j],
    )  # fmt: skip
    if gap > 0.0:
        return
    depth = -gap
    hi_x = np.cos(F[YAW, b, i])
    hi_y = np.sin(F[YAW, b, i])
    vix0 = vix = F[SPEED, b, i] * hi_x
    viy0 = viy = F[SPEED, b, i] * hi_y
    hj_x = np.cos(F[YAW, b, j])
    hj_y = np.sin(F[YAW, b, j])
    vjx = F[SPEED, b, j] * hj_x
    vjy = F[SPEED, b, j] * hj_y
    vn = (vjx - vix) * nx + (vjy - viy) * ny  # < 0: closing
    closing = max(-vn, 0.0)
    inv_i = _inverse_mass(F, I, b, i, NV, NP, closing, c)
    inv_j = _inverse_mass(F, I, b, j, NV, NP, closing, c)
    if inv_i + inv_j <= 0.0:  # both held (neither closing fast): pushed apart evenly
        inv_i = inv_j = 1.0
    pedestrian = NV <= j < NV + NP
    # impulse along the normal (the walker's mass counts even though it is then thrown clear)
    if vn < 0.0:
        J = -(1.0 + c.restitution) * vn / (inv_i + inv_j)
        vix -= J * inv_i * nx
        viy -= J * inv_i * ny
        F[SPEED, b, i] = max(vix * hi_x + viy * hi_y, 0.0)
        if j < NV:
            vjx += J * inv_j * nx
            vjy += J * inv_j * ny
            F[SPEED, b, j] = max(vjx * hj_x + vjy * hj_y, 0.0)
    # separation
    if pedestrian:
        if vix0 * nx + viy0 * ny > KNOCK_SPEED or I[MODE, b, j] == DOWN:
            _knock_down(F, I, b, i, j)
        else:  # a walker brushing a (nearly) standing vehicle steps back out of its box
            F[X, b, j] += nx * (depth + SLOP)
            F[Y, b, j] += ny * (depth + SLOP)
        return
    push = depth + SLOP
    share_i = inv_i / (inv_i + inv_j)
    F[X, b, i] -= nx * push * share_i
    F[Y, b, i] -= ny * push * share_i
    F[X, b, j] += nx * push * (1.0 - share_i)
    F[Y, b, j] += ny * push * (1.0 - share_i)


@numba.njit(cache=True)
def _near(F, b: int, i: int, j: int) -> bool:
    """Circumscribed circles of ``i`` and ``j`` overlap (a cheap pre-test)."""
    dx = F[X, b, j] - F[X, b, i]
    dy = F[Y, b, j] - F[Y, b, i]
    r = 0.5 * (np.hypot(F[LENGTH, b, i], F[WIDTH, b, i]) + np.hypot(F[LENGTH, b, j], F[WIDTH, b, j]))
    return dx * dx + dy * dy <= r * r


@numba.njit(cache=True)
def resolve_contacts_world(
    F, I, NV: int, NP: int, c: ContactParams, hit: np.ndarray, hit_facts: np.ndarray, b: int
) -> None:
    """After a physics step: resolve world ``b``'s contacts of every vehicle (slots ``[0, NV)``)
    with every other body, and record the ego's (slot 0) first contact of the decision step in
    ``hit [B]`` (only where still -1), with the other body's speed [m/s] and bearing in the ego
    frame [rad] at the moment of contact, before the response, in ``hit_facts [B, 2]``. With
    ``c.enabled`` false the ego's contacts are recorded and nothing is moved (bodies pass through
    each other)."""
    N = F.shape[2]
    for i in range(NV if c.enabled else 1):
        if not I[ACTIVE, b, i]:
            continue
        for j in range(i + 1, N):
            if not I[ACTIVE, b, j] or not _near(F, b, i, j):
                continue
            gap, _, _ = box_gap(
                F[X, b, i], F[Y, b, i], F[YAW, b, i], F[LENGTH, b, i], F[WIDTH, b, i],
                F[X, b, j], F[Y, b, j], F[YAW, b, j], F[LENGTH, b, j], F[WIDTH, b, j],
            )  # fmt: skip
            if gap > 0.0:
                continue
            if i == 0 and hit[b] < 0:
                hit[b] = j
                hit_facts[b, 0] = F[SPEED, b, j]
                bearing = np.arctan2(F[Y, b, j] - F[Y, b, 0], F[X, b, j] - F[X, b, 0]) - F[YAW, b, 0]
                hit_facts[b, 1] = (bearing + np.pi) % (2.0 * np.pi) - np.pi
            if c.enabled:
                _resolve(F, I, b, i, j, NV, NP, c)
