"""CARLA 0.9.16's wire layouts: msgpack shapes of the RPC types and the binary stream records.

Every layout here was confirmed against the real 0.9.16 client (``shared/reference/carla-0.9.16-
wire.md``, ``carla-0.9.16-struct-layouts.txt``); a mistake crashes the client process rather than
raising, so change one only with a test that runs the real client. Coordinates here are CARLA's
(left-handed, x forward, y right, degrees); :mod:`sim_bridge.frames` converts them.

RPC values (msgpack arrays):

=====================  =================================================================
type                   layout
=====================  =================================================================
Location, Vector3D     ``[x, y, z]`` (float)
Rotation               ``[pitch, yaw, roll]`` [deg]
Transform              ``[Location, Rotation]``
BoundingBox            ``[location, extent, rotation]``
ActorAttribute         ``[id, type, value, recommended[], is_modifiable, restrict]``
ActorAttributeValue    ``[id, type, value]``
ActorDefinition        ``[uid, id, tags, [ActorAttribute]]``
ActorDescription       ``[uid, id, [ActorAttributeValue]]``
Actor                  ``[id, parent_id, ActorDescription, BoundingBox, tags (bin), token (bin)]``
EpisodeInfo            ``[episode_id, [token (bin 24)]]``
EpisodeSettings        11 fields, see :class:`EpisodeSettings`
MapInfo                ``[name, [Transform]]``
VehicleControl         ``[throttle, steer, brake, hand_brake, reverse, manual_gear_shift, gear]``
WalkerControl          ``[direction, speed, jump]``
optional<T>            ``[False]`` or ``[True, value]``
Response<T>            ``[[1, value]]``; an error ``[[0, [message]]]``; void ``[[False]]``
=====================  =================================================================
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

#: the only client version this server speaks
CARLA_VERSION = "0.9.16"


class AttributeType(enum.IntEnum):
    """``carla::rpc::ActorAttributeType`` (0.9.16 numbers it from 1)."""

    BOOL = 1
    INT = 2
    FLOAT = 3
    STRING = 4
    RGB_COLOR = 5


class SensorType(enum.IntEnum):
    """Index of a sensor's serializer in the 0.9.16 client's registry (first field of a stream
    header)."""

    COLLISION = 0
    LANE_INVASION = 6  # client side: the server never sends it
    WORLD_STATE = 17


class CommandType(enum.IntEnum):
    """``carla::rpc::Command`` variant indices that ``apply_batch`` accepts here."""

    SPAWN_ACTOR = 0
    DESTROY_ACTOR = 1
    APPLY_VEHICLE_CONTROL = 2
    APPLY_WALKER_CONTROL = 3
    APPLY_TRANSFORM = 6
    SET_AUTOPILOT = 16


#: ``carla::rpc::ActorState::Active``
ACTOR_ACTIVE = 1


class TrafficLightState(enum.IntEnum):
    """``carla::rpc::TrafficLightState``."""

    RED = 0
    YELLOW = 1
    GREEN = 2
    OFF = 3
    UNKNOWN = 4


#: ``TrafficLightData``, the traffic-light member of a world-state record's 54-byte union: sign id
#: (the OpenDRIVE signal id), green, yellow, red and elapsed time [s], pole index, frozen, state
TRAFFIC_LIGHT_DATA = struct.Struct("<32s4fI?B")
assert TRAFFIC_LIGHT_DATA.size == 54
#: offset of the union in a world-state record
UNION_OFFSET = 65

# ------------------------------------------------------------------------------ RPC replies


def ok(value: Any) -> list:
    """``Response<T>`` holding ``value``."""
    return [[1, value]]


def void() -> list:
    """``Response<void>`` without error."""
    return [[False]]


def error(message: str) -> list:
    """An error reply both ``Response<T>`` (variant index 0) and ``Response<void>`` (optional of
    size 2) decode; the client raises ``RuntimeError(message)``."""
    return [[0, [message]]]


def optional(value: Any | None) -> list:
    return [False] if value is None else [True, value]


# ------------------------------------------------------------------------------ geometry


@dataclass(frozen=True)
class Transform:
    """A CARLA transform: location [m] and rotation [deg], CARLA's frame."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0

    def pack(self) -> list:
        return [
            [float(self.x), float(self.y), float(self.z)],
            [float(self.pitch), float(self.yaw), float(self.roll)],
        ]

    @classmethod
    def unpack(cls, value: list) -> Transform:
        (x, y, z), (pitch, yaw, roll) = value
        return cls(float(x), float(y), float(z), float(pitch), float(yaw), float(roll))

    def compose(self, child: Transform) -> Transform:
        """``child`` given relative to this transform, in the world (planar: yaw only)."""
        c, s = np.cos(np.radians(self.yaw)), np.sin(np.radians(self.yaw))
        return Transform(
            self.x + c * child.x - s * child.y,
            self.y + s * child.x + c * child.y,
            self.z + child.z,
            child.pitch,
            self.yaw + child.yaw,
            child.roll,
        )


