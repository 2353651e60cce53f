"""What the observed BEV says for certain about imagined ego poses: the road's edge and the
obstacles that do not move.

A world model has to *learn* how other road users move; it should not have to learn where the
kerb is or that a parked car stays where it is, yet a 1 h model gets both wrong in poses its
experience rarely holds:

- **off-road.** The model's ``off_road`` head is poorly calibrated away from the lane centre.
  Measured on the exam (``pedestrian_crossing_grid7_000_s102``, seed-0 1 h hazards model in an
  ensemble): after braking for the walker part-way through a right turn, every start and waiting
  too were predicted off-road, so the planner waited 80 s for a time-out while 4 of 9 gentle
  starts truly stay on the road.
- **static obstacles.** Behind a parked car every way of moving off, the swerves included, gets a
  collision risk of 0.09-0.59 from the model, while 17 of 18 are truly collision-free (forked and
  driven), so the planner waits there (``parked_obstacle``: 0 % success for every training seed).

The observation already draws both (``BevChannel.DRIVABLE``, ``BevChannel.STATIC``) around the
ego, and the planner's futures hold the ego's own imagined poses (``Futures.xy``, ``Futures.yaw``:
the bicycle's with ``ego_motion=kinematic``). With ``geometry.off_road=bev`` and
``geometry.statics=bev`` (:class:`GeometryConfig`) the planner reads them there:

- ``off_road`` per step is ``1 -`` the least drivable of the box's four corners, sampled
  bilinearly (each pixel is 0 or 1 at its centre, so the value ramps across a pixel at an edge and
  the optimiser feels the kerb coming), as the simulators' own test reads the map
  (``sim_bridge.embedded.ego_track.ego_situation``: a corner off the drivable raster). Steps whose
  box leaves the picture keep the model's value.
- **statics** are taken out of the model's input (the channel is cleared before encoding, a
  picture like the many without statics the model was trained on) and handled by geometry: the
  collision risk with them is the largest STATIC value at a grid of points over the imagined box
  (inflated by ``static_margin``), combined with the model's risk from everything else as
  ``1 - (1 - p_model)(1 - p_static)``; the free gap ahead is the smaller of the model's and the
  distance from the front bumper to the first STATIC pixel in the box's corridor.

Nothing privileged is read: only the observation's picture, whose layout (``resolution``,
``ego_from_bottom``) the agent presets take from ``sim.bev``. A static actor that changes its
shape (a door opening) is seen once it has.

Letters: ``B`` worlds, ``N`` sequences, ``H`` horizon, ``P`` pixels per side.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from planning.futures import Futures
from sim_bridge.api import EgoVehicle, Observation
from sim_bridge.sensors.layout import BevChannel, BevGeometry

#: where an estimate comes from (``agent.geometry.off_road``, ``agent.geometry.statics``)
SOURCES = ("model", "bev")
#: points of the box's grid along its length and across its width (static collisions)
BOX_GRID = (7, 3)
#: spacing of the samples along the corridor ahead [m] (static gap ahead)
CORRIDOR_STEP = 0.5


@dataclass
class GeometryConfig:
    """What the planner reads from the observed BEV instead of the model (``agent.geometry.*``;
    :mod:`planning.bev_geometry`)."""

    off_road: str = field(default="model", metadata={"choices": SOURCES})
    """``model``: the world model's ``off_road`` head; ``bev``: the BEV's drivable channel at the
    imagined box's corners (the model's head only where the box leaves the picture)."""
    statics: str = field(default="model", metadata={"choices": SOURCES})
    """``model``: the model sees static obstacles and predicts the collisions with them; ``bev``:
    they are cleared from the model's input, and the collision risk and gap ahead with them come
    from the BEV's STATIC channel at the imagined box."""
    resolution: float = field(default=BevGeometry.resolution, metadata={"gt": 0})
    """The BEV's scale [m/px]: ``sim.bev.resolution`` (the agent presets interpolate it)."""
    ego_from_bottom: float = field(default=BevGeometry.ego_from_bottom, metadata={"min": 0})
    """Distance from the ego's centre to the BEV's bottom edge [m]: ``sim.bev.ego_from_bottom``."""
    off_road_margin: float = field(default=0.0, metadata={"min": 0})
    """Added to the ego's half length and half width at the corners tested off-road [m]."""
    static_margin: float = field(default=0.3, metadata={"min": 0})
    """Added to the ego's half length and half width where static collisions are tested [m]
    (the picture's half-pixel rounding, and the bicycle's error over the horizon)."""
    gap_range: float = field(default=30.0, metadata={"gt": 0})
    """How far ahead of the front bumper the corridor is searched for statics [m] (the model's
    gap head is capped at 30 m)."""

    @property
    def any_bev(self) -> bool:
        return self.off_road == "bev" or self.statics == "bev"

    def check(self) -> None:
        for name in ("off_road", "statics"):
            value = getattr(self, name)
            if value not in SOURCES:
                raise ValueError(f"geometry.{name}={value!r}; allowed: {', '.join(SOURCES)}")


