"""Scenario actors on CARLA: spawned from an :class:`~sim_bridge.api.ActorSpec`, scripted like the
embedded backend's behaviours through CARLA's own controls and the client's Traffic Manager.

=============  ==================================================================================
behaviour      on CARLA
=============  ==================================================================================
CRUISE         vehicles: Traffic Manager autopilot (``target_speed``, ``route`` as a path,
               ``lateral_offset``, ``ignore_signals`` / ``ignore_actors`` as 100 % ignore rules);
               pedestrians: walk along their yaw; statics stand
STOPPED        hand brake until triggered, then CRUISE
BRAKE          CRUISE, then off the autopilot with ``brake = decel / max_brake`` when triggered
CUT_IN         CRUISE, then off the autopilot into the ``lane_change`` side's lane over
               ``lane_change_time``, steered by the bridge (:mod:`sim_bridge.carla.lane_change`:
               the Traffic Manager's ``force_lane_change`` does nothing above ~11 m/s), then
               back to CRUISE in the new lane
CROSS          pedestrians: stand, then walk along their yaw at ``speed`` when triggered
OPEN_DOOR      parked cars: stand (hand brake); when triggered, ``open_door`` on the ``lane_change``
               side (``VehicleDoor.FL`` for +1, left of the car, ``FR`` for -1); see below
=============  ==================================================================================

Triggers as the embedded backend's: the ego closer than ``trigger_distance`` (centre to centre)
or the episode time past ``trigger_time``, whichever first, checked after every step (the
simulator calls :meth:`ScriptedActor.update` with the ego's centre and the episode time then).

Opening doors. A parked car whose door opens is spawned from a blueprint with
``has_dynamic_doors`` (:data:`DOOR_BLUEPRINTS` first, the narrowest), placed so that its door
side lies where the spec's box has it (CARLA's car is wider than the spec's 1.8 m: the rest goes
towards the kerb, and the lane stays as free as on the embedded backend). Once its door is open
the bridge sees the car's box widened by ``door_width`` on that side, by the rule every backend
shares (:func:`sim_bridge.geometry.open_door`), and the server collides with the door: our
server (``drive serve-carla``) widens the car's body exactly so, the blueprint's ``door_width``
attribute (ours; set here from the spec) saying how far; a CARLA server swings the model's own
door as far as that model opens it, whatever ``door_width`` says.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sim_bridge.api import ActorKind, ActorSpec, BehaviourKind
from sim_bridge.carla.lane_change import LaneChangeDriver
from sim_bridge.embedded.config import VehicleLimits
from sim_bridge.frames import carla_to_map, map_to_carla
from sim_bridge.maps.road_map import RoadMap
from sim_bridge.sensors.frame import ActorArrays

#: blueprints of scenario actors
VEHICLE_BLUEPRINT = "vehicle.audi.a2"
WALKER_BLUEPRINT = "walker.pedestrian.0001"
PROP_BLUEPRINT = "static.prop.streetbarrier"
#: blueprints of parked cars that open a door, tried in turn (CARLA vehicles with dynamic doors,
#: the narrowest first); else any with ``has_dynamic_doors``
DOOR_BLUEPRINTS = ("vehicle.mercedes.coupe_2020", "vehicle.lincoln.mkz_2020")
#: width of a scenario static without one, as the embedded backend's [m]
STATIC_WIDTH = 1.8
#: CARLA brake 1 decelerates about this much (the embedded limit, and our server's) [m/s²]
FULL_BRAKE_DECEL = 8.0


def _velocity(yaw: float, speed: float) -> Any:
    import carla

    return carla.Vector3D(float(speed * math.cos(yaw)), float(-speed * math.sin(yaw)), 0.0)


@dataclass
class ScriptedActor:
    """One scenario actor and its behaviour's state."""

    actor: Any  # carla.Actor
    spec: ActorSpec
    tm: Any  # carla.TrafficManager
    tm_port: int
    road_map: RoadMap | None = None
    """The episode's map (a cut-in's target lane); without one a cut-in is the Traffic Manager's."""
    dt: float = 0.1
    """Time between :meth:`update` calls (one step) [s]."""
    limits: VehicleLimits = field(default_factory=VehicleLimits)
    """How the bridge's own controls map to CARLA's (as the ego's: ``steer`` 1 is ``max_steer``)."""
    triggered: bool = False
    door: tuple[float, int] | None = None
    """Once its door is open: how far it sticks out [m] and its side (+1 left, -1 right)."""
    lane_change: LaneChangeDriver | None = None
    """A cut-in under way, steered by the bridge."""
    _seen: ActorArrays | None = None

    def update(self, ego_x: float, ego_y: float, time: float, seen: ActorArrays | None = None) -> None:
        """Fire the trigger when due (map frame [m], episode time [s]); steer a cut-in under way
        among the actors ``seen`` one step (:attr:`dt`) ago."""
        self._seen = seen
        if self.lane_change is not None:
            self._steer()
        beh = self.spec.behaviour
        if self.triggered or beh.kind == BehaviourKind.CRUISE:
            return
        near = False
        if beh.trigger_distance > 0.0:  # from where the actor is now (it may have moved)
            loc = self.actor.get_location()
            ex, ey, _ = map_to_carla(ego_x, ego_y)
            near = math.hypot(loc.x - ex, loc.y - ey) < beh.trigger_distance
        if near or time >= beh.trigger_time:
            self.triggered = True
            self._fire()

    def _fire(self) -> None:
        import carla

        beh, kind = self.spec.behaviour, ActorKind(self.spec.kind)
        if kind == ActorKind.VEHICLE:
            if beh.kind == BehaviourKind.STOPPED:
                self.actor.apply_control(carla.VehicleControl())
                _to_traffic_manager(self.actor, self.spec, self.tm, self.tm_port)
            elif beh.kind == BehaviourKind.BRAKE:
                self.actor.set_autopilot(False, self.tm_port)
                self.actor.apply_control(carla.VehicleControl(brake=min(1.0, beh.decel / FULL_BRAKE_DECEL)))
            elif beh.kind == BehaviourKind.CUT_IN:
                self._cut_in()
        elif kind == ActorKind.PEDESTRIAN and beh.kind in (BehaviourKind.CROSS, BehaviourKind.STOPPED):
            _walk(self.actor, self.spec)
        elif beh.kind == BehaviourKind.OPEN_DOOR and self.actor.type_id.startswith("vehicle."):
            self.actor.open_door(carla.VehicleDoor.FL if beh.lane_change > 0 else carla.VehicleDoor.FR)
            self.door = (float(beh.door_width), int(beh.lane_change))

    def _cut_in(self) -> None:
        """Start the cut-in: off the autopilot, steered into the neighbour lane by the bridge."""
        beh = self.spec.behaviour
        x, y, yaw, v = self._pose()
        driver = None
        if self.road_map is not None:
            speed = self.spec.target_speed if self.spec.target_speed is not None else v
            ext = self.actor.bounding_box.extent
            driver = LaneChangeDriver.plan(
                self.road_map, x, y, yaw, int(beh.lane_change), float(beh.lane_change_time), float(speed),
                wheelbase=0.6 * 2.0 * float(ext.x), length=2.0 * float(ext.x), width=2.0 * float(ext.y),
            )  # fmt: skip
        if driver is None:  # no map or no lane there: the Traffic Manager's (below ~11 m/s only)
            self.tm.force_lane_change(self.actor, beh.lane_change < 0)  # CARLA: True = to the right
            return
        self.actor.set_autopilot(False, self.tm_port)
        self.lane_change = driver
        self._steer()

    def _pose(self) -> tuple[float, float, float, float]:
        """The actor's box centre ``(x, y)`` [m], yaw [rad] and speed [m/s], in our frame."""
        tf, bb = self.actor.get_transform(), self.actor.bounding_box.location  # bb: x forward, y right
        c, s = math.cos(math.radians(tf.rotation.yaw)), math.sin(math.radians(tf.rotation.yaw))
        cx, cy = tf.location.x + c * bb.x - s * bb.y, tf.location.y + s * bb.x + c * bb.y
        x, y, yaw = carla_to_map(cx, cy, tf.rotation.yaw)
        return float(x), float(y), float(yaw), float(self.actor.get_velocity().length())

    def _steer(self) -> None:
        """One step of the cut-in's control; back to the Traffic Manager once in the new lane."""
        import carla

        driver = self.lane_change
        assert driver is not None
        x, y, yaw, v = self._pose()
        accel, wheel = driver.command(x, y, yaw, v, self.dt, self._seen, self.actor.id, self.dt)
        if driver.done:
            self.lane_change = None
            _to_traffic_manager(self.actor, self.spec, self.tm, self.tm_port)
            return
        lim = self.limits
        self.actor.apply_control(
            carla.VehicleControl(
                throttle=min(max(accel / lim.max_accel, 0.0), 1.0),
                brake=min(max(-accel / lim.max_brake, 0.0), 1.0),
                steer=min(max(-wheel / lim.max_steer, -1.0), 1.0),  # CARLA steers right for > 0
            )
        )


