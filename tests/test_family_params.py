"""Every scenario family declares its parameters' types and ranges (``scenarios.families.params``),
and a value outside them is refused before any map is loaded."""

from __future__ import annotations

import pytest
import yaml

from scenarios.families import FAMILIES, make_scenario
from scenarios.families.base import FamilyError
from scenarios.families.params import PARAMS, problems
from scenarios.suites import PACKAGE_ROOT, SuiteError, suite_from_dict


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_declares_each_parameter_and_its_defaults_and_grid_are_allowed(name: str) -> None:
    family = FAMILIES[name]
    assert set(PARAMS[name]) == set(family.defaults)
    assert problems(name, family.defaults) == []
    assert problems(name, {k: v for k, values in family.grid.items() for v in values}) == []


@pytest.mark.parametrize("suite", ["smoke", "nhtsa", "exam"])
def test_the_shipped_suites_use_allowed_values_only(suite: str) -> None:
    data = yaml.safe_load((PACKAGE_ROOT / "drive" / "conf" / "suite" / f"{suite}.yaml").read_text())
    for entry in data["entries"]:
        for key, values in entry.get("params", {}).items():
            for value in values if isinstance(values, list) else [values]:
                assert problems(entry["family"], {key: value}) == [], (suite, entry["family"], key, value)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("fast", r"lead_gap='fast' is not allowed: lead_gap must be a number in \[5, 150\] m"),
        (-500, r"lead_gap=-500 is not allowed: lead_gap must be a number in \[5, 150\] m"),
        (True, r"lead_gap=True is not allowed"),
        (float("nan"), r"lead_gap=nan is not allowed"),
    ],
)
def test_a_bad_value_is_refused_naming_the_parameter_and_its_range(value: object, why: str) -> None:
    with pytest.raises(FamilyError, match=r"family 'lead_vehicle_brake': " + why):
        make_scenario("lead_vehicle_brake", {"lead_gap": value})


def test_integers_and_choices_are_typed() -> None:
    assert problems("parked_obstacle", {"lanes": 1.5}) == [
        "lanes=1.5 is not allowed: lanes must be an integer in [1, 2]"
    ]
    assert problems("parked_obstacle", {"obstacle": "tree"}) == [
        "obstacle='tree' is not allowed: obstacle must be one of parked, accident"
    ]
    assert problems("lead_vehicle_brake", {"speed": 10}) == []  # an int is a number


def test_a_suite_names_the_entry_of_the_bad_value() -> None:
    entries = [{"family": "lead_vehicle_brake", "params": {"lead_gap": [20.0]}},
               {"family": "lead_vehicle_brake", "params": {"lead_gap": [20.0, "fast"]}}]  # fmt: skip
    with pytest.raises(
        SuiteError, match=r"^my.yaml: entries\[1\]: family 'lead_vehicle_brake': lead_gap='fast'"
    ):
        suite_from_dict({"name": "x", "entries": entries}, source="my.yaml")
