"""Adapters that run gridtwin and its peers (pandapower, lightsim2grid) on the same pandapower net.

Each adapter is built once per case (conversion and compilation are not timed by the suites
unless they say so) and exposes the calls the suites time: ``run_pf`` (one snapshot) and
``run_series`` (many steps). Voltages come back as ``vm_pu`` arrays in the row order of
``net.bus`` so that the suites can compare tools bus by bus.

All tools stop on the same criterion: the largest bus power mismatch below ``tol_pu`` (per unit
of ``net.sn_mva``). pandapower's ``tolerance_mva`` and lightsim2grid's ``tol`` are compared with
per-unit mismatches, so they get ``tol_pu``; gridtwin's ``tol_mva`` is in MVA, so it gets
``tol_pu × sn_mva``.

lightsim2grid is optional: :func:`lightsim2grid_version` is None when it is not installed and
:class:`LightsimPeer` then raises :class:`PeerNotInstalled`.
"""

from __future__ import annotations

import copy
import importlib.metadata
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import xarray as xr
    from numpy.typing import NDArray
    from pandapower.auxiliary import pandapowerNet

    from benchmarks.cases import Snapshots

__all__ = [
    "GridtwinPeer",
    "LightsimPeer",
    "PandapowerPeer",
    "PeerFailed",
    "PeerNotInstalled",
    "SeriesResult",
    "lightsim2grid_version",
    "to_lightsim_net",
]


class PeerNotInstalled(RuntimeError):
    """The peer's package is not installed."""


class PeerFailed(RuntimeError):
    """The peer ran but did not produce a solution (e.g. it did not converge)."""


@dataclass(frozen=True)
class SeriesResult:
    """Voltage magnitudes of a batch, shape (time, bus) in ``net.bus`` order, and how many steps converged."""

    vm_pu: NDArray[np.float64]
    n_converged: int


def lightsim2grid_version() -> str | None:
    """Return the installed lightsim2grid version, or None when it is not installed."""
    try:
        return importlib.metadata.version("lightsim2grid")
    except importlib.metadata.PackageNotFoundError:
        return None


class GridtwinPeer:
    """gridtwin: :func:`solvers.compile_grid` once, then :func:`solvers.run_pf` / :func:`solvers.run_pf_timeseries`."""

    name = "gridtwin"

    def __init__(self, net: pandapowerNet, name: str, *, tol_pu: float, max_iter: int, init: str) -> None:
        from benchmarks.cases import build_grid

        self.grid = build_grid(net, name)
        self.tol_mva = tol_pu * float(net.sn_mva)
        self.max_iter = max_iter
        self.init = init
        self.bus_id = [str(b) for b in net.bus.index]
        self.model = None
        self._series_inputs: dict = {}

    def compile(self) -> None:
        """Compile the Grid into a PFModel (the step :meth:`run_pf` and :meth:`run_series` skip)."""
        import solvers

        self.model = solvers.compile_grid(self.grid)

    def _vm_pu(self, da: xr.DataArray) -> NDArray[np.float64]:
        return da.sel(bus=self.bus_id).to_numpy()

    def run_pf(self) -> NDArray[np.float64]:
        """Solve the base snapshot on the compiled model; return vm_pu."""
        import solvers

        ds = solvers.run_pf(self.model, tol_mva=self.tol_mva, max_iter=self.max_iter, init=self.init)
        return self._vm_pu(ds["vm_pu"])

    def run_voltages(self) -> NDArray[np.float64]:
        """Solve the base snapshot for voltages only (:func:`solvers.solve_voltages`, no result tables)."""
        import solvers

        v = solvers.solve_voltages(self.model, tol_mva=self.tol_mva, max_iter=self.max_iter, init=self.init)
        return np.abs(v[self.model.grid_bus_idx])

    def run_pf_end_to_end(self) -> NDArray[np.float64]:
        """Compile and solve the base snapshot from the Grid; return vm_pu."""
        import solvers

        ds = solvers.run_pf(self.grid, tol_mva=self.tol_mva, max_iter=self.max_iter, init=self.init)
        return self._vm_pu(ds["vm_pu"])

    def prepare_series(self, snaps: Snapshots) -> None:
        """Build the DataArrays of a batch (not timed)."""
        self._series_inputs = snaps.to_dataarrays()

    def run_series(self) -> SeriesResult:
        """Solve the prepared batch with :func:`solvers.run_pf_timeseries`."""
        import solvers

        ds = solvers.run_pf_timeseries(self.model, **self._series_inputs, tol_mva=self.tol_mva, max_iter=self.max_iter)
        return SeriesResult(self._vm_pu(ds["vm_pu"]), int(ds["converged"].sum()))


