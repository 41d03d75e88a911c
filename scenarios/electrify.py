"""Electrify today's grids: add EV chargers and heat pumps as new loads with synthetic profiles.

Rules (all deterministic for a given ``seed``):

- **Who gets devices.** Every in-service load stands for ``max(1, round(p_mw / 2 kW))`` households
  (``p_mw`` = its rated power in the grid table; 2 kW ≈ after-diversity peak per household). This one
  rule serves LV and MV: a SimBench LV load is a building connection, often of several households
  (1-LV-rural1: 13 loads, 80 kW rated, 199 MWh/a → 40 households, 5 MWh/a each), and an MV load is the
  aggregate of a whole LV grid (1-MV-urban: 139 loads, 49.7 MW → about 25,000 households). Each
  household has an EV (heat pump) with probability ``ev_share`` (``hp_share``), so a load gets
  ``Binomial(households, share)`` units behind one new load ``ev/<load id>`` (``hp/<load id>``) at its
  bus; loads that draw 0 units get none.
- **EV charging (uncontrolled).** Per unit and day: arrival ~ N(18:00, 1.5 h) clipped to
  [12:00, 23:45]; distance ~ Gamma(shape 2, mean 40 km); energy = km × 0.18 kWh/km, capped at
  what the charger delivers in 12 h; charging at ``ev_kw`` from arrival until done. The energy of a
  session is placed exactly (fractional first and last 15-min steps); sessions that end after the
  last time step are truncated there.
- **Heat pumps.** Thermal demand = ``hp_kw_th`` × max(0, 15 °C − T) / (15 °C − (−12 °C)) (−12 °C
  design temperature); COP(T) = ``cop`` × (1 + 0.025/K × (T − 7 °C)), at least 1 (``cop`` is the
  A7/W35 rating, so COP falls in the cold); electric power = thermal / COP, capped at
  ``hp_kw_th / cop × 1.5``.
- **Temperature.** When none is given, :func:`synthesize_temperature` (German 2016-like model).
- Reactive power of all new devices: power factor 0.98 inductive (q = 0.203 p).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from numpy.typing import NDArray
from scipy.signal import lfilter

from twin.grid import Grid

__all__ = ["electrify", "heat_pump_p_kw", "synthesize_temperature"]

_HOUSEHOLD_PEAK_MW = 0.002
_KWH_PER_KM = 0.18
_KM_MEAN, _KM_SHAPE = 40.0, 2.0
_ARRIVAL_H, _ARRIVAL_SD_H = 18.0, 1.5
_MAX_CHARGE_H = 12.0
_T_HEAT_C, _T_DESIGN_C, _T_COP_RATED_C, _COP_SLOPE_PER_K = 15.0, -12.0, 7.0, 0.025
_Q_PER_P = float(np.tan(np.arccos(0.98)))
_DAY = pd.Timedelta("1D")


def synthesize_temperature(time: pd.DatetimeIndex | xr.DataArray, seed: int = 0) -> xr.DataArray:
    """Return a synthetic German (2016-like) outdoor temperature series.

    T = 9.5 − 10 cos(2π (day of year − 15) / 365.25)  (seasonal: coldest mid-January, −0.5 °C; July 19.5 °C)
      − 4 cos(2π (hour − 3) / 24)                      (daily: minimum 03:00, maximum 15:00, ±4 K)
      + AR(1) weather noise                            (stationary std 4 K, correlation time 3 days).
    Winter nights reach about −10 °C (−0.5 − 4 − 1.5 × 4).

    Parameters
    ----------
    time : DatetimeIndex or DataArray of datetime64
        Time stamps (regular spacing).
    seed : int
        Random seed of the weather noise.

    Returns
    -------
    xarray.DataArray
        ``temperature_degc`` on ``time``, °C.
    """
    t = pd.DatetimeIndex(np.asarray(time))
    dt_h = _step_hours(t)
    doy = t.dayofyear.to_numpy() + t.hour.to_numpy() / 24.0
    hour = t.hour.to_numpy() + t.minute.to_numpy() / 60.0
    seasonal = 9.5 - 10.0 * np.cos(2 * np.pi * (doy - 15.0) / 365.25)
    daily = -4.0 * np.cos(2 * np.pi * (hour - 3.0) / 24.0)
    phi = np.exp(-dt_h / (3 * 24.0))
    shocks = np.random.default_rng(seed).standard_normal(len(t)) * 4.0 * np.sqrt(1 - phi**2)
    shocks[0] *= 1.0 / np.sqrt(1 - phi**2)  # start from the stationary distribution
    noise = lfilter([1.0], [1.0, -phi], shocks)
    return xr.DataArray(
        seasonal + daily + noise,
        dims="time",
        coords={"time": t},
        name="temperature_degc",
        attrs={"units": "degC", "model": "synthetic German 2016 (seasonal + daily + AR(1))"},
    )


def heat_pump_p_kw(temperature_degc: NDArray[np.float64], hp_kw_th: float, cop: float) -> NDArray[np.float64]:
    """Return the electric power of one heat pump, kW, for outdoor temperatures in °C (see module docstring)."""
    temp = np.asarray(temperature_degc, dtype=np.float64)
    thermal = hp_kw_th * np.maximum(0.0, _T_HEAT_C - temp) / (_T_HEAT_C - _T_DESIGN_C)
    cop_t = np.maximum(1.0, cop * (1.0 + _COP_SLOPE_PER_K * (temp - _T_COP_RATED_C)))
    return np.minimum(thermal / cop_t, hp_kw_th / cop * 1.5)


def electrify(
    grid: Grid,
    profiles: xr.Dataset,
    *,
    ev_share: float = 0.3,
    ev_kw: float = 11.0,
    hp_share: float = 0.3,
    hp_kw_th: float = 8.0,
    cop: float = 3.0,
    temperature: xr.DataArray | NDArray[np.float64] | None = None,
    seed: int = 0,
) -> tuple[Grid, xr.Dataset]:
    """Add EV chargers and heat pumps to a grid and its load profiles.

    Parameters
    ----------
    grid : Grid
        Today's grid; not modified.
    profiles : xarray.Dataset
        ``load_p_mw`` and ``load_q_mvar`` on ``(time, load)`` (MW / Mvar, e.g. from
        ``twin.read_simbench_profiles``); other variables are passed through.
    ev_share, hp_share : float
        Share of households (0–1) with an EV / a heat pump.
    ev_kw : float
        Charging power per EV, kW.
    hp_kw_th : float
        Thermal rating of a heat pump at the −12 °C design temperature, kW.
    cop : float
        Rated COP at 7 °C outdoor temperature.
    temperature : DataArray on ``time`` or 1-D array, optional
        Outdoor temperature, °C, one value per time step; synthetic (:func:`synthesize_temperature`) if omitted.
    seed : int
        Random seed; equal seeds give equal results.

    Returns
    -------
    (Grid, xarray.Dataset)
        The grid with new loads ``ev/<load id>`` and ``hp/<load id>`` (``p_mw`` = their rated power)
        and the profiles with their columns added to ``load_p_mw``/``load_q_mvar``, plus
        ``temperature_degc`` (time) and ``n_units`` (load: EVs or heat pumps behind each new load).
    """
    _check_inputs(grid, profiles, ev_share, ev_kw, hp_share, hp_kw_th, cop)
    time = pd.DatetimeIndex(profiles["time"].to_numpy())
    seq = np.random.SeedSequence(seed)
    rng_pick, rng_ev, seed_temp = (np.random.default_rng(s) for s in seq.spawn(3))
    temp = _temperature(temperature, time, int(seed_temp.integers(2**31)))
    ev_units = _units_per_load(grid, ev_share, rng_pick)
    hp_units = _units_per_load(grid, hp_share, rng_pick)
    ev_p = _ev_profiles_mw(time, ev_units.to_numpy(), ev_kw, rng_ev)
    hp_p = np.outer(heat_pump_p_kw(temp.to_numpy(), hp_kw_th, cop) / 1000.0, hp_units.to_numpy())
    ev_ids = [f"ev/{i}" for i in ev_units.index]
    hp_ids = [f"hp/{i}" for i in hp_units.index]
    rated_mw = np.concatenate([ev_units.to_numpy() * ev_kw, hp_units.to_numpy() * hp_kw_th / cop * 1.5]) / 1000.0
    new_ids = ev_ids + hp_ids
    out = grid.copy()
    buses = grid.tables["load"]["bus"]
    out.add(
        "load",
        pd.DataFrame(
            {
                "name": new_ids,
                "bus": np.concatenate([buses.loc[ev_units.index], buses.loc[hp_units.index]]),
                "p_mw": rated_mw,
                "q_mvar": rated_mw * _Q_PER_P,
            }
        ),
        ids=new_ids,
    )
    p_new = xr.DataArray(np.hstack([ev_p, hp_p]), dims=("time", "load"), coords={"time": time, "load": new_ids})
    ds = profiles.reindex(load=np.concatenate([profiles["load"].to_numpy(), new_ids]))  # other vars: NaN for new
    ds["load_p_mw"] = xr.concat([profiles["load_p_mw"], p_new], dim="load").assign_attrs(units="MW")
    ds["load_q_mvar"] = xr.concat([profiles["load_q_mvar"], p_new * _Q_PER_P], dim="load").assign_attrs(units="Mvar")
    ds["temperature_degc"] = temp
    ds["n_units"] = xr.DataArray(np.concatenate([ev_units, hp_units]), dims="new_load", coords={"new_load": new_ids})
    ds.attrs.update({"electrify": f"ev_share={ev_share}, ev_kw={ev_kw}, hp_share={hp_share}, seed={seed}"})
    return out, ds


def _check_inputs(
    grid: Grid, profiles: xr.Dataset, ev_share: float, ev_kw: float, hp_share: float, hp_kw_th: float, cop: float
) -> None:
    """Raise ``ValueError`` naming the bad argument, load id or variable."""
    for name, share in (("ev_share", ev_share), ("hp_share", hp_share)):
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name}={share} must lie in [0, 1] (a share of households)")
    for name, value in (("ev_kw", ev_kw), ("hp_kw_th", hp_kw_th), ("cop", cop)):
        if not value > 0.0:
            raise ValueError(f"{name}={value} must be positive")
    for var in ("load_p_mw", "load_q_mvar"):
        if var not in profiles or profiles[var].dims != ("time", "load"):
            raise ValueError(f"profiles need {var!r} on dims ('time', 'load'); got {list(profiles.data_vars)}")
    missing = pd.Index(grid.tables["load"].index).difference(pd.Index(profiles["load"].to_numpy()))
    if len(missing):
        raise ValueError(
            f"profiles lack load ids {missing[:5].tolist()} of grid {grid.name!r}; pass profiles of this grid"
        )
    taken = [i for i in grid.tables["load"].index if str(i).startswith(("ev/", "hp/"))]
    if taken:
        raise ValueError(f"grid already has electrified loads {taken[:5]}; electrify today's grid only once")
    _step_hours(pd.DatetimeIndex(profiles["time"].to_numpy()))


def _step_hours(time: pd.DatetimeIndex) -> float:
    """Return the regular step of ``time`` in hours (raise ``ValueError`` if irregular)."""
    steps = np.diff(time.asi8)
    if len(time) < 2 or (steps != steps[0]).any() or steps[0] <= 0:
        raise ValueError("profiles need a regular, increasing 'time' axis with at least 2 steps")
    return float(steps[0]) / 3.6e12


def _temperature(
    temperature: xr.DataArray | NDArray[np.float64] | None, time: pd.DatetimeIndex, seed: int
) -> xr.DataArray:
    """Return the temperature on ``time`` (given or synthetic), °C."""
    if temperature is None:
        return synthesize_temperature(time, seed)
    values = np.asarray(temperature, dtype=np.float64)
    if (
        isinstance(temperature, xr.DataArray)
        and "time" in temperature.dims
        and not pd.DatetimeIndex(temperature["time"].to_numpy()).equals(time)
    ):
        raise ValueError("temperature 'time' coordinate differs from the profiles' 'time'; align it first")
    if values.shape != (len(time),) or not np.isfinite(values).all():
        raise ValueError(f"temperature needs {len(time)} finite values (one per time step); got shape {values.shape}")
    return xr.DataArray(values, dims="time", coords={"time": time}, name="temperature_degc", attrs={"units": "degC"})


def _units_per_load(grid: Grid, share: float, rng: np.random.Generator) -> pd.Series:
    """Return devices per load id (only loads with at least one), drawn as in the module docstring."""
    loads = grid.tables["load"]
    loads = loads[loads["in_service"]]
    households = np.maximum(1, np.round(loads["p_mw"].to_numpy() / _HOUSEHOLD_PEAK_MW)).astype(np.int64)
    counts = pd.Series(rng.binomial(households, share), index=loads.index)
    return counts[counts > 0]


def _ev_profiles_mw(
    time: pd.DatetimeIndex, units: NDArray[np.int64], ev_kw: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Return uncontrolled charging power (time, device), MW, of ``units[d]`` EVs behind device ``d``.

    Each session's power is a box from arrival to end; its step energies come from a difference
    array (fractional first and last steps) summed with one ``bincount`` and a cumulative sum.
    """
    n_t, dt_h = len(time), _step_hours(time)
    day0 = time[0].floor("D")
    n_days = int((time[-1].floor("D") - day0) / _DAY) + 1
    device = np.repeat(np.arange(len(units)), units)
    arrival_h = np.clip(rng.normal(_ARRIVAL_H, _ARRIVAL_SD_H, (len(device), n_days)), 12.0, 23.75)
    km = rng.gamma(_KM_SHAPE, _KM_MEAN / _KM_SHAPE, (len(device), n_days))
    energy_kwh = np.minimum(km * _KWH_PER_KM, ev_kw * _MAX_CHARGE_H)
    offset_h = (day0 - time[0]) / pd.Timedelta("1h") + 24.0 * np.arange(n_days)
    start = (offset_h + arrival_h) / dt_h  # in steps from time[0]
    end = start + energy_kwh / ev_kw / dt_h
    dev = np.broadcast_to(device[:, None], start.shape)
    diff = np.zeros(len(units) * (n_t + 2))
    for edge, sign in ((start, 1.0), (end, -1.0)):
        edge_c = np.clip(edge, 0.0, n_t)
        whole = np.floor(edge_c).astype(np.int64)
        frac = edge_c - whole
        base = dev * (n_t + 2) + whole
        diff += sign * np.bincount(base.ravel(), (1.0 - frac).ravel(), minlength=diff.size)
        diff += sign * np.bincount((base + 1).ravel(), frac.ravel(), minlength=diff.size)
    share_of_step = np.cumsum(diff.reshape(len(units), n_t + 2), axis=1)[:, :n_t]
    return np.ascontiguousarray(share_of_step.T) * ev_kw / 1000.0
