"""Apply a scenario's modifications to a grid and its profiles (pure: the inputs are never changed).

Profiles are the format of :func:`twin.read_simbench_profiles`: ``load_p_mw``/``load_q_mvar`` on (time, load),
``sgen_p_mw`` on (time, sgen), optional ``storage_p_mw`` on (time, storage), MW / Mvar. Modifications may add
``temperature_degc`` (time) and, for devices added by ``ev``/``heat_pumps``, ``n_units``, ``hp_kw_th`` and
``hp_cop`` on ``new_load`` (as :func:`scenarios.electrify` does), and ``ev`` the attrs ``ev_unserved_kwh`` and
``ev_sessions_short`` (EV energy that did not fit before departure, summed over the scenario's ``ev`` entries).
See ``docs/design/scenarios.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import xarray as xr

from scenarios.electrify import _units_per_load, electrify, heat_pump_p_kw, synthesize_temperature
from scenarios.spec import (
    Battery,
    Ev,
    HeatPumps,
    LoadGrowth,
    Outage,
    Pv,
    Scenario,
    Switching,
    TrafoReplacement,
    WeatherShift,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from twin.grid import Grid

__all__ = ["ModificationError", "apply"]

_Q_PER_P = float(np.tan(np.arccos(0.98)))
_HOUSEHOLD_MW = 0.002  # as scenarios.electrify: one household per 2 kW of rated load
_DEVICE_VARS = ("n_units", "hp_kw_th", "hp_cop")
_LOAD_VARS = ("load_p_mw", "load_q_mvar")


class ModificationError(ValueError):
    """A modification cannot be applied (unknown element id, missing profile, clash); the message says which."""


def apply(scenario: Scenario, grid: Grid, profiles: xr.Dataset) -> tuple[Grid, xr.Dataset]:
    """Apply ``scenario.modifications`` in order to copies of ``grid`` and ``profiles``.

    Parameters
    ----------
    scenario : Scenario
        The scenario (from :meth:`scenarios.spec.ScenarioSet.expand`).
    grid : Grid
        Base grid; not modified.
    profiles : xarray.Dataset
        Base profiles (see module docstring), MW / Mvar; not modified.

    Returns
    -------
    (Grid, xarray.Dataset)
        The modified grid and profiles. ``outage`` with ``n_minus_1: true`` changes nothing here (the contingency
        module runs it).

    Raises
    ------
    ModificationError
        Naming the scenario, the modification (position and kind) and the offending id.
    """
    out_grid, out_prof = grid.copy(), profiles.copy()
    for pos, mod in enumerate(scenario.modifications):
        try:
            out_grid, out_prof = _HANDLERS[type(mod)](mod, out_grid, out_prof)
        except ValueError as err:  # ModificationError, or a check of scenarios.electrify / Grid.add
            raise ModificationError(f"scenario {scenario.name!r}, modifications[{pos}] ({mod.kind}): {err}") from err
    return out_grid, out_prof


# -- checks and selections ------------------------------------------------------------------------------------------
def _check_ids(grid: Grid, tables: tuple[str, ...], ids: list[str], what: str) -> None:
    """Raise naming the ids in ``ids`` that are in none of ``tables``."""
    known = pd.Index(np.concatenate([grid.tables[t].index.to_numpy() for t in tables]))
    missing = pd.Index(ids).difference(known)
    if len(missing):
        raise ModificationError(
            f"unknown {what} ids {missing[:5].tolist()} in grid {grid.name!r} (ids look like {known[:3].tolist()})"
        )


def _select_loads(grid: Grid, loads: list[str] | None, trafo: str | None) -> pd.Index:
    """Load ids of an area: the given ids, the supply area of ``trafo``, or every load."""
    if loads is not None:
        _check_ids(grid, ("load",), loads, "load")
        return pd.Index(loads)
    if trafo is not None:
        from twin.graph import MultiLayerGraph

        _check_ids(grid, ("trafo", "trafo3w"), [trafo], "trafo")
        ids = MultiLayerGraph.from_grid(grid).loads_below(trafo)
        if not len(ids):
            raise ModificationError(f"trafo {trafo!r} supplies no loads (open, out of service or closing a mesh)")
        return ids
    return grid.tables["load"].index


def _households(grid: Grid, loads: list[str] | None) -> Grid:
    """A copy of ``grid`` whose load table holds only the household loads to electrify (no ev/, hp/ devices)."""
    ids = _select_loads(grid, loads, None)
    devices = ids.astype(str).str.startswith(("ev/", "hp/"))
    if loads is not None and devices.any():
        raise ModificationError(f"loads {ids[devices][:5].tolist()} are EVs or heat pumps, not households; drop them")
    ids = ids[~devices]
    sub = grid.copy()
    sub.tables["load"] = sub.tables["load"].loc[ids]
    return sub


def _step_h(profiles: xr.Dataset) -> float:
    """Regular step of ``profiles['time']``, h."""
    time = pd.DatetimeIndex(profiles["time"].to_numpy())
    return float((time[1] - time[0]) / pd.Timedelta("1h"))


def _temperature(profiles: xr.Dataset) -> xr.DataArray:
    """The profiles' ``temperature_degc`` or, if absent, the synthetic one (seed 0), °C."""
    if "temperature_degc" in profiles:
        return profiles["temperature_degc"]
    return synthesize_temperature(pd.DatetimeIndex(profiles["time"].to_numpy()), seed=0)