class PandapowerPeer:
    """pandapower's own Newton-Raphson (``runpp(..., lightsim2grid=False)``, numba on)."""

    name = "pandapower"

    def __init__(self, net: pandapowerNet, *, tol_pu: float, max_iter: int, init: str) -> None:
        self.net = copy.deepcopy(net)
        self.tol_pu = tol_pu
        self.max_iter = max_iter
        self.init = init

    def _runpp(self, init: str) -> None:
        import pandapower as pp

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pp.runpp(
                self.net,
                lightsim2grid=False,
                init=init,
                tolerance_mva=self.tol_pu,
                max_iteration=self.max_iter,
                numba=True,
            )

    def run_pf(self) -> NDArray[np.float64]:
        """One ``runpp`` of the base snapshot from the case's start (flat or DC); return vm_pu."""
        self._runpp(self.init)
        return self.net.res_bus["vm_pu"].to_numpy(dtype=float)

    def run_series_steps(self, snaps: Snapshots) -> tuple[NDArray[np.float64], list[float]]:
        """Loop ``runpp`` over ``snaps``; return vm_pu (time, bus) and the seconds of each step but the first.

        The first step starts from the case's start (flat or DC) and is not timed; later steps
        start from the previous result (``init="results"``, as pandapower's own time series
        module does), like the batched tools.
        """
        vm = np.empty((snaps.n_steps, len(self.net.bus)))
        step_s: list[float] = []
        for t in range(snaps.n_steps):
            t0 = time.perf_counter()
            self.net.load["p_mw"] = snaps.load_p_mw[t]
            self.net.load["q_mvar"] = snaps.load_q_mvar[t]
            if snaps.sgen_p_mw is not None:
                self.net.sgen["p_mw"] = snaps.sgen_p_mw[t]
            self._runpp(self.init if t == 0 else "results")
            if t > 0:
                step_s.append(time.perf_counter() - t0)
            vm[t] = self.net.res_bus["vm_pu"].to_numpy(dtype=float)
        return vm, step_s


def _redirect_open_ends(net: pandapowerNet) -> None:
    """Give each branch end behind an open switch its own new bus (pandapower's own treatment).

    pandapower keeps such a branch energised from its closed end (its charging still counts);
    lightsim2grid ignores switches, so the open end is moved to a fresh bus that nothing else
    touches. A branch open at both ends is taken out of service.
    """
    import pandapower as pp

    ends = {"l": ("line", "from_bus", "to_bus"), "t": ("trafo", "hv_bus", "lv_bus")}
    sw = net.switch
    for et, (table, col_a, col_b) in ends.items():
        open_sw = sw[(sw["et"] == et) & ~sw["closed"].astype(bool)]
        for element, rows in open_sw.groupby("element"):
            br = net[table].loc[element]
            open_buses = set(rows["bus"])
            if {br[col_a], br[col_b]} <= open_buses:
                net[table].loc[element, "in_service"] = False
                continue
            for col in (col_a, col_b):
                if br[col] in open_buses:
                    vn_kv = float(net.bus.loc[br[col], "vn_kv"])
                    net[table].loc[element, col] = pp.create_bus(
                        net, vn_kv=vn_kv, name=f"open end of {table} {element}"
                    )


