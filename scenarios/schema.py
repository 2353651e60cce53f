"""Scenario files: YAML ⇄ :class:`~scenarios.spec.ScenarioSpec`, validated before anything runs.

The YAML layout mirrors the dataclasses (``ScenarioSpec`` → ``world: WorldSpec`` → ``actors:
[ActorSpec]`` → ``behaviour: Behaviour`` …); keys are field names, enums are written by name
(case-insensitive: ``vehicle``, ``brake``, ``red``), tuples as lists, ``.inf`` where a field allows
it. Field names and types are read from the dataclasses themselves (``dataclasses.fields``,
``typing.get_type_hints``), so a new field is accepted as soon as it exists. What types cannot say
(a speed is not negative, ``lane_change`` is ±1) is in :data:`BOUNDS` and :data:`CHOICES`, checked
against the dataclasses at import.

Two extensions of the plain layout:

- ``map: {xodr: path}``: a relative path is taken from the YAML file's folder (from the working
  directory for :func:`scenario_from_dict` without ``base_dir``); the spec holds it absolute.
- A pose may be lane-relative: ``{lane: [road, section, lane_id], s: 20.0, offset: 0.0}`` puts it
  ``s`` [m] along the lane in its driving direction and ``offset`` [m] left of its centreline,
  facing the lane's heading (``lane`` as ``RoadMap.lane_keys`` numbers it). It is resolved on the
  world's map when the file is read; the spec holds the resulting ``x, y, yaw``.

Every mistake is reported as a :class:`ScenarioError` naming the file, the field path and what is
allowed, e.g. ``x.yaml: world.actors[1].behaviour.kind: 'brak' is not one of cruise, stopped,
brake, cut_in, cross, open_door (line 14)``; all mistakes of a file are collected and reported
together. With ``check_map=True`` the geometry is checked on the map too (:func:`check_on_map`).
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import os
import tempfile
import types
import typing
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from scenarios.spec import CriteriaConfig, ScenarioSpec
from sim_bridge.api import (
    ActorKind,
    ActorSpec,
    Behaviour,
    BehaviourKind,
    MapRef,
    Pose,
    SignalTiming,
    WorldSpec,
)

if typing.TYPE_CHECKING:
    from sim_bridge.maps.road_map import RoadMap

__all__ = [
    "BOUNDS",
    "CHOICES",
    "LANE_TOLERANCE",
    "FieldError",
    "ScenarioError",
    "check_on_map",
    "dump_scenario",
    "dump_scenarios",
    "load_scenario",
    "load_scenarios",
    "scenario_from_dict",
    "scenario_to_dict",
]

#: ego and scenario vehicles must start within this distance of a driving lane [m]
LANE_TOLERANCE = 5.0

BOUNDS: dict[tuple[type, str], str] = {
    (ScenarioSpec, "seed"): ">= 0",
    (MapRef, "seed"): ">= 0",
    (WorldSpec, "ego_speed"): ">= 0",
    (WorldSpec, "route_length"): "> 0",
    (WorldSpec, "vehicles"): ">= 0",
    (WorldSpec, "pedestrians"): ">= 0",
    (WorldSpec, "traffic_radius"): "> 0",
    (ActorSpec, "speed"): ">= 0",
    (ActorSpec, "target_speed"): ">= 0",
    (ActorSpec, "length"): "> 0",
    (ActorSpec, "width"): "> 0",
    (Behaviour, "trigger_distance"): ">= 0",
    (Behaviour, "trigger_time"): ">= 0",
    (Behaviour, "decel"): "> 0",
    (Behaviour, "lane_change_time"): "> 0",
    (Behaviour, "door_width"): ">= 0",
    (SignalTiming, "green"): "> 0",
    (SignalTiming, "yellow"): ">= 0",
    (SignalTiming, "all_red"): ">= 0",
    (CriteriaConfig, "route_timeout"): "> 0",
    (CriteriaConfig, "route_time_per_m"): "> 0",
    (CriteriaConfig, "scenario_timeout"): "> 0",
    (CriteriaConfig, "blocked_time"): "> 0",
    (CriteriaConfig, "blocked_speed"): ">= 0",
    (CriteriaConfig, "max_deviation"): "> 0",
    (CriteriaConfig, "collision_dedup_time"): ">= 0",
    (CriteriaConfig, "collision_dedup_distance"): ">= 0",
    (CriteriaConfig, "completion_distance"): ">= 0",
}
"""Numeric fields whose sign is meaningful (speeds, durations, counts, sizes): ``(class, field)`` →
``">= 0"`` or ``"> 0"``. ``None`` values of optional fields are not checked."""

CHOICES: dict[tuple[type, str], tuple[object, ...]] = {
    (Behaviour, "lane_change"): (-1, 1),
}
"""Fields that take one of a few values: ``(class, field)`` → the allowed values."""

#: which actor kinds each behaviour applies to (see ``BehaviourKind``)
BEHAVIOUR_ACTORS: dict[BehaviourKind, frozenset[ActorKind]] = {
    BehaviourKind.CRUISE: frozenset(ActorKind),
    BehaviourKind.STOPPED: frozenset(ActorKind),
    BehaviourKind.BRAKE: frozenset({ActorKind.VEHICLE}),
    BehaviourKind.CUT_IN: frozenset({ActorKind.VEHICLE}),
    BehaviourKind.CROSS: frozenset({ActorKind.PEDESTRIAN}),
    BehaviourKind.OPEN_DOOR: frozenset({ActorKind.STATIC}),
}

#: the classes a scenario file is made of (the tables above may only name their fields)
SCHEMA_CLASSES: tuple[type, ...] = (
    ScenarioSpec,
    CriteriaConfig,
    WorldSpec,
    MapRef,
    Pose,
    SignalTiming,
    ActorSpec,
    Behaviour,
)


def _check_tables() -> None:
    """Fail at import if a table names a field that does not exist (a renamed field)."""
    for cls, name in [*BOUNDS, *CHOICES]:
        if name not in {f.name for f in dataclasses.fields(cls)}:
            raise RuntimeError(
                f"scenarios.schema names {cls.__name__}.{name}, which is not a field; update the table"
            )
    for bound in BOUNDS.values():
        if bound not in (">= 0", "> 0"):
            raise RuntimeError(f"unknown bound {bound!r} in scenarios.schema.BOUNDS")


_check_tables()


# ---------------------------------------------------------------------------------------- errors


@dataclass(frozen=True)
class FieldError:
    """One mistake: where (``source`` file, dotted ``path``, YAML ``line`` if known) and what."""

    source: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.source}: {self.path}: " if self.path else f"{self.source}: "
        return where + self.message + (f" (line {self.line})" if self.line is not None else "")


class ScenarioError(ValueError):
    """A scenario (or routes) file that cannot be used; ``errors`` lists every mistake found."""

    def __init__(self, errors: Sequence[FieldError] | str) -> None:
        if isinstance(errors, str):
            errors = [FieldError(errors, "", "")]
        self.errors: tuple[FieldError, ...] = tuple(errors)
        lines = [str(e) for e in self.errors]
        if len(lines) == 1:
            text = lines[0]
        else:
            sources = sorted({e.source for e in self.errors})
            text = f"{', '.join(sources)}: {len(lines)} errors:\n  " + "\n  ".join(lines)
        super().__init__(text)


# ------------------------------------------------------------------------------------ YAML reading


class _Mapping(dict):
    """A YAML mapping that remembers the line of each key (1-based) and duplicated keys."""

    line: int | None = None
    key_lines: dict[Any, int]
    duplicates: list[tuple[Any, int]]


class _LineLoader(yaml.SafeLoader):
    """``SafeLoader`` whose mappings are :class:`_Mapping` (lines and duplicate keys kept)."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> Iterator[_Mapping]:
    data = _Mapping()
    data.line, data.key_lines, data.duplicates = node.start_mark.line + 1, {}, []
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                "found an unhashable key",
                key_node.start_mark,
            )
        line = key_node.start_mark.line + 1
        if key in data:
            data.duplicates.append((key, line))
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = line


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read_yaml(path: Path, source: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(
            [FieldError(source, "", f"cannot read the file ({exc.__class__.__name__}: {exc})")]
        ) from exc
    try:
        return yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        what = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ScenarioError(
            [FieldError(where, "", f"YAML syntax error: {what}; fix the YAML at that line")]
        ) from exc
    except yaml.YAMLError as exc:
        raise ScenarioError([FieldError(source, "", f"YAML error: {exc}")]) from exc


# ------------------------------------------------------------------------------------- conversion


class _Invalid:
    """Marks a value that failed validation (its error is already recorded)."""

    def __repr__(self) -> str:
        return "<invalid>"


_INVALID: Any = _Invalid()


@dataclass
class _Context:
    """State of one conversion: where errors go, how paths resolve, the world's map."""

    source: str
    base_dir: Path
    errors: list[FieldError]
    map_ref: MapRef | None = None
    road_map: RoadMap | None = None
    map_failed: bool = False
    prefix: str = ""
    """Field path of the scenario being read (``scenarios[2].`` in a suite, else empty)."""

    def error(self, path: str, message: str, line: int | None) -> Any:
        self.errors.append(FieldError(self.source, path, message, line))
        return _INVALID

    def load_road_map(self) -> RoadMap | None:
        """The world's map (loaded once), ``None`` if there is no valid map reference."""
        if self.road_map is None and not self.map_failed:
            if self.map_ref is None:
                self.map_failed = True
                return None
            from sim_bridge.maps.catalog import load_map
            from sim_bridge.maps.road_map import MapError

            try:
                self.road_map = load_map(self.map_ref)
            except MapError as exc:
                self.map_failed = True
                self.error(f"{self.prefix}world.map", f"the map does not load: {exc}", None)
        return self.road_map


def _type_name(hint: Any) -> str:
    """A readable name for a type hint (``number``, ``list of [number, number]`` …)."""
    if hint is Any:
        return "any value"
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(names) + (" or null" if type(None) in args else "")
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of ({_type_name(args[0])})"
        return "[" + ", ".join(_type_name(a) for a in args) + "]"
    if origin is dict:
        return "a mapping"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + _enum_names(hint)
    if dataclasses.is_dataclass(hint):
        return f"a mapping ({getattr(hint, '__name__', hint)})"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))