def _to_traffic_manager(actor: Any, spec: ActorSpec, tm: Any, tm_port: int) -> None:
    """Autopilot on ``tm`` with the spec's cruise speed and rules."""
    beh = spec.behaviour
    actor.set_autopilot(True, tm_port)
    if spec.target_speed is not None:
        tm.set_desired_speed(actor, float(spec.target_speed) * 3.6)
    if beh.ignore_signals:
        tm.ignore_lights_percentage(actor, 100.0)
        tm.ignore_signs_percentage(actor, 100.0)
    if beh.ignore_actors:
        tm.ignore_vehicles_percentage(actor, 100.0)
        tm.ignore_walkers_percentage(actor, 100.0)
    if beh.lateral_offset:
        tm.vehicle_lane_offset(actor, -float(beh.lateral_offset))  # CARLA: > 0 to the right
    if beh.kind == BehaviourKind.CUT_IN:
        tm.auto_lane_change(actor, False)


def _walk(actor: Any, spec: ActorSpec) -> None:
    import carla

    speed = spec.target_speed if spec.target_speed is not None else (spec.speed or 1.4)
    actor.apply_control(carla.WalkerControl(direction=_velocity(spec.pose.yaw, 1.0), speed=float(speed)))


def _door_blueprint(library: Any) -> Any:
    """A parked-car blueprint with doors that open (:data:`DOOR_BLUEPRINTS` first)."""

    def has_doors(bp: Any) -> bool:
        return bool(bp.has_attribute("has_dynamic_doors") and bp.get_attribute("has_dynamic_doors").as_bool())

    found = [bp for name in DOOR_BLUEPRINTS for bp in library.filter(name) if bp.id == name]
    found += list(library.filter("vehicle.*"))
    return next((bp for bp in found if has_doors(bp)), library.find(VEHICLE_BLUEPRINT))


