"""N-1 over a day: gridtwin's :func:`scenarios.contingency.n_minus_1` next to lightsim2grid's ContingencyAnalysis.

Both tools get the same case (``case1354pegase``), the same 96 load snapshots (a daily shape times a
fixed per-load factor), the same outages (those gridtwin solves: every in-service line and
transformer that cuts no load or generator off the grid) and the same tolerance (1e-8 pu). lightsim2grid
runs its ``ContingencyAnalysisCPP`` once per step (it has no time axis of its own without grid2op),
started from its own base-case solution of that step, with ``handle_disconnected_grid`` on (outages that
de-energise buses without load or generator are solved, as gridtwin does); gridtwin runs all steps in one call.

Agreement is measured on a sample of steps: the loadings of every outage from lightsim2grid's voltages
(through gridtwin's branch model, so the figure compares solutions, not rating conventions) against
gridtwin's kept loadings. ``python -m benchmarks.contingency`` prints the table.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    from numpy.typing import NDArray
    from pandapower.auxiliary import pandapowerNet

    from solvers.model import PFModel

__all__ = ["build_daily_profiles", "run_contingency_bench"]

TOL_PU = 1e-8
MAX_ITER = 30


def build_daily_profiles(net: pandapowerNet, n_steps: int = 96, *, seed: int = 0) -> xr.Dataset:
    """Load set-points of a day: ``shape(t) × factor(load) × (p_mw, q_mvar)`` of ``net.load``.

    ``shape`` runs from 0.6 at 04:00 to 1.0 at 16:00 (a sine over 24 h, ``n_steps`` equal steps);
    ``factor`` is uniform in [0.95, 1.05] per load (``np.random.default_rng(seed)``), fixed over the day.
    Ids are gridtwin's (``"load/<pandapower index>"``).
    """
    hours = np.arange(n_steps) * 24.0 / n_steps
    shape = 0.8 + 0.2 * np.sin((hours - 10.0) / 24.0 * 2.0 * np.pi)
    factor = np.random.default_rng(seed).uniform(0.95, 1.05, size=len(net.load))
    scale = shape[:, None] * factor[None, :]
    ids = [f"load/{i}" for i in net.load.index]
    coords = {"time": np.arange(n_steps), "load": ids}
    return xr.Dataset(
        {
            "load_p_mw": (("time", "load"), net.load["p_mw"].to_numpy(float) * scale),
            "load_q_mvar": (("time", "load"), net.load["q_mvar"].to_numpy(float) * scale),
        },
        coords=coords,
    )


def _lightsim_branch(outage: str, n_line: int) -> int:
    kind, idx = outage.split("/", 1)
    return int(idx) if kind == "line" else n_line + int(idx)


def _run_lightsim(
    net: pandapowerNet, profiles: xr.Dataset, outages: list[str], sample: NDArray[np.int64]
) -> tuple[float, NDArray[np.complex128], NDArray[np.bool_], NDArray[np.int64]]:
    """Run lightsim2grid's N-1 per step; return its wall time (s), voltages and converged flags of the sample.

    Voltages are (outage, sample step, net.bus row); the last item maps ``net.bus`` rows to LSGrid buses.
    """
    from lightsim2grid.lightsim2grid_cpp import ContingencyAnalysisCPP
    from lightsim2grid.network import init_from_pandapower

    from benchmarks.peers import to_lightsim_net

    ls_net, bus_pos = to_lightsim_net(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grid = init_from_pandapower(ls_net, pp_orig_file="pandapower_v3")
    scaling = ls_net.load["scaling"].to_numpy(float)
    n_line = len(grid.get_lines())
    branches = [_lightsim_branch(o, n_line) for o in outages]
    p, q = profiles["load_p_mw"].to_numpy() * scaling, profiles["load_q_mvar"].to_numpy() * scaling
    v = np.ones(grid.total_bus(), dtype=complex)
    v_out = np.full((len(outages), len(sample), len(net.bus)), np.nan, dtype=complex)
    conv_out = np.zeros((len(outages), len(sample)), dtype=bool)
    t0 = time.perf_counter()
    for t in range(p.shape[0]):
        for i in range(p.shape[1]):
            grid.change_p_load(i, float(p[t, i]))
            grid.change_q_load(i, float(q[t, i]))
        v = grid.ac_pf(v, MAX_ITER, TOL_PU)
        sa = ContingencyAnalysisCPP(grid)
        sa.handle_disconnected_grid = True  # solve outages that de-energise empty buses, as gridtwin does
        sa.add_multiple_n1(branches)
        sa.compute(v, MAX_ITER, TOL_PU)
        sa.compute_flows()
        if t in sample:
            k = int(np.flatnonzero(sample == t)[0])
            row_of = {int(d[0]): r for r, d in enumerate(sa.my_defaults())}
            rows = np.array([row_of[b] for b in branches], dtype=np.int64)
            v_out[:, k] = np.asarray(sa.get_voltages())[rows][:, bus_pos].copy()
            conv_out[:, k] = np.asarray(sa.converged_mask(), dtype=bool)[rows]
    return time.perf_counter() - t0, v_out, conv_out, bus_pos


def _loading_from_voltages(model: PFModel, outage: str, v_grid_bus: NDArray[np.complex128]) -> NDArray[np.float64]:
    """Loadings (%) of ``model``'s branches with ``outage`` out, at voltages given per Grid bus (steps, bus)."""
    from scenarios.contingency_model import branch_groups, outage_model
    from scenarios.contingency_solve import branch_loading_pct, current_matrices

    m_k = outage_model(model, branch_groups(model, [outage])[outage], name=outage)
    v = np.zeros((v_grid_bus.shape[0], model.n_bus), dtype=complex)
    ok = model.grid_bus_idx >= 0
    v[:, model.grid_bus_idx[ok]] = v_grid_bus[:, ok]
    return branch_loading_pct(m_k, v, current_matrices(model))