def _scale_along(da: xr.DataArray, dim: str, ids: pd.Index, factor: float) -> xr.DataArray:
    """``da`` with the entries of ``ids`` along ``dim`` multiplied by ``factor`` (a new array)."""
    f = np.where(pd.Index(da[dim].to_numpy()).isin(ids), factor, 1.0)
    return (da * xr.DataArray(f, dims=dim, coords={dim: da[dim]})).assign_attrs(da.attrs)


# -- adding devices ---------------------------------------------------------------------------------------------------
def _add_elements(
    grid: Grid, profiles: xr.Dataset, table: str, rows: pd.DataFrame, series: dict[str, xr.DataArray]
) -> xr.Dataset:
    """Add ``rows`` to the working ``grid`` (in place) and return profiles with ``series`` (var → (time, id)) added."""
    clash = rows.index.intersection(grid.tables[table].index)
    if len(clash):
        raise ModificationError(
            f"{table} ids {clash[:5].tolist()} exist already (a second modification of this kind at the same "
            "place); merge the two modifications into one"
        )
    on_dim = [v for v in profiles.data_vars if table in profiles[v].dims]
    lacking = sorted(set(on_dim).symmetric_difference(series)) if on_dim else []
    if lacking:
        raise ModificationError(
            f"profiles variables {lacking} on {table!r} cannot be extended together with {sorted(series)}; "
            "give all of them or none"
        )
    grid.add(table, rows)
    merged = {}
    for var, new in series.items():
        unit = "Mvar" if var.endswith("mvar") else "MW"
        old = profiles.get(var)
        merged[var] = new if old is None else xr.concat([old, new.transpose(*old.dims)], dim=table)
        merged[var] = merged[var].assign_attrs(units=unit)
    return profiles.drop_vars([*on_dim, table] if table in profiles.coords else on_dim).assign(merged)


def _add_device_info(profiles: xr.Dataset, info: dict[str, xr.DataArray]) -> xr.Dataset:
    """Append per-device variables (``new_load`` dim) to those already in ``profiles``."""
    out = profiles
    if "new_load" in profiles.dims:
        info = {k: xr.concat([profiles[k], v], dim="new_load") for k, v in info.items()}
        out = profiles.drop_vars([*_DEVICE_VARS, "new_load"], errors="ignore")
    return out.assign(info)


def _electrify(
    grid: Grid, profiles: xr.Dataset, loads: list[str] | None, kwargs: dict[str, Any], seed: int
) -> tuple[xr.Dataset, pd.DataFrame, xr.DataArray]:
    """Run :func:`scenarios.electrify` on the household loads; return its profiles, new load rows and units."""
    sub = _households(grid, loads)
    temp = _temperature(profiles)
    base = profiles[list(_LOAD_VARS)].sel(load=sub.tables["load"].index.to_numpy())
    new_grid, new_prof = electrify(sub, base, temperature=temp.to_numpy(), seed=seed, **kwargs)
    new_ids = new_prof["n_units"]["new_load"].to_numpy()
    return new_prof, new_grid.tables["load"].loc[new_ids], new_prof["n_units"]


