"""A scenario with ``{kind: outage, n_minus_1: true}`` adds N-1 statistics to its evaluation."""

from __future__ import annotations

import numpy as np

from scenarios.contingency import n_minus_1
from scenarios.evaluate import load_base, run_scenario
from scenarios.spec import parse_spec

SPEC = """
base: {grid: 1-MV-urban--0-sw, start: 2016-01-04, days: 1}
scenarios:
  - name: base
  - name: n1
    modifications: [{kind: outage, n_minus_1: true}]
"""


def test_n_minus_1_scenario_statistics() -> None:
    spec = parse_spec(SPEC)
    plain, n1 = (run_scenario(s, spec.base) for s in spec.expand())
    assert "n1_max_loading_pct" not in plain
    grid, profiles = load_base(spec.base)
    direct = n_minus_1(grid, profiles[["load_p_mw", "load_q_mvar", "sgen_p_mw"]])
    np.testing.assert_allclose(
        n1["n1_max_loading_pct"].sel(branch=direct["branch"]), direct["peak_loading_pct"].max("outage"), rtol=1e-12
    )
    assert int(n1["n1_islanding_outages"]) == direct.sizes["islanding"] > 0  # radial MV feeders: most outages island
    assert float(n1["n1_unsolved_share"]) == 0.0
    np.testing.assert_allclose(n1["max_loading_pct"], plain["max_loading_pct"])  # the base statistics stay
