"""The closed control loop on embedded data: meters → store → forecast → plan → dispatch → AC confirmation → report.

:func:`run_loop` runs every stage of the twin on a SimBench grid with synthesised meter data (nothing downloaded):

1. **synthesise**: grid and smart-meter registers of the loads for the history window before the issue day
   (:func:`twin.timeseries.demo.synthesise`, written as head-end files);
2. **twin**: sgens and storage marked ``controllable``, a generated comm layer (:func:`twin.commgen.generate_comm`),
   the :class:`~twin.graph.MultiLayerGraph` and the devices reachable now, each with its gateway;
3. **ingest / clean / loads**: files → store → interval energy → per-load P and Q (as ``gridtwin demo``);
4. **virtual sensors**: transformer metering against its meters, technical losses from a store power flow;
5. **telemetry**: PV inverter and storage output of the same window (SimBench profiles) as ``sgens``/``storage``;
6. **predict**: :func:`twin.timeseries.predict.predict_store`, 24 h, issued at the issue day 00:00;
7. **plan**: :func:`solvers.shedding.plan_shedding` on one forecast member (see ``member``), reachable devices only;
8. **dispatch**: the commands over MQTT (a private Mosquitto unless ``broker`` is given) to a simulated
   :class:`~twin.dispatch.GatewayFleet` whose ``on_apply`` lowers the twin's profiles; in process when no broker runs;
9. **confirm**: AC power flow of the forecast member and of the issue day's *actual* SimBench profiles, before and
   after the applied curtailment.

Time labels: meter data is labelled at the **end** of its interval (``docs/design/timeseries.md``), SimBench
profiles and control commands at the **start**. The store stays end-labelled (telemetry is shifted by one step when
written), the forecast is issued one step after midnight in store labels (so its history includes the interval
ending at 00:00) and shifted back by one step, so that the plan, the commands and the actual profiles all label
the issue day's intervals 00:00 … 23:45 by their start. Design notes: ``docs/design/loop.md``.
"""

from __future__ import annotations

import shutil
import time
import uuid
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr
from rich.console import Console

if TYPE_CHECKING:
    from collections.abc import Iterator

    from solvers.shedding import ControlPlan
    from twin.comm import CommLayer
    from twin.dispatch import ExecutionReport, GatewayFleet
    from twin.grid import Grid
    from twin.timeseries.demo import DemoData
    from twin.timeseries.sensors import VirtualSensors
    from twin.timeseries.store import Store

__all__ = ["CASES", "DEFAULT_CODE", "LoopResult", "build_twin", "run_loop"]

DEFAULT_CODE = "1-LV-rural1--2-sw"  # PV-driven: its transformer exceeds 100 % for ~600 h from March to October
STEP = pd.Timedelta("15min")
PROFILE_YEAR_START = pd.Timestamp("2016-01-01")  # SimBench profiles cover 2016 only
CASES = ("forecast_before", "forecast_after", "actual_before", "actual_after")
DISPATCH_MODES = ("auto", "mqtt", "in-process")


