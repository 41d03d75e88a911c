"""Public power-flow entry points: check inputs, call the Newton drivers, turn status into results or errors."""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Literal

import numpy as np
import xarray as xr
from numpy.typing import NDArray

from solvers.compile import compile_grid
from solvers.model import REF, ElementInjection, PFModel
from solvers.powerflow.linear import LinearSolverName
from solvers.powerflow.newton import NewtonResult, NewtonSolver, VoltageDependence, dc_angles, propagated_magnitudes
from solvers.powerflow.results import (
    ElementValues,
    add_element_powers,
    allocate_results,
    build_results,
    fill_results,
    to_dataset,
)

if TYPE_CHECKING:
    from twin.grid import Grid

__all__ = ["PowerFlowNotConverged", "run_dc", "run_pf", "run_pf_timeseries", "solve_voltages"]

TimeseriesMethod = Literal["auto", "chord", "nr"]


class PowerFlowNotConverged(RuntimeError):
    """Newton-Raphson did not reach the tolerance.

    Attributes
    ----------
    iterations : int
    mismatch_mva : float
        Largest remaining bus power mismatch, MVA.
    bus_id : str
        Grid bus id where the largest mismatch sits.
    """

    def __init__(self, iterations: int, mismatch_mva: float, bus_id: str, grid: str = "") -> None:
        self.iterations = iterations
        self.mismatch_mva = mismatch_mva
        self.bus_id = bus_id
        super().__init__(
            f"power flow of {grid!r} did not converge after {iterations} iterations: largest mismatch "
            f"{mismatch_mva:.4g} MVA at bus {bus_id!r}. The operating point may not exist (load too high for "
            "the grid, check p_mw/q_mvar and scaling) or a parameter is wrong (check impedances near that bus)."
        )


def _as_model(grid_or_model: Grid | PFModel, slack: str | None = None) -> PFModel:
    if isinstance(grid_or_model, PFModel):
        if slack is not None:
            raise ValueError("slack= applies when compiling a Grid; compile_grid(grid, slack=...) instead")
        return grid_or_model
    return compile_grid(grid_or_model, slack=slack)


def _initial_voltage(model: PFModel, s_bus_pu: NDArray[np.complex128], init: str) -> NDArray[np.complex128]:
    """Start voltages: set-point magnitudes; angles from a DC solve (``dc``) or the island's slack (``flat``)."""
    vm = np.abs(model.v_set)
    has_shift = bool(np.any(model.shift_rad[model.branch_active] != 0))
    if init == "dc" or (init == "auto" and has_shift):
        theta = dc_angles(model, s_bus_pu)
    else:
        ref_angle = np.zeros(model.island.max() + 1 if model.n_bus else 0)
        ref = model.bus_type == REF
        ref_angle[model.island[ref]] = np.angle(model.v_set[ref])
        theta = ref_angle[model.island]
    theta = np.where(model.bus_type == REF, np.angle(model.v_set), theta)
    return vm * np.exp(1j * theta)


def _solve_from_start(
    model: PFModel, solver: NewtonSolver, s_bus: NDArray[np.complex128], tol_pu: float, max_iter: int, init: str
) -> NewtonResult:
    """Newton from :func:`_initial_voltage`; with ``init="auto"``, once more from propagated magnitudes on failure.

    The retry starts PQ buses from the set-points spread over the network
    (:func:`solvers.powerflow.newton.propagated_magnitudes`), which rescues grids with set-points
    that differ across very short lines; a grid that converges the first time is not affected.
    """
    vdep = _vdep_pu(model)
    v0 = _initial_voltage(model, s_bus, init)
    res = solver.solve(v0, s_bus, tol_pu, max_iter, vdep)
    if res.converged or init != "auto":
        return res
    vm = propagated_magnitudes(model)
    if vm is None:
        return res
    retry = solver.solve(
        vm * np.exp(1j * np.angle(_initial_voltage(model, s_bus, "dc"))), s_bus, tol_pu, max_iter, vdep
    )
    if retry.converged:
        retry.iterations += res.iterations
        return retry
    return res


def _solver_for(model: PFModel, linear_solver: LinearSolverName) -> NewtonSolver:
    """The model's Newton solver (Jacobian pattern, KLU symbolic analysis and pivots), built on first use."""
    key = f"newton_solver:{linear_solver}"
    solver = model.cache.get(key)
    if solver is None:
        solver = NewtonSolver(model, linear_solver)
        model.cache[key] = solver
    return solver