def _graft(
    grid: Grid, profiles: xr.Dataset, new_prof: xr.Dataset, rows: pd.DataFrame, info: dict[str, xr.DataArray]
) -> tuple[Grid, xr.Dataset]:
    """Add the devices made by :func:`_electrify` to the working grid and profiles."""
    ids = list(rows.index)
    series = {v: new_prof[v].sel(load=ids) for v in ("load_p_mw", "load_q_mvar")}
    out = _add_elements(grid, profiles, "load", rows, series)
    out = _add_device_info(out, info).assign(temperature_degc=_temperature(profiles))
    return grid, out


def _ev_area(grid: Grid, mod: Ev) -> list[str] | None:
    """Load ids of an EV modification's area: ``loads``, the loads at ``buses``, or ``None`` (every household)."""
    if mod.buses is None:
        return mod.loads
    _check_ids(grid, ("bus",), mod.buses, "bus")
    loads = grid.tables["load"]
    ids = loads.index[loads["bus"].isin(mod.buses) & ~loads.index.astype(str).str.startswith(("ev/", "hp/"))]
    if not len(ids):
        raise ModificationError(f"buses {mod.buses[:5]} have no household loads to put EV chargers at")
    return list(ids)


def _apply_ev(mod: Ev, grid: Grid, profiles: xr.Dataset) -> tuple[Grid, xr.Dataset]:
    """Add EV chargers (``ev/<load>``) via :func:`scenarios.electrify`."""
    area = _ev_area(grid, mod)
    share = mod.share
    if share is None:
        sub = _households(grid, area).tables["load"]
        households = int(np.maximum(1, np.round(sub["p_mw"].to_numpy() / _HOUSEHOLD_MW)).sum())
        if mod.n_chargers is None or mod.n_chargers > households:
            raise ModificationError(f"n_chargers={mod.n_chargers} exceeds the {households} households of the area")
        share = mod.n_chargers / households
    kwargs = {"ev_share": share, "ev_kw": mod.kw, "hp_share": 0.0}
    kwargs |= {"ev_sessions": mod.sessions, "ev_placement": mod.placement}
    new_prof, rows, units = _electrify(grid, profiles, area, kwargs, mod.seed)
    nan = xr.full_like(units, np.nan, dtype=np.float64)
    grid, out = _graft(grid, profiles, new_prof, rows, {"n_units": units, "hp_kw_th": nan, "hp_cop": nan})
    for key in ("ev_unserved_kwh", "ev_sessions_short"):  # accumulated over the scenario's ev modifications
        out.attrs[key] = profiles.attrs.get(key, 0) + new_prof.attrs[key]
    return grid, out


def _apply_heat_pumps(mod: HeatPumps, grid: Grid, profiles: xr.Dataset) -> tuple[Grid, xr.Dataset]:
    """Add heat pumps (``hp/<load>``) via :func:`scenarios.electrify`."""
    kwargs = {"ev_share": 0.0, "hp_share": mod.share, "hp_kw_th": mod.kw_th, "cop": mod.cop}
    new_prof, rows, units = _electrify(grid, profiles, mod.loads, kwargs, mod.seed)
    kw_th, cop = (xr.full_like(units, v, dtype=np.float64) for v in (mod.kw_th, mod.cop))
    info = {"n_units": units, "hp_kw_th": kw_th, "hp_cop": cop}
    return _graft(grid, profiles, new_prof, rows, info)


def _apply_weather_shift(mod: WeatherShift, grid: Grid, profiles: xr.Dataset) -> tuple[Grid, xr.Dataset]:
    """Shift the temperature on the given days and recompute the heat pumps already added there."""
    time = pd.DatetimeIndex(profiles["time"].to_numpy())
    day = time.normalize()
    inside = (day >= pd.Timestamp(mod.start)) & (day <= pd.Timestamp(mod.end))
    if not inside.any():
        raise ModificationError(f"{mod.start}..{mod.end} lies outside the profiles ({time[0]} to {time[-1]})")
    temp = _temperature(profiles)
    new_temp = temp + xr.DataArray(np.where(inside, mod.delta_c, 0.0), dims="time", coords={"time": temp["time"]})
    out = profiles.assign(temperature_degc=new_temp.assign_attrs(temp.attrs))
    if "hp_kw_th" not in profiles:
        return grid, out
    hp = profiles["hp_kw_th"].notnull().to_numpy()
    ids = profiles["new_load"].to_numpy()[hp]
    kw_th, cop = profiles["hp_kw_th"].to_numpy()[hp], profiles["hp_cop"].to_numpy()[hp]
    units = profiles["n_units"].to_numpy()[hp]
    p_new = heat_pump_p_kw(new_temp.to_numpy()[inside, None], kw_th[None, :], cop[None, :]) * units / 1000.0
    pos = pd.Index(profiles["load"].to_numpy()).get_indexer(ids)
    for var, values in (("load_p_mw", p_new), ("load_q_mvar", p_new * _Q_PER_P)):
        arr = profiles[var].to_numpy().copy()
        arr[np.ix_(np.flatnonzero(inside), pos)] = values
        out[var] = profiles[var].copy(data=arr)
    return grid, out


