"""Imagined futures: what every rollout source fills and every cost reads.

:class:`Futures` holds, for ``B`` worlds × ``N`` candidate action sequences × ``H`` steps, the
predicted events and ego geometry of each step. The learned world model fills it
(:func:`futures_from_model`, :class:`ModelFutures`); forked simulator worlds can fill it with the
truth (the oracle planner). The costs of ``planning.costs`` read only this, so the same costs
score both sources, and the gap between the two planners is the model's error.

Letters: ``B`` worlds, ``N`` sequences per world, ``H`` horizon steps, ``D`` latent, ``K`` event
windows. Step ``h`` is the ``h``-th action of a sequence and its consequences (0-based).

**Which event window the model's futures use.** The event heads give, for the latent after step
``h``, P(event during steps ``h … h + w_k - 1``) for each window ``w_k`` of
``ModelConfig.event_within`` (default 1, 5, 10 steps). The per-step window (``w = 1``) is the
weakest predictor (measured composed collision AUROC 0.885, against 0.916 for the 1 s window on
1 h held-out towns), so :class:`ModelFutures` reads a longer window (``event_window``, default
the longest, 10 steps = 1 s) along the rollout and converts it to a per-step probability with a
constant hazard over the window: ``p_step = 1 - (1 - P_w) ** (1 / w)``. The conversion keeps the
field's meaning (probability of the event *during* step ``h``), costs sum it over steps as for
any other source, and near the horizon's end the window still looks up to ``w - 1`` steps past
it, a terminal look-ahead that keeps a plan from ending in front of an obstacle.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

#: fields of shape ``[B, N, H]`` (``xy`` is ``[B, N, H, 2]``; ``pedestrian`` is optional)
STEP_FIELDS = (
    "collision",
    "off_road",
    "red_light",
    "stop_sign",
    "yaw",
    "speed",
    "progress",
    "nearest",
    "gap_ahead",
)


@dataclass(frozen=True)
class Futures:
    """Predicted consequences of ``N`` action sequences in ``B`` worlds (numpy ``float32``).

    Event probabilities, each ``[B, N, H]`` in ``[0, 1]`` (zeros where a source has no such head):

    - ``collision``: P(the ego collides with an actor during step ``h``);
    - ``off_road``: P(part of the ego leaves the drivable area during step ``h``);
    - ``red_light``: P(the ego crosses a red light's stop line during step ``h``);
    - ``stop_sign``: P(the ego passes a stop sign without stopping during step ``h``).

    Ego geometry at the *end* of step ``h``, in the ego frame of the planning time (x forward,
    y left, origin at the ego's centre when the plan is made):

    - ``xy``: ``[B, N, H, 2]`` position [m];
    - ``yaw``: ``[B, N, H]`` heading, counter-clockwise from +x [rad];
    - ``speed``: ``[B, N, H]`` [m/s];
    - ``progress``: ``[B, N, H]`` route progress gained *during* step ``h`` [m] (its cumulative sum
      is the distance travelled along the route).

    Surroundings at the end of step ``h``:

    - ``nearest``: ``[B, N, H]`` distance from the ego's centre to the nearest other actor's centre
      [m] (the model's head is capped at 16 m; ``inf`` where nothing is known);
    - ``gap_ahead``: ``[B, N, H]`` free distance from the front bumper to the nearest actor in the
      ego's forward corridor [m] (the model's head is capped at 30 m);
    - ``pedestrian``: optional ``[B, N, H]`` distance to the nearest pedestrian [m]; ``None`` when
      the source cannot tell pedestrians apart (NaN / ``inf`` entries mean "unknown" / "none").

    How sure the source is:

    - ``collision_spread``: optional ``[B, N, H]`` standard deviation of the per-step collision
      probability across an ensemble's members (:class:`planning.ensemble.EnsembleFutures`);
      ``None`` for a single model or the simulator.
    """

    collision: np.ndarray
    off_road: np.ndarray
    red_light: np.ndarray
    stop_sign: np.ndarray
    xy: np.ndarray
    yaw: np.ndarray
    speed: np.ndarray
    progress: np.ndarray
    nearest: np.ndarray
    gap_ahead: np.ndarray
    pedestrian: np.ndarray | None = None
    collision_spread: np.ndarray | None = None

    def __post_init__(self) -> None:
        shape = np.shape(self.collision)
        if len(shape) != 3:
            raise ValueError(f"Futures.collision must be [B, N, H]; got shape {shape}")
        for name in (*STEP_FIELDS, "xy", "pedestrian", "collision_spread"):
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value, dtype=np.float32)
            want = (*shape, 2) if name == "xy" else shape
            if arr.shape != want:
                raise ValueError(
                    f"Futures.{name} has shape {arr.shape}; expected {want} ([B, N, H]{'[2]' if name == 'xy' else ''})"
                )
            object.__setattr__(self, name, arr)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(B, N, H)``."""
        B, N, H = self.collision.shape
        return int(B), int(N), int(H)

    def nonfinite_worlds(self) -> list[int]:
        """Worlds whose predicted events, geometry or proximities hold a NaN (``inf`` is allowed in
        the distances, meaning "nothing there"; ``pedestrian`` is not checked, NaN means unknown)."""
        bad = np.zeros(self.shape[0], dtype=bool)
        for name in ("collision", "off_road", "red_light", "stop_sign", "xy", "yaw", "speed", "progress"):
            arr = getattr(self, name)
            bad |= ~np.isfinite(arr.reshape(arr.shape[0], -1)).all(axis=1)
        for name in ("nearest", "gap_ahead"):
            arr = getattr(self, name)
            bad |= np.isnan(arr.reshape(arr.shape[0], -1)).any(axis=1)
        return np.flatnonzero(bad).tolist()

    def take(self, index: np.ndarray) -> Futures:
        """The futures of one sequence per world: ``index [B]`` → a :class:`Futures` with ``N = 1``."""
        rows = np.arange(self.shape[0])
        picked: dict[str, Any] = {}
        for fd in dataclasses.fields(self):
            arr = getattr(self, fd.name)
            picked[fd.name] = None if arr is None else arr[rows, index][:, None]
        return Futures(**picked)


def integrate_motion(step_motion: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Poses after each step from per-step motions in the frame of each step's start.

    ``step_motion: [..., H, 3]`` (dx forward, dy left [m], dyaw [rad] of step ``h``, in the frame
    of the pose at the step's start) → ``xy [..., H, 2]`` [m] and ``yaw [..., H]`` [rad] at the end
    of each step, in the frame of the first step's start pose. Vectorised: the heading before each
    step is an exclusive cumulative sum of ``dyaw``, each displacement is rotated by it, and the
    positions are the cumulative sum of the rotated displacements.
    """
    dx, dy, dyaw = step_motion[..., 0], step_motion[..., 1], step_motion[..., 2]
    yaw = np.cumsum(dyaw, axis=-1)
    start_yaw = yaw - dyaw
    c, s = np.cos(start_yaw), np.sin(start_yaw)
    x = np.cumsum(c * dx - s * dy, axis=-1)
    y = np.cumsum(s * dx + c * dy, axis=-1)
    return np.stack([x, y], axis=-1).astype(np.float32), yaw.astype(np.float32)


def window_to_step(prob: np.ndarray, window: int) -> np.ndarray:
    """Per-step probability from P(event within ``window`` steps) under a constant hazard:
    ``1 - (1 - p) ** (1 / window)`` (``window = 1``: unchanged)."""
    if window <= 1:
        return prob
    return (1.0 - np.power(np.clip(1.0 - prob, 0.0, 1.0), 1.0 / window)).astype(np.float32)


# ---------------------------------------------------------------------------------- the model


class NonFiniteModelOutput(ValueError):
    """The model's latents or heads hold a NaN or an infinity; ``worlds`` lists where."""

    def __init__(self, worlds: list[int], what: str) -> None:
        super().__init__(f"the world model's {what} hold NaN/inf for world(s) {worlds}")
        self.worlds = worlds


class ModelFutures:
    """Futures imagined by a :class:`world_model.model.WorldModel`.

    ``encode(bev, ego) -> z0 [B, D]`` once per decision, then ``futures(z0, actions [B, N, H, 2])``
    as often as the optimiser asks: each call is *one* batched rollout of the ``B × N`` sequences
    (:class:`world_model.fast_rollout.FastRollout`), one pass of the heads over the ``B × N × H``
    predicted latents, and the motion head integrated into ego-frame poses.

    ``event_window``: the event heads' window read along the rollout [steps]; one of the model's
    ``event_within`` (default: the longest; see the module doc for why and how it becomes a
    per-step probability).
    """

    def __init__(self, model, event_window: int | None = None) -> None:  # model: WorldModel
        import torch  # noqa: F401  (torch is needed only when a model is used)

        from world_model.fast_rollout import FastRollout

        self.model = model
        windows = [int(w) for w in model.config.event_within]
        window = max(windows) if event_window is None else int(event_window)
        if window not in windows:
            raise ValueError(
                f"event_window={window} is not one of the model's event windows {windows} "
                "(ModelConfig.event_within); pick one of those"
            )
        self.event_window = window
        self.window_index = windows.index(window)
        self._rollout = FastRollout(model.predictor)

    def encode(self, bev: np.ndarray, ego: np.ndarray):
        """``bev: uint8 [B, C, H, W]``, ``ego: float32 [B, E]`` → ``z0: torch [B, D]``."""
        import torch

        with torch.inference_mode():
            return self.model.encode(
                torch.from_numpy(np.ascontiguousarray(bev)),
                torch.from_numpy(np.ascontiguousarray(ego, dtype=np.float32)),
            )

    def futures(self, z0, actions: np.ndarray) -> Futures:
        """``z0: torch [B, D]``, ``actions: [B, N, H, 2]`` → :class:`Futures` ``[B, N, H]``.
        Raises :class:`NonFiniteModelOutput` naming the worlds whose predicted latents or head
        outputs (any head, read or not) hold a NaN or an infinity."""
        import torch

        B, N, H, _ = actions.shape
        with torch.inference_mode():
            z_start = z0.repeat_interleave(N, dim=0)  # [B·N, D]
            flat = torch.from_numpy(np.ascontiguousarray(actions, dtype=np.float32).reshape(B * N, H, 2))
            z = self._rollout(z_start, flat)  # [B·N, H, D]: the one rollout call
            raw = self.model.head_logits(z)  # every head, every window: [B·N, H, 4K + 7]
            # one reduction each finds any NaN or infinity (they survive a sum); only then look closer
            # (a finite sum can also overflow: then nothing is found and the plan goes on)
            if not bool(torch.isfinite(z.sum() + raw.sum())):
                finite = torch.isfinite(z).all(dim=-1) & torch.isfinite(raw).all(dim=-1)
                bad = (~finite).reshape(B, -1).any(dim=1)
                if bool(bad.any()):
                    raise NonFiniteModelOutput(
                        np.flatnonzero(bad.numpy()).tolist(), "predicted latents or heads"
                    )
            heads = self.model.decode_heads(raw)
        k, w = self.window_index, self.event_window

        def event(name: str) -> np.ndarray:
            return window_to_step(heads[name][..., k].numpy().reshape(B, N, H), w)

        motion = heads["motion"].numpy().reshape(B, N, H, 4)
        xy, yaw = integrate_motion(motion[..., :3])
        proximity = heads["proximity"].numpy().reshape(B, N, H, 2)
        return Futures(
            collision=event("collision"),
            off_road=event("off_road"),
            red_light=event("red_light"),
            stop_sign=event("stop_sign"),
            xy=xy,
            yaw=yaw,
            speed=motion[..., 3],
            progress=heads["progress"].numpy().reshape(B, N, H),
            nearest=proximity[..., 0],
            gap_ahead=proximity[..., 1],
            pedestrian=None,
        )


def futures_from_model(model, obs, actions: np.ndarray, event_window: int | None = None) -> Futures:
    """Encode ``obs`` (an ``Observation`` or anything with ``bev [B, C, H, W]`` and ``ego [B, E]``),
    roll ``actions [B, N, H, 2]`` out in one batched call and read the heads (:class:`ModelFutures`)."""
    source = ModelFutures(model, event_window)
    return source.futures(source.encode(obs.bev, obs.ego), actions)


__all__ = [
    "STEP_FIELDS",
    "Futures",
    "ModelFutures",
    "futures_from_model",
    "integrate_motion",
    "window_to_step",
]