def spawn_scenario_actor(
    world: Any,
    library: Any,
    tm: Any,
    tm_port: int,
    spec: ActorSpec,
    transform: Callable[[float, float, float], Any],
    road_map: RoadMap | None = None,
    dt: float = 0.1,
    limits: VehicleLimits | None = None,
) -> ScriptedActor:
    """Spawn ``spec`` (``transform(x, y, yaw)`` places it, map frame) and start its behaviour; a
    cut-in is steered on ``road_map`` (its :meth:`ScriptedActor.update` called every ``dt`` [s])."""
    import carla

    p, kind, beh = spec.pose, ActorKind(spec.kind), spec.behaviour
    static_car = kind == ActorKind.STATIC and (spec.length or 4.4) > 3.0
    door = static_car and beh.kind == BehaviourKind.OPEN_DOOR
    if door:
        bp = _door_blueprint(library)
        if bp.has_attribute("door_width"):  # our server's: how far the door sticks out
            bp.set_attribute("door_width", f"{beh.door_width:g}")
    else:
        name = {ActorKind.VEHICLE: VEHICLE_BLUEPRINT, ActorKind.PEDESTRIAN: WALKER_BLUEPRINT}.get(
            kind, VEHICLE_BLUEPRINT if static_car else PROP_BLUEPRINT
        )
        bp = library.find(name)
    actor = world.spawn_actor(bp, transform(p.x, p.y, p.yaw))
    if door and beh.lane_change:
        # the door side where the spec's box has it; CARLA's box centre is bbox.location off the
        # actor's origin (its y to the right: ours flipped)
        bb = actor.bounding_box
        lateral = (0.5 * (spec.width or STATIC_WIDTH) - bb.extent.y) * beh.lane_change + bb.location.y
        if abs(lateral) > 1e-3:
            c, s = math.cos(p.yaw), math.sin(p.yaw)
            actor.set_transform(transform(p.x - s * lateral, p.y + c * lateral, p.yaw))
    scripted = ScriptedActor(actor, spec, tm, tm_port, road_map, dt, limits or VehicleLimits())
    if kind == ActorKind.VEHICLE and beh.kind != BehaviourKind.STOPPED:
        _to_traffic_manager(actor, spec, tm, tm_port)
        if spec.route:
            path = [carla.Location(*(float(v) for v in map_to_carla(x, y)[:2]), 0.0) for x, y in spec.route]
            tm.set_path(actor, path)
        if spec.speed > 0.0:
            actor.set_target_velocity(_velocity(p.yaw, spec.speed))
    elif kind == ActorKind.VEHICLE or static_car:
        actor.apply_control(carla.VehicleControl(brake=1.0, hand_brake=True))
    elif kind == ActorKind.PEDESTRIAN and beh.kind == BehaviourKind.CRUISE:
        _walk(actor, spec)
    return scripted