def box_points(
    xy: np.ndarray, yaw: np.ndarray, half_length: float, half_width: float, grid: tuple[int, int] = (2, 2)
) -> np.ndarray:
    """``[..., G, 2]`` points of a ``grid = (along, across)`` spanning boxes centred at
    ``xy [..., 2]`` with heading ``yaw [...]`` [rad], edges included (``(2, 2)``: the four corners,
    rear right, rear left, front right, front left) [m]."""
    lx = np.linspace(-half_length, half_length, grid[0])
    ly = np.linspace(-half_width, half_width, grid[1])
    gx, gy = (a.ravel() for a in np.meshgrid(lx, ly, indexing="ij"))
    c, s = np.cos(yaw)[..., None], np.sin(yaw)[..., None]
    x = xy[..., 0:1] + c * gx - s * gy
    y = xy[..., 1:2] + s * gx + c * gy
    return np.stack([x, y], axis=-1)


def sample_bilinear(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear samples of ``image [B, P, P]`` (values at pixel centres ``r + 0.5, c + 0.5``) at
    continuous coordinates ``rows, cols [B, ...]``: ``(value [B, ...], inside [B, ...])``; outside
    the picture the value is 0 and ``inside`` False."""
    B, height, width = image.shape
    inside = (rows >= 0.0) & (rows <= height) & (cols >= 0.0) & (cols <= width)  # False for NaN
    r = np.clip(np.nan_to_num(rows - 0.5, nan=-1.0), 0.0, height - 1.0)
    c = np.clip(np.nan_to_num(cols - 0.5, nan=-1.0), 0.0, width - 1.0)
    r0 = np.minimum(np.floor(r).astype(np.int64), height - 2)
    c0 = np.minimum(np.floor(c).astype(np.int64), width - 2)
    fr, fc = r - r0, c - c0
    b = np.arange(B).reshape((B,) + (1,) * (rows.ndim - 1))
    v00 = image[b, r0, c0]
    v01 = image[b, r0, c0 + 1]
    v10 = image[b, r0 + 1, c0]
    v11 = image[b, r0 + 1, c0 + 1]
    value = (1 - fr) * ((1 - fc) * v00 + fc * v01) + fr * ((1 - fc) * v10 + fc * v11)
    return np.where(inside, value, 0.0), inside


def _layout(bev: np.ndarray, cfg: GeometryConfig) -> BevGeometry:
    if bev.shape[-2] != bev.shape[-1]:
        raise ValueError(f"the BEV must be square, got {bev.shape[-2]}×{bev.shape[-1]} px")
    return BevGeometry(
        size=int(bev.shape[-1]), resolution=cfg.resolution, ego_from_bottom=cfg.ego_from_bottom
    )


def _sample(bev: np.ndarray, channel: BevChannel, points: np.ndarray, cfg: GeometryConfig):
    """Channel ``channel`` of ``bev [B, C, P, P]`` at ego-frame ``points [B, ...,  2]``."""
    pix = _layout(bev, cfg).ego_to_pixel(points)
    return sample_bilinear(bev[:, int(channel)].astype(np.float32) / 255.0, pix[..., 0], pix[..., 1])


def bev_off_road(
    bev: np.ndarray, xy: np.ndarray, yaw: np.ndarray, ego: EgoVehicle, cfg: GeometryConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Off-road risk of imagined ego poses ``xy [B, N, H, 2]`` [m], ``yaw [B, N, H]`` [rad] (the
    planning-time ego frame) from ``bev [B, C, P, P]``: ``(p [B, N, H] float32 in [0, 1], known
    [B, N, H])``, ``1 -`` the least drivable corner, and whether all four lie in the picture."""
    corners = box_points(
        xy, yaw, 0.5 * ego.length + cfg.off_road_margin, 0.5 * ego.width + cfg.off_road_margin
    )
    value, inside = _sample(bev, BevChannel.DRIVABLE, corners, cfg)
    return (1.0 - value.min(axis=-1)).astype(np.float32), inside.all(axis=-1)


def bev_static_collision(
    bev: np.ndarray, xy: np.ndarray, yaw: np.ndarray, ego: EgoVehicle, cfg: GeometryConfig
) -> np.ndarray:
    """``float32 [B, N, H]`` in ``[0, 1]``: the largest STATIC value at :data:`BOX_GRID` points over
    the imagined boxes inflated by ``static_margin`` (0 where the picture shows none)."""
    m = cfg.static_margin
    points = box_points(xy, yaw, 0.5 * ego.length + m, 0.5 * ego.width + m, BOX_GRID)
    value, _ = _sample(bev, BevChannel.STATIC, points, cfg)
    return value.max(axis=-1).astype(np.float32)


def bev_static_gap(
    bev: np.ndarray, xy: np.ndarray, yaw: np.ndarray, ego: EgoVehicle, cfg: GeometryConfig
) -> np.ndarray:
    """``float32 [B, N, H]``: free distance from the imagined front bumper to the first STATIC
    pixel (value ≥ 0.5) in the box's corridor ahead, searched every :data:`CORRIDOR_STEP` up to
    ``gap_range`` [m]; ``inf`` where none."""
    d = np.arange(0.0, cfg.gap_range + 1e-9, CORRIDOR_STEP)  # [S]
    across = np.array([-0.5 * ego.width, 0.0, 0.5 * ego.width])  # [3]
    c, s = np.cos(yaw)[..., None, None], np.sin(yaw)[..., None, None]
    ax = (0.5 * ego.length + d)[:, None]  # [S, 1] ego-box frame
    ay = across[None, :]
    x = xy[..., 0, None, None] + c * ax - s * ay  # [B, N, H, S, 3]
    y = xy[..., 1, None, None] + s * ax + c * ay
    value, _ = _sample(bev, BevChannel.STATIC, np.stack([x, y], -1), cfg)
    hit = (value >= 0.5).any(axis=-1)  # [B, N, H, S]
    first = np.argmax(hit, axis=-1)
    return np.where(hit.any(axis=-1), d[first], np.inf).astype(np.float32)


def model_input(obs: Observation, cfg: GeometryConfig) -> np.ndarray:
    """The BEV the world model encodes: ``obs.bev``, with the STATIC channel cleared when
    ``statics=bev`` (the geometry handles them)."""
    if cfg.statics != "bev" or not obs.bev[:, int(BevChannel.STATIC)].any():
        return obs.bev
    bev = obs.bev.copy()
    bev[:, int(BevChannel.STATIC)] = 0
    return bev


def apply(futures: Futures, bev: np.ndarray, ego: EgoVehicle, cfg: GeometryConfig) -> Futures:
    """``futures`` with what ``cfg`` reads from the observed ``bev`` (module doc); unchanged when
    both sources are ``model``."""
    cfg.check()
    changes: dict[str, np.ndarray] = {}
    if cfg.off_road == "bev":
        p, known = bev_off_road(bev, futures.xy, futures.yaw, ego, cfg)
        changes["off_road"] = np.where(known, p, futures.off_road).astype(np.float32)
    if cfg.statics == "bev" and bev[:, int(BevChannel.STATIC)].any():
        p = bev_static_collision(bev, futures.xy, futures.yaw, ego, cfg)
        changes["collision"] = (1.0 - (1.0 - futures.collision) * (1.0 - p)).astype(np.float32)
        gap = bev_static_gap(bev, futures.xy, futures.yaw, ego, cfg)
        changes["gap_ahead"] = np.minimum(futures.gap_ahead, gap).astype(np.float32)
    return dataclasses.replace(futures, **changes) if changes else futures


__all__ = [
    "SOURCES",
    "GeometryConfig",
    "apply",
    "bev_off_road",
    "bev_static_collision",
    "bev_static_gap",
    "box_points",
    "model_input",
    "sample_bilinear",
]
