"""Pictures of what a planner imagined (``drive render agent=planner|oracle_planner``).

For every decision of an episode, :class:`PlanTrace` keeps what the planner's ``last_decision``
(:class:`planning.decision.Decision`) held: the last round's candidate ego paths (ego frame of the
planning time) with their total costs, the chosen plan's path, its cost terms and its predicted
collision probability. :func:`plan_frames` draws each step as

- on top, the north-up map view and the ego's BEV, each ``panel`` px square, with the sampled
  paths transformed into the map frame (:func:`sim_bridge.sensors.layout.ego_to_map`) and into
  the BEV's pixels (:meth:`sim_bridge.sensors.layout.BevGeometry.ego_to_pixel`), coloured by total
  cost, the chosen one in white;
- a header with the time, the speed and the chosen plan's numbers;
- below, a strip chart over the episode's time of P(collision within the horizon) of the chosen
  plan and of its cost terms, a cursor at the current time, and the colour bar of the paths.

Letters: ``N`` candidates, ``H`` horizon, ``T`` decisions.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from planning.decision import Decision
from sim_bridge.replay import Replay
from sim_bridge.replay_video import replay_views
from sim_bridge.sensors.layout import BevGeometry, ego_to_map
from sim_bridge.sensors.pictures import map_view_box

#: colour map of the sampled paths' total cost (low: green, high: red)
COST_CMAP = "RdYlGn_r"
CHOSEN_RGB = (255, 255, 255)
HEADER_PX = 60
CHART_PX = 380
_BG = (18, 18, 18)


@dataclass
class PlanTrace:
    """What the planner imagined at each decision of one world's episode (world 0)."""

    steps: list[int] = field(default_factory=list)
    """Replay step of each decision (the decision acts on that step's observation)."""
    poses: list[tuple[float, float, float]] = field(default_factory=list)
    """Ego pose at each decision, map frame ``(x, y, yaw)`` [m, m, rad]."""
    xy: list[np.ndarray] = field(default_factory=list)
    """Per decision ``float32 [N, H, 2]``: the candidates' imagined ego positions, ego frame [m]."""
    total: list[np.ndarray] = field(default_factory=list)
    """Per decision ``[N]`` the candidates' total cost."""
    chosen_xy: list[np.ndarray] = field(default_factory=list)
    """Per decision ``[H, 2]`` the chosen plan's imagined ego positions, ego frame [m]."""
    chosen_costs: list[dict[str, float]] = field(default_factory=list)
    """Per decision the chosen plan's weighted cost terms."""
    collision: list[float] = field(default_factory=list)
    """Per decision P(the chosen plan collides within the horizon)."""

    def record(self, step: int, pose: tuple[float, float, float], decision: Decision) -> None:
        """Keep world 0's part of ``decision``, made at replay step ``step`` from ``pose``."""
        self.steps.append(int(step))
        self.poses.append((float(pose[0]), float(pose[1]), float(pose[2])))
        self.xy.append(np.asarray(decision.xy[0], dtype=np.float32))
        self.total.append(np.asarray(decision.total[0], dtype=np.float64))
        self.chosen_xy.append(np.asarray(decision.chosen_xy[0], dtype=np.float32))
        self.chosen_costs.append({k: float(v[0]) for k, v in decision.chosen_costs.items()})
        self.collision.append(float(decision.collision_within_horizon()[0]))

    def __len__(self) -> int:
        return len(self.steps)

    def cost_range(self) -> tuple[float, float]:
        """Colour scale of the paths, fixed over the episode: the 2nd and 95th percentiles of every
        candidate's total cost (so that a few colliding candidates do not wash the rest out)."""
        if not self.total:
            return 0.0, 1.0
        allc = np.concatenate(self.total)
        lo, hi = (float(v) for v in np.percentile(allc, [2.0, 95.0]))
        return lo, max(hi, lo + 1e-6)


# ------------------------------------------------------------------------------ transforms


def map_view_pixels(points: np.ndarray, x0: float, y1: float, px_per_m: float) -> np.ndarray:
    """Map-frame points ``[..., 2]`` [m] → continuous pixel coordinates ``[..., 2]`` as ``(col,
    row)`` of the map view whose top-left corner is ``(x0, y1)`` (pixel edges at integers)."""
    p = np.asarray(points, dtype=np.float64)
    return np.stack([(p[..., 0] - x0) * px_per_m, (y1 - p[..., 1]) * px_per_m], -1)