def _stored_values(model: PFModel) -> ElementValues:
    out = {}
    for fam in ("load", "sgen", "storage", "gen"):
        e: ElementInjection = getattr(model, fam)
        out[fam] = (e.p_mw[None, :], (np.zeros_like(e.p_mw) if fam == "gen" else e.q_mvar)[None, :])
    return out


def _raise_not_converged(model: PFModel, solver: NewtonSolver, res: object, step: str = "") -> None:
    bus = solver.bus_of_equation(res.worst_eq)
    gb = np.flatnonzero(model.grid_bus_idx == bus)
    bus_id = str(model.grid_bus_ids[gb[0]]) if len(gb) else f"auxiliary bus {bus}"
    raise PowerFlowNotConverged(res.iterations, res.worst_pu * model.base_mva, bus_id, model.name + step)


def run_pf(
    grid_or_model: Grid | PFModel,
    *,
    tol_mva: float = 1e-8,
    max_iter: int = 30,
    init: Literal["auto", "flat", "dc"] = "auto",
    slack: str | None = None,
    linear_solver: LinearSolverName = "auto",
) -> xr.Dataset:
    """Run an AC power flow (Newton-Raphson, polar form).

    Parameters
    ----------
    grid_or_model : Grid or PFModel
        A Grid (compiled here) or a model from :func:`solvers.compile_grid` (reused, no compile).
    tol_mva : float
        Tolerance on the largest bus power mismatch, MVA (pandapower's ``tolerance_mva``).
    max_iter : int
        Maximum Newton iterations.
    init : {"auto", "flat", "dc"}
        Start angles; ``"auto"`` uses a DC solve when phase-shifting transformers are present and,
        when Newton fails from there, tries once more from DC angles and magnitudes spread from the
        voltage set-points (the iterations of both attempts are counted).
    slack : str, optional
        Bus, gen or ext_grid id overriding the reference bus (Grid input only).
    linear_solver : {"auto", "klu", "superlu"}
        Sparse LU back-end.

    Returns
    -------
    xarray.Dataset
        ``vm_pu``, ``va_deg``, ``p_mw``, ``q_mvar`` on ``bus``; ``p_from_mw``, ``q_from_mvar``, ``p_to_mw``,
        ``q_to_mvar``, ``pl_mw``, ``ql_mvar``, ``i_from_ka``, ``i_to_ka``, ``i_ka``, ``loading_pct`` on
        ``branch``; ``p_loss_mw``, ``q_loss_mvar``, ``iterations``, ``converged``. De-energised buses
        have NaN voltages. Attributes ``compile_time_s`` and ``solve_time_s``.

    Raises
    ------
    PowerFlowNotConverged
        With the iterations, the largest mismatch (MVA) and the bus id where it sits.
    """
    t0 = time.perf_counter()
    model = _as_model(grid_or_model, slack)
    t1 = time.perf_counter()
    solver = _solver_for(model, linear_solver)
    s_bus = model.s_bus_mva() / model.base_mva
    res = _solve_from_start(model, solver, s_bus, tol_mva / model.base_mva, max_iter, init)
    if not res.converged:
        _raise_not_converged(model, solver, res)
    t2 = time.perf_counter()
    ds = build_results(model, res.v[None, :], _stored_values(model), np.array([True]), np.array([res.iterations]))
    ds.attrs.update(
        {
            "compile_time_s": (t1 - t0) if not isinstance(grid_or_model, PFModel) else 0.0,
            "solve_time_s": t2 - t1,
            "linear_solver": getattr(solver.lu, "name", "?"),
        }
    )
    return ds


def _vdep_pu(model: PFModel) -> VoltageDependence | None:
    """Voltage-dependent load shares of the stored loads per compiled bus (pu), None without ZIP loads."""
    if not model.load.has_vdep:
        return None
    s_i, s_z = model.s_vdep_mva()
    return s_i / model.base_mva, s_z / model.base_mva