def _fuse_closed_bus_switches(net: pandapowerNet) -> dict[int, int]:
    """Merge buses joined by closed bus-bus switches; return {pandapower bus: bus that now carries it}.

    Elements move to the lowest bus of each group; the others are kept (so indices stay
    contiguous for lightsim2grid) but taken out of service.
    """
    import scipy.sparse as sp
    from pandapower.toolbox import fuse_buses
    from scipy.sparse.csgraph import connected_components

    sw = net.switch
    closed = sw[(sw["et"] == "b") & sw["closed"].astype(bool)]
    bus_index = net.bus.index.to_numpy()
    pos = {b: k for k, b in enumerate(bus_index)}
    rows = [pos[b] for b in closed["bus"]]
    cols = [pos[b] for b in closed["element"]]
    adj = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(bus_index), len(bus_index)))
    _, label = connected_components(adj, directed=False)
    keeper: dict[int, int] = {}
    for group in np.unique(label):
        members = bus_index[label == group]
        keep = int(members.min())
        keeper.update(dict.fromkeys(members.tolist(), keep))
        if len(members) > 1:
            others = set(members.tolist()) - {keep}
            fuse_buses(net, keep, others, drop=False)
            net.bus.loc[list(others), "in_service"] = False
    return keeper


def to_lightsim_net(
    net: pandapowerNet, *, apply_simbench_taps: bool = False
) -> tuple[pandapowerNet, NDArray[np.int64]]:
    """Return a copy of ``net`` that lightsim2grid converts faithfully, and the LSGrid bus of each ``net.bus`` row.

    lightsim2grid's pandapower importer ignores switches, raises on object-dtype limit
    columns (SimBench), and applies transformer taps that pandapower 3.5.6 ignores (SimBench:
    ``tap_pos=-1`` with no ``tap_changer_type``). The copy therefore has closed bus-bus switches
    fused, open branch ends on fresh buses, limit columns as floats and, unless
    ``apply_simbench_taps``, taps without a tap changer type set to neutral (pandapower's and
    gridtwin's semantics).
    """
    out = copy.deepcopy(net)
    keeper: dict[int, int] = {int(b): int(b) for b in out.bus.index}
    if len(out.switch):
        _redirect_open_ends(out)
        keeper = _fuse_closed_bus_switches(out)
        out.switch = out.switch.iloc[0:0]
    for table in ("load", "sgen", "gen", "ext_grid", "storage"):
        for col in ("max_p_mw", "min_p_mw", "max_q_mvar", "min_q_mvar"):
            if col in out[table]:
                out[table][col] = out[table][col].astype(float)
    if not apply_simbench_taps and len(out.trafo) and "tap_changer_type" in out.trafo:
        no_changer = out.trafo["tap_changer_type"].isna().to_numpy()
        out.trafo.loc[no_changer, "tap_pos"] = out.trafo.loc[no_changer, "tap_neutral"].fillna(0.0)
    order = {b: k for k, b in enumerate(np.sort(out.bus.index.to_numpy()))}
    bus_pos = np.array([order[keeper[int(b)]] for b in net.bus.index], dtype=np.int64)
    return out, bus_pos