@dataclass
class LoopResult:
    """What :func:`run_loop` did, stage by stage.

    Attributes
    ----------
    store : Path
        The store built from the synthesised meter data.
    issued : Timestamp
        Issue time of the forecast (the issue day 00:00, UTC-naive).
    history_days : int
        Days of meter data and telemetry before the issue day.
    seconds : dict of str to float
        Wall-clock seconds per stage, s.
    ranking : DataFrame
        At-risk assets of the forecast (:attr:`twin.overload.OverloadPrediction.ranking`), ``first_exceed`` as the
        start of the interval.
    member : str
        Which forecast member the plan was computed on.
    plan : ControlPlan
        The curtailment plan.
    execution : ExecutionReport
        Dispatch report: per command status, attempts, latency.
    applied : DataFrame
        Commands the gateways applied (:attr:`twin.dispatch.GatewayFleet.applied`).
    loading_pct : DataArray (case, time, branch)
        AC loading, %, for the cases :data:`CASES` (forecast member / actual day, before / after the plan).
    forecast_loading_pct : DataArray (quantile, time, branch)
        AC loading of every forecast quantile member, %.
    assets : DataFrame
        Per protected asset (index ``branch``): ``kind``, maximum loading per case (``<case>_max_pct``),
        ``actual_hours_over_before``/``_after`` (h above the limit of 100 %) and ``actual_excess_after_pct``.
    virtual_sensors : VirtualSensors
        Transformer metering against its meters over the history.
    limit_pct : float
        Loading limit the plan keeps (100 × (1 − margin)), %.
    broker : str
        Broker URL of the dispatch, or ``in-process``.
    report : Path or None
        The HTML report, when written.
    notes : list of str
        What the reader should know: fallbacks, forecast error left after the plan.
    """

    store: Path
    issued: pd.Timestamp
    history_days: int
    seconds: dict[str, float]
    ranking: pd.DataFrame
    member: str
    plan: ControlPlan
    execution: ExecutionReport
    applied: pd.DataFrame
    loading_pct: xr.DataArray
    forecast_loading_pct: xr.DataArray
    assets: pd.DataFrame
    virtual_sensors: VirtualSensors
    limit_pct: float
    broker: str
    report: Path | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """Return a short text report: stages, plan, dispatch and loading before/after per asset."""
        counts = self.execution.counts
        lines = [
            f"issued {self.issued} with {self.history_days} days of history; {len(self.ranking)} assets at risk",
            f"plan on the {self.member} member: {len(self.plan.commands)} commands, status {self.plan.status}",
            f"dispatch via {self.broker}: {self.execution.state} ({counts})",
            "",
            self.assets.to_string(float_format=lambda v: f"{v:.1f}"),
            "",
            "seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in self.seconds.items()),
        ]
        lines += [f"note: {n}" for n in self.notes]
        if self.report is not None:
            lines.append(f"report: {self.report}")
        return "\n".join(lines)


# -- stage helpers ----------------------------------------------------------------------------------------------------
def _history_window(issue_day: Any, history_days: int | None) -> tuple[pd.Timestamp, int]:
    """Issue time (midnight) and the number of history days, checked against the SimBench year."""
    issued = pd.Timestamp(issue_day)
    if issued.tzinfo is not None:
        issued = issued.tz_convert("UTC").tz_localize(None)
    if issued != issued.normalize():
        raise ValueError(f"issue_day={issue_day!r} is not a midnight; give a date such as '2016-06-01'")
    available = (issued - PROFILE_YEAR_START).days
    if not PROFILE_YEAR_START <= issued <= pd.Timestamp("2016-12-31"):
        raise ValueError(f"issue_day={issue_day!r}: the SimBench profiles cover 2016 only; pick a day in 2016")
    days = min(365, available) if history_days is None else int(history_days)
    if days < 35:
        raise ValueError(
            f"issue_day={issue_day!r} with history_days={days}: the loop needs at least 35 days of history "
            f"(28 to train, 7 for PV); {available} days of 2016 lie before the issue day, pick a day from 2016-02-05"
        )
    if days > available:
        raise ValueError(
            f"history_days={days}: only {available} days of the SimBench year lie before {issued.date()}; "
            f"use history_days <= {available}"
        )
    return issued, days


def _prepare_path(path: Path, overwrite: bool) -> Path:
    from twin.cli_store import is_store
    from twin.timeseries.store import StoreError

    files = path.with_name(path.name + ".files")
    if path.exists():
        if not (overwrite and is_store(path)):
            raise StoreError(
                f"{path} exists; the loop builds a new store: give another path"
                + (" (or overwrite=True to replace this store)" if is_store(path) else "")
            )
        shutil.rmtree(path)
        shutil.rmtree(files, ignore_errors=True)
    return files


def build_twin(data: DemoData) -> tuple[Grid, CommLayer, pd.DataFrame]:
    """Mark sgens and storage controllable, generate the comm layer; return grid, comm and the reachable devices.

    The reachable devices (``MultiLayerGraph.controllable_now()``) get the ``gateway`` of their controller from
    ``CommLayer.reachability()``, so every command names the gateway it goes to.
    """
    from twin.commgen import generate_comm
    from twin.graph import MultiLayerGraph

    grid = data.grid.copy()
    for kind in ("sgen", "storage"):
        grid[kind]["controllable"] = True
    comm = generate_comm(grid, meters=data.meters, seed=int(data.meta.get("seed", 0)))
    reachable = MultiLayerGraph.from_grid(grid, comm).controllable_now()
    gateway = comm.reachability()["gateway"]
    reachable["gateway"] = gateway.reindex(reachable["controller"]).fillna("").to_numpy()
    return grid, comm, reachable