def bev_pixels(points: np.ndarray, geometry: BevGeometry, scale: float = 1.0) -> np.ndarray:
    """Ego-frame points ``[..., 2]`` [m] → continuous ``(col, row)`` ``[..., 2]`` on the BEV drawn
    ``scale`` times its size (:meth:`BevGeometry.ego_to_pixel`, scaled)."""
    rc = geometry.ego_to_pixel(points) * scale
    return rc[..., ::-1]


# ------------------------------------------------------------------------------ drawing


def _colours(total: np.ndarray, lo: float, hi: float) -> np.ndarray:
    import matplotlib

    cmap = matplotlib.colormaps[COST_CMAP]
    rgba = cmap(np.clip((total - lo) / (hi - lo), 0.0, 1.0))
    return (rgba[:, :3] * 255).astype(np.uint8)


def _draw_paths(
    img: Image.Image,
    paths: np.ndarray,
    total: np.ndarray,
    chosen: np.ndarray,
    lo: float,
    hi: float,
    width: int,
) -> None:
    """``paths [N, M, 2]`` and ``chosen [M, 2]`` in continuous ``(col, row)`` pixels, drawn worst
    first (the cheapest on top), the chosen one last in white with a dark outline."""
    draw = ImageDraw.Draw(img)
    colours = _colours(total, lo, hi)
    for i in np.argsort(-total):
        pts = [(float(u) - 0.5, float(v) - 0.5) for u, v in paths[i]]
        draw.line(pts, fill=tuple(int(c) for c in colours[i]), width=width)
    pts = [(float(u) - 0.5, float(v) - 0.5) for u, v in chosen]
    draw.line(pts, fill=(0, 0, 0), width=width + 4, joint="curve")
    draw.line(pts, fill=CHOSEN_RGB, width=width + 2, joint="curve")


def _with_origin(xy: np.ndarray) -> np.ndarray:
    """Prepend the ego's position at planning time (the origin) to each path ``[..., H, 2]``."""
    origin = np.zeros((*xy.shape[:-2], 1, 2), dtype=xy.dtype)
    return np.concatenate([origin, xy], axis=-2)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the small bitmap font
        return ImageFont.load_default()


class _Chart:
    """The strip chart, drawn once for the episode; a cursor is added per frame."""

    def __init__(
        self, trace: PlanTrace, dt: float, duration: float, width: int, lo: float, hi: float
    ) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.colors import Normalize

        dpi = 100
        fig = plt.figure(figsize=(width / dpi, CHART_PX / dpi), dpi=dpi, facecolor="white")
        grid = fig.add_gridspec(2, 2, width_ratios=[40, 1], hspace=0.1, wspace=0.03, left=0.09, right=0.86,
                                top=0.95, bottom=0.3)  # fmt: skip
        ax_p = fig.add_subplot(grid[0, 0])
        ax_c = fig.add_subplot(grid[1, 0], sharex=ax_p)
        ax_bar = fig.add_subplot(grid[:, 1])
        t = np.asarray(trace.steps, dtype=np.float64) * dt
        ax_p.plot(t, trace.collision, color="crimson", lw=1.6)
        ax_p.set_ylim(-0.02, 1.02)
        ax_p.set_ylabel("P(collision\nin horizon)", fontsize=9)
        ax_p.tick_params(labelbottom=False, labelsize=8)
        ax_p.grid(alpha=0.3)
        # terms that stayed at 0 over the whole episode are left out of the chart
        terms = sorted(k for k in {k for c in trace.chosen_costs for k in c}
                       if any(abs(c.get(k, 0.0)) > 0.0 for c in trace.chosen_costs))  # fmt: skip
        for k in terms:
            ax_c.plot(t, [c.get(k, np.nan) for c in trace.chosen_costs], lw=1.3, label=k)
        ax_c.set_yscale("symlog", linthresh=1.0)  # one term's spike must not flatten the others
        ax_c.set_ylabel("cost (symlog)", fontsize=9)
        ax_c.set_xlabel("episode time [s]", fontsize=9)
        ax_c.tick_params(labelsize=8)
        ax_c.grid(alpha=0.3)
        if terms:
            ax_c.legend(fontsize=9, ncol=min(len(terms), 6), loc="upper center", bbox_to_anchor=(0.5, -0.38),
                        frameon=False, title="cost terms of the chosen plan (weighted; terms at 0 omitted)",
                        title_fontsize=9)  # fmt: skip
        ax_c.set_xlim(0.0, max(duration, dt))
        bar = fig.colorbar(plt.cm.ScalarMappable(Normalize(lo, hi), COST_CMAP), cax=ax_bar)
        bar.set_label("total cost of a sampled path\n(white path: the chosen plan)", fontsize=9, labelpad=8)
        bar.ax.tick_params(labelsize=8)
        fig.canvas.draw()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
        plt.close(fig)
        buf.seek(0)
        self.image = np.asarray(Image.open(buf).convert("RGB"))
        # data x → pixel column, from the axes' box (the PNG is the figure at the same dpi)
        x_lo, x_hi = ax_c.get_xlim()
        box = ax_c.get_position()
        w = self.image.shape[1]
        self._u0, self._u1 = box.x0 * w, box.x1 * w
        self._x_lo, self._x_hi = x_lo, x_hi
        h = self.image.shape[0]
        self._rows = (round((1.0 - ax_p.get_position().y1) * h), round((1.0 - box.y0) * h))

    def at(self, time: float) -> np.ndarray:
        img = self.image.copy()
        u = round(self._u0 + (time - self._x_lo) / (self._x_hi - self._x_lo) * (self._u1 - self._u0))
        if 0 <= u < img.shape[1] - 1:
            img[self._rows[0] : self._rows[1], u : u + 2] = (30, 30, 30)
        return img


