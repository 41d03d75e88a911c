"""CLI commands for planning ahead and acting: ``demo`` (the whole path on embedded data, the control loop
included), ``backtest`` (forecast and overload-detection skill over a year), ``shed`` (a verified shedding plan for
the stored forecasts, optionally dispatched over MQTT) and ``gateways simulate`` (a simulated gateway fleet on an MQTT
broker). Each has ``--json``: one JSON document on stdout; progress and status go to stderr."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def add_plan_parsers(sub: argparse._SubParsersAction, fill: Any) -> None:
    """Register ``demo``, ``backtest``, ``shed`` and ``gateways`` on the ``gridtwin`` sub-parsers."""
    _add_demo(sub, fill)
    bt = sub.add_parser(
        "backtest",
        help="rolling-origin day-ahead backtest of load/PV forecasts and overload detection over a SimBench year",
        description=fill(
            "Forecast every day of the SimBench profile year at 00:00 for the next 24 h, trained only on the "
            "--train-days before that day (loads: quantile gradient-boosted trees, with a temperature forecast on "
            "electrified grids; PV: clear-sky index; storage and other generators: day-naive), score P10/P50/P90 "
            "against day-naive and week-naive (nMAE, pinball loss, P10-P90 coverage), run AC power flow on the "
            "actual profiles and on the forecast members, and score overload alarms per asset-hour (precision, "
            "recall, lead time). Prints the tables and the issue's targets; --out writes JSON and Markdown."
        ),
        epilog=(
            "examples:\n"
            "  gridtwin backtest 1-LV-rural1--2-sw\n"
            "  gridtwin backtest 1-LV-rural1--2-sw --irradiance-error 0.3\n"
            "  gridtwin backtest 1-MV-urban--0-sw --electrify --out mv_backtest\n"
            "  gridtwin backtest 1-MV-urban--0-sw --electrify --start 2016-11-01 --days 30"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bt.add_argument("code", metavar="SIMBENCH_CODE", help="e.g. 1-LV-rural1--2-sw or 1-MV-urban--0-sw")
    bt.add_argument("--electrify", action="store_true", help="add EVs and heat pumps to the households first")
    bt.add_argument("--ev-share", type=float, default=0.6, help="share of households with an EV (default 0.6)")
    bt.add_argument("--hp-share", type=float, default=0.6, help="share with a heat pump (default 0.6)")
    bt.add_argument("--start", help="first issue day (default: first day with --train-days of history)")
    bt.add_argument("--days", type=int, help="number of test days (default: to the end of the year)")
    bt.add_argument("--train-days", type=int, default=28, help="days of history per forecast (default 28)")
    bt.add_argument("--refit-days", type=int, default=7, help="refit the load model every N days (default 7)")
    bt.add_argument(
        "--irradiance-error",
        type=float,
        help="give the PV model a synthetic day-ahead irradiance forecast with this multiplicative error (e.g. 0.3)",
    )
    bt.add_argument("--p-alarm", type=float, default=0.5, help="alarm at this probability of overload (0.5)")
    bt.add_argument("--seed", type=int, default=0)
    bt.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    bt.add_argument("--json", action="store_true", help="print the report as JSON")
    bt.set_defaults(handler=_run_backtest)
    _add_shed(sub, fill)
    _add_gateways(sub, fill)


def _add_demo(sub: argparse._SubParsersAction, fill: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="the whole path on embedded data: meters → store → virtual sensors, then forecast → plan → dispatch → "
        "AC confirmation with an HTML report (no download)",
        description=fill(
            "Part 1 (scale): synthesise household meters below a SimBench grid's loads (registers with resets, gaps, "
            "broken meters, an unmetered load), write them as a head-end CSV export and the transformer metering as "
            "InfluxDB line protocol, then ingest both into STORE, clean, aggregate per load, run time-series power "
            "flow over the store and print the virtual-sensor comparison. Part 2 (the control loop, in "
            "STORE-loop.zarr): build the twin of --loop-grid with its comm layer, synthesise and ingest up to a year "
            "of meter data and PV telemetry before --issue-day, predict that day's overloads, compute and verify a "
            "shedding plan (Pyomo + HiGHS, AC re-check), dispatch it over MQTT to simulated gateways (a private "
            "Mosquitto; in process with a note when none is installed), confirm with AC power flow on the actual "
            "day, and write an HTML report (STORE-loop.html)."
        ),
    )
    demo.add_argument("store", type=Path, metavar="STORE")
    demo.add_argument("--days", type=int, default=14, help="days of 15-minute data (default 14)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--overwrite", action="store_true", help="replace STORE if it is a gridtwin store already")
    demo.add_argument("--no-loop", action="store_true", help="meters part only (no forecast/plan/dispatch loop)")
    demo.add_argument("--loop-only", action="store_true", help="the control loop only")
    demo.add_argument("--loop-grid", default="1-LV-rural1--2-sw", help="SimBench grid of the loop (PV overloads)")
    demo.add_argument("--issue-day", default="2016-06-01", help="day the loop forecasts, plans and confirms")
    demo.add_argument("--broker", help="mqtt://HOST:PORT of a running broker (default: a private Mosquitto)")
    demo.add_argument("--json", action="store_true", help="print the figures of both parts as JSON")
    demo.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace, out: Console, err: Console) -> int:
    from twin.cli_output import print_json

    doc: dict[str, Any] = {"store": str(args.store), "meters": None, "loop": None}
    if not args.loop_only:
        doc["meters"] = _demo_meters(args, out, err)
    if not args.no_loop:
        doc["loop"] = _demo_loop(args, out, err)
    if args.json:
        print_json(doc)
    return 0


def _demo_meters(args: argparse.Namespace, out: Console, err: Console) -> dict[str, Any]:
    """Part 1 of the demo: meters → store → power flow → virtual sensors; prints a table unless ``--json``."""
    from twin.timeseries.demo_run import run_demo

    t0 = time.perf_counter()
    result = run_demo(args.store, days=args.days, seed=args.seed, console=err, overwrite=args.overwrite)
    seconds = round(time.perf_counter() - t0, 2)
    if not args.json:
        table = Table(title=f"demo store {args.store} (built in {seconds:.1f} s)", show_header=False)
        table.add_column(style="bold")
        table.add_column()
        for line in result["text"].splitlines():
            key, _, value = line.partition(": ")
            table.add_row(key, value)
        out.print(table)
    summary = result["virtual_sensors"].summary
    return {
        "ingest": result["ingest"],
        "sensors_ingest": result["sensors_ingest"],
        "power_flow": asdict(result["pf"]),
        "virtual_sensors": summary.rename_axis("trafo").reset_index(),
        "ntl_suspected": sorted(str(t) for t in summary.index[summary["ntl_suspected"]]),
        "files": {name: str(path) for name, path in result["files"].items()},
        "seconds": {**result["seconds"], "total": seconds},
    }


def _demo_loop(args: argparse.Namespace, out: Console, err: Console) -> dict[str, Any]:
    """Part 2 of the demo: the control loop; prints its tables unless ``--json``."""
    from twin.cli_output import frame_table
    from twin.loop import run_loop

    t1 = time.perf_counter()
    loop_path = args.store.with_name(args.store.stem + "-loop.zarr")
    if not args.json:
        out.print(f"\nthe control loop on {args.loop_grid} (overloads by PV), issue day {args.issue_day}:")
    loop = run_loop(
        loop_path,
        code=args.loop_grid,
        issue_day=args.issue_day,
        seed=args.seed,
        broker=args.broker,
        report=args.store.with_name(args.store.stem + "-loop.html"),
        console=err,
        overwrite=args.overwrite,
    )
    seconds = round(time.perf_counter() - t1, 2)
    if not args.json:
        head, _, _ = loop.summary().partition("\n\n")
        out.print(head, markup=False, highlight=False, soft_wrap=True)
        out.print(frame_table(loop.assets, f"protected assets, loading % (limit {loop.limit_pct:.0f} %)"))
        out.print("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in loop.seconds.items()))
        for note in loop.notes:
            out.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
        out.print(f"loop store {loop_path} and report {loop.report} built in {seconds:.1f} s")
    return {
        "store": str(loop_path),
        "report": None if loop.report is None else str(loop.report),
        "issued": loop.issued,
        "history_days": loop.history_days,
        "assets_at_risk": len(loop.ranking),
        "member": loop.member,
        "plan": {"status": loop.plan.status, "commands": len(loop.plan.commands), "objective": loop.plan.objective},
        "execution": loop.execution.to_dict(),
        "assets": loop.assets.rename_axis("branch").reset_index(),
        "notes": list(loop.notes),
        "seconds": {**loop.seconds, "total": seconds},
    }


def _add_shed(sub: argparse._SubParsersAction, fill: Any) -> None:
    sh = sub.add_parser(
        "shed",
        help="compute the minimal load-shedding / curtailment plan for the predicted overloads, verify it by AC "
        "power flow, optionally dispatch it over MQTT",
        description=fill(
            "Take the forecasts that 'gridtwin predict' wrote to STORE (loads and storage at --load-quantile, "
            "generators at --gen-quantile), and compute with Pyomo + HiGHS the curtailment of reachable "
            "controllable devices (--comm; or --all-controllable) that keeps every protected asset (--asset, "
            "default all lines and transformers) under its rating minus --margin at minimal cost-weighted energy, "
            "then fewest commands. The plan is re-checked by AC power flow and re-solved with tightened limits "
            "until it holds (iterations are printed); an infeasible request returns the best plan with the "
            "residual overload and why. The plan is written to STORE's 'plan' group and STORE.plans/PLAN_ID.json; "
            "--dispatch mqtt://HOST:PORT publishes each command to its gateway (QoS 1) and collects the acks."
        ),
        epilog=(
            "examples:\n"
            "  gridtwin predict s.zarr --grid 1-LV-rural1--2-sw --horizon 24h\n"
            "  gridtwin shed s.zarr --grid 1-LV-rural1--2-sw --comm comm/ --asset trafo/0 --horizon 24h\n"
            "  gridtwin shed s.zarr --grid 1-LV-rural1--2-sw --all-controllable --load-quantile 0.1 "
            "--gen-quantile 0.9\n"
            "  gridtwin shed s.zarr --grid 1-LV-rural1--2-sw --comm comm/ --dispatch mqtt://127.0.0.1:1883"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sh.add_argument("store", type=Path, metavar="STORE")
    sh.add_argument("--grid", required=True, metavar="CASE", help="the grid the store belongs to")
    who = sh.add_mutually_exclusive_group()
    who.add_argument("--comm", type=Path, metavar="DIR", help="communication layer (twin.comm.write_comm folder)")
    who.add_argument("--all-controllable", action="store_true", help="every load, generator and storage unit")
    sh.add_argument("--asset", action="append", metavar="ID", help="protect this branch (repeatable; default all)")
    sh.add_argument("--horizon", default="24h", help="plan horizon from the forecast's start (default 24h)")
    sh.add_argument("--load-quantile", type=float, default=0.5, help="forecast quantile of loads (default 0.5)")
    sh.add_argument("--gen-quantile", type=float, default=0.5, help="forecast quantile of generators (default 0.5)")
    sh.add_argument("--margin", type=float, default=0.0, help="share of each rating kept free (0.05 → 95 %%)")
    sh.add_argument("--discrete", action="store_true", help="on/off control per device and step (MILP)")
    sh.add_argument("--max-iter", type=int, default=5, help="AC re-check rounds (default 5)")
    sh.add_argument("--time-limit", type=float, help="HiGHS time limit, seconds")
    sh.add_argument("--dispatch", metavar="URL", help="publish the commands to mqtt://HOST:PORT and collect acks")
    sh.add_argument("--ack-timeout", type=float, default=2.0, help="seconds to wait for each ack (default 2)")
    sh.add_argument("--json", action="store_true", help="print the commands (and execution) as JSON")
    sh.set_defaults(handler=_run_shed)


def _run_shed(args: argparse.Namespace, out: Console, err: Console) -> int:
    import twin
    from twin.cli_output import print_json
    from twin.cli_store import _open
    from twin.comm import read_comm
    from twin.timeseries.shed import shed_store

    with err.status(f"loading {args.grid} ..."):
        grid = twin.load(args.grid)
    comm = "all" if args.all_controllable else (read_comm(args.comm, grid) if args.comm else None)
    with err.status("planning (Pyomo + HiGHS, AC re-check) ..."):
        result = shed_store(
            _open(args.store),
            grid,
            comm=comm,
            assets=args.asset,
            horizon=args.horizon,
            load_quantile=args.load_quantile,
            gen_quantile=args.gen_quantile,
            margin=args.margin,
            discrete=args.discrete,
            max_iter=args.max_iter,
            time_limit_s=args.time_limit,
        )
    plan, report = result.plan, None
    if args.dispatch:
        from twin.dispatch import BrokerUnavailableError, ExecutionState, dispatch_plan

        state = ExecutionState(Path(str(args.store) + ".plans") / "execution.json")
        try:
            report = dispatch_plan(
                plan.commands,
                args.dispatch,
                plan_id=result.plan_id,
                state=state,
                ack_timeout_s=args.ack_timeout,
                progress=err.is_terminal,
            )
        except BrokerUnavailableError as error:
            raise ValueError(str(error)) from error
    if args.json:
        doc = {
            "plan_id": result.plan_id,
            "feasible": plan.is_feasible,
            "status": plan.status,
            "objective": plan.objective,
            "commands": plan.commands,
            "iterations": plan.iterations,
            "reason": plan.reason,
            "execution": None if report is None else report.to_dict(),
        }
        print_json(doc)
        return 0
    _print_plan(result, report, out)
    return 0


def _print_plan(result: Any, report: Any, out: Console) -> None:
    plan = result.plan
    table = Table(title=f"{result.plan_id}: {len(plan.commands)} commands")
    for col in ("element", "kind", "gateway", "start", "end", "kW", "status"):
        table.add_column(col, justify="right" if col == "kW" else "left")
    status = {} if report is None else report.to_frame().set_index("command_id")["status"].to_dict()
    frame = plan.commands if report is None else report.to_frame()
    for _, row in frame.head(40).iterrows():
        table.add_row(
            str(row["element"]),
            str(row["element_kind"]),
            str(row.get("gateway", "")),
            str(row["start"]),
            str(row["end"]),
            f"{row['kw']:.1f}",
            str(status.get(row.get("command_id"), "planned")),
        )
    out.print(table)
    if len(frame) > 40:
        out.print(f"... {len(frame) - 40} more commands in {result.json_path}")
    out.print(plan.summary(), markup=False, highlight=False)
    if report is not None:
        out.print(f"execution: {report.state} ({report.counts})")
    out.print(f"written: store group 'plan', {result.json_path}")


def _add_gateways(sub: argparse._SubParsersAction, fill: Any) -> None:
    gw = sub.add_parser(
        "gateways",
        help="simulated gateway fleet: apply control commands received over MQTT and acknowledge them",
        description=fill(
            "Subcommand 'simulate' connects to an MQTT broker, subscribes to gridtwin/gateway/+/command for the "
            "given gateway ids, applies each command once (duplicate deliveries are acknowledged, not re-applied), "
            "answers on gridtwin/gateway/<id>/ack and prints what it applied, until Ctrl-C or --duration."
        ),
    )
    gw_sub = gw.add_subparsers(dest="gateways_command", required=True, metavar="SUBCOMMAND")
    sim = gw_sub.add_parser("simulate", help="run a simulated fleet in the foreground")
    sim.add_argument("gateways", nargs="+", metavar="GATEWAY_ID", help="gateway device ids of the comm layer")
    sim.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt://[user:pass@]host:port")
    sim.add_argument("--silent", nargs="*", default=[], metavar="ID", help="gateways that never answer (tests)")
    sim.add_argument("--duration", type=float, help="stop after this many seconds (default: until Ctrl-C)")
    sim.add_argument(
        "--json", action="store_true", help="at exit, print the applied commands as JSON (live lines go to stderr)"
    )
    sim.set_defaults(handler=_run_gateways)


def _run_gateways(args: argparse.Namespace, out: Console, err: Console) -> int:
    from twin.cli_output import frame_table, print_json
    from twin.dispatch import BrokerUnavailableError, GatewayFleet

    live = err if args.json else out

    def show(command: dict[str, Any]) -> None:
        live.print(
            f"[green]applied[/] {command['command_id']} plan {command['plan_id']}: {command['element']} "
            f"-{float(command['kw']):.1f} kW {command['start']} → {command['end']} via {command.get('gateway', '')}",
            highlight=False,
        )

    fleet = GatewayFleet(list(args.gateways), broker=args.broker, silent=args.silent, on_apply=show)
    try:
        with fleet:
            err.print(f"{len(fleet.gateways)} gateways listening on {args.broker} ({len(fleet.silent)} silent)")
            _wait(args.duration, err)
    except BrokerUnavailableError as error:
        raise ValueError(str(error)) from error
    applied = fleet.applied
    if args.json:
        doc = {"broker": args.broker, "gateways": sorted(fleet.gateways), "silent": sorted(fleet.silent)}
        print_json({**doc, "deliveries": dict(fleet.deliveries), "applied": applied})
        return 0
    out.print(frame_table(applied, f"{len(applied)} commands applied") if len(applied) else "0 commands applied")
    return 0


def _wait(duration_s: float | None, err: Console) -> None:
    """Wait ``duration_s`` seconds, or until Ctrl-C when None (Ctrl-C also ends a timed wait)."""
    deadline = None if duration_s is None else time.monotonic() + duration_s
    hint = "Ctrl-C stops" if deadline is None else f"for {duration_s:g} s (Ctrl-C stops)"
    try:
        with err.status(f"applying commands {hint} ..."):
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic())))
    except KeyboardInterrupt:
        err.print("stopped")


def _run_backtest(args: argparse.Namespace, out: Console, err: Console) -> int:
    from twin.backtest_run import report_markdown, run_backtest
    from twin.cli_output import library_bars_on_stderr, print_json

    with library_bars_on_stderr():
        report = run_backtest(
            args.code,
            electrify=args.electrify,
            ev_share=args.ev_share,
            hp_share=args.hp_share,
            days=args.days,
            start=args.start,
            train_days=args.train_days,
            refit_days=args.refit_days,
            irradiance_error=args.irradiance_error,
            p_alarm=args.p_alarm,
            seed=args.seed,
            progress=err.is_terminal,
        )
    if args.out:
        report.to_json(args.out.with_suffix(".json"))
        args.out.with_suffix(".md").write_text(report_markdown(report))
    if args.json:
        print_json(report.to_dict())
        return 0
    _print_tables(report, out)
    return 0


def _print_tables(report: Any, out: Console) -> None:
    s = report.settings
    title = f"{report.code}{' + EV/HP' if s['electrify'] else ''}: {s['days']} days from {s['first_issue_day']}"
    table = Table(title=f"Day-ahead forecasts, {title}")
    for col in ("family", "model", "series", "nMAE", "pinball", "P10-P90 cover", "nMAE skill", "pinball skill"):
        table.add_column(col, justify="left" if col in ("family", "model") else "right")
    for (fam, model), r in report.forecast.iterrows():
        table.add_row(
            fam,
            model,
            str(r["n_series"]),
            f"{r['nmae']:.3f}",
            f"{r['pinball_mean']:.4f}",
            f"{r['coverage_p10_p90']:.1%}",
            f"{r['nmae_vs_week_naive']:+.1%}",
            f"{r['pinball_mean_vs_week_naive']:+.1%}",
        )
    out.print(table)
    ov = report.overload
    out.print(
        f"Overloads per asset-hour: precision {ov['precision']:.3f}, recall {ov['recall']:.3f} "
        f"({ov['overloaded_asset_hours']} overloaded, {ov['alarmed_asset_hours']} alarmed); events "
        f"{ov['events_detected']}/{ov['events']} detected, median lead {ov['median_lead_h']:.1f} h"
    )
    tg = Table(title="Targets")
    for col in ("target", "goal", "value", "met"):
        tg.add_column(col)
    for name, r in report.targets().iterrows():
        tg.add_row(name, r["goal"], f"{r['value']:.3f}", "yes" if r["met"] else "[red]no[/red]")
    out.print(tg)
    out.print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()))
