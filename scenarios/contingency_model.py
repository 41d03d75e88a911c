"""Outaged power-flow models without recompiling: Ybus updates, islanding checks, injection series.

The outage of a branch removes its four entries from Ybus (a rank-1 change per branch): the
model of the outaged grid is the base :class:`PFModel` with those values subtracted in place of
the same sparsity pattern. The Jacobian pattern, the bus numbering and the injections stay the
same, so an outage costs no :func:`solvers.compile_grid` call and no pattern build.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from solvers.model import REF, ElementInjection, PFModel
from solvers.powerflow.jacobian import JacobianPattern, build_pattern
from twin.topology import find_islands

if TYPE_CHECKING:
    import xarray as xr

__all__ = [
    "INJECTION_VARIABLES",
    "InjectionSeries",
    "OutageCheck",
    "branch_groups",
    "check_outage",
    "injection_series",
    "outage_model",
]

#: Profile variables :func:`injection_series` reads, with the element family each one sets.
INJECTION_VARIABLES: dict[str, tuple[str, str]] = {
    "load_p_mw": ("load", "p"),
    "load_q_mvar": ("load", "q"),
    "sgen_p_mw": ("sgen", "p"),
    "sgen_q_mvar": ("sgen", "q"),
    "storage_p_mw": ("storage", "p"),
}


@dataclass(frozen=True, slots=True)
class OutageCheck:
    """Topology of the grid after one outage.

    Attributes
    ----------
    n_island_bus : int
        Compiled buses cut off from every slack (0: the grid stays connected).
    n_island_element : int
        Active loads, sgens, storage units and gens on those buses.
    dead_idx : ndarray of int64
        The cut-off compiled buses.
    """

    n_island_bus: int
    n_island_element: int
    dead_idx: NDArray[np.int64]

    @property
    def is_connected(self) -> bool:
        """Whether every bus stays connected to a slack."""
        return self.n_island_bus == 0

    @property
    def is_islanding(self) -> bool:
        """Whether the outage cuts a load or generator off the grid."""
        return self.n_island_element > 0


@dataclass(frozen=True, slots=True)
class InjectionSeries:
    """Scheduled bus injections per step, pu at 1 pu voltage (generator convention).

    Attributes
    ----------
    s_bus_pu : ndarray of complex (T, n_bus)
    s_i_pu, s_z_pu : ndarray of complex (T, n_bus), or (1, 0) without ZIP loads
        Constant-current and constant-impedance shares of ``s_bus_pu``.
    """

    s_bus_pu: NDArray[np.complex128]
    s_i_pu: NDArray[np.complex128]
    s_z_pu: NDArray[np.complex128]

    @property
    def has_vdep(self) -> bool:
        """Whether loads depend on the voltage."""
        return self.s_i_pu.shape[1] > 0

    def vdep(self, step: int | None = None) -> tuple[NDArray[np.complex128], NDArray[np.complex128]] | None:
        """Voltage-dependent shares of one step (``None``: mean over steps); None without ZIP loads."""
        if not self.has_vdep:
            return None
        if step is None:
            return self.s_i_pu.mean(axis=0), self.s_z_pu.mean(axis=0)
        return self.s_i_pu[step], self.s_z_pu[step]


def branch_groups(model: PFModel, outages: list[str]) -> dict[str, NDArray[np.int64]]:
    """Compiled branch positions of each outage id (a line/trafo id, or a trafo3w id for its three windings).

    Raises
    ------
    ValueError
        Naming ids that are no branch of the model, or branches that are out of service already.
    """
    ids = np.asarray(model.branch_ids).astype(str)
    pos = {b: k for k, b in enumerate(ids)}
    out: dict[str, NDArray[np.int64]] = {}
    unknown, inactive = [], []
    for o in outages:
        rows = [pos[o]] if o in pos else [pos[w] for w in (f"{o}/hv", f"{o}/mv", f"{o}/lv") if w in pos]
        if not rows:
            unknown.append(o)
            continue
        idx = np.asarray(rows, dtype=np.int64)
        if not model.branch_active[idx].any():
            inactive.append(o)
        out[o] = idx[model.branch_active[idx]]
    if unknown:
        raise ValueError(
            f"outages {unknown[:5]} are not line, trafo or trafo3w ids of grid {model.name!r} "
            f"(expected ids like {ids[:2].tolist()})"
        )
    if inactive:
        raise ValueError(
            f"outages {inactive[:5]} are already out of service (or de-energised) in grid {model.name!r}; "
            "leave them out of outages="
        )
    return out


def _injecting_buses(model: PFModel) -> NDArray[np.int64]:
    """Number of active injecting elements (load, sgen, storage, gen, slack) per compiled bus."""
    count = (model.bus_type == REF).astype(np.int64)
    for fam in ("load", "sgen", "storage", "gen"):
        e: ElementInjection = getattr(model, fam)
        count += np.bincount(e.bus_idx[e.active], minlength=model.n_bus)
    return count


def check_outage(model: PFModel, branches: NDArray[np.int64]) -> OutageCheck:
    """Find the buses and elements an outage of ``branches`` cuts off from every slack."""
    keep = model.branch_active.copy()
    keep[branches] = False
    island = find_islands(model.n_bus, model.f_idx[keep], model.t_idx[keep])
    fed = np.zeros(island.max() + 1, dtype=bool)
    fed[island[model.bus_type == REF]] = True
    cut = ~fed[island]
    if not cut.any():
        return OutageCheck(0, 0, np.zeros(0, dtype=np.int64))
    count = model.cache.get("contingency_injections")
    if count is None:
        count = _injecting_buses(model)
        model.cache["contingency_injections"] = count
    return OutageCheck(int(cut.sum()), int(np.asarray(count)[cut].sum()), np.flatnonzero(cut))


def _ybus_slots(model: PFModel) -> tuple[NDArray[np.int64], ...]:
    """Positions in ``model.ybus.data`` of each active branch's ff, ft, tf, tt entries (-1 if inactive)."""
    cached = model.cache.get("contingency_ybus_slots")
    if cached is not None:
        return cached  # type: ignore[return-value]
    y = model.ybus
    n = model.n_bus
    rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(y.indptr))
    keys = rows * n + y.indices  # row-major, indices sorted: keys ascend
    act = model.branch_active
    f, t = np.maximum(model.f_idx, 0), np.maximum(model.t_idx, 0)
    slots = tuple(
        np.where(act, np.searchsorted(keys, r * n + c), -1).astype(np.int64)
        for r, c in ((f, f), (f, t), (t, f), (t, t))
    )
    model.cache["contingency_ybus_slots"] = slots
    return slots


