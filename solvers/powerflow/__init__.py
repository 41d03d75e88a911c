"""AC (Newton-Raphson, numba kernels) and DC power flow, single snapshots and batched time series."""

from solvers.powerflow.api import PowerFlowNotConverged, run_dc, run_pf, run_pf_timeseries, solve_voltages
from solvers.powerflow.newton import NewtonSolver

__all__ = ["NewtonSolver", "PowerFlowNotConverged", "run_dc", "run_pf", "run_pf_timeseries", "solve_voltages"]