class LightsimPeer:
    """lightsim2grid's C++ Newton-Raphson (KLU where built): ``LSGrid.ac_pf`` and ``TimeSeriesCPP``.

    The LSGrid comes from ``init_from_pandapower(net, pp_orig_file="pandapower_v3")`` (the
    transformer equations of pandapower 3) on :func:`to_lightsim_net`'s copy.
    """

    name = "lightsim2grid"

    def __init__(
        self, net: pandapowerNet, *, tol_pu: float, max_iter: int, init: str, apply_simbench_taps: bool = False
    ) -> None:
        if lightsim2grid_version() is None:
            raise PeerNotInstalled("lightsim2grid is not installed (pip install 'gridtwin[peers]')")
        from lightsim2grid.network import init_from_pandapower

        ls_net, self.bus_pos = to_lightsim_net(net, apply_simbench_taps=apply_simbench_taps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.model = init_from_pandapower(ls_net, pp_orig_file="pandapower_v3")
        self.tol_pu = tol_pu
        self.max_iter = max_iter
        self.load_scaling = ls_net.load["scaling"].to_numpy(dtype=float) if len(ls_net.load) else np.ones(0)
        self.sgen_scaling = ls_net.sgen["scaling"].to_numpy(dtype=float) if len(ls_net.sgen) else np.ones(0)
        self.v0 = np.ones(len(ls_net.bus), dtype=np.complex128)
        if init == "dc":
            v_dc = self.model.dc_pf(self.v0.copy(), max_iter, tol_pu)
            if v_dc.size == 0:
                raise PeerFailed("lightsim2grid dc_pf (the DC start) did not converge")
            self.v0 = v_dc
        self._series = None
        self._series_inputs: dict[str, NDArray[np.float64]] = {}

    @property
    def algorithm(self) -> str:
        """Name of the AC algorithm lightsim2grid uses (e.g. ``NR_KLU``)."""
        return str(self.model.get_algo_type()).rsplit(".", 1)[-1]

    def run_pf(self, *, reuse_cache: bool) -> NDArray[np.float64]:
        """One ``ac_pf`` from the case's start; ``reuse_cache=False`` calls ``prevent_ac_cache_reuse()`` first."""
        if not reuse_cache:
            self.model.prevent_ac_cache_reuse()
        v = self.model.ac_pf(self.v0.copy(), self.max_iter, self.tol_pu)
        if v.size == 0:
            raise PeerFailed(f"lightsim2grid ac_pf did not converge in {self.max_iter} iterations")
        return np.abs(v[self.bus_pos])

    def run_pf_with_results(self) -> None:
        """``ac_pf`` (cache reused) plus the branch result getters, the work ``solvers.run_pf`` also does."""
        self.model.ac_pf(self.v0.copy(), self.max_iter, self.tol_pu)
        for get in ("get_V", "get_line_res1", "get_line_res2", "get_trafo_res1", "get_trafo_res2"):
            getattr(self.model, get)()

    def prepare_series(self, snaps: Snapshots) -> None:
        """Build the ``TimeSeriesCPP`` batch and its C-contiguous inputs (not timed)."""
        from lightsim2grid.timeSerie import TimeSeriesCPP

        self._series = TimeSeriesCPP(self.model)
        self._series_inputs = {
            "load_p": np.ascontiguousarray(snaps.load_p_mw * self.load_scaling),
            "load_q": np.ascontiguousarray(snaps.load_q_mvar * self.load_scaling),
        }
        if snaps.sgen_p_mw is not None:
            self._series_inputs["sgen_p"] = np.ascontiguousarray(snaps.sgen_p_mw * self.sgen_scaling)

    def run_series(self) -> SeriesResult:
        """``modify_*``, ``compute``, ``compute_flows``, then copy voltages and flows out of C++ memory."""
        ts = self._series
        ts.modify_load_p(self._series_inputs["load_p"])
        ts.modify_load_q(self._series_inputs["load_q"])
        if "sgen_p" in self._series_inputs:
            ts.modify_sgen_p(self._series_inputs["sgen_p"])
        ts.compute(self.v0.copy(), self.max_iter, self.tol_pu)
        ts.compute_flows()
        # get_* return views into C++ memory that the next compute() invalidates: copy now.
        v = ts.get_voltages().copy()
        ts.get_flows().copy()
        return SeriesResult(np.abs(v[:, self.bus_pos]), int(ts.nb_converged()))