def solve_voltages(
    model: PFModel,
    s_bus_mva: NDArray[np.complex128] | None = None,
    *,
    tol_mva: float = 1e-8,
    max_iter: int = 30,
    init: Literal["auto", "flat", "dc"] = "auto",
    linear_solver: LinearSolverName = "auto",
) -> NDArray[np.complex128]:
    """Solve for the bus voltages only (no result tables): the inner call of loops that re-solve a model.

    Parameters
    ----------
    model : PFModel
    s_bus_mva : ndarray of complex (n_bus,), optional
        Scheduled injections per compiled bus at 1 pu voltage, generator convention, MVA; the model's
        own by default. Voltage-dependent (ZIP) loads scale with the voltage by the shares of the
        model's stored loads (:meth:`solvers.model.PFModel.s_vdep_mva`), whatever ``s_bus_mva`` holds.
    tol_mva, max_iter, init, linear_solver
        As :func:`run_pf`.

    Returns
    -------
    ndarray of complex (n_bus,)
        Voltages in pu, in the model's compiled bus order (``model.grid_bus_idx`` maps Grid buses to it).
    """
    solver = _solver_for(model, linear_solver)
    s_bus = (model.s_bus_mva() if s_bus_mva is None else s_bus_mva) / model.base_mva
    res = _solve_from_start(model, solver, s_bus, tol_mva / model.base_mva, max_iter, init)
    if not res.converged:
        _raise_not_converged(model, solver, res)
    return res.v


def _element_matrix(
    e: ElementInjection, da: xr.DataArray | None, name: str, n_t: int, default: NDArray[np.float64]
) -> NDArray[np.float64]:
    """(T, n_element) values of one family: from ``da`` where given (by id), stored values otherwise."""
    if da is None:
        return np.broadcast_to(default, (n_t, len(e.ids)))
    dim = next((d for d in da.dims if d != "time"), None)
    if dim is None or "time" not in da.dims:
        raise ValueError(f"{name} must have dims ('time', <element>), got {da.dims}")
    ids = np.asarray(da[dim].values).astype(str)
    pos = {i: k for k, i in enumerate(e.ids)}
    unknown = [i for i in ids if i not in pos]
    if unknown:
        raise ValueError(
            f"{name}: ids {unknown[:5]} are not elements of the grid (expected ids like {e.ids[:2].tolist()})"
        )
    out = np.tile(default, (n_t, 1))
    vals = da.transpose("time", dim).to_numpy().astype(float)
    if not np.isfinite(vals).all():
        t_bad, c_bad = np.argwhere(~np.isfinite(vals))[0]
        raise ValueError(
            f"{name} has a non-finite value at time index {t_bad}, element {ids[c_bad]!r}; "
            "fill gaps before running the power flow"
        )
    out[:, [pos[i] for i in ids]] = vals
    return out