def bounding_box(extent: tuple[float, float, float]) -> list:
    """A box centred ``extent[2]`` above the actor's origin (CARLA's vehicles stand on it)."""
    ex, ey, ez = (float(v) for v in extent)
    return [[0.0, 0.0, ez], [ex, ey, ez], [0.0, 0.0, 0.0]]


# ------------------------------------------------------------------------------ settings


@dataclass
class EpisodeSettings:
    """``carla::rpc::EpisodeSettings`` (11 fields in this order)."""

    synchronous_mode: bool = False
    no_rendering_mode: bool = False
    fixed_delta_seconds: float | None = None
    substepping: bool = True
    max_substep_delta_time: float = 0.01
    max_substeps: int = 10
    max_culling_distance: float = 0.0
    deterministic_ragdolls: bool = True
    tile_stream_distance: float = 3000.0
    actor_active_distance: float = 2000.0
    spectator_as_ego: bool = True

    def pack(self) -> list:
        return [
            bool(self.synchronous_mode),
            bool(self.no_rendering_mode),
            optional(None if self.fixed_delta_seconds is None else float(self.fixed_delta_seconds)),
            bool(self.substepping),
            float(self.max_substep_delta_time),
            int(self.max_substeps),
            float(self.max_culling_distance),
            bool(self.deterministic_ragdolls),
            float(self.tile_stream_distance),
            float(self.actor_active_distance),
            bool(self.spectator_as_ego),
        ]

    @classmethod
    def unpack(cls, value: list) -> EpisodeSettings:
        fixed = value[2]
        return cls(
            bool(value[0]),
            bool(value[1]),
            float(fixed[1]) if len(fixed) == 2 else None,
            bool(value[3]),
            float(value[4]),
            int(value[5]),
            float(value[6]),
            bool(value[7]),
            float(value[8]),
            float(value[9]),
            bool(value[10]),
        )


#: ``carla::rpc::WeatherParameters`` of ClearNoon (14 floats)
CLEAR_NOON = [15.0, 0.0, 0.0, 0.35, 0.0, 75.0, 0.0, 0.0, 0.2, 0.0, 1.0, 0.03, 0.0331, 0.0]


@dataclass(frozen=True)
class VehicleControl:
    """``carla::rpc::VehicleControl``: throttle, brake in [0, 1], steer in [-1, 1] (> 0 right)."""

    throttle: float = 0.0
    steer: float = 0.0
    brake: float = 0.0
    hand_brake: bool = False
    reverse: bool = False
    manual_gear_shift: bool = False
    gear: int = 0

    @classmethod
    def unpack(cls, value: list) -> VehicleControl:
        return cls(
            float(value[0]), float(value[1]), float(value[2]), bool(value[3]), bool(value[4]), bool(value[5]),
            int(value[6]),
        )  # fmt: skip


# ------------------------------------------------------------------------------ streams


def stream_token(stream_id: int, host: str, port: int) -> bytes:
    """A 24-byte ``token_data``: stream id, port, TCP, IPv4 address (zeros: the client uses the
    host it connected to)."""
    addr = ipaddress.IPv4Address(host).packed if host not in ("", "0.0.0.0") else b"\0" * 4
    return struct.pack("<IHBB16s", stream_id, port, 1, 1, addr)


SENSOR_HEADER = struct.Struct("<QQd6f")  # type, frame, elapsed [s], sensor transform
EPISODE_HEADER = struct.Struct("<Qdf3ii")  # episode id, platform time [s], delta [s], origin, state

#: ``carla::sensor::data::ActorDynamicState`` (119 bytes, packed); the vehicle member of the union
ACTOR_RECORD = np.dtype(
    [
        ("id", "<u4"),
        ("state", "u1"),
        ("transform", "<f4", (6,)),  # x, y, z [m], pitch, yaw, roll [deg]
        ("velocity", "<f4", (3,)),  # [m/s]
        ("angular_velocity", "<f4", (3,)),  # [deg/s]
        ("acceleration", "<f4", (3,)),  # [m/s²]
        ("control", "<f4", (3,)),  # throttle, steer, brake
        ("hand_brake", "u1"),
        ("reverse", "u1"),
        ("manual_gear_shift", "u1"),
        ("gear", "<i4"),
        ("speed_limit", "<f4"),  # [km/h]
        ("light_state", "u1"),
        ("has_light", "u1"),
        ("light_id", "<u4"),
        ("failure", "u1"),
        ("rest", "V24"),
    ]
)
assert ACTOR_RECORD.itemsize == 119


def sensor_header(kind: SensorType, frame: int, elapsed: float, transform: Transform | None = None) -> bytes:
    t = transform or Transform()
    return SENSOR_HEADER.pack(int(kind), frame, elapsed, t.x, t.y, t.z, t.pitch, t.yaw, t.roll)


def world_state(
    frame: int, elapsed: float, delta: float, episode: int, wall: float, records: np.ndarray
) -> bytes:
    """The world-state stream message of one tick: headers, then one record per actor."""
    return (
        sensor_header(SensorType.WORLD_STATE, frame, elapsed)
        + EPISODE_HEADER.pack(episode, wall, delta, 0, 0, 0, 0)
        + records.tobytes()
    )
