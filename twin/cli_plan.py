"""CLI commands for planning ahead and acting: ``backtest`` (forecast and overload-detection skill over a year),
``shed`` (a verified shedding plan for the stored forecasts, optionally dispatched over MQTT) and
``gateways simulate`` (a simulated gateway fleet on an MQTT broker)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def add_plan_parsers(sub: argparse._SubParsersAction, fill: Any) -> None:
    """Register ``backtest`` on the ``gridtwin`` sub-parsers."""
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
    from twin.cli_store import _open
    from twin.comm import read_comm
    from twin.timeseries.shed import shed_store

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
                plan.commands, args.dispatch, plan_id=result.plan_id, state=state, ack_timeout_s=args.ack_timeout
            )
        except BrokerUnavailableError as error:
            raise ValueError(str(error)) from error
    if args.json:
        doc = {
            "plan_id": result.plan_id,
            "feasible": plan.is_feasible,
            "status": plan.status,
            "objective": plan.objective,
            "commands": json.loads(plan.commands.to_json(orient="records", date_format="iso")),
            "iterations": plan.iterations,
            "reason": plan.reason,
            "execution": None if report is None else report.to_dict(),
        }
        out.print_json(json.dumps(doc, default=str))
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
    sim.set_defaults(handler=_run_gateways)


def _run_gateways(args: argparse.Namespace, out: Console, err: Console) -> int:
    from twin.dispatch import BrokerUnavailableError, simulate_gateways

    try:
        simulate_gateways(args.broker, list(args.gateways), silent=args.silent, duration_s=args.duration)
    except BrokerUnavailableError as error:
        raise ValueError(str(error)) from error
    return 0


def _run_backtest(args: argparse.Namespace, out: Console, err: Console) -> int:
    from twin.backtest_run import report_markdown, run_backtest

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
        progress=not args.json and err.is_terminal,
    )
    if args.out:
        report.to_json(args.out.with_suffix(".json"))
        args.out.with_suffix(".md").write_text(report_markdown(report))
    if args.json:
        out.print_json(json.dumps(report.to_dict(), default=float))
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
