"""Suites: lists of scenarios, written as YAML (``drive/conf/suite/<name>.yaml``).

A suite is a name and entries; each entry is either a scenario file or a family with a parameter
grid and seeds::

    name: smoke
    entries:
      - family: lead_vehicle_brake
        town: {town: straight}            # optional: the family's own town otherwise
        params: {lead_gap: [20.0, 30.0]}  # a list is a grid axis; scalars are fixed values
        seeds: [0, 1]
      - file: scenarios/examples/crossing_pedestrian.yaml   # relative to the suite file, else to the
                                                            # folder holding the ``scenarios`` package

Expansion is deterministic: grid points in the order of the parameters, then seeds. Every scenario
is named ``<family>_<grid index>_s<seed>`` on the family's own town and ``<family>_<map>_<grid
index>_s<seed>`` on a town the entry gives (``<map>``: the file's stem, or the town and its seed,
e.g. ``grid7``), followed by ``e<entry index>`` where an earlier entry already used that family on
that map: the same family on two maps, or twice on one, with the same seeds gets distinct names
(``scenarios.metrics.scenario_key`` groups seeds back).
A scenario file given where a suite is expected (``drive eval suite_file=<scenario>.yaml``) is a
suite of that one scenario, named for the file.
Mistakes get a :class:`SuiteError` naming the file, the entry and what is allowed.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scenarios.families import FAMILIES, make_scenario
from scenarios.families.base import FamilyError
from scenarios.schema import ScenarioError, load_scenarios
from scenarios.spec import ScenarioSpec
from sim_bridge.api import MapRef

#: the folder holding the ``scenarios`` package (the repository, or site-packages)
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


class SuiteError(ValueError):
    """A suite file that cannot be expanded."""


@dataclass(frozen=True)
class Suite:
    name: str
    scenarios: tuple[ScenarioSpec, ...]
    source: str = ""


_ENTRY_KEYS = {"family", "town", "params", "seeds", "file"}


def map_tag(ref: MapRef) -> str:
    """A short name of a map for scenario names: the OpenDRIVE file's stem, else the town and its
    seed (``grid7``); letters, digits, ``-`` and ``_`` only."""
    raw = Path(ref.xodr).stem if ref.xodr else f"{ref.town}{ref.seed}"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", raw)


def _entry_ref(entry: dict[str, Any], where: str, base: Path) -> MapRef | None:
    """The map an entry's ``town`` names (``None`` where it gives none)."""
    town = entry.get("town")
    if town is None:
        return None
    if not isinstance(town, dict) or not set(town) <= {"town", "seed", "xodr"}:
        raise SuiteError(
            f"{where}.town: expected {{town: <name>, seed: <int>}} or {{xodr: <path>}}, got {town!r}"
        )
    xodr = town.get("xodr")
    if xodr is not None and not Path(xodr).is_absolute():
        xodr = str(base / xodr)
    return MapRef(town=town.get("town", "grid"), seed=int(town.get("seed", 0)), xodr=xodr)


@dataclass(frozen=True)
class EntryGrid:
    """A family entry of a suite, unexpanded: its family, map (``None``: the family's own), grid
    points (in expansion order) and seeds."""

    family: str
    town: MapRef | None
    points: tuple[dict[str, Any], ...]
    seeds: tuple[int, ...]


def _check_keys(entry: dict[str, Any], where: str) -> None:
    unknown = set(entry) - _ENTRY_KEYS
    if unknown:
        raise SuiteError(
            f"{where}: unknown key(s) {sorted(unknown)}; allowed: {', '.join(sorted(_ENTRY_KEYS))}"
        )


def _file_path(entry: dict[str, Any], where: str, base: Path) -> Path:
    if "family" in entry:
        raise SuiteError(f"{where}: give either 'file' or 'family', not both")
    path = Path(entry["file"])
    if not path.is_absolute():
        path = base / path if (base / path).exists() else PACKAGE_ROOT / path
    return path


def entry_grid(entry: dict[str, Any], where: str, base: Path) -> EntryGrid:
    """The family, map, grid points and seeds of a family entry, checked (``where`` names it in
    errors), without building anything."""
    _check_keys(entry, where)
    family = entry.get("family")
    if family not in FAMILIES:
        raise SuiteError(f"{where}.family: {family!r} is not one of {', '.join(sorted(FAMILIES))}")
    seeds = entry.get("seeds", [0])
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise SuiteError(f"{where}.seeds: expected a list of integers, got {seeds!r}")
    params = entry.get("params") or {}
    if not isinstance(params, dict):
        raise SuiteError(f"{where}.params: expected a mapping of parameter → value or list of values")
    axes = [(k, v if isinstance(v, list) else [v]) for k, v in params.items()]
    points = tuple(
        dict(zip((k for k, _ in axes), values, strict=True))
        for values in itertools.product(*(v for _, v in axes))
    )
    return EntryGrid(str(family), _entry_ref(entry, where, base), points, tuple(seeds))