def _enum_names(cls: type[enum.Enum]) -> str:
    return ", ".join(m.name.lower() for m in cls)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _convert(
    value: Any, hint: Any, path: str, ctx: _Context, line: int | None, allow_inf: bool = False
) -> Any:
    """``value`` (plain YAML data) as an instance of ``hint``, or ``_INVALID`` with errors recorded."""
    if hint is Any:
        return _plain(value, path, ctx, line)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None:
            if type(None) in args:
                return None
            return ctx.error(path, f"null is not allowed; expected {_type_name(hint)}", line)
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _convert(value, options[0], path, ctx, line, allow_inf)
        for option in options:  # first alternative that takes the value without error
            trial = _Context(ctx.source, ctx.base_dir, [], ctx.map_ref, ctx.road_map, ctx.map_failed)
            out = _convert(value, option, path, trial, line, allow_inf)
            if out is not _INVALID:
                ctx.errors.extend(trial.errors)
                return out
        return ctx.error(path, f"{_show(value)} is not {_type_name(hint)}", line)
    if origin is tuple:
        return _convert_tuple(value, hint, path, ctx, line)
    if origin is dict:
        return _convert_dict(value, hint, path, ctx, line)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _convert_enum(value, hint, path, ctx, line)
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _convert_dataclass(value, hint, path, ctx, line)
    if hint is bool:
        if isinstance(value, bool):
            return value
        return ctx.error(path, f"expected true or false, got {_show(value)}", line)
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        return ctx.error(path, f"expected an integer, got {_show(value)}", line)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return ctx.error(path, f"expected a number, got {_show(value)}", line)
        number = float(value)
        if math.isnan(number) or (math.isinf(number) and not allow_inf):
            return ctx.error(path, f"{value} is not allowed; expected a finite number", line)
        if math.isinf(number) and number < 0:
            return ctx.error(path, f"{value} is not allowed; expected a number or .inf", line)
        return number
    if hint is str:
        if isinstance(value, str):
            return value
        return ctx.error(path, f"expected a string, got {_show(value)}", line)
    raise TypeError(f"scenarios.schema cannot convert type {hint!r} (at {path}); extend _convert")


