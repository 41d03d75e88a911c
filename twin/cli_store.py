"""``gridtwin`` subcommands that work on a time-series store: ingest, info, clean, sensors, erase, export-customer,
retention, predict, alarms and ``pf-ts STORE``. Parsing, progress and printing only; the work is in
:mod:`twin.timeseries`. Each has ``--json``: one JSON document on stdout; progress and status go to stderr.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

DEFAULT_PIPELINE = [("deaccumulate", {}), ("clip", {"lo": 0.0})]


def is_store(path: str | Path) -> bool:
    """Whether ``path`` is a gridtwin time-series store folder."""
    meta = Path(path) / "zarr.json"
    if not meta.is_file():
        return False
    try:
        return json.loads(meta.read_text()).get("attributes", {}).get("format", "").startswith("gridtwin-store")
    except (OSError, ValueError):
        return False


def add_store_parsers(sub: argparse._SubParsersAction, fill: Any) -> None:
    """Register the store subcommands on ``sub`` (``fill`` wraps description paragraphs)."""
    _add_ingest(sub, fill)
    info = sub.add_parser("info", help="what a store holds: groups, devices, slots, variables")
    info.add_argument("store", type=Path, metavar="STORE")
    info.add_argument("--json", action="store_true", help="print as JSON")
    info.set_defaults(handler=_run_info)
    clean = sub.add_parser(
        "clean",
        help="apply a cleaning pipeline to a store variable (default: register → interval energy)",
        description=fill(
            "Apply a cleaning pipeline chunk by chunk to one variable of the 'measurements' group and store the "
            "result as another variable, atomically; the pipeline is recorded in the variable's attributes.",
            "The default pipeline turns the cumulative register A_plus (kWh) into interval energy energy_kwh: "
            "deaccumulate (counter resets flagged), then clip negative energy to missing.",
        ),
    )
    clean.add_argument("store", type=Path, metavar="STORE")
    clean.add_argument("--source", default="A_plus", help="variable to read (default: A_plus)")
    clean.add_argument("--target", default="energy_kwh", help="variable to write (default: energy_kwh)")
    clean.add_argument("--pipeline", type=Path, help="a pipeline JSON file (twin.timeseries.clean.Pipeline.to_json)")
    clean.add_argument("--json", action="store_true", help="print what was written as JSON")
    clean.set_defaults(handler=_run_clean)
    sensors = sub.add_parser(
        "sensors",
        help="virtual sensors: meters below each transformer vs its own metering",
        description=fill(
            "Sum the meters below each transformer (their 'trafo' label) and compare with the transformer's metering "
            "in the 'sensors' group: residual, relative error, silent meters and suspected non-technical losses."
        ),
    )
    sensors.add_argument("store", type=Path, metavar="STORE")
    sensors.add_argument("--variable", default="energy_kwh", help="meter variable (interval energy, kWh)")
    sensors.add_argument("--threshold", type=float, default=0.03, help="relative residual that flags NTL (0.03)")
    sensors.add_argument("--json", action="store_true", help="print as JSON")
    sensors.set_defaults(handler=_run_sensors)
    _add_privacy(sub, fill)
    pred = sub.add_parser(
        "predict",
        help="forecast the store's loads and predict transformer and line overloads (risk, lead time, drivers)",
        description=fill(
            "Fit quantile gradient-boosted trees across all loads of STORE's 'loads' group on the last --train-days "
            "(or use --model), forecast P10/P50/P90 over --horizon from just after the last stored slot, solve all "
            "members and steps in one batched AC power flow of --grid, and print the assets at risk (probability of "
            "exceeding 100 %, first time, lead time) and the loads/generators driving the first one. Forecasts and "
            "risk are written to the store's 'forecasts' and 'overload' groups; seconds per stage are printed."
        ),
    )
    pred.add_argument("store", type=Path, metavar="STORE")
    pred.add_argument("--grid", required=True, metavar="CASE", help="the grid the store's loads belong to")
    pred.add_argument("--horizon", default="48h", help="forecast horizon (default 48h)")
    pred.add_argument("--train-days", type=float, default=28, help="days of history to fit on (default 28)")
    pred.add_argument("--model", type=Path, help="a fitted model file (twin.forecast.QuantileGBT.save)")
    pred.add_argument(
        "--weather",
        type=Path,
        help="CSV with columns time (UTC) and temperature_degc and/or ghi_w_m2, measured then forecast, covering the "
        "training days and the horizon",
    )
    pred.add_argument("--json", action="store_true", help="print the ranking as JSON")
    pred.set_defaults(handler=_run_predict)
    alarms = sub.add_parser(
        "alarms",
        help="evaluate alarm rules over a store and list the alarms (acknowledge with --ack)",
        description=fill(
            "Evaluate the rules of RULES (JSON or YAML: threshold with hysteresis and minimum duration, flat-line, "
            "missing data, comparison tunnel, virtual-sensor mismatch; see twin/alarms.py) over the slots of STORE "
            "not evaluated yet, and print the active alarms. Events and rule states are kept in STORE.alarms/, so a "
            "later run continues where this one stopped (an alarm pending its minimum duration carries over)."
        ),
    )
    alarms.add_argument("store", type=Path, metavar="STORE")
    alarms.add_argument("--rules", type=Path, required=True, help="rule spec, .json or .yaml")
    alarms.add_argument("--ack", metavar="ALARM_ID", help="acknowledge this alarm")
    alarms.add_argument("--user", default="", help="who acknowledges (with --ack)")
    alarms.add_argument("--all", action="store_true", help="list cleared alarms too")
    alarms.add_argument("--json", action="store_true", help="print as JSON")
    alarms.set_defaults(handler=_run_alarms)


def _add_ingest(sub: argparse._SubParsersAction, fill: Any) -> None:
    ing = sub.add_parser(
        "ingest",
        help="read meter or sensor files (CSV, Parquet, line protocol) or an InfluxDB server into a store",
        description=fill(
            "Read readings into STORE (created when missing, with --freq and --origin). Every row is stored, counted "
            "as a duplicate (same meter, slot and value: re-ingesting a file is harmless), flagged as a conflict "
            "(another value for a filled slot: the first is kept) or rejected with its reason; nothing is dropped "
            "silently. Each batch is written atomically: an interrupted ingest leaves the batches before it.",
            "Meter ids and customer ids are pseudonymised with a keyed hash; the secret comes from "
            "$GRIDTWIN_SECRET, $GRIDTWIN_SECRET_FILE or ~/.config/gridtwin/secret and is never stored.",
        ),
        epilog=(
            "examples:\n"
            "  gridtwin ingest store.zarr export.csv --device-col Dispositivo --parameter-col Parametro \\\n"
            "      --time-col Data --value-col Valore --decimal , --time-format '%H:%M:%S %d/%m/%Y' --tz Europe/Rome\n"
            "  gridtwin ingest store.zarr trafos.lp --group sensors --device-tag sensor\n"
            "  gridtwin ingest store.zarr --influx http://127.0.0.1:8086 --db meters --measurement meter"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ing.add_argument("store", type=Path, metavar="STORE")
    ing.add_argument("files", type=Path, nargs="*", metavar="FILE")
    ing.add_argument("--format", choices=("long_csv", "wide_csv", "parquet", "line_protocol"), help="default: guessed")
    ing.add_argument("--group", default="measurements", help="'measurements' (meters) or 'sensors' (transformers)")
    for col in ("device", "parameter", "time", "value"):
        ing.add_argument(f"--{col}-col", dest=f"{col}_col", metavar="NAME", help=f"column holding the {col}")
    ing.add_argument("--parameter", help="parameter name when the file has no parameter column")
    ing.add_argument("--sep", help="CSV field separator (default ,)")
    ing.add_argument("--decimal", help="decimal mark (default .)")
    ing.add_argument("--time-format", help="strptime format of the time column (default: ISO 8601)")
    ing.add_argument("--tz", help="time zone of naive timestamps, e.g. Europe/Rome (default UTC)")
    ing.add_argument("--device-tag", help="line protocol: tag holding the device id (default 'device')")
    ing.add_argument("--influx", metavar="URL", help="read from an InfluxDB 1.x server instead of files")
    ing.add_argument("--db", help="InfluxDB database")
    ing.add_argument("--measurement", default="meter", help="InfluxDB measurement (default meter)")
    ing.add_argument("--meters", type=Path, help="Meters table CSV (meter, customer, load, bus, trafo)")
    ing.add_argument("--freq", default="15min", help="slot length of a new store (default 15min)")
    ing.add_argument("--origin", default="2000-01-01", help="first slot of a new store (UTC, default 2000-01-01)")
    ing.add_argument("--rejected", type=Path, help="write every rejected row with its reason to this CSV")
    ing.add_argument("--json", action="store_true", help="print the report as JSON")
    ing.set_defaults(handler=_run_ingest)


def _add_privacy(sub: argparse._SubParsersAction, fill: Any) -> None:
    erase = sub.add_parser(
        "erase",
        help="remove one customer's data from a store (right to be forgotten)",
        description=fill(
            "Erase every value, quality flag and label of CUSTOMER's meters in STORE, in one atomic batch, and clear "
            "per-load series fed only by them. Needs the same pseudonymisation secret the store was written with."
        ),
    )
    erase.add_argument("store", type=Path, metavar="STORE")
    erase.add_argument("customer", metavar="CUSTOMER", help="the customer id in clear")
    erase.add_argument("--json", action="store_true", help="print the counts of what was erased as JSON")
    erase.set_defaults(handler=_run_erase)
    exp = sub.add_parser("export-customer", help="give a customer's data back (portability) as CSV, JSON or netCDF")
    exp.add_argument("store", type=Path, metavar="STORE")
    exp.add_argument("customer", metavar="CUSTOMER")
    exp.add_argument("--out", type=Path, required=True, help="FILE.csv, FILE.json or FILE.nc")
    exp.add_argument("--meters", type=Path, help="Meters table CSV, to put the meter ids back in clear")
    exp.add_argument("--json", action="store_true", help="print what was written as JSON")
    exp.set_defaults(handler=_run_export)
    ret = sub.add_parser("retention", help="set or apply per-variable retention (drop data older than N days)")
    ret.add_argument("store", type=Path, metavar="STORE")
    ret.add_argument("--keep", nargs="*", default=[], metavar="VAR=DAYS", help="e.g. A_plus=730 energy_kwh=3650")
    ret.add_argument("--apply", action="store_true", help="drop the expired data now")
    ret.add_argument("--json", action="store_true", help="print the retention and the cleared slots as JSON")
    ret.set_defaults(handler=_run_retention)


# --- handlers -------------------------------------------------------------------------------------------------
def _open(path: Path, *, create: bool = False, **kw: Any) -> Any:
    from twin.timeseries.store import Store

    if create and not (path / "zarr.json").exists():
        return Store.create(path, **kw)
    return Store.open(path)


def _progress(err: Console) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


def _reader_options(args: argparse.Namespace) -> dict[str, Any]:
    names = {
        "device_col": "device",
        "parameter_col": "parameter",
        "time_col": "time",
        "value_col": "value",
        "sep": "sep",
        "decimal": "decimal",
        "time_format": "time_format",
        "tz": "tz",
        "device_tag": "device_tag",
    }
    opts = {key: getattr(args, attr) for attr, key in names.items() if getattr(args, attr, None) is not None}
    if args.parameter is not None:
        opts["fixed_parameter"] = args.parameter
    return opts


def _run_ingest(args: argparse.Namespace, out: Console, err: Console) -> int:
    from twin.cli import CommandError, print_json
    from twin.timeseries.importer import import_batches, import_files

    if not args.files and not args.influx:
        raise CommandError("nothing to ingest", "give one or more FILEs, or --influx URL --db DB")
    store = _open(args.store, create=True, freq=args.freq, origin=args.origin)
    meters = pd.read_csv(args.meters, dtype=str, index_col=0).fillna("") if args.meters else None
    with _progress(err) as bar:
        task = bar.add_task("reading", total=None)

        def tick(source: str, rows: int) -> None:
            bar.update(task, advance=rows, description=f"{Path(source).name}")

        if args.influx:
            from twin.timeseries.influx import read_influx

            if not args.db:
                raise CommandError("--influx needs --db", "e.g. --db meters")
            batches = read_influx(args.influx, args.db, measurement=args.measurement)
            report = import_batches(store, batches, group=args.group, meters=meters, progress=tick)
        else:
            report = import_files(
                store,
                args.files,
                format=args.format,
                group=args.group,
                meters=meters,
                progress=tick,
                **_reader_options(args),
            )
    if args.rejected is not None:
        report.rejected.to_csv(args.rejected, index=False)
    summary = report.as_dict()
    if args.json:
        print_json(summary)
        return 0
    table = Table(title=f"ingest into {args.store}", show_header=False)
    for key in (
        "rows_read",
        "readings_stored",
        "duplicates",
        "conflicts",
        "rejected",
        "new_devices",
        "time_range",
        "seconds",
        "rows_per_s",
    ):
        table.add_row(key.replace("_", " "), str(summary[key]))
    table.add_row(
        "gaps",
        f"{summary['gaps'].get('missing_slots', 0)} empty slots between the devices' first and last readings",
    )
    out.print(table)
    for reason, count in summary["rejected_by_reason"].items():
        out.print(f"  rejected {count}: {reason}")
    return 0


def _run_info(args: argparse.Namespace, out: Console, err: Console) -> int:
    from twin.cli_output import print_json

    info = _open(args.store).describe()
    if args.json:
        print_json(info)
        return 0
    table = Table(title=f"{info['path']} (slots of {info['freq']})")
    for col in ("group", "devices", "slots", "variables"):
        table.add_column(col)
    for name, g in info["groups"].items():
        table.add_row(name, str(g["devices"]), str(g["slots"]), ", ".join(g["variables"]))
    out.print(table)
    return 0


def _run_clean(args: argparse.Namespace, out: Console, err: Console) -> int:
    from twin.timeseries.clean import Pipeline
    from twin.timeseries.derive import clean_store

    store = _open(args.store)
    pipeline = Pipeline.from_json(args.pipeline.read_text()) if args.pipeline else Pipeline("energy", DEFAULT_PIPELINE)
    t0 = time.perf_counter()
    with _progress(err) as bar:
        task = bar.add_task(f"cleaning {args.source} (device chunks)", total=None)
        clean_store(
            store,
            pipeline,
            source=args.source,
            target=args.target,
            units="kWh",
            progress=lambda k, n: bar.update(task, completed=k, total=n),
        )
    done = {
        "store": str(args.store),
        "source": f"measurements/{args.source}",
        "written": f"measurements/{args.target}",
        "pipeline": json.loads(pipeline.to_json()),
        "chunks": int(bar.tasks[0].completed),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    steps = [f"{name}({', '.join(f'{k}={v}' for k, v in params.items())})" for name, params in pipeline.steps]
    return _print_record(args, done, f"clean {args.store}", out, {"pipeline": f"{pipeline.name}: {', '.join(steps)}"})


def _print_record(
    args: argparse.Namespace, record: dict[str, Any], title: str, out: Console, shown: dict[str, str] | None = None
) -> int:
    """Print ``record`` as JSON (``--json``) or as a two-column table (``shown`` replaces some cells); exit 0."""
    from twin.cli_output import print_json

    if args.json:
        print_json(record)
        return 0
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in {**record, **(shown or {})}.items():
        table.add_row(key.replace("_", " "), _cell(value))
    out.print(table)
    return 0


def _cell(value: Any) -> str:
    """A table cell: dicts as 'key value, ...', lists comma-separated, floats with 4 significant digits."""
    if isinstance(value, dict):
        return ", ".join(f"{k} {_cell(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _run_sensors(args: argparse.Namespace, out: Console, err: Console) -> int:
    from twin.timeseries.sensors import virtual_sensors

    with err.status("summing meters below each transformer ..."):
        result = virtual_sensors(_open(args.store), variable=args.variable, ntl_threshold=args.threshold)
    summary = result.summary
    if args.json:
        counts = {"silent_meters": summary["silent_meters"].map(len), "stuck_meters": summary["stuck_meters"].map(len)}
        print(summary.assign(**counts).to_json(orient="index", indent=2))  # noqa: T201
        return 0
    table = Table(title="virtual sensors: meters + losses vs transformer metering")
    for col in (
        "trafo",
        "meters",
        "complete slots",
        "median rel. error",
        "silent meters",
        "stuck meters",
        "NTL suspected",
    ):
        table.add_column(col)
    for trafo, row in summary.iterrows():
        table.add_row(
            str(trafo),
            str(row["n_meters"]),
            str(row["complete_slots"]),
            f"{row['median_rel_error']:+.2%}",
            str(len(row["silent_meters"])),
            str(len(row["stuck_meters"])),
            "[bold red]yes[/]" if row["ntl_suspected"] else "no",
        )
    out.print(table)
    return 0


def _run_predict(args: argparse.Namespace, out: Console, err: Console) -> int:
    import twin
    from twin.forecast import QuantileGBT
    from twin.timeseries.predict import predict_store

    model = QuantileGBT.load(args.model) if args.model else None
    weather = _read_weather(args.weather) if args.weather else {}
    with err.status("forecasting and solving ..."):
        result = predict_store(
            _open(args.store),
            twin.load(args.grid),
            horizon=args.horizon,
            train_days=args.train_days,
            model=model,
            temperature=weather.get("temperature_degc"),
            irradiance=weather.get("ghi_w_m2"),
        )
    ranking = result.prediction.ranking
    if args.json:
        print(ranking.reset_index().to_json(orient="records", date_format="iso", indent=2))  # noqa: T201
        return 0
    table = Table(title=f"assets at risk over {args.horizon} (p_exceed = P(loading > 100 %))")
    for col in ("asset", "kind", "max p_exceed", "max expected loading", "first exceed", "lead time", "hours at risk"):
        table.add_column(col)
    for asset, row in ranking.head(20).iterrows():
        table.add_row(
            str(asset),
            row["kind"],
            f"{row['max_p_exceed']:.2f}",
            f"{row['max_expected_loading_pct']:.1f} %",
            str(row["first_exceed"]),
            str(row["lead_time"]),
            f"{row['hours_at_risk']:.2f}",
        )
    out.print(table if len(ranking) else "no asset at risk over the horizon")
    if result.drivers is not None:
        from twin.cli_output import frame_table

        out.print(frame_table(result.drivers, f"drivers of {ranking.index[0]} at {ranking.iloc[0]['first_exceed']}"))
    out.print("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in result.seconds.items()))
    return 0


def _read_weather(path: Path) -> dict[str, Any]:
    """``time`` + ``temperature_degc`` / ``ghi_w_m2`` columns → (time,) DataArrays, with errors naming the file."""
    import pandas as pd
    import xarray as xr

    df = pd.read_csv(path)
    if "time" not in df.columns or not {"temperature_degc", "ghi_w_m2"} & set(df.columns):
        raise ValueError(
            f"{path}: needs a 'time' column and 'temperature_degc' and/or 'ghi_w_m2'; has {list(df.columns)}"
        )
    time_ = pd.to_datetime(df["time"], utc=True).dt.tz_localize(None)
    out = {}
    for col in ("temperature_degc", "ghi_w_m2"):
        if col in df.columns:
            values = pd.to_numeric(df[col], errors="coerce")
            if values.isna().any():
                line = int(values.isna().to_numpy().argmax()) + 2
                raise ValueError(f"{path}:{line}: {col} is not a number; fix or drop that row")
            out[col] = xr.DataArray(values.to_numpy(), dims="time", coords={"time": time_.to_numpy()})
    return out


def _run_alarms(args: argparse.Namespace, out: Console, err: Console) -> int:
    from twin.alarms import AlarmBook, read_rules

    book = AlarmBook(args.store.with_name(args.store.name + ".alarms"), read_rules(args.rules))
    if args.ack:
        book.acknowledge(args.ack, args.user, pd.Timestamp.now(tz="UTC").tz_localize(None))
    else:
        with err.status("evaluating the rules ..."):
            new = book.evaluate_store(_open(args.store))
        err.print(f"{len(new)} new alarm events")
    table = book.alarms() if args.all else book.active()
    if args.json:
        print(table.to_json(orient="records", date_format="iso", indent=2))  # noqa: T201
        return 0
    view = Table(title=f"{'all' if args.all else 'active'} alarms of {args.store}")
    for col in ("alarm_id", "rule", "device", "since", "raised", "state", "acknowledged_by"):
        view.add_column(col)
    for _, row in table.iterrows():
        view.add_row(
            *(
                str(row.get(c, ""))
                for c in ("alarm_id", "rule", "device", "since", "raised", "state", "acknowledged_by")
            )
        )
    out.print(view)
    return 0


def _run_erase(args: argparse.Namespace, out: Console, err: Console) -> int:
    from twin.timeseries.privacy import erase_customer

    with err.status(f"erasing customer {args.customer} ..."):
        counts = erase_customer(_open(args.store), args.customer)
    return _print_record(args, {"customer": args.customer, **counts}, f"erased from {args.store}", out)


def _run_export(args: argparse.Namespace, out: Console, err: Console) -> int:
    from twin.cli import CommandError
    from twin.timeseries.privacy import export_customer

    suffix = args.out.suffix
    if suffix not in (".nc", ".csv", ".json"):
        raise CommandError(f"--out {args.out}: unknown suffix {suffix!r}", "use .csv, .json or .nc")
    meters = pd.read_csv(args.meters, dtype=str, index_col=0).fillna("") if args.meters else None
    with err.status(f"exporting customer {args.customer} ..."):
        ds = export_customer(_open(args.store), args.customer, meters)
    if suffix == ".nc":
        ds.to_netcdf(args.out)
    elif suffix in (".csv", ".json"):
        frame = (
            ds.drop_vars([v for v in ds.data_vars if str(v).startswith("quality_")]).to_dataframe().dropna(how="all")
        )
        frame.to_csv(args.out) if suffix == ".csv" else frame.reset_index().to_json(
            args.out, orient="records", date_format="iso", indent=1
        )
    record = {
        "customer": args.customer,
        "written": str(args.out),
        "sizes": {str(dim): int(n) for dim, n in ds.sizes.items()},
        "variables": sorted(str(v) for v in ds.data_vars),
    }
    return _print_record(args, record, f"export of customer {args.customer}", out)


def _run_retention(args: argparse.Namespace, out: Console, err: Console) -> int:
    from twin.cli import CommandError

    store = _open(args.store)
    keep = {}
    for item in args.keep:
        var, _, days = item.partition("=")
        if not days:
            raise CommandError(f"--keep {item!r}: expected VAR=DAYS", "e.g. --keep A_plus=730")
        keep[var] = float(days)
    if keep:
        store.set_retention(keep)
    cleared: dict[str, int] = {}
    if args.apply:
        with err.status("dropping expired data ..."):
            cleared = store.apply_retention()
    record = {"retention_days": dict(store.attrs.get("retention_days", {})), "cleared_slots": cleared}
    return _print_record(args, record, f"retention of {args.store}", out)


def run_pf_ts_store(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``gridtwin pf-ts STORE --grid CASE``: out-of-core time-series power flow over the store's loads."""
    from twin.cli import CommandError
    from twin.timeseries.powerflow import run_pf_store

    if not args.grid:
        raise CommandError("pf-ts on a store needs --grid", "e.g. --grid 1-MV-urban--0-sw or --grid grid.json")
    import twin

    store = _open(Path(args.case))
    with err.status(f"loading {args.grid} ..."):
        grid = twin.load(args.grid)
    with _progress(err) as bar:
        task = bar.add_task("power flow (steps)", total=None)
        report = run_pf_store(
            store,
            grid,
            method=args.method,
            tol_mva=args.tol_mva,
            progress=lambda k, n: bar.update(task, completed=k, total=n),
        )
    summary = {
        **asdict(report),
        "solve_s": round(report.solve_s, 3),
        "io_s": round(report.io_s, 3),
        "written": f"{args.case}/results",
    }
    return _print_record(args, summary, f"AC power flow over {args.case}", out)