def run_pf_timeseries(
    grid_or_model: Grid | PFModel,
    load_p_mw: xr.DataArray | None = None,
    load_q_mvar: xr.DataArray | None = None,
    sgen_p_mw: xr.DataArray | None = None,
    sgen_q_mvar: xr.DataArray | None = None,
    storage_p_mw: xr.DataArray | None = None,
    *,
    method: TimeseriesMethod = "auto",
    tol_mva: float = 1e-8,
    max_iter: int = 30,
    chunk_size: int = 1024,
    progress: bool = False,
    linear_solver: LinearSolverName = "auto",
) -> xr.Dataset:
    """Run AC power flows for many time steps with one compiled model.

    Parameters
    ----------
    grid_or_model : Grid or PFModel
    load_p_mw, load_q_mvar : DataArray (time, load), optional
        Load set-points, MW / Mvar, element coordinate = load ids; loads not given keep their Grid value.
    sgen_p_mw, sgen_q_mvar : DataArray (time, sgen), optional
    storage_p_mw : DataArray (time, storage), optional
    method : {"auto", "chord", "nr"}
        ``"nr"``: full Newton per step, warm-started from the previous step. ``"chord"``: all steps of a
        chunk iterate together with one factorised Jacobian (multi right-hand-side solves); steps that
        converge slowly fall back to full Newton. ``"auto"`` = ``"chord"``.
    tol_mva, max_iter : float, int
        As :func:`run_pf`.
    chunk_size : int
        Steps solved together; memory grows with chunk_size × buses, not with the series length.
    progress : bool
        Show a progress bar.

    Returns
    -------
    xarray.Dataset
        As :func:`run_pf` with a leading ``time`` dim; ``converged`` and ``iterations`` per step.
        Steps that do not converge are NaN and flagged, the others are still solved.
    """
    model = _as_model(grid_or_model)
    given = [d for d in (load_p_mw, load_q_mvar, sgen_p_mw, sgen_q_mvar, storage_p_mw) if d is not None]
    if not given:
        raise ValueError("run_pf_timeseries needs at least one time series input (e.g. load_p_mw)")
    time_coord = given[0]["time"].to_numpy()
    for d in given:
        if d.sizes["time"] != len(time_coord):
            raise ValueError(
                f"inputs disagree on the number of time steps: {d.name} has {d.sizes['time']}, "
                f"expected {len(time_coord)}"
            )
    n_t = len(time_coord)
    vals: ElementValues = {
        "load": (
            _element_matrix(model.load, load_p_mw, "load_p_mw", n_t, model.load.p_mw),
            _element_matrix(model.load, load_q_mvar, "load_q_mvar", n_t, model.load.q_mvar),
        ),
        "sgen": (
            _element_matrix(model.sgen, sgen_p_mw, "sgen_p_mw", n_t, model.sgen.p_mw),
            _element_matrix(model.sgen, sgen_q_mvar, "sgen_q_mvar", n_t, model.sgen.q_mvar),
        ),
        "storage": (
            _element_matrix(model.storage, storage_p_mw, "storage_p_mw", n_t, model.storage.p_mw),
            np.broadcast_to(model.storage.q_mvar, (n_t, len(model.storage.ids))),
        ),
        "gen": (np.broadcast_to(model.gen.p_mw, (n_t, len(model.gen.ids))), np.zeros((n_t, len(model.gen.ids)))),
    }
    t0 = time.perf_counter()
    solver = _solver_for(model, linear_solver)
    tol = tol_mva / model.base_mva
    out = allocate_results(model, n_t)
    bar = _progress(n_t, progress, model.name)
    v_prev: NDArray[np.complex128] | None = None
    for start in range(0, n_t, chunk_size):
        stop = min(start + chunk_size, n_t)
        s_bus, s_vdep = _s_bus_series(model, vals, start, stop)
        v, conv, iters = _solve_chunk(model, solver, s_bus, s_vdep, tol, max_iter, method, v_prev)
        ok = np.flatnonzero(conv)
        if len(ok):
            v_prev = v[ok[-1]].copy()
        sub = {f: (p[start:stop], q[start:stop]) for f, (p, q) in vals.items()}
        fill_results(model, v, sub, conv, iters, out, slice(start, stop))
        bar(stop - start)
    bar(0, close=True)
    ds = to_dataset(model, out, time=time_coord)
    n_bad = int((~ds["converged"].values).sum())
    if n_bad:
        first = ds["time"].values[~ds["converged"].values][0]
        warnings.warn(
            f"{n_bad} of {n_t} steps did not converge (first at {first}); they are NaN in the result "
            "and flagged in 'converged'",
            stacklevel=2,
        )
    ds.attrs.update(
        {"solve_time_s": time.perf_counter() - t0, "method": method, "linear_solver": getattr(solver.lu, "name", "?")}
    )
    return ds


def _s_bus_series(
    model: PFModel, vals: ElementValues, start: int, stop: int
) -> tuple[NDArray[np.complex128], VoltageDependence]:
    """(T, n_bus) scheduled injections at 1 pu and the voltage-dependent load shares, pu, for steps start..stop.

    The shares are (T, n_bus) with ZIP loads, else (1, 0) (none).
    """
    s = np.zeros((stop - start, model.n_bus), dtype=np.complex128)
    for fam, (p, q) in vals.items():
        e: ElementInjection = getattr(model, fam)
        if e.active.any():
            add_element_powers(e, e.bus_idx, p[start:stop], q[start:stop], s)
    if model.load.has_vdep:
        p, q = vals["load"]
        s_i, s_z = model.load.s_vdep_mva(model.n_bus, p[start:stop], q[start:stop])
    else:  # constant power: the kernels skip the voltage-dependent terms
        s_i = s_z = np.zeros((1, 0), dtype=np.complex128)
    return s / model.base_mva, (s_i / model.base_mva, s_z / model.base_mva)