def _convert_tuple(value: Any, hint: Any, path: str, ctx: _Context, line: int | None) -> Any:
    args = typing.get_args(hint)
    if not isinstance(value, list | tuple):
        return ctx.error(path, f"expected {_type_name(hint)}, got {_show(value)}", line)
    variadic = len(args) == 2 and args[1] is Ellipsis
    if not variadic and len(value) != len(args):
        return ctx.error(
            path, f"expected {len(args)} items {_type_name(hint)}, got {len(value)}: {_show(value)}", line
        )
    items = []
    for i, item in enumerate(value):
        item_hint = args[0] if variadic else args[i]
        item_line = getattr(item, "line", line)
        items.append(_convert(item, item_hint, f"{path}[{i}]", ctx, item_line))
    if any(v is _INVALID for v in items):
        return _INVALID
    return tuple(items)


def _convert_dict(value: Any, hint: Any, path: str, ctx: _Context, line: int | None) -> Any:
    key_hint, value_hint = typing.get_args(hint)
    if not isinstance(value, Mapping):
        return ctx.error(path, f"expected a mapping, got {_show(value)}", line)
    _report_duplicates(value, path, ctx)
    out = {}
    for key, item in value.items():
        key_line = getattr(value, "key_lines", {}).get(key, line)
        k = _convert(key, key_hint, f"{path}.<key {key!r}>", ctx, key_line)
        v = _convert(item, value_hint, f"{path}.{key}", ctx, key_line)
        out[k] = v
    if any(v is _INVALID for v in out.values()) or _INVALID in out:
        return _INVALID
    return out


