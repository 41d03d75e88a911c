"""The closed control loop on embedded data: store → forecast → plan → MQTT dispatch → AC confirmation → HTML report."""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

import twin.dispatch
from twin.dispatch import MosquittoBroker
from twin.loop import LoopResult, run_loop
from twin.timeseries.store import StoreError

DAY = "2016-06-01"
QUIET = {"history_days": 35, "issue_day": DAY}


def _console() -> Console:
    return Console(file=io.StringIO())


@pytest.fixture(scope="module")
def broker() -> Iterator[MosquittoBroker]:
    """A private ``mosquitto`` on a loopback port (skipped only when Mosquitto is not installed)."""
    if shutil.which("mosquitto") is None and shutil.which("mosquitto", path="/usr/sbin") is None:
        pytest.skip("mosquitto is not installed (Debian/Ubuntu: apt-get install mosquitto); CI installs it")
    with MosquittoBroker() as server:
        yield server


@pytest.fixture(scope="module")
def loop(broker: MosquittoBroker, tmp_path_factory: pytest.TempPathFactory) -> LoopResult:
    """One loop over 35 days of history, dispatched over the test's own broker."""
    path = tmp_path_factory.mktemp("loop") / "store"
    return run_loop(path, broker=broker.url, console=_console(), **QUIET)


def test_loop_dispatches_every_command_over_mqtt(loop: LoopResult, broker: MosquittoBroker) -> None:
    commands = loop.plan.commands
    assert loop.broker == broker.url
    assert "trafo/0" in loop.ranking.index  # the PV overload is predicted
    assert len(commands) > 0
    assert loop.execution.state == "executed"
    assert loop.execution.counts == {"applied": len(commands), "rejected": 0, "failed": 0}
    assert len(loop.applied) == len(commands)
    assert sorted(loop.applied["element"]) == sorted(commands["element"])
    assert np.allclose(np.sort(loop.applied["kw"]), np.sort(commands["kw"]))
    assert set(commands["element_kind"]) <= {"sgen", "storage"}  # only the devices marked controllable
    assert (commands["gateway"] != "").all()  # each command names the gateway its controller sits behind
    issued = pd.Timestamp(DAY)
    assert (commands["start"] >= issued).all()
    assert (commands["end"] <= issued + pd.Timedelta("1D")).all()


def test_plan_holds_the_limit_on_the_forecast_it_was_made_for(loop: LoopResult) -> None:
    fc = loop.loading_pct.sel(branch=loop.assets.index.to_numpy())
    assert float(fc.sel(case="forecast_before").max()) > 100.0  # a real overload
    assert float(fc.sel(case="forecast_after").max()) <= loop.limit_pct + 0.05
    assert loop.limit_pct == pytest.approx(95.0)
    assert loop.assets.loc["trafo/0", "forecast_after_max_pct"] == pytest.approx(
        float(fc.sel(case="forecast_after", branch="trafo/0").max())
    )


def test_actual_day_is_confirmed_and_lowered(loop: LoopResult) -> None:
    row = loop.assets.loc["trafo/0"]
    assert row["actual_before_max_pct"] > 100.0
    assert row["actual_after_max_pct"] < row["actual_before_max_pct"]
    assert row["actual_hours_over_after"] < row["actual_hours_over_before"]
    if row["actual_after_max_pct"] > 100.0:  # forecast error left over: the run must say so
        assert any("trafo/0" in n and "under-estimated" in n for n in loop.notes)
    # outside every command's window the actual day is untouched
    before, after = (
        loop.loading_pct.sel(case=c, branch="trafo/0").to_pandas() for c in ("actual_before", "actual_after")
    )
    idle = np.ones(len(before), dtype=bool)
    for start, end in zip(loop.applied["start"], loop.applied["end"], strict=True):
        idle &= ~((before.index >= start) & (before.index < end))
    assert idle.any()
    assert (~idle).any()
    assert np.allclose(before[idle], after[idle])
    assert (after[~idle] < before[~idle] + 1e-9).all()