def run_contingency_bench(case: str = "case1354pegase", n_steps: int = 96, n_sample: int = 4) -> dict[str, object]:
    """Run N-1 over ``n_steps`` snapshots with gridtwin and lightsim2grid in this process; return the figures.

    Returns
    -------
    dict
        ``gridtwin_s``, ``lightsim2grid_s`` (wall times), ``ratio`` (lightsim2grid / gridtwin, > 1 means
        gridtwin is faster), ``n_outages``, ``n_islanding``, ``n_steps``, ``max_abs_dloading_pct`` and
        ``max_abs_dvm_pu`` over the sampled steps where both converged, ``n_compared``, convergence counts,
        and gridtwin's own split (``gridtwin_base_s``, ``gridtwin_contingency_s``).
    """
    import twin
    from benchmarks.cases import build_net
    from scenarios.contingency import n_minus_1
    from solvers import compile_grid

    net = build_net(case)
    grid = twin.from_pandapower(net, name=case)
    profiles = build_daily_profiles(net, n_steps)
    sample = np.unique(np.linspace(0, n_steps - 1, n_sample).round().astype(np.int64))
    n_minus_1(grid, profiles.isel(time=[0]), outages=["line/0"])  # JIT warm-up, not timed
    t0 = time.perf_counter()
    ds = n_minus_1(grid, profiles, tol_mva=TOL_PU * float(net.sn_mva), keep_loading_steps=sample)
    gt_s = time.perf_counter() - t0
    outages = [str(o) for o in ds["outage"].to_numpy()]
    ls_s, v_ls, conv_ls, _ = _run_lightsim(net, profiles, outages, sample)
    model = compile_grid(grid)
    d_load, d_vm, n_cmp = 0.0, 0.0, 0
    gt_conv = ds["converged"].to_numpy()[:, sample]
    for k, o in enumerate(outages):
        both = conv_ls[k] & gt_conv[k]
        if not both.any():
            continue
        ref = _loading_from_voltages(model, o, v_ls[k][both])
        d_load = max(d_load, float(np.nanmax(np.abs(ref - ds["loading_pct"].to_numpy()[k][both]))))
        n_cmp += int(both.sum())
    vm_gt = ds["min_vm_pu"].to_numpy()[:, sample]
    vm_abs = np.abs(v_ls)
    vm_abs[vm_abs < 1e-6] = np.inf  # de-energised buses (0 V in lightsim2grid) are left out, as in gridtwin
    vm_ls = np.where(conv_ls, vm_abs.min(axis=2), np.nan)
    both = conv_ls & gt_conv
    if both.any():
        d_vm = float(np.max(np.abs(vm_gt[both] - vm_ls[both])))
    return {
        "case": case,
        "n_steps": n_steps,
        "n_outages": len(outages),
        "n_islanding": int(ds.sizes["islanding"]),
        "gridtwin_s": gt_s,
        "gridtwin_base_s": float(ds.attrs["base_time_s"]),
        "gridtwin_contingency_s": float(ds.attrs["contingency_time_s"]),
        "lightsim2grid_s": ls_s,
        "ratio": ls_s / gt_s,
        "gridtwin_converged": int(ds["converged"].sum()),
        "lightsim2grid_converged_sample": int(conv_ls.sum()),
        "gridtwin_converged_sample": int(gt_conv.sum()),
        "n_compared": n_cmp,
        "max_abs_dloading_pct": d_load,
        "max_abs_dmin_vm_pu": d_vm,
    }


def main(argv: list[str] | None = None) -> None:
    """Print the comparison table (``python -m benchmarks.contingency [--steps N] [--case NAME]``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="case1354pegase")
    parser.add_argument("--steps", type=int, default=96)
    args = parser.parse_args(argv)
    res = run_contingency_bench(args.case, args.steps)
    width = max(len(k) for k in res)
    for k, v in res.items():
        print(f"{k:<{width}}  {v:.6g}" if isinstance(v, float) else f"{k:<{width}}  {v}")


if __name__ == "__main__":
    main()