def _plain(value: Any, path: str, ctx: _Context, line: int | None) -> Any:
    """Plain data (``params``): scalars, lists and string-keyed mappings of them; finite numbers."""
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return ctx.error(path, f"{value} is not allowed; expected a finite number", line)
        return value
    if isinstance(value, list | tuple):
        items = [_plain(v, f"{path}[{i}]", ctx, line) for i, v in enumerate(value)]
        return _INVALID if any(v is _INVALID for v in items) else items
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                return ctx.error(path, f"keys must be strings, got {_show(k)}", line)
            out[k] = _plain(v, f"{path}.{k}", ctx, line)
        return _INVALID if any(v is _INVALID for v in out.values()) else out
    return ctx.error(
        path, f"expected plain data (number, string, true/false, list, mapping), got {_show(value)}", line
    )


def _convert_enum(value: Any, cls: type[enum.Enum], path: str, ctx: _Context, line: int | None) -> Any:
    if isinstance(value, cls):
        return value
    if isinstance(value, str):
        member = cls.__members__.get(value.strip().upper())
        if member is not None:
            return member
    return ctx.error(path, f"{_show(value)} is not one of {_enum_names(cls)}", line)


def _report_duplicates(value: Mapping[Any, Any], path: str, ctx: _Context) -> None:
    for key, key_line in getattr(value, "duplicates", []):
        ctx.error(
            f"{path}.{key}" if path else str(key),
            "duplicate key (the later value would win); remove one",
            key_line,
        )


def _unknown_keys(value: Mapping[Any, Any], known: list[str], path: str, ctx: _Context, what: str) -> None:
    for key in value:
        if key in known:
            continue
        key_line = getattr(value, "key_lines", {}).get(key)
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"did you mean {close[0]!r}? " if close else ""
        ctx.error(
            f"{path}.{key}" if path else str(key),
            f"unknown key in {what}; {hint}known keys: {', '.join(known)}",
            key_line,
        )


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


@dataclass(frozen=True)
class _FieldInfo:
    field: dataclasses.Field[Any]
    hint: Any
    allow_inf: bool


_FIELD_CACHE: dict[type, list[_FieldInfo]] = {}


def _fields(cls: type) -> list[_FieldInfo]:
    """The fields of dataclass ``cls`` with resolved type hints; ``inf`` is allowed where it is the default."""
    cached = _FIELD_CACHE.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls)
        cached = [
            _FieldInfo(f, hints[f.name], isinstance(f.default, float) and math.isinf(f.default))
            for f in dataclasses.fields(cls)
            if f.init
        ]
        _FIELD_CACHE[cls] = cached
    return cached


def _check_value(cls: type, name: str, value: Any, path: str, ctx: _Context, line: int | None) -> Any:
    """Apply :data:`BOUNDS` and :data:`CHOICES` to one converted field value."""
    bound = BOUNDS.get((cls, name))
    if bound is not None and isinstance(value, int | float) and not isinstance(value, bool):
        ok = value >= 0 if bound == ">= 0" else value > 0
        if not ok:
            return ctx.error(path, f"{value} is not allowed; must be {bound}", line)
    choices = CHOICES.get((cls, name))
    if choices is not None and value not in choices:
        return ctx.error(path, f"{_show(value)} is not one of {', '.join(map(str, choices))}", line)
    return value