def expand_entry(entry: dict[str, Any], where: str, base: Path, tag: str | None = None) -> list[ScenarioSpec]:
    """The scenarios of one suite entry (``where`` names it in errors). ``tag`` goes into the
    names after the family (default: the map's :func:`map_tag` where the entry gives a town)."""
    if "file" in entry:
        _check_keys(entry, where)
        path = _file_path(entry, where, base)
        try:
            return load_scenarios(path)
        except (ScenarioError, OSError) as exc:
            raise SuiteError(f"{where}: {exc}") from exc
    grid = entry_grid(entry, where, base)
    family, ref, seeds = grid.family, grid.town, grid.seeds
    if tag is None:
        tag = map_tag(ref) if ref is not None else ""
    prefix = f"{family}_{tag}_" if tag else f"{family}_"
    out = []
    for index, point in enumerate(grid.points):
        for seed in seeds:
            try:
                out.append(
                    make_scenario(family, point, seed=seed, town=ref, scenario=f"{prefix}{index:03d}_s{seed}")
                )
            except FamilyError as exc:
                raise SuiteError(f"{where}: {exc}") from exc
    return out


def suite_from_dict(data: Any, source: str = "<suite>", base: Path | None = None) -> Suite:
    """Expand a suite given as data (``{name, entries}``); ``base`` resolves relative paths."""
    base = base or PACKAGE_ROOT
    if not isinstance(data, dict) or "entries" not in data:
        raise SuiteError(f"{source}: a suite is a mapping with 'name' and 'entries'")
    entries = data["entries"]
    if not isinstance(entries, list) or not entries:
        raise SuiteError(f"{source}: 'entries' must be a non-empty list")
    scenarios: list[ScenarioSpec] = []
    used: set[tuple[Any, str]] = set()  # (family, map tag) of the entries so far
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise SuiteError(f"{source}: entries[{i}] must be a mapping")
        where = f"{source}: entries[{i}]"
        tag = None
        if isinstance(entry.get("family"), str) and "file" not in entry:
            ref = _entry_ref(entry, where, base)
            tag = map_tag(ref) if ref is not None else ""
            key = (entry["family"], tag)
            if key in used:  # the same family on the same map again
                tag = f"{tag}e{i}" if tag else f"e{i}"
            used.add(key)
        scenarios.extend(expand_entry(entry, where, base, tag))
    names = [s.name for s in scenarios]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SuiteError(f"{source}: scenario names must be unique; repeated: {dupes[:5]}")
    return Suite(name=str(data.get("name", "suite")), scenarios=tuple(scenarios), source=source)


@dataclass(frozen=True)
class Footprint:
    """What a suite's episodes use, read without building them: the maps (``MapRef.key()``), the
    seeds, and per family the parameter points (over the family's defaults, as
    ``ScenarioSpec.params`` holds them, as sorted ``(name, value)`` tuples). Collection keeps its
    scenario-family situations off a held-out suite's footprint (``drive.pipelines.situations``)."""

    towns: frozenset[str]
    seeds: frozenset[int]
    points: dict[str, frozenset[tuple[tuple[str, Any], ...]]]

    def holds_point(self, family: str, params: dict[str, Any]) -> bool:
        """Whether ``params`` (over the family's defaults) is one of the suite's points of ``family``."""
        return param_point(family, params) in self.points.get(family, frozenset())

    def __or__(self, other: Footprint) -> Footprint:
        families = set(self.points) | set(other.points)
        return Footprint(
            self.towns | other.towns,
            self.seeds | other.seeds,
            {f: self.points.get(f, frozenset()) | other.points.get(f, frozenset()) for f in families},
        )


def _read_yaml(path: Path) -> Any:
    """The YAML of the suite file at ``path``; :class:`SuiteError` naming it when unreadable."""
    try:
        return yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SuiteError(f"cannot read suite {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise SuiteError(f"{path}: not valid YAML: {exc}") from exc


def param_point(family: str, params: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    """``params`` over ``family``'s defaults as sorted ``(name, value)`` pairs (a hashable key)."""
    return tuple(sorted({**FAMILIES[family].defaults, **params}.items()))


def suite_footprint(path: str | Path) -> Footprint:
    """The :class:`Footprint` of the suite file at ``path`` (family entries are read, not built;
    scenario-file entries are loaded)."""
    path = Path(path)
    data = _read_yaml(path)
    entries = data.get("entries") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise SuiteError(f"{path}: a suite is a mapping with a non-empty list of 'entries'")
    towns: set[str] = set()
    seeds: set[int] = set()
    points: dict[str, set[tuple[tuple[str, Any], ...]]] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: entries[{i}]"
        if not isinstance(entry, dict):
            raise SuiteError(f"{where} must be a mapping")
        if "file" in entry:
            for spec in expand_entry(entry, where, path.parent):
                towns.add(spec.world.map.key())
                seeds.add(spec.seed)
                if spec.family in FAMILIES:
                    points.setdefault(spec.family, set()).add(param_point(spec.family, spec.params))
            continue
        grid = entry_grid(entry, where, path.parent)
        towns.add((grid.town or FAMILIES[grid.family].town).key())
        seeds.update(grid.seeds)
        points.setdefault(grid.family, set()).update(param_point(grid.family, p) for p in grid.points)
    return Footprint(frozenset(towns), frozenset(seeds), {f: frozenset(p) for f, p in points.items()})


def load_suite(path: str | Path) -> Suite:
    """Expand the suite file at ``path`` (see module doc)."""
    path = Path(path)
    data = _read_yaml(path)
    if isinstance(data, dict) and "entries" not in data and "world" in data:
        # one scenario file: a suite of that scenario alone
        return suite_from_dict({"name": path.stem, "entries": [{"file": path.name}]}, str(path), path.parent)
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k != "defaults"}  # Hydra's defaults list, if any
        data.setdefault("name", path.stem)
    return suite_from_dict(data, str(path), path.parent)