def _pv_shape(grid: Grid, profiles: xr.Dataset, profile_type: str | None) -> xr.DataArray:
    """Capacity-weighted per-unit feed-in of the grid's existing PV (time), MW per MW installed."""
    if "sgen_p_mw" not in profiles:
        raise ModificationError("profiles have no 'sgen_p_mw' to take a PV shape from")
    sgen = grid.tables["sgen"].loc[grid.tables["sgen"].index.isin(profiles["sgen"].to_numpy())]
    types = sgen["type"].astype(str)
    wanted = profile_type or ("PV" if types.str.contains("pv", case=False).any() else "RES")
    chosen = sgen.index[types.str.contains(wanted, case=False, regex=False) & (sgen["p_mw"] > 0)]
    if not len(chosen):
        raise ModificationError(
            f"no sgen of type containing {wanted!r} to take the PV shape from; types: {sorted(set(types))}; "
            "set 'profile_type'"
        )
    total = profiles["sgen_p_mw"].sel(sgen=list(chosen)).sum("sgen")
    return total / float(sgen.loc[chosen, "p_mw"].sum())


def _apply_pv(mod: Pv, grid: Grid, profiles: xr.Dataset) -> tuple[Grid, xr.Dataset]:
    """Add PV sgens (``pv/<load>`` or ``pv/<bus>``) with the grid's existing PV shape."""
    shape = _pv_shape(grid, profiles, mod.profile_type)
    if mod.buses is not None:
        _check_ids(grid, ("bus",), mod.buses, "bus")
        ids, buses = [f"pv/{b}" for b in mod.buses], np.asarray(mod.buses)
        p_mw = np.full(len(ids), mod.kwp / 1000.0)
    else:
        units = _units_per_load(_households(grid, None), mod.share or 0.0, np.random.default_rng(mod.seed))
        ids = [f"pv/{i}" for i in units.index]
        buses = grid.tables["load"].loc[units.index, "bus"].to_numpy()
        p_mw = units.to_numpy() * mod.kwp / 1000.0
    rows = pd.DataFrame({"name": ids, "bus": buses, "p_mw": p_mw, "q_mvar": 0.0, "type": "PV"}, index=ids)
    feed = shape * xr.DataArray(p_mw, dims="sgen", coords={"sgen": ids})
    series = {"sgen_p_mw": feed.transpose("time", "sgen")}
    if "sgen_q_mvar" in profiles:
        series["sgen_q_mvar"] = xr.zeros_like(series["sgen_p_mw"])
    return grid, _add_elements(grid, profiles, "sgen", rows, series)


def _net_load_mw(grid: Grid, profiles: xr.Dataset, buses: pd.Index) -> np.ndarray:
    """Loads minus sgens at each of ``buses`` (time, bus), MW; elements without a profile at their grid value."""
    n_t = profiles.sizes["time"]
    net = np.zeros((n_t, len(buses)))
    for table, var, sign in (("load", "load_p_mw", 1.0), ("sgen", "sgen_p_mw", -1.0)):
        df = grid.tables[table][grid.tables[table]["in_service"]]
        col = buses.get_indexer(df["bus"])
        df, col = df[col >= 0], col[col >= 0]
        p = np.broadcast_to((df["p_mw"] * df["scaling"]).to_numpy(), (n_t, len(df))).copy()
        if var in profiles:
            given = pd.Index(profiles[table].to_numpy())
            pos = df.index.get_indexer(given)
            p[:, pos[pos >= 0]] = profiles[var].to_numpy()[:, pos >= 0] * df["scaling"].to_numpy()[pos[pos >= 0]]
        inc = sp.csr_matrix((np.ones(len(col)), (np.arange(len(col)), col)), shape=(len(col), len(buses)))
        net += sign * (inc.T @ p.T).T
    return net