def _pattern(model: PFModel) -> JacobianPattern:
    pat = model.cache.get("jacobian_pattern")
    if pat is None:
        pat = build_pattern(model)
        model.cache["jacobian_pattern"] = pat
    return pat  # type: ignore[return-value]


def outage_model(
    model: PFModel, branches: NDArray[np.int64], name: str = "", dead_idx: NDArray[np.int64] | None = None
) -> PFModel:
    """Return ``model`` with ``branches`` (compiled branch positions) out of service, without recompiling.

    Their admittances are subtracted from Ybus, whose sparsity pattern is kept (removed couplings stay
    as explicit zeros), so the Jacobian pattern of the base model is reused. Buses the outage cuts off
    (``dead_idx`` from :func:`check_outage`; they must carry no load or generator) become reference
    buses (held at 1 pu, coupled to nothing live), so they drop out of the equations: their voltages read NaN
    and the branches among them are out of service, as in a model compiled from the outaged grid (the
    Jacobian pattern is rebuilt then).

    Parameters
    ----------
    model : PFModel
        Base model (its cache gains the Ybus slot map and the Jacobian pattern).
    branches : ndarray of int64
        Positions in ``model.branch_ids`` of the branches to take out.
    name : str
        Label kept in ``meta["outage"]``.
    dead_idx : ndarray of int64, optional
        Compiled buses cut off by the outage.

    Returns
    -------
    PFModel
        A model usable by :func:`solvers.run_pf` and :class:`solvers.powerflow.NewtonSolver`.
    """
    slots = _ybus_slots(model)
    data = model.ybus.data.copy()
    for slot, y in zip(slots, (model.yff, model.yft, model.ytf, model.ytt), strict=True):
        np.subtract.at(data, slot[branches], y[branches])
    y = model.ybus
    ybus = sp.csr_matrix((data, y.indices, y.indptr), shape=y.shape)
    active = model.branch_active.copy()
    active[branches] = False
    changes: dict[str, object] = {}
    if dead_idx is not None and len(dead_idx):
        bus_type, v_set = model.bus_type.copy(), model.v_set.copy()
        bus_type[dead_idx], v_set[dead_idx] = REF, 1.0
        active &= ~np.isin(model.f_idx, dead_idx)
        gbi = model.grid_bus_idx
        changes = {"bus_type": bus_type, "v_set": v_set, "grid_bus_idx": np.where(np.isin(gbi, dead_idx), -1, gbi)}
    out = dataclasses.replace(
        model,
        ybus=ybus,
        branch_active=active,
        f_idx=np.where(active, model.f_idx, -1),
        t_idx=np.where(active, model.t_idx, -1),
        meta={**model.meta, "outage": name},
        cache={},
        **changes,
    )
    y_data = np.ascontiguousarray(data, dtype=np.complex128)
    out.cache["jacobian_pattern"] = dataclasses.replace(_pattern(out if changes else model), y_data=y_data)
    return out


