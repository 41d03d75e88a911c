"""Value checks that name table, ids and column before any power flow starts."""

from __future__ import annotations

import numpy as np
import pytest

import solvers
import twin
from twin.validate import find_problems


def test_builtin_cases_have_no_problems() -> None:
    for case in ("case300", "1-MV-urban--0-sw", "cigre_lv"):
        assert find_problems(twin.load(case)) == []


def test_problems_name_ids_and_columns() -> None:
    grid = twin.load("case14")
    grid.tables["line"].loc["line/2", ["r_ohm_per_km", "x_ohm_per_km"]] = 0.0
    grid.tables["bus"].loc["3", "vn_kv"] = 0.0
    tid = grid.trafo.index[0]
    grid.tables["trafo"].loc[tid, "vkr_percent"] = 2 * grid.trafo.at[tid, "vk_percent"]
    grid.tables["load"].loc["load/1", "p_mw"] = np.nan
    problems = "\n".join(find_problems(grid))
    assert "line ['line/2']: r_ohm_per_km/x_ohm_per_km are both 0" in problems
    assert "bus ['3']: vn_kv must be > 0 kV" in problems
    assert f"trafo ['{tid}']: vkr_percent exceeds vk_percent" in problems
    assert "load ['load/1']: p_mw is missing (NaN)" in problems
    with pytest.raises(ValueError, match="has invalid values"):
        solvers.run_pf(grid)


def test_out_of_service_elements_are_not_checked() -> None:
    grid = twin.load("case14")
    grid.tables["line"].loc["line/2", ["r_ohm_per_km", "x_ohm_per_km"]] = 0.0
    grid.tables["line"].loc["line/2", "in_service"] = False
    assert find_problems(grid) == []