def _convert_dataclass(value: Any, cls: type, path: str, ctx: _Context, line: int | None) -> Any:
    if isinstance(value, cls):
        return value
    if cls is Pose and isinstance(value, Mapping) and "lane" in value:
        return _lane_pose(value, path, ctx, line)
    infos = _fields(cls)
    known = [i.field.name for i in infos]
    if not isinstance(value, Mapping):
        return ctx.error(
            path,
            f"expected a mapping ({cls.__name__}) with keys {', '.join(known)}, got {_show(value)}",
            line,
        )
    line = getattr(value, "line", line)
    _report_duplicates(value, path, ctx)
    _unknown_keys(value, known, path, ctx, cls.__name__)
    kwargs: dict[str, Any] = {}
    bad = False
    for info in infos:
        name = info.field.name
        sub = f"{path}.{name}" if path else name
        if name not in value:
            if _required(info.field):
                ctx.error(sub, f"missing required field ({_type_name(info.hint)})", line)
                bad = True
            elif info.hint is MapRef:
                ctx.map_ref = MapRef()  # the default map serves lane-relative poses
            continue
        key_line = getattr(value, "key_lines", {}).get(name, line)
        out = _convert(value[name], info.hint, sub, ctx, key_line, info.allow_inf)
        if out is not _INVALID:
            out = _check_value(cls, name, out, sub, ctx, key_line)
        if out is _INVALID:
            bad = True
            continue
        kwargs[name] = out
        if isinstance(out, MapRef):
            ctx.map_ref = out  # world.map comes first: lane-relative poses after it use it
    if bad:
        return _INVALID
    obj = cls(**kwargs)
    if cls is MapRef:
        return _resolve_map(obj, path, ctx, value, line)
    return obj


