"""The blueprint library this server offers: what ``world.get_blueprint_library()`` lists.

Vehicles carry CARLA's bounding-box extents of the same model (half length, half width, half
height [m]), so that client code sizing things from ``actor.bounding_box`` sees familiar numbers
and our boxes collide where CARLA's would. The vehicles whose doors open on CARLA
(``has_dynamic_doors``) open them here too (``open_door``, see ``ServerWorld.set_door``), as far as
their ``door_width`` attribute says (ours: CARLA has none, its doors are the model's).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sim_bridge.api import ActorKind
from sim_bridge.carla_server.wire import AttributeType as T


@dataclass(frozen=True)
class Attribute:
    id: str
    type: T
    value: str
    recommended: tuple[str, ...] = ()
    modifiable: bool = False

    def pack(self) -> list:
        return [self.id, int(self.type), self.value, list(self.recommended), self.modifiable, False]


@dataclass(frozen=True)
class Blueprint:
    """One actor definition; ``kind`` is what it becomes in the simulator (``None``: no body)."""

    uid: int
    id: str
    tags: str
    kind: ActorKind | None
    extent: tuple[float, float, float] = (0.0, 0.0, 0.0)
    attributes: tuple[Attribute, ...] = field(default_factory=tuple)

    @property
    def semantic_tags(self) -> bytes:
        """CARLA 0.9.16 semantic tags: Car 14, Pedestrian 12, Static 20."""
        if self.kind is None:
            return b""
        return {ActorKind.VEHICLE: b"\x0e", ActorKind.PEDESTRIAN: b"\x0c", ActorKind.STATIC: b"\x14"}[
            self.kind
        ]

    def pack(self) -> list:
        return [self.uid, self.id, self.tags, [a.pack() for a in self.attributes]]

    def defaults(self) -> dict[str, tuple[int, str]]:
        """Attribute id → (type, value) when the client sets nothing."""
        return {a.id: (int(a.type), a.value) for a in self.attributes}


def _role() -> Attribute:
    return Attribute("role_name", T.STRING, "", ("autopilot", "scenario", "ego"), True)


#: id, extent (CARLA's, [m]), doors that open (CARLA's ``has_dynamic_doors``)
_VEHICLES = (
    ("vehicle.lincoln.mkz_2020", (2.45, 1.06, 0.76), True),
    ("vehicle.tesla.model3", (2.40, 1.08, 0.74), False),
    ("vehicle.audi.a2", (1.86, 0.90, 0.77), False),
    ("vehicle.nissan.micra", (1.83, 0.90, 0.77), False),
    ("vehicle.toyota.prius", (2.26, 1.00, 0.76), False),
    ("vehicle.mercedes.coupe_2020", (2.34, 1.00, 0.70), True),
    ("vehicle.carlamotors.carlacola", (2.60, 1.30, 1.25), False),
)
#: how far an opened door sticks out when the client sets no ``door_width`` [m]
DOOR_WIDTH = 1.0
#: CARLA's AI walker controller: spawned attached to a walker (see ``ServerWorld.start_walker_ai``)
WALKER_AI = "controller.ai.walker"
_WALKERS = tuple(f"walker.pedestrian.{i:04d}" for i in range(1, 6))
_STATICS = (
    ("static.prop.streetbarrier", (0.60, 0.20, 0.50)),
    ("static.prop.trafficcone01", (0.20, 0.20, 0.40)),
)


def _library() -> tuple[Blueprint, ...]:
    out: list[Blueprint] = []
    for name, extent, doors in _VEHICLES:
        _, make, model = name.split(".")
        # ours, not CARLA's (whose doors are the model's): how far the door opens into the road
        door_width = (Attribute("door_width", T.FLOAT, f"{DOOR_WIDTH:g}", (), True),) if doors else ()
        attrs: tuple[Attribute, ...] = (
            _role(),
            Attribute("color", T.RGB_COLOR, "17,37,103", ("17,37,103", "255,255,255", "0,0,0"), True),
            Attribute("number_of_wheels", T.INT, "4"),
            Attribute("generation", T.INT, "2"),
            Attribute("base_type", T.STRING, "truck" if "carlacola" in name else "car"),
            Attribute("object_type", T.STRING, ""),
            Attribute("special_type", T.STRING, ""),
            Attribute("has_lights", T.BOOL, "true"),
            Attribute("has_dynamic_doors", T.BOOL, "true" if doors else "false"),
            Attribute("sticky_control", T.BOOL, "true", (), True),
            Attribute("terramechanics", T.BOOL, "false", (), True),
            *door_width,
        )
        out.append(Blueprint(len(out) + 1, name, f"vehicle,{make},{model}", ActorKind.VEHICLE, extent, attrs))
    for name in _WALKERS:
        attrs = (
            _role(),
            Attribute("is_invincible", T.BOOL, "true", (), True),
            Attribute("speed", T.FLOAT, "1.4", ("1.4", "2.5"), True),
            Attribute("generation", T.INT, "2"),
            Attribute("gender", T.STRING, "male"),
            Attribute("age", T.STRING, "adult"),
        )
        out.append(
            Blueprint(
                len(out) + 1, name, "walker,pedestrian", ActorKind.PEDESTRIAN, (0.19, 0.19, 0.94), attrs
            )
        )
    for name, extent in _STATICS:
        out.append(Blueprint(len(out) + 1, name, "static,prop", ActorKind.STATIC, extent, (_role(),)))
    for name, tags in (
        ("sensor.other.collision", "sensor,other,collision"),
        ("sensor.other.lane_invasion", "sensor,other,lane_invasion"),
    ):
        out.append(Blueprint(len(out) + 1, name, tags, None, (0.0, 0.0, 0.0), (_role(),)))
    out.append(Blueprint(len(out) + 1, WALKER_AI, "controller,ai,walker", None, (0.0, 0.0, 0.0), (_role(),)))
    out.append(Blueprint(len(out) + 1, "spectator", "spectator", None))
    return tuple(out)


LIBRARY: tuple[Blueprint, ...] = _library()
#: the map's traffic lights (actors of the world, not spawnable)
TRAFFIC_LIGHT = Blueprint(
    len(LIBRARY) + 1, "traffic.traffic_light", "traffic,traffic_light", None, (0.3, 0.3, 2.0)
)
BY_ID: dict[str, Blueprint] = {bp.id: bp for bp in LIBRARY}
SPECTATOR = BY_ID["spectator"]