def _ingest(store: Store, data: DemoData, files: Path, grid: Grid) -> VirtualSensors:
    """Head-end files → store → interval energy → per-load series → virtual sensors (as ``run_demo``)."""
    from twin.graph import MultiLayerGraph
    from twin.timeseries import demo
    from twin.timeseries.demo_run import CSV_OPTIONS, ENERGY_PIPELINE, branch_areas
    from twin.timeseries.derive import clean_store, write_loads
    from twin.timeseries.importer import import_files
    from twin.timeseries.powerflow import run_pf_store
    from twin.timeseries.sensors import losses_below, virtual_sensors

    written = demo.write_demo_files(data, files)
    import_files(store, [written["readings"]], format="long_csv", meters=data.meters, **CSV_OPTIONS)
    import_files(store, [written["sensors"]], format="line_protocol", group="sensors", device_tag="sensor")
    clean_store(store, ENERGY_PIPELINE, source="A_plus", target="energy_kwh", units="kWh")
    metered = grid.copy()  # the meters' world: import only, no PV or storage (see twin.timeseries.demo)
    for kind in ("sgen", "storage"):
        metered[kind]["p_mw"] = 0.0
    write_loads(store, metered, "energy_kwh")
    run_pf_store(store, metered)
    losses = losses_below(store.dataset("results").load(), branch_areas(MultiLayerGraph.from_grid(metered)))
    return virtual_sensors(store, losses_kw=losses)


def _write_telemetry(store: Store, profiles: xr.Dataset) -> None:
    """PV inverter and storage output (start-labelled SimBench rows) into ``sgens``/``storage``, end-labelled."""
    from twin.timeseries.powerflow import write_profiles

    telemetry = profiles[[v for v in ("sgen_p_mw", "storage_p_mw") if v in profiles]]
    write_profiles(store, telemetry.assign_coords(time=telemetry["time"].to_index() + STEP))


def _members(forecasts: xr.Dataset, loading: xr.DataArray) -> xr.Dataset:
    """The forecast members whose loading ``loading`` holds: quantiles, or load × generation quantile samples."""
    if "quantile" in loading.dims:
        return forecasts.rename(quantile="member")
    from twin.overload import cross_members  # the members predict_overloads ran for quantile forecasts with PV

    crossed, _ = cross_members({name: forecasts[name] for name in forecasts.data_vars})
    members = xr.Dataset(crossed).reindex(sample=loading["sample"].values)
    return members.rename(sample="member")


def _choose_member(
    forecasts: xr.Dataset, loading: xr.DataArray, assets: pd.Index, member: Any
) -> tuple[xr.Dataset, str]:
    """One forecast trajectory: a quantile of everything, or per step the member with the highest loading of ``assets``.

    ``loading`` is ``(member, time, branch)``, the members of :func:`_members`.
    """
    if member == "max":
        members = _members(forecasts, loading)
        watched = loading.sel(branch=assets.to_numpy()) if len(assets) else loading
        pick = watched.max("branch").fillna(-np.inf).argmax(watched.dims[0])
        chosen = members.isel(member=xr.DataArray(pick.to_numpy(), dims="time")).drop_vars("member")
        return chosen, "per-step highest-loading"
    quantiles = forecasts["quantile"].to_numpy().astype(float)
    q = float(member)
    if not np.isclose(quantiles, q).any():
        raise ValueError(f"member={member!r}: the forecast has quantiles {quantiles.tolist()}; pick one or 'max'")
    return forecasts.sel(quantile=q, method="nearest").drop_vars("quantile"), f"P{round(100 * q)}"


def _loading(grid: Grid, cases: dict[str, xr.Dataset]) -> xr.DataArray:
    """AC loading (case, time, branch), %, one batched power flow per case on one compiled model."""
    from solvers import compile_grid, run_pf_timeseries

    model = compile_grid(grid)
    out = []
    for name, profiles in cases.items():
        inputs = {v: profiles[v] for v in ("load_p_mw", "load_q_mvar", "sgen_p_mw", "storage_p_mw") if v in profiles}
        res = run_pf_timeseries(model, **inputs)
        out.append(res["loading_pct"].expand_dims(case=[name]))
    return xr.concat(out, dim="case").assign_attrs(units="%")


