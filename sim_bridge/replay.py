"""Episode replays: every step's actor boxes, lights, actions and events of one world, as NPZ.

A replay is enough to render the episode again (map view and BEV) without re-simulating, and it is
backend-independent: it holds what the sensors saw (:class:`SensorFrame` inputs), the route and
the map reference. Files are written atomically (temporary file, then rename).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sim_bridge.api import MapRef, StepEvents
from sim_bridge.maps.road_map import Route
from sim_bridge.sensors.frame import ActorArrays

_BOX_FIELDS = tuple(f.name for f in dataclasses.fields(ActorArrays))
_ROUTE_FIELDS = tuple(f.name for f in dataclasses.fields(Route))


class ReplayError(ValueError):
    """A replay file that cannot be read (names the file and what is wrong)."""


@dataclass
class Replay:
    """One world's episode. Per step ``t`` (``T`` steps, the reset included as step 0):
    ``boxes[name] [T, N]``, ``light [T, K]``, ``actions [T, 2]`` (zeros at reset),
    ``events[name] [T]`` (NaN/-1 at reset)."""

    map: MapRef
    route: Route
    dt: float
    boxes: dict[str, list[np.ndarray]] = field(default_factory=lambda: {n: [] for n in _BOX_FIELDS})
    light: list[np.ndarray] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)
    events: dict[str, list[float]] = field(default_factory=dict)
    meta: dict[str, object] = field(default_factory=dict)

    @property
    def num_steps(self) -> int:
        return len(self.light)

    def record(
        self,
        actors: ActorArrays,
        light: np.ndarray,
        b: int,
        action: np.ndarray | None,
        events: StepEvents | None,
    ) -> None:
        """Append world ``b`` of one step (``action``/``events`` ``None`` at reset)."""
        for name in _BOX_FIELDS:
            self.boxes[name].append(np.array(getattr(actors, name)[b], copy=True))
        self.light.append(np.array(light[b], copy=True))
        self.actions.append(
            np.zeros(2, np.float32) if action is None else np.asarray(action, np.float32).copy()
        )
        if events is not None:
            for name, value in events.world(b).as_dict().items():
                self.events.setdefault(name, [np.nan] * (self.num_steps - 1)).append(float(value))
        else:
            for values in self.events.values():
                values.append(np.nan)

    def actors(self, t: int) -> ActorArrays:
        """Step ``t``'s boxes as a one-world :class:`ActorArrays` (``[1, N]``)."""
        return ActorArrays(*(self.boxes[name][t][None] for name in _BOX_FIELDS))

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the replay as compressed NPZ (atomically); returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {f"box_{n}": np.stack(v) for n, v in self.boxes.items()}
        arrays["light"] = np.stack(self.light)
        arrays["actions"] = np.stack(self.actions)
        for name, values in self.events.items():
            arrays[f"event_{name}"] = np.asarray(values, dtype=np.float64)
        for name in _ROUTE_FIELDS:
            arrays[f"route_{name}"] = np.asarray(getattr(self.route, name))
        header = {"map": dataclasses.asdict(self.map), "dt": self.dt, "meta": self.meta, "format": 1}
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        os.close(fd)
        try:
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **arrays)  # type: ignore[arg-type]
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Replay:
        """Read a replay written by :meth:`save`; :class:`ReplayError` naming the file otherwise."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except FileNotFoundError as exc:
            raise ReplayError(f"replay {path} does not exist") from exc
        except (
            zipfile.BadZipFile,
            ValueError,
            OSError,
            EOFError,
        ) as exc:  # numpy's text advises allow_pickle
            raise ReplayError(
                f"replay {path} is truncated or not a replay NPZ file ({type(exc).__name__}); give a .npz "
                "that `drive render` or `drive eval` wrote"
            ) from exc
        missing = [
            k for k in ("header", "light", "actions", *(f"box_{n}" for n in _BOX_FIELDS)) if k not in arrays
        ]
        if missing:
            raise ReplayError(f"replay {path} lacks arrays {missing}; was it written by Replay.save?")
        header = json.loads(arrays["header"].tobytes().decode())
        route = Route(**{n: arrays[f"route_{n}"] for n in _ROUTE_FIELDS})
        rep = cls(
            map=MapRef(**header["map"]), route=route, dt=float(header["dt"]), meta=header.get("meta", {})
        )
        rep.boxes = {n: list(arrays[f"box_{n}"]) for n in _BOX_FIELDS}
        rep.light = list(arrays["light"])
        rep.actions = list(arrays["actions"])
        rep.events = {k[len("event_") :]: list(v) for k, v in arrays.items() if k.startswith("event_")}
        return rep
