"""CARLA's traffic lights on our signal cycle: ``WorldSpec.signals`` and ``signal_states`` on CARLA.

The embedded backend computes every light's state from the spec's timing, the map's signal plan
(groups by junction, phases by approach) and seeded group offsets (:mod:`sim_bridge.signals`).
CARLA's own cycle cannot be made to match it: its groups and their order are the server's, and a
light's elapsed time cannot be set. So the bridge runs our cycle with those same functions and
sets CARLA's lights to it through the client's own calls:

- at reset, every CARLA light matched to one of our signals (by OpenDRIVE id) gets the spec's
  times (``set_green_time``, ``set_yellow_time``, ``set_red_time`` = the all-red clearance, the
  time CARLA's light stays red before the next one of its group turns green), so whoever reads
  the lights sees our timing; it is frozen (``freeze``: CARLA's own cycle stops) and set to its
  state at time 0 (``set_state``);
- on every step, before the step's last server tick, the lights whose state differs at the
  step's end are set (``set_state``: a few calls per phase change, none in between).

The episode clock starts at 0 at reset (the reset's own ticks do not count) and advances by
``physics_dt`` per tick of a step, as the embedded simulator's does, so both read the cycle at
the same times, to the bit. States hold during a step (the embedded backend updates them once per
decision step), except that CARLA's last tick of a step already shows the step's end state.

Step by step: after reset and after every step both backends show the same states; on our own
server exactly (a light set between ticks shows in the next tick's world state). A server that
applies a set state one tick late shows it one tick into the next step: the difference stays
within one decision step (and :meth:`TrafficLights.hold` makes sure the first states hold before
the episode starts). Lights of the CARLA world that match none of our signals keep CARLA's cycle
and read as green, as unmatched stop lines always did.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from sim_bridge.api import LightState, WorldSpec
from sim_bridge.carla.connection import CarlaConnectionError
from sim_bridge.maps.road_map import RoadMap, SignalKind
from sim_bridge.signals import build_signal_plan, signal_offsets, signal_states, signal_timing


def _carla_states() -> dict[int, Any]:
    """Our :class:`LightState` → ``carla.TrafficLightState``."""
    import carla

    S = carla.TrafficLightState
    return {int(LightState.GREEN): S.Green, int(LightState.YELLOW): S.Yellow, int(LightState.RED): S.Red}


class TrafficLights:
    """The CARLA traffic lights matched to our signals, set to our cycle (see the module doc)."""

    def __init__(self) -> None:
        self.actors: list[Any] = []  # carla.TrafficLight matched to our signals, [L]
        self._signal = np.zeros(0, np.int64)  # [L] our signal index of each
        self._line_light: np.ndarray | None = None  # [K] stop line → index into actors (L: none)
        self._rm: RoadMap | None = None
        self._offset = np.zeros((1, 0))  # [1, S] cycle offsets [s]
        self._timing = np.zeros((1, 3))  # [1, 3] green, yellow, all-red [s]
        self._frozen = np.zeros((1, 0), np.int8)  # [1, S] state held by the spec, -1 none
        self._shown = np.zeros(0, np.int8)  # [L] the state last set on each light (ours)

    def start(self, world: Any, rm: RoadMap, spec: WorldSpec, seed: int) -> None:
        """Match CARLA's lights to our signals and set them to the cycle of ``spec`` at time 0
        (``seed``: the episode's, whose first draws are the group offsets, as on every backend)."""
        index = {xodr_id: i for i, xodr_id in enumerate(rm.signal_xodr_id)}
        by_signal: dict[int, Any] = {}
        for light in world.get_actors().filter("traffic.traffic_light*"):
            sig = index.get(light.get_opendrive_id())
            if sig is not None and rm.signal_kind[sig] == SignalKind.TRAFFIC_LIGHT:
                by_signal[sig] = light
        for sig, _ in spec.signal_states:
            if sig not in by_signal:
                raise ValueError(
                    f"signal_states names signal {sig}, which is no traffic light of the CARLA world"
                )
        self._rm = rm
        self.actors = list(by_signal.values())
        self._signal = np.array(list(by_signal), dtype=np.int64)
        slot = {sig: i for i, sig in enumerate(by_signal)}
        none = len(self.actors)  # reads as green
        self._line_light = np.array([slot.get(int(sig), none) for sig in rm.stop_signal], dtype=np.int64)
        plan = build_signal_plan(rm)
        self._timing = signal_timing(spec.signals)[None, :]
        self._offset = signal_offsets(plan, spec.signals, np.random.default_rng(seed))[None, :]
        self._frozen = np.full((1, len(rm.signal_kind)), -1, np.int8)
        for sig, state in spec.signal_states:
            self._frozen[0, sig] = int(state)
        world.reset_all_traffic_lights()
        green, yellow, red = (float(v) for v in self._timing[0])
        for light in self.actors:
            if light.get_green_time() != green:
                light.set_green_time(green)
            if light.get_yellow_time() != yellow:
                light.set_yellow_time(yellow)
            if light.get_red_time() != red:
                light.set_red_time(red)
        self._shown = np.full(len(self.actors), -1, np.int8)
        self.show(0.0, freeze=True)

    def states_at(self, time: float) -> np.ndarray:
        """``int8 [S]`` our cycle's :class:`LightState` of every signal at episode ``time`` [s]."""
        assert self._rm is not None
        plan = build_signal_plan(self._rm)
        return signal_states(plan, np.array([time]), self._offset, self._timing, self._frozen)[0]

    def show(self, time: float, freeze: bool = False) -> None:
        """Set the lights whose state at ``time`` [s] differs from the one last set (``freeze``:
        and freeze them; once frozen at reset they stay so)."""
        if not self.actors:
            return
        want = self.states_at(time)[self._signal]
        carla_state = _carla_states()
        for i in np.flatnonzero(want != self._shown):
            light = self.actors[int(i)]
            light.set_state(carla_state[int(want[i])])
            if freeze:
                light.freeze(True)
        self._shown = want

    def hold(self, time: float, tick: Callable[[], int], attempts: int = 3) -> None:
        """After a tick: make sure every light shows its state at ``time`` [s], setting and freezing
        again, and ticking (``tick``), those that do not (a server may apply a change a tick late)."""
        for attempt in range(attempts + 1):
            wrong = np.flatnonzero(self._observed() != self.states_at(time)[self._signal])
            if not len(wrong):
                return
            if attempt == attempts:
                break
            self._shown[wrong] = -1
            self.show(time, freeze=True)
            tick()
        raise CarlaConnectionError(
            f"the CARLA server did not hold the traffic lights of signals {self._signal[wrong].tolist()} "
            f"in the states the scenario's signal cycle sets, after {attempts} ticks"
        )

    def _observed(self) -> np.ndarray:
        """``int8 [L]`` our :class:`LightState` of each light as the last world state shows it
        (-1: off or unknown)."""
        carla_state = np.array([int(light.state) for light in self.actors], dtype=np.int64)
        ours = 2 - carla_state  # CARLA: Red 0, Yellow 1, Green 2 (Off 3, Unknown 4); ours: GREEN 0 … RED 2
        return np.where((ours >= 0) & (ours <= 2), ours, -1).astype(np.int8)

    def line_states(self, num_lines: int) -> np.ndarray:
        """``int8 [1, K]`` state of every stop line as the last world state shows it (stop signs,
        lines without a matched light and lights off read green)."""
        if self._line_light is None or len(self._line_light) != num_lines:
            return np.full((1, num_lines), int(LightState.GREEN), dtype=np.int8)
        ours = np.append(self._observed(), np.int8(-1))[self._line_light]
        return np.where(ours >= 0, ours, int(LightState.GREEN)).astype(np.int8)[None, :]