def _asset_table(loading: xr.DataArray, ranking: pd.DataFrame, kinds: pd.Series) -> pd.DataFrame:
    """Per protected asset (at risk in the forecast, and every transformer): maxima and hours over 100 %."""
    ids = pd.Index(ranking.index).union(kinds.index[kinds.to_numpy() == "trafo"])
    sel = loading.sel(branch=ids.to_numpy())
    table = pd.DataFrame({"kind": kinds.reindex(ids).to_numpy()}, index=pd.Index(ids, name="branch"))
    for case in CASES:
        table[f"{case}_max_pct"] = sel.sel(case=case).max("time").to_numpy()
    step_h = STEP / pd.Timedelta("1h")
    for when in ("before", "after"):
        table[f"actual_hours_over_{when}"] = (sel.sel(case=f"actual_{when}") > 100.0).sum("time").to_numpy() * step_h
    table["actual_excess_after_pct"] = np.maximum(table["actual_after_max_pct"] - 100.0, 0.0)
    return table


def _synthesise(code: str, issued: pd.Timestamp, days: int, seed: int) -> DemoData:
    """Meter registers of the loads over ``days`` before ``issued`` (no unmetered load: the actual day is SimBench)."""
    from twin.timeseries import demo

    return demo.synthesise(code, start=issued - pd.Timedelta(days=days), days=days, seed=seed, ntl_trafos=0)


def _create_store(path: Path, start: pd.Timestamp) -> Store:
    from twin.timeseries.store import Store

    return Store.create(path, origin=str(start.date()), freq="15min")


def _write_twin_files(path: Path, grid: Grid, comm: CommLayer) -> None:
    """Write the grid (``<path>.grid.json``) and comm layer (``<path>.comm/``) next to the store, and record them.

    The store's attributes ``grid_file`` and ``comm_dir`` name them relative to the store's folder, so that
    ``gridtwin serve STORE`` finds the twin without ``--grid``/``--comm`` (and a moved folder keeps working).
    """
    import zarr

    from twin.comm import write_comm
    from twin.io.gridfile import write_grid

    grid_file = write_grid(grid, path.with_name(path.name + ".grid.json"))
    comm_dir = write_comm(comm, path.with_name(path.name + ".comm"))
    root = zarr.open_group(str(path), mode="r+", zarr_format=3)
    root.attrs.update({"grid_file": grid_file.name, "comm_dir": comm_dir.name})


def _simbench_days(code: str, issued: pd.Timestamp, days: int) -> xr.Dataset:
    """SimBench profiles (start-labelled) from ``days`` before ``issued`` to the end of the issue day."""
    import twin

    first = int((issued - pd.Timedelta(days=days) - PROFILE_YEAR_START) / STEP)
    profiles = twin.read_simbench_profiles(code, steps=slice(first, first + (days + 1) * 96))
    ids = {d: profiles[d].to_numpy().astype(object) for d in profiles.dims if d != "time"}
    return profiles.assign_coords(ids)


def _plan(grid: Grid, profiles: xr.Dataset, reachable: pd.DataFrame, assets: pd.Index, margin: float) -> ControlPlan:
    """Protect the assets the forecast raised an alarm for (none: an empty plan), with reachable devices only."""
    from solvers.shedding import plan_shedding

    return plan_shedding(grid, profiles, controllable=reachable, assets=assets.tolist(), margin=margin)


def _plan_notes(plan: ControlPlan, ranking: pd.DataFrame, execution: ExecutionReport, worst_pct: float) -> list[str]:
    notes = []
    if ranking.empty:
        notes.append(
            "the forecast raises no overload alarm for the issue day (no asset reaches p_exceed 0.5); nothing was "
            f"planned (the highest-loading member peaks at {worst_pct:.1f} %)"
        )
    if not plan.is_feasible:
        notes.append(f"the plan cannot keep every limit on the forecast: {plan.reason}")
    if execution.state != "executed":
        bad = execution.commands[execution.commands["status"] != "applied"]
        notes.append(f"dispatch {execution.state}: {len(bad)} commands not applied ({bad['reason'].iloc[0]})")
    return notes


# -- dispatch ---------------------------------------------------------------------------------------------------------
class _TwinProfiles:
    """The twin's profiles of the issue day; each applied command lowers them (the fleet's ``on_apply``)."""

    def __init__(self, profiles: dict[str, xr.Dataset]) -> None:
        self.profiles = dict(profiles)

    def apply(self, command: dict[str, Any]) -> None:
        """Lower every held profile by one command; raise (→ rejection) for an element the twin lacks."""
        from twin.dispatch import apply_to_profiles

        row = pd.DataFrame([command])
        for col in ("start", "end"):
            row[col] = pd.to_datetime(row[col], utc=True).dt.tz_localize(None).astype("datetime64[ns]")
        row["kw"] = row["kw"].astype(float)
        self.profiles = {name: apply_to_profiles(row, ds) for name, ds in self.profiles.items()}


