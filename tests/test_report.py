"""Suite report tables (``scenarios.report``): the per-family table and several agents side by side."""

from __future__ import annotations

from scenarios.report import agents_table, family_table


def _stats(ds: float, success: float, per_km: float) -> dict:
    return {"episodes": 2, "driving_score": {"mean": ds, "std": 1.0}, "route_completion": {"mean": 90.0},
            "infraction_penalty": {"mean": 0.9}, "success_rate": success, "infractions": {"red_light": 1},
            "infractions_per_km": {"collisions_vehicle": per_km}}  # fmt: skip


def test_agents_table_puts_each_agents_overall_row_first_and_its_families_after() -> None:
    planner = {"overall": _stats(40.0, 0.5, 3.0), "families": {"cut_in": _stats(20.0, 0.0, 6.0),
                                                                 "lead_brake": _stats(60.0, 1.0, 0.0)}}  # fmt: skip
    expert = {"overall": _stats(95.0, 1.0, 0.0), "families": {"cut_in": _stats(95.0, 1.0, 0.0)}}
    lines = agents_table({"planner": planner, "expert": expert}).splitlines()
    cells = [line.split() for line in lines]
    assert cells[0][:4] == ["agent", "family", "n", "DS"]
    assert cells[2][:4] == ["planner", "ALL", "2", "40.0"] and cells[3][:3] == ["cut_in", "2", "20.0"]
    assert cells[4][:3] == ["lead_brake", "2", "60.0"] and set(lines[5]) <= {"-", " "}
    assert cells[6][:4] == ["expert", "ALL", "2", "95.0"] and cells[6][-3:] == ["100%", "0.00", "1"]
    assert len({len(line.rstrip()) for line in lines if set(line) <= {"-", " "}}) == 1  # one rule width
    short = agents_table({"planner": planner, "expert": expert}, families=False).splitlines()
    assert [c.split()[0] for c in short[2::2]] == ["planner", "expert"]
    # the per-suite table keeps its layout: families, a rule, the overall row
    single = family_table(planner).splitlines()
    assert single[2].split()[0] == "cut_in" and single[-1].split()[:3] == ["ALL", "2", "40.0"]
    assert set(single[1]) <= {"-", " "} and set(single[-2]) <= {"-", " "}