def _resolve_map(ref: MapRef, path: str, ctx: _Context, value: Mapping[Any, Any], line: int | None) -> Any:
    """Make ``ref.xodr`` absolute (from ``ctx.base_dir``) and check it exists, or check the town name."""
    from sim_bridge.maps.towns import TOWNS

    key_lines = getattr(value, "key_lines", {})
    if ref.xodr is not None:
        p = Path(ref.xodr).expanduser()
        full = Path(os.path.normpath(p if p.is_absolute() else ctx.base_dir / p))
        if not full.is_file():
            ctx.map_ref = None
            return ctx.error(
                f"{path}.xodr",
                f"OpenDRIVE file {ref.xodr!r} not found (looked for {str(full)!r}; relative paths are taken "
                f"from {str(ctx.base_dir)!r}); give an existing .xodr file or a town: {', '.join(TOWNS)}",
                key_lines.get("xodr", line),
            )
        ref = dataclasses.replace(ref, xodr=str(full))
    elif ref.town not in TOWNS:
        ctx.map_ref = None
        close = difflib.get_close_matches(ref.town, list(TOWNS), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return ctx.error(
            f"{path}.town",
            f"{ref.town!r} is not one of {', '.join(TOWNS)}{hint}; or give an OpenDRIVE file as xodr: PATH",
            key_lines.get("town", line),
        )
    ctx.map_ref = ref
    return ref


_LANE_POSE_KEYS = ["lane", "s", "offset"]


def _lane_pose(value: Mapping[Any, Any], path: str, ctx: _Context, line: int | None) -> Any:
    """A lane-relative pose ``{lane: [road, section, lane_id], s, offset}`` resolved on the world's map."""
    line = getattr(value, "line", line)
    key_lines = getattr(value, "key_lines", {})
    n_errors = len(ctx.errors)
    _report_duplicates(value, path, ctx)
    _unknown_keys(value, _LANE_POSE_KEYS, path, ctx, "a lane-relative pose (or give x, y, yaw)")
    key = _convert(value["lane"], tuple[int, int, int], f"{path}.lane", ctx, key_lines.get("lane", line))
    if "s" not in value:
        ctx.error(f"{path}.s", "missing required field (a number, metres along the lane)", line)
        s = _INVALID
    else:
        s = _convert(value["s"], float, f"{path}.s", ctx, key_lines.get("s", line))
        if s is not _INVALID and s < 0:
            s = ctx.error(f"{path}.s", f"{s} is not allowed; must be >= 0", key_lines.get("s", line))
    offset = _convert(value.get("offset", 0.0), float, f"{path}.offset", ctx, key_lines.get("offset", line))
    if len(ctx.errors) > n_errors:
        return _INVALID
    road_map = ctx.load_road_map()
    if road_map is None:
        return ctx.error(path, "a lane-relative pose needs a valid world.map (see the map's error)", line)
    try:
        lane = road_map.lane_keys.index(key)
    except ValueError:
        same_road = [k for k in road_map.lane_keys if k[0] == key[0]]
        listed = same_road or road_map.lane_keys[:12]
        what = f"lanes of road {key[0]}" if same_road else "some lanes of the map"
        return ctx.error(
            f"{path}.lane",
            f"{list(key)} is not a lane of map {road_map.name!r}; {what}: "
            + ", ".join(str(list(k)) for k in listed),
            key_lines.get("lane", line),
        )
    length = float(road_map.lane_length[lane])
    if s > length + 1e-6:
        return ctx.error(
            f"{path}.s",
            f"{s} is past the end of lane {list(key)} ({length:.1f} m long); use 0 <= s <= {length:.1f}",
            key_lines.get("s", line),
        )
    xy, yaw = road_map.pose_at(np.array([lane]), np.array([s]), np.array([offset]))
    return Pose(float(xy[0, 0]), float(xy[0, 1]), float(yaw[0]))


def _post_checks(spec: ScenarioSpec, path: str, ctx: _Context, data: Mapping[Any, Any]) -> None:
    """Checks across fields (and inside tuples) that types and :data:`BOUNDS` cannot express."""
    prefix = f"{path}." if path else ""
    line = getattr(data, "key_lines", {}).get("trigger_area", getattr(data, "line", None))
    if spec.trigger_area is not None and spec.trigger_area[2] <= 0:
        ctx.error(
            f"{prefix}trigger_area[2]", f"radius {spec.trigger_area[2]} is not allowed; must be > 0", line
        )
    if not spec.name.strip():
        ctx.error(f"{prefix}name", "must not be empty", getattr(data, "line", None))
    world = spec.world
    seen: set[int] = set()
    for k, (sig, _state) in enumerate(world.signal_states):
        if sig < 0:
            ctx.error(
                f"{prefix}world.signal_states[{k}][0]",
                f"signal index {sig} is not allowed; must be >= 0",
                None,
            )
        if sig in seen:
            ctx.error(
                f"{prefix}world.signal_states[{k}][0]", f"signal {sig} is frozen twice; keep one entry", None
            )
        seen.add(sig)
    for i, actor in enumerate(world.actors):
        allowed = BEHAVIOUR_ACTORS[BehaviourKind(actor.behaviour.kind)]
        if ActorKind(actor.kind) not in allowed:
            names = ", ".join(sorted(k.name.lower() for k in allowed))
            ctx.error(
                f"{prefix}world.actors[{i}].behaviour.kind",
                f"{actor.behaviour.kind.name.lower()!r} applies to {names}, not to a {actor.kind.name.lower()}; "
                f"behaviours for a {actor.kind.name.lower()}: "
                + ", ".join(b.name.lower() for b, kinds in BEHAVIOUR_ACTORS.items() if actor.kind in kinds),
                None,
            )


def _scenario(data: Any, path: str, ctx: _Context) -> ScenarioSpec | None:
    n_errors = len(ctx.errors)
    ctx.map_ref, ctx.road_map, ctx.map_failed = None, None, False
    ctx.prefix = f"{path}." if path else ""
    spec = _convert(data, ScenarioSpec, path, ctx, getattr(data, "line", None))
    if spec is _INVALID:
        return None
    _post_checks(spec, path, ctx, data)
    return spec if len(ctx.errors) == n_errors else None


# ----------------------------------------------------------------------------------- geometry check


def check_on_map(
    spec: ScenarioSpec, source: str = "<spec>", path: str = "", road_map: RoadMap | None = None
) -> None:
    """Check ``spec``'s geometry on its map; :class:`ScenarioError` naming ``source`` and each field.

    The ego and scenario vehicles must start within :data:`LANE_TOLERANCE` of a driving lane; the
    ego route's waypoints must lie on driving lanes and be reachable in order from the ego start (or
    from the first waypoint when the ego start is random); so must vehicles' routes; the signal
    indices of ``signal_states`` must exist on the map. ``road_map`` defaults to the spec's map.
    """
    errors = _map_errors(spec, source, path, road_map)
    if errors:
        raise ScenarioError(errors)


def _map_errors(spec: ScenarioSpec, source: str, path: str, road_map: RoadMap | None) -> list[FieldError]:
    from sim_bridge.maps.catalog import load_map
    from sim_bridge.maps.road_map import MapError

    prefix = f"{path}." if path else ""
    errors: list[FieldError] = []

    def err(field: str, message: str) -> None:
        errors.append(FieldError(source, prefix + field, message))

    if road_map is None:
        try:
            road_map = load_map(spec.world.map)
        except MapError as exc:
            err("world.map", f"the map does not load: {exc}")
            return errors
    rm, world = road_map, spec.world

    def on_lane(field: str, what: str, pose: Pose) -> bool:
        proj = rm.project(np.array([[pose.x, pose.y]]), np.array([pose.yaw]), max_distance=LANE_TOLERANCE)
        if proj.lane[0] < 0:
            err(
                field,
                f"{what} ({pose.x:.2f}, {pose.y:.2f}) is more than {LANE_TOLERANCE:g} m from every driving lane "
                f"of map {rm.name!r} (bounds {tuple(round(v, 1) for v in rm.bounds)}); move it onto a lane",
            )
            return False
        return True

    def check_route(field: str, start: Pose | None, waypoints: Sequence[tuple[float, float]]) -> None:
        if not waypoints:
            return
        pts = np.asarray(waypoints, dtype=np.float64).reshape(-1, 2)
        proj = rm.project(pts, max_distance=LANE_TOLERANCE)
        off = np.flatnonzero(proj.lane < 0)
        for k in off.tolist():
            err(
                f"{field}[{k}]",
                f"waypoint ({pts[k, 0]:.2f}, {pts[k, 1]:.2f}) is more than {LANE_TOLERANCE:g} m from every "
                f"driving lane of map {rm.name!r}; move it onto a lane",
            )
        if off.size:
            return
        chain = pts if start is None else np.vstack([[start.x, start.y], pts])
        if len(chain) < 2:
            return
        try:
            rm.route(chain, start_yaw=None if start is None else start.yaw)
        except MapError as exc:
            frm = "the first waypoint" if start is None else "the start"
            err(field, f"no drivable route from {frm} through these waypoints on map {rm.name!r}: {exc}")

    ego_ok = world.ego is None or on_lane("world.ego", "ego start", world.ego)
    if ego_ok:
        check_route("world.route", world.ego, world.route)
    for i, actor in enumerate(world.actors):
        if actor.kind == ActorKind.VEHICLE and on_lane(f"world.actors[{i}].pose", "vehicle", actor.pose):
            check_route(f"world.actors[{i}].route", actor.pose, actor.route)
    n_signals = len(rm.signal_kind)
    for k, (sig, _state) in enumerate(world.signal_states):
        if not 0 <= sig < n_signals:
            allowed = f"0..{n_signals - 1}" if n_signals else "none: the map has no signals"
            err(
                f"world.signal_states[{k}][0]",
                f"signal {sig} does not exist on map {rm.name!r} (signals: {allowed})",
            )
    return errors


# ------------------------------------------------------------------------------------- public API


def scenario_from_dict(
    data: Any,
    source: str = "<dict>",
    *,
    base_dir: str | os.PathLike[str] | None = None,
    check_map: bool = False,
) -> ScenarioSpec:
    """One :class:`ScenarioSpec` from plain data (as read from YAML); :class:`ScenarioError` listing
    every mistake, each named by ``source`` and field path. Relative ``xodr`` paths are taken from
    ``base_dir`` (default: the working directory). ``check_map`` adds :func:`check_on_map`."""
    base = Path(os.path.abspath(base_dir if base_dir is not None else os.getcwd()))
    ctx = _Context(source, base, [])
    spec = _scenario(data, "", ctx)
    if spec is None or ctx.errors:
        raise ScenarioError(ctx.errors)
    if check_map:
        check_on_map(spec, source, "", ctx.road_map)
    return spec


def load_scenarios(path: str | os.PathLike[str], *, check_map: bool = False) -> list[ScenarioSpec]:
    """Every scenario of a YAML file: one scenario, or a list under ``scenarios:``.

    :class:`ScenarioError` lists every mistake of the file (names must be unique within it).
    """
    p = Path(path)
    source = str(path)
    data = _read_yaml(p, source)
    ctx = _Context(source, Path(os.path.abspath(p.parent)), [])
    if isinstance(data, Mapping) and "scenarios" in data:
        extra = [k for k in data if k != "scenarios"]
        if extra:
            _unknown_keys(data, ["scenarios"], "", ctx, "a file of scenarios (only 'scenarios:' is allowed)")
        items = data["scenarios"]
        if not isinstance(items, list) or not items:
            raise ScenarioError(
                [
                    FieldError(
                        source, "scenarios", f"expected a non-empty list of scenarios, got {_show(items)}"
                    )
                ]
            )
        paths = [f"scenarios[{i}]" for i in range(len(items))]
    elif isinstance(data, Mapping):
        items, paths = [data], [""]
    else:
        raise ScenarioError(
            [
                FieldError(
                    source, "", f"expected a scenario (a mapping) or 'scenarios: [...]', got {_show(data)}"
                )
            ]
        )
    specs: list[ScenarioSpec] = []
    maps: list[RoadMap | None] = []
    for item, item_path in zip(items, paths):
        spec = _scenario(item, item_path, ctx)
        if spec is not None:
            specs.append(spec)
            maps.append(ctx.road_map)
    names: dict[str, int] = {}
    for i, spec in enumerate(specs):
        if spec.name in names:
            ctx.error(
                f"{paths[i]}.name" if paths[i] else "name",
                f"{spec.name!r} is already used by scenarios[{names[spec.name]}]; names must be unique",
                None,
            )
        names.setdefault(spec.name, i)
    if ctx.errors:
        raise ScenarioError(sorted(ctx.errors, key=lambda e: (e.line is None, e.line or 0)))  # file order
    if check_map:
        errors = [
            e
            for spec, rm, item_path in zip(specs, maps, paths)
            for e in _map_errors(spec, source, item_path, rm)
        ]
        if errors:
            raise ScenarioError(errors)
    return specs


def load_scenario(path: str | os.PathLike[str], *, check_map: bool = False) -> ScenarioSpec:
    """The one scenario of a YAML file (a file with several: use :func:`load_scenarios`)."""
    specs = load_scenarios(path, check_map=check_map)
    if len(specs) != 1:
        raise ScenarioError(
            [
                FieldError(
                    str(path), "scenarios", f"holds {len(specs)} scenarios; load it with load_scenarios()"
                )
            ]
        )
    return specs[0]


def _to_plain(value: Any, include_defaults: bool) -> Any:
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if not include_defaults and not _required(f):
                factory = typing.cast("Callable[[], Any]", f.default_factory)
                default = f.default if f.default is not dataclasses.MISSING else factory()
                if v == default:
                    continue
            out[f.name] = _to_plain(v, include_defaults)
        return out
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v, include_defaults) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_plain(v, include_defaults) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to a scenario file")


