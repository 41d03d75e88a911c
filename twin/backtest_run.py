"""``gridtwin backtest``: a year of day-ahead forecasts and overload detection on a SimBench grid, with a report.

:func:`run_backtest` loads the grid and its yearly profiles, optionally electrifies them
(:func:`scenarios.electrify`: EVs and heat pumps, with a synthetic temperature the load model uses as a forecast
input), runs :func:`twin.backtest.run_forecasts` and :func:`twin.backtest_overload.detect`, and checks the issue's
targets. :func:`report_markdown` renders the tables.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

TARGETS = {
    "load nMAE skill vs week-naive": (">=", 0.20),
    "load pinball skill vs week-naive": (">", 0.0),
    "load P10-P90 coverage": ("in", (0.78, 0.82)),
    "overload recall": (">=", 0.90),
    "overload precision": (">=", 0.80),
}


@dataclass
class BacktestReport:
    """Scores of a backtest run: ``forecast`` (per family and model), ``overload`` (dict), ``events``, targets."""

    code: str
    settings: dict[str, Any]
    forecast: pd.DataFrame
    overload: dict[str, Any]
    events: pd.DataFrame
    hourly: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)

    def targets(self) -> pd.DataFrame:
        """One row per target: the measured value and whether it is met."""
        load = self.forecast.xs("load", level="family").loc["model"]
        values = {
            "load nMAE skill vs week-naive": load["nmae_vs_week_naive"],
            "load pinball skill vs week-naive": load["pinball_mean_vs_week_naive"],
            "load P10-P90 coverage": load["coverage_p10_p90"],
            "overload recall": self.overload["recall"],
            "overload precision": self.overload["precision"],
        }
        rows = []
        for name, (op, goal) in TARGETS.items():
            v = float(values[name])
            met = goal[0] <= v <= goal[1] if op == "in" else (v >= goal if op == ">=" else v > goal)
            rows.append({"target": name, "goal": f"{op} {goal}", "value": v, "met": bool(met)})
        return pd.DataFrame(rows).set_index("target")

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (scores, targets, events, settings, seconds)."""
        return {
            "code": self.code,
            "settings": self.settings,
            "forecast": self.forecast.reset_index().to_dict(orient="records"),
            "overload": self.overload,
            "targets": self.targets().reset_index().to_dict(orient="records"),
            "events": self.events.astype({"start": str}).to_dict(orient="records"),
            "seconds": self.seconds,
        }

    def to_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` as JSON to ``path``."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=1, default=float))
        return path


def run_backtest(
    code: str,
    *,
    electrify: bool = False,
    ev_share: float = 0.6,
    hp_share: float = 0.6,
    days: int | None = None,
    start: Any = None,
    train_days: int = 28,
    refit_days: int = 7,
    irradiance_error: float | None = None,
    p_alarm: float = 0.5,
    seed: int = 0,
    progress: bool = False,
) -> BacktestReport:
    """Backtest day-ahead forecasts and overload detection on SimBench grid ``code`` over its profile year.

    Parameters
    ----------
    electrify : bool
        Add EVs (``ev_share``) and heat pumps (``hp_share``) to every household load first.
    days, start : optional
        Test days and first issue day; default every day from the first with ``train_days`` of history.
    irradiance_error : float, optional
        Give the PV model a synthetic day-ahead irradiance forecast with this multiplicative error (see
        :func:`twin.backtest.synthetic_irradiance_forecast`); None: clear-sky index from history only.
    p_alarm : float
        Probability of exceeding 100 % at which an asset-hour is alarmed.
    """
    import twin
    from twin.backtest import run_forecasts
    from twin.backtest_overload import detect

    t0 = time.perf_counter()
    grid, profiles = twin.load(code), twin.read_simbench_profiles(code)
    if electrify:
        from scenarios import electrify as add_ev_hp

        grid, profiles = add_ev_hp(grid, profiles, ev_share=ev_share, hp_share=hp_share, seed=seed)
        profiles = profiles.drop_vars("n_units")
    seconds = {"load grid and profiles": time.perf_counter() - t0}
    bt = run_forecasts(
        profiles,
        code=code,
        start=start,
        days=days,
        train_days=train_days,
        refit_days=refit_days,
        irradiance=irradiance_error,
        seed=seed,
        progress=progress,
    )
    seconds.update(bt.seconds)
    det = detect(grid, bt, p_alarm=p_alarm)
    seconds.update(det["seconds"])
    settings = {
        "electrify": electrify,
        "ev_share": ev_share if electrify else 0.0,
        "hp_share": hp_share if electrify else 0.0,
        "first_issue_day": str(bt.issue_days[0].date()),
        "days": len(bt.issue_days),
        "train_days": train_days,
        "refit_days": refit_days,
        "irradiance_error": irradiance_error,
        "p_alarm": p_alarm,
        "seed": seed,
    }
    return BacktestReport(code, settings, bt.scores, det["scores"], det["events"], det["hourly"], seconds)


def report_markdown(report: BacktestReport) -> str:
    """Markdown tables: forecast scores per family and model, overload detection, targets."""
    s = report.settings
    head = (
        f"### Backtest {report.code}{' electrified' if s['electrify'] else ''}: {s['days']} days from "
        f"{s['first_issue_day']}, issued 00:00 for the next 24 h, {s['train_days']} training days\n"
    )
    cols = ["n_series", "nmae", "pinball_mean", "coverage_p10_p90", "nmae_vs_week_naive", "pinball_mean_vs_week_naive"]
    fc = _md(report.forecast[cols].reset_index())
    ov = _md(pd.Series(report.overload).rename_axis("overload detection").reset_index(name="value"))
    tg = _md(report.targets().reset_index())
    return f"{head}\n{fc}\n\n{ov}\n\nTargets:\n\n{tg}\n"


def _md(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table, floats with 3 decimals."""

    def cell(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)
