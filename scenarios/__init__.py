"""What-if scenarios: specs (YAML + pydantic), modifications of a grid and its profiles, evaluation, sets on Dask.

- ``load_spec(path) -> ScenarioSet``; ``ScenarioSet.expand() -> list[Scenario]`` (explicit, cartesian, Monte Carlo);
- ``apply(scenario, grid, profiles) -> (grid, profiles)``; ``evaluate(grid, profiles) -> xarray.Dataset``;
  ``run_scenario(scenario, base)``;
- ``n_minus_1(grid, profiles)``: N-1 contingency analysis over time (one compiled model, Ybus updates per outage);
- ``scenarios.runner.run_set`` (Dask LocalCluster or any scheduler, resumable), ``scenarios.report`` (comparison);
- ``electrify`` (EV charging and heat pumps added to today's grids), ``synthesize_temperature``.

See ``docs/design/scenarios.md``.
"""

from scenarios.contingency import n_minus_1
from scenarios.electrify import electrify, heat_pump_p_kw, synthesize_temperature
from scenarios.evaluate import evaluate, run_scenario
from scenarios.modify import ModificationError, apply
from scenarios.spec import Scenario, ScenarioSet, SpecError, load_spec

__all__ = [
    "ModificationError",
    "Scenario",
    "ScenarioSet",
    "SpecError",
    "apply",
    "electrify",
    "evaluate",
    "heat_pump_p_kw",
    "load_spec",
    "n_minus_1",
    "run_scenario",
    "synthesize_temperature",
]
