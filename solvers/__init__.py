"""Numerics: compile a Grid to arrays, AC/DC power flow (numba kernels, batched over time).

Public API (contract used by the CLI, benchmarks and later issues):

- ``compile_grid(grid, slack=None) -> PFModel``: Grid tables → arrays (Ybus CSR, bus types, index maps).
- ``run_pf(grid_or_model, *, tol_mva=1e-8, max_iter=30, init="auto", slack=None) -> xarray.Dataset``
  with ``vm_pu, va_deg, p_mw, q_mvar`` on dim ``bus`` and ``p_from_mw, q_from_mvar, p_to_mw,
  q_to_mvar, pl_mw, ql_mvar, i_from_ka, i_to_ka, i_ka, loading_pct`` on dim ``branch``; scalars
  ``p_loss_mw, q_loss_mvar, iterations, converged`` (attrs: ``solve_time_s``).
- ``run_pf_timeseries(grid_or_model, load_p_mw, load_q_mvar, sgen_p_mw=None, sgen_q_mvar=None,
  storage_p_mw=None, *, method="auto", tol_mva=1e-8, max_iter=30, progress=False) -> xarray.Dataset``:
  same variables with a leading ``time`` dim, ``converged[time]`` and ``iterations[time]``.
- ``run_dc(grid_or_model) -> xarray.Dataset``: DC power flow (va_deg, p_from_mw, loading by MW).
- ``solve_voltages(model, s_bus_mva=None, ...)``: Newton voltages only (compiled bus order), for re-solve loops.
- ``PowerFlowNotConverged``: raised by ``run_pf`` with iterations, worst mismatch (MVA) and bus id.
"""

from solvers.compile import compile_grid
from solvers.model import PFModel
from solvers.powerflow import PowerFlowNotConverged, run_dc, run_pf, run_pf_timeseries, solve_voltages

__all__ = [
    "PFModel",
    "PowerFlowNotConverged",
    "compile_grid",
    "run_dc",
    "run_pf",
    "run_pf_timeseries",
    "solve_voltages",
]