def plan_frames(
    rep: Replay,
    trace: PlanTrace,
    geometry: BevGeometry | None = None,
    every: int = 1,
    map_window: float = 60.0,
    panel: int = 480,
) -> list[np.ndarray]:
    """``uint8 [H, W, 3]`` pictures of steps ``0::every`` (see the module doc): map view and BEV
    ``panel`` px square each, paths of the decision made at each step (none after the last)."""
    geometry = geometry or BevGeometry()
    px_per_m = panel / map_window
    scale = max(1, panel // geometry.size)
    lo, hi = trace.cost_range()
    width = 2 * panel + 4
    chart = _Chart(trace, rep.dt, (rep.num_steps - 1) * rep.dt, width, lo, hi)
    by_step = {s: i for i, s in enumerate(trace.steps)}
    font = _font(17)
    rm = None
    frames = []
    for t, left, bev in replay_views(rep, geometry, every, map_window, px_per_m):
        actors = rep.actors(t)
        map_img = Image.fromarray(left)
        bev_img = Image.fromarray(np.repeat(np.repeat(bev, scale, axis=0), scale, axis=1))
        i = by_step.get(t)
        if i is not None:
            if rm is None:
                from sim_bridge.maps.catalog import load_map

                rm = load_map(rep.map)
            pose = trace.poses[i]
            x0, y1, _, _ = map_view_box(rm, (pose[0], pose[1]), px_per_m, map_window)
            on_map = [map_view_pixels(ego_to_map(_with_origin(p), pose), x0, y1, px_per_m)
                      for p in (trace.xy[i], trace.chosen_xy[i])]  # fmt: skip
            _draw_paths(map_img, on_map[0], trace.total[i], on_map[1], lo, hi, 1)
            on_bev = [bev_pixels(_with_origin(p), geometry, scale) for p in (trace.xy[i], trace.chosen_xy[i])]
            _draw_paths(bev_img, on_bev[0], trace.total[i], on_bev[1], lo, hi, 1)
        top = np.full((panel, width, 3), 0, np.uint8)
        top[: map_img.height, : map_img.width] = np.asarray(map_img)[:panel, :panel]
        top[:, panel : panel + 4] = 255
        b = np.asarray(bev_img)[:panel, :panel]
        top[: b.shape[0], panel + 4 : panel + 4 + b.shape[1]] = b
        header = Image.new("RGB", (width, HEADER_PX), _BG)
        text = f"t = {t * rep.dt:5.1f} s   speed {float(actors.speed[0, 0]):4.1f} m/s   {rep.meta.get('agent', '')}"
        line2 = "no decision at this step"
        if i is not None:
            # how far the sampled paths' ends lie from the chosen end: 0 m means the model imagines
            # the same path whatever the actions (the paths then hide under the white one)
            spread = float(np.hypot(*(trace.xy[i][:, -1] - trace.chosen_xy[i][-1]).T).max())
            line2 = (
                f"chosen plan: cost {sum(trace.chosen_costs[i].values()):.2f}, P(collision) {trace.collision[i]:.2f}"
                f"   |   {len(trace.total[i])} sampled paths, ends within {spread:.1f} m of its end"
            )
        draw = ImageDraw.Draw(header)
        draw.text((10, 5), text, fill=(235, 235, 235), font=font)
        draw.text((10, 31), line2, fill=(235, 235, 235), font=font)
        frames.append(np.concatenate([np.asarray(header), top, chart.at(t * rep.dt)], axis=0))
    return frames


__all__ = ["PlanTrace", "bev_pixels", "map_view_pixels", "plan_frames"]