def _solve_chunk(
    model: PFModel,
    solver: NewtonSolver,
    s_bus: NDArray[np.complex128],
    s_vdep: VoltageDependence,
    tol: float,
    max_iter: int,
    method: str,
    v_prev: NDArray[np.complex128] | None,
):
    n_t = s_bus.shape[0]
    iters = np.zeros(n_t, dtype=np.int64)
    conv = np.zeros(n_t, dtype=bool)

    def vdep(t: int) -> VoltageDependence:
        r = min(t, s_vdep[0].shape[0] - 1)
        return s_vdep[0][r], s_vdep[1][r]

    if v_prev is None:
        first = solver.solve(_initial_voltage(model, s_bus[0], "auto"), s_bus[0], tol, max_iter, vdep(0))
        v_prev = first.v
    if method == "nr":
        v = np.empty_like(s_bus)
        start = v_prev
        for t in range(n_t):
            res = solver.solve(start, s_bus[t], tol, max_iter, vdep(t))
            v[t], conv[t], iters[t] = res.v, res.converged, res.iterations
            if res.converged:
                start = res.v
        return v, conv, iters
    if method not in ("auto", "chord"):
        raise ValueError(f"method must be 'auto', 'chord' or 'nr', got {method!r}")
    # chord: factorise once at the mean operating point of the chunk, iterate all steps together
    mean_vdep = (s_vdep[0].mean(axis=0), s_vdep[1].mean(axis=0))
    mean = solver.solve(v_prev, s_bus.mean(axis=0), tol, max_iter, mean_vdep)
    v_ref = mean.v if mean.converged else v_prev
    solver.factor_at(v_ref, mean_vdep)
    v = np.tile(v_ref, (n_t, 1))
    conv, iters = solver.solve_chord_batch(v, s_bus, tol, max_chord=max_iter, s_vdep=s_vdep)
    for t in np.flatnonzero(~conv):
        res = solver.solve(v_ref, s_bus[t], tol, max_iter, vdep(int(t)))
        v[t], conv[t] = res.v, res.converged
        iters[t] += res.iterations
    return v, conv, iters


def _progress(total: int, enabled: bool, name: str):
    if not enabled:
        return lambda n, close=False: None
    from rich.progress import Progress

    prog = Progress(transient=False)
    task = prog.add_task(f"power flow {name}", total=total)
    prog.start()

    def step(n: int, close: bool = False) -> None:
        prog.advance(task, n)
        if close:
            prog.stop()

    return step


def run_dc(grid_or_model: Grid | PFModel) -> xr.Dataset:
    """Run a DC power flow (lossless, flat magnitudes, angles from B θ = P).

    Returns
    -------
    xarray.Dataset
        ``va_deg`` on ``bus``; ``p_from_mw`` (= -``p_to_mw``) and ``loading_pct`` (MW flow over the
        rating at 1 pu voltage) on ``branch``.
    """
    model = _as_model(grid_or_model)
    s_bus = model.s_bus_mva() / model.base_mva
    theta = dc_angles(model, s_bus)
    act = model.branch_active
    p_f = np.zeros(len(act))
    fi, ti = model.f_idx[act], model.t_idx[act]
    p_f[act] = model.b_dc_pu[act] * (theta[fi] - theta[ti] - model.shift_rad[act]) * model.base_mva
    gbi = model.grid_bus_idx
    va = np.where(gbi >= 0, np.rad2deg(theta[np.maximum(gbi, 0)]), np.nan)
    rating_mw = np.sqrt(3) * np.minimum(model.rate_from_ka * model.vn_from_kv, model.rate_to_ka * model.vn_to_kv)
    with np.errstate(divide="ignore", invalid="ignore"):
        loading = 100 * np.abs(p_f) / rating_mw
    ds = xr.Dataset(
        {
            "va_deg": ("bus", va),
            "p_from_mw": ("branch", p_f),
            "p_to_mw": ("branch", -p_f),
            "loading_pct": ("branch", loading),
        },
        coords={"bus": model.grid_bus_ids, "branch": model.branch_ids, "branch_kind": ("branch", model.branch_kind)},
    )
    ds["va_deg"].attrs["units"] = "degree"
    ds["p_from_mw"].attrs["units"] = "MW"
    ds["loading_pct"].attrs["units"] = "%"
    ds.attrs["grid"] = model.name
    return ds