def test_report_is_standalone_with_plot_and_plan_table(loop: LoopResult) -> None:
    assert loop.report is not None
    assert loop.report.is_file()
    page = loop.report.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc=", page)  # every script inlined: opens offline
    assert not re.search(r"<link[^>]*\bhref=\"https?:", page)
    assert "Loading of trafo/0" in page  # the loading plot
    assert "Plan: " in page
    assert "Dispatch status via" in page
    for element in loop.plan.commands["element"].unique():
        assert element in page
    assert len(page) > 500_000  # Bokeh's JavaScript is in the page


def test_stage_timings_are_reported(loop: LoopResult) -> None:
    stages = {"synthesise meter data", "predict", "plan", "dispatch", "confirm with AC power flow", "report"}
    assert stages <= set(loop.seconds)
    assert loop.seconds["total"] == pytest.approx(sum(v for k, v in loop.seconds.items() if k != "total"), abs=0.01)
    assert loop.store.is_dir()
    assert loop.history_days == 35
    sensors = loop.virtual_sensors.summary
    assert list(sensors.index) == ["trafo/0"]  # the transformer's metering against its meters
    assert not sensors.loc["trafo/0", "ntl_suspected"]  # no unmetered load in the loop's data
    assert abs(sensors.loc["trafo/0", "median_rel_error"]) < 0.03


def test_falls_back_to_in_process_without_mosquitto(
    loop: LoopResult, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def missing(*_args: object, **_kwargs: object) -> None:
        raise FileNotFoundError("mosquitto not found in PATH or /usr/sbin: apt-get install mosquitto")

    monkeypatch.setattr(twin.dispatch, "MosquittoBroker", missing)
    result = run_loop(tmp_path / "store", console=_console(), **QUIET)
    assert result.broker == "in-process"
    assert any("mosquitto is not installed" in n for n in result.notes)
    assert result.execution.state == "executed"
    # the same inputs give the same plan, and in process applies what MQTT applied
    cols = ["element", "element_kind", "kw", "start", "end"]
    pd.testing.assert_frame_equal(result.applied[cols], loop.applied[cols])
    assert np.allclose(result.loading_pct.to_numpy(), loop.loading_pct.to_numpy())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"issue_day": "2016-06-01 12:00"}, "not a midnight"),
        ({"issue_day": "2017-03-01"}, "cover 2016 only"),
        ({"issue_day": "2016-01-20"}, "at least 35 days"),
        ({"issue_day": DAY, "history_days": 200}, "history_days <= 152"),
        ({"dispatch": "carrier-pigeon"}, "dispatch="),
        ({"member": "p50"}, "member='p50'"),
        ({"member": 1.5}, "quantile level in (0, 1)"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        run_loop(tmp_path / "store", console=_console(), **kwargs)
    assert not (tmp_path / "store").exists()


def test_existing_path_is_refused(tmp_path: Path) -> None:
    (tmp_path / "store").mkdir()
    with pytest.raises(StoreError, match="exists"):
        run_loop(tmp_path / "store", console=_console(), **QUIET)


@pytest.mark.slow
def test_full_history_loop(broker: MosquittoBroker, tmp_path: Path) -> None:
    result = run_loop(tmp_path / "store", broker=broker.url, console=_console())
    assert result.history_days == 152  # 2016-01-01 … 2016-05-31: all the SimBench year holds before June
    assert result.execution.state == "executed"
    assert result.assets.loc["trafo/0", "forecast_after_max_pct"] <= result.limit_pct + 0.05
    assert result.assets.loc["trafo/0", "actual_after_max_pct"] < result.assets.loc["trafo/0", "actual_before_max_pct"]


@pytest.mark.slow
def test_no_alarm_no_plan(tmp_path: Path) -> None:
    """A winter day: the highest member exceeds 100 %, but no asset reaches the alarm probability: nothing is done."""
    result = run_loop(tmp_path / "store", issue_day="2016-02-10", history_days=35, console=_console())
    assert result.ranking.empty
    assert result.plan.commands.empty
    assert result.execution.state == "executed"
    assert result.applied.empty
    same = result.loading_pct.sel(case="actual_before") - result.loading_pct.sel(case="actual_after")
    assert float(abs(same).max()) == 0.0
    assert any("no overload alarm" in n for n in result.notes)
    assert result.report is not None
    assert result.report.is_file()