def _dispatch_mw(net: np.ndarray, target: np.ndarray, mod: Battery, dt_h: float) -> np.ndarray:
    """Battery power (time, battery), MW (+ charging): steer each bus's net load to ``target`` within kW/kWh."""
    p_max, e_max = mod.kw / 1000.0, mod.kwh / 1000.0
    soc = np.full(net.shape[1], mod.soc_start * e_max)
    out = np.empty_like(net)
    for t in range(net.shape[0]):  # sequential in time (state of charge), vectorised over batteries
        p = np.clip(target - net[t], -p_max, p_max)
        p = np.clip(p, -soc / dt_h, (e_max - soc) / dt_h)
        soc = soc + p * dt_h
        out[t] = p
    return out


def _apply_battery(mod: Battery, grid: Grid, profiles: xr.Dataset) -> tuple[Grid, xr.Dataset]:
    """Add batteries (``battery/<bus>``) with a dispatch profile from their rule."""
    if mod.buses is not None:
        _check_ids(grid, ("bus",), mod.buses, "bus")
        buses = pd.Index(mod.buses)
    else:
        sgen = grid.tables["sgen"]
        buses = pd.Index(sgen.loc[sgen["type"].astype(str).str.contains("pv", case=False), "bus"].unique())
        if not len(buses):
            raise ModificationError("the grid has no PV (sgen type containing 'PV'); add 'pv' first or give 'buses'")
    net = _net_load_mw(grid, profiles, buses)
    target = np.zeros(len(buses)) if mod.rule == "self_consumption" else net.max(axis=0) * mod.threshold_pct / 100
    p = _dispatch_mw(net, target, mod, _step_h(profiles))
    ids = [f"battery/{b}" for b in buses]
    rows = pd.DataFrame({"name": ids, "bus": buses.to_numpy(), "p_mw": 0.0, "max_e_mwh": mod.kwh / 1000.0}, index=ids)
    series = {"storage_p_mw": xr.DataArray(p, dims=("time", "storage"), coords={"storage": ids})}
    return grid, _add_elements(grid, profiles, "storage", rows, series)


# -- network changes --------------------------------------------------------------------------------------------------
def _apply_load_growth(mod: LoadGrowth, grid: Grid, profiles: xr.Dataset) -> tuple[Grid, xr.Dataset]:
    """Scale the loads of an area (grid table and profiles)."""
    ids = _select_loads(grid, mod.loads, mod.trafo)
    grid.tables["load"].loc[ids, ["p_mw", "q_mvar"]] *= mod.scale
    return grid, profiles.assign({v: _scale_along(profiles[v], "load", ids, mod.scale) for v in _LOAD_VARS})


def _apply_outage(mod: Outage, grid: Grid, profiles: xr.Dataset) -> tuple[Grid, xr.Dataset]:
    """Take lines/transformers out of service (N-1 is left to the contingency module)."""
    if mod.elements is None:  # n_minus_1: run by scenarios.contingency
        return grid, profiles
    _check_ids(grid, ("line", "trafo", "trafo3w"), mod.elements, "line/trafo")
    for table in ("line", "trafo", "trafo3w"):
        df = grid.tables[table]
        df.loc[df.index.isin(mod.elements), "in_service"] = False
    return grid, profiles


def _apply_switching(mod: Switching, grid: Grid, profiles: xr.Dataset) -> tuple[Grid, xr.Dataset]:
    """Open and close switches."""
    _check_ids(grid, ("switch",), [*mod.open, *mod.close], "switch")
    sw = grid.tables["switch"]
    sw.loc[mod.open, "closed"] = False
    sw.loc[mod.close, "closed"] = True
    return grid, profiles


def _apply_trafo_replacement(mod: TrafoReplacement, grid: Grid, profiles: xr.Dataset) -> tuple[Grid, xr.Dataset]:
    """Set a transformer's rating."""
    _check_ids(grid, ("trafo",), [mod.trafo], "trafo")
    grid.tables["trafo"].loc[mod.trafo, "sn_mva"] = mod.sn_mva
    return grid, profiles


_HANDLERS: dict[type, Callable[[Any, Grid, xr.Dataset], tuple[Grid, xr.Dataset]]] = {
    LoadGrowth: _apply_load_growth,
    Ev: _apply_ev,
    HeatPumps: _apply_heat_pumps,
    Pv: _apply_pv,
    Battery: _apply_battery,
    Outage: _apply_outage,
    Switching: _apply_switching,
    TrafoReplacement: _apply_trafo_replacement,
    WeatherShift: _apply_weather_shift,
}