def _dispatch(
    plan: ControlPlan, comm: CommLayer, twin: _TwinProfiles, broker: str | None, mode: str, notes: list[str]
) -> tuple[ExecutionReport, GatewayFleet, str]:
    """Send the plan's commands to a simulated fleet over MQTT (private broker unless given) or in process."""
    from twin.dispatch import GatewayFleet, MosquittoBroker, dispatch_in_process, dispatch_plan

    plan_id = f"loop-{uuid.uuid4().hex[:12]}"
    dev = comm.devices
    ids, commands = sorted(dev.index[dev["kind"].isin(["gateway", "controller"]).to_numpy()]), plan.commands
    with ExitStack() as stack:
        if mode != "in-process" and broker is None:
            try:  # only a missing broker binary falls back; errors of the dispatch itself propagate
                broker = stack.enter_context(MosquittoBroker()).url
            except FileNotFoundError as err:
                if mode == "mqtt":
                    raise FileNotFoundError(f"dispatch='mqtt' needs a broker: {err}") from err
                notes.append(f"no MQTT broker: mosquitto is not installed ({err}); commands were dispatched in process")
        if mode != "in-process" and broker is not None:
            fleet = stack.enter_context(GatewayFleet(ids, broker=broker, on_apply=twin.apply))
            return dispatch_plan(commands, broker, plan_id=plan_id), fleet, broker
    fleet = GatewayFleet(ids, on_apply=twin.apply)
    return dispatch_in_process(commands, fleet, plan_id=plan_id), fleet, "in-process"


def _error_notes(assets: pd.DataFrame, limit_pct: float) -> list[str]:
    """Say how much over the limit the actual day stays after the plan (forecast error), per asset."""
    notes = []
    for asset, row in assets.iterrows():
        if row["actual_after_max_pct"] > 100.0:
            notes.append(
                f"{asset}: on the actual day the loading still reaches {row['actual_after_max_pct']:.1f} % after the "
                f"plan ({row['actual_hours_over_after']:.2f} h above 100 %, before: "
                f"{row['actual_before_max_pct']:.1f} %, {row['actual_hours_over_before']:.2f} h): the forecast "
                f"under-estimated the loading at those steps; the plan kept the forecast at "
                f"{row['forecast_after_max_pct']:.1f} % (limit {limit_pct:.1f} %)"
            )
        elif row["actual_before_max_pct"] > 100.0:
            notes.append(
                f"{asset}: actual loading {row['actual_before_max_pct']:.1f} % → {row['actual_after_max_pct']:.1f} % "
                f"after the plan (limit 100 %)"
            )
    return notes


# -- the loop ---------------------------------------------------------------------------------------------------------
@contextmanager
def _stage(name: str, seconds: dict[str, float], console: Console) -> Iterator[None]:
    t0 = time.perf_counter()
    with console.status(f"{name} ..."):
        yield
    seconds[name] = round(time.perf_counter() - t0, 3)


def _predict(
    store: Store, grid: Grid, issued: pd.Timestamp, member: Any
) -> tuple[pd.DataFrame, xr.DataArray, xr.Dataset, str]:
    """Forecast the issue day and pick the plan's member; times moved to interval starts (see module docstring)."""
    from twin.timeseries.predict import predict_store

    pred = predict_store(store, grid, horizon="24h", issued=issued + STEP, write=True)
    forecasts = pred.forecasts.assign_coords(time=pred.forecasts["time"].to_index() - STEP)
    loading = pred.prediction.risk["loading_pct"]
    loading = loading.assign_coords(time=loading["time"].to_index() - STEP)
    ranking = pred.prediction.ranking.copy()
    ranking["first_exceed"] = ranking["first_exceed"] - STEP
    chosen, name = _choose_member(forecasts, loading, ranking.index, member)
    return ranking, loading, chosen, name