def _family_values(
    e: ElementInjection, family: str, profiles: xr.Dataset, n_t: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(T, n_element) P and Q of one family: profile columns by id, stored values elsewhere."""
    p = np.tile(e.p_mw, (n_t, 1))
    q = np.zeros_like(p) if family == "gen" else np.tile(e.q_mvar, (n_t, 1))
    pos = {str(i): k for k, i in enumerate(e.ids)}
    for var, (fam, part) in INJECTION_VARIABLES.items():
        if fam != family or var not in profiles:
            continue
        da = profiles[var]
        dim = next((d for d in da.dims if d != "time"), None)
        if dim is None or "time" not in da.dims or da.ndim != 2:
            raise ValueError(f"profiles[{var!r}] must have dims ('time', '{family}'), got {da.dims}")
        ids = np.asarray(da[dim].values).astype(str)
        missing = [i for i in ids if i not in pos]
        if missing:
            raise ValueError(f"profiles[{var!r}]: {missing[:5]} are not {family} ids of the grid")
        vals = da.transpose("time", dim).to_numpy().astype(float)
        if not np.isfinite(vals).all():
            t_bad, c_bad = np.argwhere(~np.isfinite(vals))[0]
            raise ValueError(
                f"profiles[{var!r}] is not finite at time index {t_bad}, {family} {ids[c_bad]!r}; fill gaps first"
            )
        (p if part == "p" else q)[:, [pos[i] for i in ids]] = vals
    return p, q


def injection_series(model: PFModel, profiles: xr.Dataset | None) -> tuple[InjectionSeries, NDArray]:
    """Scheduled injections of every step of ``profiles`` (or of the stored values: one step) and the time axis.

    ``profiles`` holds any of :data:`INJECTION_VARIABLES` with dims ``(time, <family>)``; elements
    without a column keep their stored value.
    """
    if profiles is None:
        n_t, time = 1, np.array([0])
    else:
        unknown = sorted(set(profiles.data_vars) - set(INJECTION_VARIABLES))
        if unknown:
            raise ValueError(
                f"profiles has variables {unknown} this analysis does not use; known: {list(INJECTION_VARIABLES)}"
            )
        if "time" not in profiles.dims:
            raise ValueError("profiles has no 'time' dim")
        n_t, time = profiles.sizes["time"], profiles["time"].to_numpy()
    ds = profiles if profiles is not None else None
    s = np.zeros((n_t, model.n_bus), dtype=np.complex128)
    s_i = s_z = np.zeros((1, 0), dtype=np.complex128)
    for fam in ("load", "sgen", "storage", "gen"):
        e: ElementInjection = getattr(model, fam)
        if not len(e.ids):
            continue
        p, q = _family_values(e, fam, ds, n_t) if ds is not None else (e.p_mw[None], _stored_q(e, fam)[None])
        act = np.flatnonzero(e.active)
        inc = sp.csr_matrix((e.sign * e.scaling[act], (e.bus_idx[act], act)), shape=(model.n_bus, len(e.ids))).astype(
            np.complex128
        )
        s += (inc @ (p + 1j * q).T).T
        if fam == "load" and e.has_vdep:
            s_i, s_z = e.s_vdep_mva(model.n_bus, p, q)
    base = model.base_mva
    return InjectionSeries(s / base, np.atleast_2d(s_i) / base, np.atleast_2d(s_z) / base), time


def _stored_q(e: ElementInjection, family: str) -> NDArray[np.float64]:
    return np.zeros_like(e.p_mw) if family == "gen" else e.q_mvar
