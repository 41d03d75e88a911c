"""The ``gridtwin`` command: exit codes, summaries, errors, forwarding to the benchmarks."""

import io
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from rich.progress import track

from twin.cli import CommandError, _build_parser, frame_table, library_bars_on_stderr, main, print_json


def test_help_exits_zero_and_shows_examples(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "pf-ts" in out
    assert "gridtwin pf case118" in out


@pytest.mark.parametrize("command", ["pf", "pf-ts", "cases"])
def test_subcommand_help_exits_zero(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    assert f"usage: gridtwin {command}" in capsys.readouterr().out


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    commands = _build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    for command in set(commands) - {"bench"}:  # bench's --help is benchmarks/run.py's
        assert main([command, "--help"]) == 0
        assert f"usage: gridtwin {command}" in capsys.readouterr().out


def test_missing_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().err


def test_unknown_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pf", "case9", "--bogus"]) == 2
    assert "--bogus" in capsys.readouterr().err


def test_pf_prints_summary_and_writes_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "r.json"
    assert main(["pf", "case9", "--out", str(target)]) == 0
    out = capsys.readouterr().out
    for text in ("case9", "buses", "iterations", "solve time", "min voltage", "losses", "most loaded branches"):
        assert text in out
    assert "line/" in out
    assert f"wrote {target}" in out
    doc = json.loads(target.read_text())
    assert len(doc["bus"]["vm_pu"]) == 9
    assert doc["summary"]["converged"] is True


def test_pf_json_summary_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pf", "case9", "--json", "--top", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["grid"] == "case9"
    assert summary["size"]["bus"] == 9
    assert summary["converged"] is True
    assert summary["iterations"] >= 1
    assert summary["vm_min_pu"] <= summary["vm_max_pu"]
    assert summary["vm_min_bus"] in {str(i) for i in range(9)}
    assert summary["p_loss_mw"] > 0
    loadings = [row["loading_pct"] for row in summary["top_loaded"]]
    assert len(loadings) == 3
    assert loadings == sorted(loadings, reverse=True)
    assert set(summary["top_loaded"][0]) == {"branch", "kind", "loading_pct", "i_ka", "p_from_mw"}


def test_pf_unknown_case_is_one_line_error_with_hint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pf", "nonexistent_case"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: 'nonexistent_case' is not a file")
    assert "gridtwin cases" in captured.err
    assert "Traceback" not in captured.err
    assert captured.err.count("\n") == 1


def test_pf_missing_file_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pf", str(tmp_path / "grid.m")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_pf_bad_file_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "grid.json"
    bad.write_text("not json")
    assert main(["pf", str(bad)]) == 2
    assert "not a pandapower net file" in capsys.readouterr().err


def test_pf_not_converged_is_an_error_with_hint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pf", "case9", "--max-iter", "1"]) == 2
    err = capsys.readouterr().err
    assert "did not converge" in err
    assert "--max-iter" in err


def test_pf_unknown_out_suffix_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pf", "case9", "--out", str(tmp_path / "r.txt")]) == 2
    assert ".zarr, .nc, .csv, .json" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_traceback_flag_reraises() -> None:
    with pytest.raises(CommandError, match="nonexistent_case"):
        main(["--traceback", "pf", "nonexistent_case"])


def test_pf_ts_rejects_a_case_without_profiles(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pf-ts", "case9", "--steps", "4"]) == 2
    assert "not a SimBench code" in capsys.readouterr().err


def test_pf_ts_runs_simbench_profiles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "ts.csv"
    assert main(["pf-ts", "1-LV-rural1--0-sw", "--steps", "4", "--json", "--out", str(target)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["steps"] == 4
    assert summary["start"] == "2016-01-01T00:00:00"
    assert summary["not_converged"] == 0
    assert summary["steps_per_s"] > 0
    assert summary["vm_min_time"] is not None
    assert "time" in summary["top_loaded"][0]
    assert len(summary["written"]) == 3
    assert (tmp_path / "ts_branch.csv").exists()


def test_bench_forwards_remaining_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def run(argv: list[str]) -> int:
        seen.append(argv)
        return 5

    monkeypatch.setitem(sys.modules, "benchmarks.run", types.SimpleNamespace(main=run))
    assert main(["bench", "--suite", "small", "case9", "-h"]) == 5
    assert seen == [["--suite", "small", "case9", "-h"]]


def test_bench_without_suite_is_an_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "benchmarks.run", None)
    assert main(["bench"]) == 2
    assert "benchmark suite is not available" in capsys.readouterr().err


def test_cases_lists_builtin_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cases", "--plain"]) == 0
    names = capsys.readouterr().out.split()
    assert {"case9", "case118", "cigre_mv"} <= set(names)
    assert main(["cases"]) == 0
    assert "SimBench" in capsys.readouterr().out


def test_cases_json_lists_the_names(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cases", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {"case9", "case118"} <= set(doc["builtin"])
    assert "1-MV-urban--0-sw" in doc["simbench_examples"]


def test_print_json_writes_strict_json(capsys: pytest.CaptureFixture[str]) -> None:
    frame = pd.DataFrame({"t": pd.to_datetime(["2016-01-01"]), "x": [np.nan]})
    print_json({"nan": float("nan"), "inf": np.float64(np.inf), "n": np.int64(3), "when": pd.Timestamp(0), "f": frame})
    doc = json.loads(capsys.readouterr().out)  # strict: no NaN/Infinity tokens
    assert doc == {"nan": None, "inf": None, "n": 3, "when": "1970-01-01T00:00:00", "f": [
        {"t": "2016-01-01T00:00:00.000", "x": None}
    ]}  # fmt: skip


def test_library_progress_bars_go_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    list(track(range(3), description="bar-on-default-console"))  # rich's default console: stdout
    assert "bar-on-default-console" in capsys.readouterr().out
    with library_bars_on_stderr():
        list(track(range(3), description="bar-on-default-console"))
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "bar-on-default-console" in captured.err


def test_frame_table_shows_index_and_cuts_long_frames() -> None:
    frame = pd.DataFrame({"p_mw": np.arange(50.0)}, index=pd.Index([f"load/{i}" for i in range(50)], name="load"))
    console = Console(width=100, record=True, file=io.StringIO())
    table = frame_table(frame, "loads", max_rows=5)
    assert table.title == "loads (first 5 of 50 rows)"
    console.print(table)
    text = console.export_text()
    assert "load/4" in text
    assert "load/5" not in text


def test_python_m_twin_runs_the_command(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "twin", "--help"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert "usage: gridtwin" in done.stdout
