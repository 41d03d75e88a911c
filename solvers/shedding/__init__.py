"""Minimal load-shedding and curtailment plans: linearised grid model, Pyomo + HiGHS, verified by AC power flow.

Public API:

- ``plan_shedding(grid, profiles, *, controllable=None, assets=None, margin=0.0, cost=None, critical=(),
  discrete=False, min_on_steps=1, rebound=0.0, linearisation="auto", max_iter=5, time_limit_s=None,
  progress=False, vm_limits_pu=None) -> ControlPlan``
- ``ControlPlan``: commands, curtailment, totals, diagnostics; ``to_json``/``from_json``, ``to_dataset``, ``summary``.

See ``docs/design/shedding.md``.
"""

from solvers.shedding.plan import ControlPlan
from solvers.shedding.verify import plan_shedding

__all__ = ["ControlPlan", "plan_shedding"]