def run_loop(
    path: str | Path,
    *,
    code: str = DEFAULT_CODE,
    issue_day: Any = "2016-06-01",
    history_days: int | None = None,
    seed: int = 0,
    broker: str | None = None,
    dispatch: str = "auto",
    member: str | float = "max",
    margin: float = 0.05,
    report: str | Path | None = None,
    console: Console | None = None,
    overwrite: bool = False,
) -> LoopResult:
    """Run the closed control loop on embedded data (see the module docstring) and write its HTML report.

    Parameters
    ----------
    path : str or Path
        Store to build; must not exist unless ``overwrite`` and it is a gridtwin store. Head-end files go to
        ``<path>.files``.
    code : str
        SimBench code; the default overloads its transformer with PV from March to October.
    issue_day : str or Timestamp
        Day to forecast, plan and confirm (UTC midnight, in 2016).
    history_days : int, optional
        Days of meter data before the issue day; default as many as the SimBench year holds, at most 365 (≥ 35).
    seed : int
        Seed of the synthesised meters and the comm layer.
    broker : str, optional
        ``mqtt://host:port`` of a running broker; None starts a private Mosquitto.
    dispatch : {"auto", "mqtt", "in-process"}
        ``auto``: MQTT, falling back to in process (with a note) when Mosquitto is not installed; ``mqtt``: MQTT
        or an error; ``in-process``: no broker.
    member : "max" or float
        Forecast trajectory to plan on: ``"max"`` takes, per step, the quantile member with the highest predicted
        loading of the at-risk assets; a float takes that quantile (0.5 → P50).
    margin : float
        Share of the rating kept free by the plan (0.05 → 95 %).
    report : str or Path, optional
        HTML report to write; default ``<path>.html``.
    console : rich Console, optional
        Where progress goes (stderr by default).
    overwrite : bool
        Replace an existing store at ``path``.

    Returns
    -------
    LoopResult
    """
    if dispatch not in DISPATCH_MODES:
        raise ValueError(f"dispatch={dispatch!r}: choose one of {DISPATCH_MODES}")
    if member != "max" and not (isinstance(member, float | int) and 0.0 < float(member) < 1.0):
        raise ValueError(f"member={member!r}: give 'max' or a quantile level in (0, 1), e.g. 0.5")
    issued, days = _history_window(issue_day, history_days)
    path = Path(path)
    files = _prepare_path(path, overwrite)
    console = console or Console(stderr=True)
    seconds: dict[str, float] = {}
    notes: list[str] = []
    with _stage("synthesise meter data", seconds, console):
        data = _synthesise(code, issued, days, seed)
    with _stage("twin: grid, comm layer, graph", seconds, console):
        grid, comm, reachable = build_twin(data)
    with _stage("ingest, clean, loads, virtual sensors", seconds, console):
        store = _create_store(path, issued - pd.Timedelta(days=days))
        sensors = _ingest(store, data, files, grid)
    with _stage("PV and storage telemetry", seconds, console):
        profiles = _simbench_days(code, issued, days)
        _write_telemetry(store, profiles.sel(time=profiles["time"] < np.datetime64(issued)))
    with _stage("predict", seconds, console):
        ranking, fc_loading, chosen, member_name = _predict(store, grid, issued, member)
    with _stage("plan", seconds, console):
        plan = _plan(grid, chosen, reachable, ranking.index, margin)
    actual = profiles.sel(time=profiles["time"] >= np.datetime64(issued))
    twin_profiles = _TwinProfiles({"forecast": chosen, "actual": actual})
    with _stage("dispatch", seconds, console):
        execution, fleet, broker_url = _dispatch(plan, comm, twin_profiles, broker, dispatch, notes)
    with _stage("confirm with AC power flow", seconds, console):
        cases = [chosen, twin_profiles.profiles["forecast"], actual, twin_profiles.profiles["actual"]]
        loading = _loading(grid, dict(zip(CASES, cases, strict=True)))
        assets = _asset_table(loading, ranking, pd.Series(loading["branch_kind"].values, loading["branch"].values))
    _write_twin_files(path, grid, comm)
    worst = float(loading.sel(case="forecast_before").max())
    notes += _plan_notes(plan, ranking, execution, worst) + _error_notes(assets, 100.0 * (1.0 - margin))
    result = LoopResult(
        path, issued, days, seconds, ranking, member_name, plan, execution, fleet.applied, loading,
        fc_loading, assets, sensors, 100.0 * (1.0 - margin), broker_url, None, notes,
    )  # fmt: skip
    with _stage("report", seconds, console):
        from twin.loop_report import write_report

        result.report = write_report(result, path.with_name(path.name + ".html") if report is None else report)
    seconds["total"] = round(sum(v for k, v in seconds.items() if k != "total"), 3)
    return result