def scenario_to_dict(spec: ScenarioSpec, include_defaults: bool = True) -> dict[str, Any]:
    """``spec`` as plain data in the file layout (enums by lower-case name, tuples as lists).

    ``include_defaults=False`` leaves out fields equal to their default (shorter files that follow
    later changes of the defaults)."""
    return _to_plain(spec, include_defaults)


def _relative_xodr(data: dict[str, Any], folder: Path) -> None:
    """Write an ``xodr`` inside ``folder``'s tree relative to it (files stay portable together)."""
    world_map = data.get("world", {}).get("map", {})
    xodr = world_map.get("xodr")
    if xodr and os.path.isabs(xodr):
        full = Path(os.path.normpath(xodr))
        if full.is_relative_to(folder):
            world_map["xodr"] = os.path.relpath(full, folder)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def dump_scenarios(
    specs: Iterable[ScenarioSpec], path: str | os.PathLike[str], include_defaults: bool = True
) -> Path:
    """Write scenarios to a YAML file (a single one plainly, several under ``scenarios:``),
    atomically; ``load_scenarios(path)`` gives them back equal. Returns the path."""
    target = Path(path)
    folder = Path(os.path.abspath(target.parent))
    items = []
    for spec in specs:
        data = scenario_to_dict(spec, include_defaults)
        _relative_xodr(data, folder)
        items.append(data)
    doc: Any = items[0] if len(items) == 1 else {"scenarios": items}
    _write_atomic(target, yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, allow_unicode=True))
    return target


def dump_scenario(spec: ScenarioSpec, path: str | os.PathLike[str], include_defaults: bool = True) -> Path:
    """Write one scenario to a YAML file; ``load_scenario(path) == spec``. Returns the path."""
    return dump_scenarios([spec], path, include_defaults)
